package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/octoacme/octoroll/admin"
	"github.com/octoacme/octoroll/internal/logging"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/publish"
)

// resolvConf is the system's resolver configuration.
const resolvConf = "/etc/resolv.conf"

// resolver returns the resolver of endpoint names, which reports the records' TTLs
// and answers SRV queries: a DNS client of the configured DNS server or, without one,
// of the servers and search list of /etc/resolv.conf. Where that file cannot be read
// it is the system's resolver (no TTLs: answers are kept for dns-max-ttl; no SRV
// names), and note says so.
func (c config) resolver() (r publish.HostResolver, note string) {
	dc, err := publish.NewDNSClient(c.DNSServer, resolvConf)
	if err != nil {
		return net.DefaultResolver, fmt.Sprintf("%v: endpoint names resolved by the system resolver, without TTLs or SRV records", err)
	}
	return dc, ""
}

// dnsTTL returns the bounds of how long a DNS answer is kept: dns-min-ttl and
// dns-max-ttl, dns-refresh being the former name of dns-max-ttl.
func (c config) dnsTTL() (minTTL, maxTTL time.Duration) {
	maxTTL = c.DNSMaxTTL
	if maxTTL == 0 {
		maxTTL = c.DNSRefresh
	}
	if maxTTL == 0 {
		maxTTL = publish.DefaultDNSMaxTTL
	}
	minTTL = c.DNSMinTTL
	if minTTL == 0 {
		minTTL = min(publish.DefaultDNSMinTTL, maxTTL)
	}
	return minTTL, maxTTL
}

// config is the daemon's settings: environment variables (prefix OCTOROLL_) first,
// then flags of the same name override them.
type config struct {
	Config     string `env:"CONFIG"`                                // catalog YAML path
	StateDir   string `env:"STATE_DIR" envDefault:"octoroll-state"` // bbolt state directory
	XDSAddr    string `env:"XDS_ADDR" envDefault:"127.0.0.1:18000"`
	AdminAddr  string `env:"ADMIN_ADDR" envDefault:"127.0.0.1:8080"`
	AdminToken string `env:"ADMIN_TOKEN"`
	// AdminTokenFile holds the single admin token; AdminTokensFile named tokens with
	// roles. Both are re-read when they change.
	AdminTokenFile         string `env:"ADMIN_TOKEN_FILE"`
	AdminTokensFile        string `env:"ADMIN_TOKENS_FILE"`
	AdminReadTokenRequired bool   `env:"ADMIN_READ_TOKEN_REQUIRED"`
	// adminTokenFlag is set when the token was given as a flag (visible to ps).
	adminTokenFlag bool
	// AdminAllowedHosts are host names, besides loopback and the listen address, that
	// requests may name in Host and cross-origin mutations may come from.
	AdminAllowedHosts string `env:"ADMIN_ALLOWED_HOSTS"`
	PrometheusURL     string `env:"PROMETHEUS_URL"`
	Prometheus        prometheusConfig
	ScrapeInterval    time.Duration `env:"SCRAPE_INTERVAL" envDefault:"5s"` // embedded scrape source
	MetricsWindow     time.Duration `env:"METRICS_WINDOW"`                  // lower bound of one check's metrics window
	DNSServer         string        `env:"DNS_SERVER"`                      // host:port of the DNS server of endpoint names; empty: the system's
	DNSMinTTL         time.Duration `env:"DNS_MIN_TTL"`                     // 0: publish.DefaultDNSMinTTL (see dnsTTL)
	DNSMaxTTL         time.Duration `env:"DNS_MAX_TTL"`                     // 0: dns-refresh, else publish.DefaultDNSMaxTTL
	DNSRefresh        time.Duration `env:"DNS_REFRESH"`                     // former name of DNS_MAX_TTL
	XDSCert           string        `env:"XDS_TLS_CERT"`
	XDSKey            string        `env:"XDS_TLS_KEY"`
	XDSClientCA       string        `env:"XDS_TLS_CLIENT_CA"` // set to require client certificates (mTLS)
	// XDSNodeIdentity requires each proxy's client certificate to name its node id.
	XDSNodeIdentity bool `env:"XDS_TLS_REQUIRE_NODE_IDENTITY"`
	// XDSInsecure allows a plaintext xDS listener beyond loopback.
	XDSInsecure bool   `env:"XDS_INSECURE"`
	Store       string `env:"STORE" envDefault:"bbolt"` // bbolt (one replica) or etcd (several)
	Etcd        etcdConfig
	LogFormat   string `env:"LOG_FORMAT" envDefault:"json"`
	LogLevel    string `env:"LOG_LEVEL" envDefault:"info"`
}

// prometheusConfig is how octoroll talks to the Prometheus server (OCTOROLL_PROMETHEUS_*).
// The in-line secrets (password, bearer token) are read from the environment only, so
// that they never show on a command line; the _FILE variants are re-read on every
// request.
type prometheusConfig struct {
	Timeout            time.Duration `env:"PROMETHEUS_TIMEOUT" envDefault:"10s"` // per query
	Username           string        `env:"PROMETHEUS_USERNAME"`
	Password           string        `env:"PROMETHEUS_PASSWORD"`
	PasswordFile       string        `env:"PROMETHEUS_PASSWORD_FILE"`
	BearerToken        string        `env:"PROMETHEUS_BEARER_TOKEN"`
	BearerTokenFile    string        `env:"PROMETHEUS_BEARER_TOKEN_FILE"`
	Headers            string        `env:"PROMETHEUS_HEADERS"` // "Name=value,Name2=value"
	CAFile             string        `env:"PROMETHEUS_CA_FILE"`
	CertFile           string        `env:"PROMETHEUS_CERT_FILE"`
	KeyFile            string        `env:"PROMETHEUS_KEY_FILE"`
	ServerName         string        `env:"PROMETHEUS_SERVER_NAME"`
	InsecureSkipVerify bool          `env:"PROMETHEUS_INSECURE_SKIP_VERIFY"`
}

// etcdConfig is the shared store of several replicas (OCTOROLL_ETCD_*, OCTOROLL_REPLICA_*).
type etcdConfig struct {
	Endpoints string        `env:"ETCD_ENDPOINTS"` // comma-separated client URLs
	Prefix    string        `env:"ETCD_PREFIX" envDefault:"/octoroll/"`
	LeaseTTL  time.Duration `env:"LEASE_TTL" envDefault:"5s"`
	Timeout   time.Duration `env:"ETCD_TIMEOUT" envDefault:"5s"` // per request
	// ReplicaID names this replica; default the host name.
	ReplicaID string `env:"REPLICA_ID"`
	// AdvertiseAdmin is the admin URL the other replicas forward mutations to; default
	// http:// and the admin address.
	AdvertiseAdmin string `env:"ADVERTISE_ADMIN"`
}

// endpoints are the etcd client URLs.
func (c config) endpoints() []string {
	var out []string
	for _, e := range strings.Split(c.Etcd.Endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// parseHeaders reads "Name=value,Name2=value" (a value may hold '=' but no ',').
func parseHeaders(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			// The entry is not quoted: it may hold a secret.
			return nil, errors.New("an entry is not Name=value")
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("header %s given twice", name)
		}
		out[name] = strings.TrimSpace(value)
	}
	return out, nil
}

// prometheus returns the settings of the Prometheus source.
func (c config) prometheus() (metrics.PrometheusConfig, error) {
	p := c.Prometheus
	headers, err := parseHeaders(p.Headers)
	if err != nil {
		return metrics.PrometheusConfig{}, fmt.Errorf("prometheus-headers: %w", err)
	}
	return metrics.PrometheusConfig{
		Address: c.PrometheusURL, Timeout: p.Timeout,
		Username: p.Username, Password: p.Password, PasswordFile: p.PasswordFile,
		BearerToken: p.BearerToken, BearerTokenFile: p.BearerTokenFile,
		Headers: headers,
		TLS: metrics.TLSConfig{
			CAFile: p.CAFile, CertFile: p.CertFile, KeyFile: p.KeyFile,
			ServerName: p.ServerName, InsecureSkipVerify: p.InsecureSkipVerify,
		},
	}, nil
}

// loadConfig reads the environment, then args as flags.
func loadConfig(name string, args []string) (config, error) {
	var c config
	if err := env.ParseWithOptions(&c, env.Options{Prefix: "OCTOROLL_"}); err != nil {
		return c, fmt.Errorf("environment: %w", err)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.Config, "config", c.Config, "catalog YAML file (OCTOROLL_CONFIG)")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "directory of the state store (OCTOROLL_STATE_DIR)")
	fs.StringVar(&c.XDSAddr, "xds-addr", c.XDSAddr, "xDS gRPC listen address (OCTOROLL_XDS_ADDR)")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "admin HTTP listen address (OCTOROLL_ADMIN_ADDR)")
	fs.StringVar(&c.AdminAllowedHosts, "admin-allowed-hosts", c.AdminAllowedHosts, "comma-separated host names (or *.example.com) the admin API answers besides loopback and its listen address: DNS names, reverse-proxy names (OCTOROLL_ADMIN_ALLOWED_HOSTS)")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "single admin token; prefer OCTOROLL_ADMIN_TOKEN or --admin-token-file, a flag shows in ps (OCTOROLL_ADMIN_TOKEN)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "file holding the single admin token (OCTOROLL_ADMIN_TOKEN_FILE)")
	fs.StringVar(&c.AdminTokensFile, "admin-tokens-file", c.AdminTokensFile, "YAML or JSON file of named tokens with roles viewer, operator, admin; re-read on change (OCTOROLL_ADMIN_TOKENS_FILE)")
	fs.BoolVar(&c.AdminReadTokenRequired, "admin-read-token-required", c.AdminReadTokenRequired, "reads (API, page, metrics) need a token too (OCTOROLL_ADMIN_READ_TOKEN_REQUIRED)")
	fs.StringVar(&c.PrometheusURL, "prometheus-url", c.PrometheusURL, "Prometheus server URL; empty scrapes versions directly (OCTOROLL_PROMETHEUS_URL)")
	p := &c.Prometheus
	fs.DurationVar(&p.Timeout, "prometheus-timeout", p.Timeout, "timeout of one Prometheus query (OCTOROLL_PROMETHEUS_TIMEOUT)")
	fs.StringVar(&p.Username, "prometheus-username", p.Username, "basic auth user; password in OCTOROLL_PROMETHEUS_PASSWORD or a file (OCTOROLL_PROMETHEUS_USERNAME)")
	fs.StringVar(&p.PasswordFile, "prometheus-password-file", p.PasswordFile, "file holding the basic auth password (OCTOROLL_PROMETHEUS_PASSWORD_FILE)")
	fs.StringVar(&p.BearerTokenFile, "prometheus-bearer-token-file", p.BearerTokenFile, "file holding a bearer token; or OCTOROLL_PROMETHEUS_BEARER_TOKEN (OCTOROLL_PROMETHEUS_BEARER_TOKEN_FILE)")
	fs.StringVar(&p.Headers, "prometheus-headers", p.Headers, "extra request headers, Name=value,Name2=value (OCTOROLL_PROMETHEUS_HEADERS)")
	fs.StringVar(&p.CAFile, "prometheus-ca-file", p.CAFile, "CA file verifying the Prometheus server (OCTOROLL_PROMETHEUS_CA_FILE)")
	fs.StringVar(&p.CertFile, "prometheus-cert-file", p.CertFile, "client certificate file for mutual TLS (OCTOROLL_PROMETHEUS_CERT_FILE)")
	fs.StringVar(&p.KeyFile, "prometheus-key-file", p.KeyFile, "client key file for mutual TLS (OCTOROLL_PROMETHEUS_KEY_FILE)")
	fs.StringVar(&p.ServerName, "prometheus-server-name", p.ServerName, "expected TLS server name (OCTOROLL_PROMETHEUS_SERVER_NAME)")
	fs.BoolVar(&p.InsecureSkipVerify, "prometheus-insecure-skip-verify", p.InsecureSkipVerify, "do not verify the server's certificate (OCTOROLL_PROMETHEUS_INSECURE_SKIP_VERIFY)")
	fs.DurationVar(&c.MetricsWindow, "metrics-window", c.MetricsWindow, "shortest metrics window of one check; default the rollout's check interval (OCTOROLL_METRICS_WINDOW)")
	fs.DurationVar(&c.ScrapeInterval, "scrape-interval", c.ScrapeInterval, "scrape interval of the embedded metrics source (OCTOROLL_SCRAPE_INTERVAL)")
	fs.StringVar(&c.DNSServer, "dns-server", c.DNSServer, "host:port of the DNS server resolving endpoint names; empty uses the system's (OCTOROLL_DNS_SERVER)")
	fs.DurationVar(&c.DNSMinTTL, "dns-min-ttl", c.DNSMinTTL, "shortest time a DNS answer is kept, whatever its TTL; default 5s (OCTOROLL_DNS_MIN_TTL)")
	fs.DurationVar(&c.DNSMaxTTL, "dns-max-ttl", c.DNSMaxTTL, "longest time a DNS answer is kept, whatever its TTL; default 5m (OCTOROLL_DNS_MAX_TTL)")
	fs.DurationVar(&c.DNSRefresh, "dns-refresh", c.DNSRefresh, "former name of dns-max-ttl (OCTOROLL_DNS_REFRESH)")
	fs.StringVar(&c.XDSCert, "xds-tls-cert", c.XDSCert, "xDS server certificate file (OCTOROLL_XDS_TLS_CERT)")
	fs.StringVar(&c.XDSKey, "xds-tls-key", c.XDSKey, "xDS server key file (OCTOROLL_XDS_TLS_KEY)")
	fs.StringVar(&c.XDSClientCA, "xds-tls-client-ca", c.XDSClientCA, "CA file; when set, xDS clients must present certificates (OCTOROLL_XDS_TLS_CLIENT_CA)")
	fs.StringVar(&c.Store, "store", c.Store, "state store: bbolt (one replica, in --state-dir) or etcd (several replicas) (OCTOROLL_STORE)")
	e := &c.Etcd
	fs.StringVar(&e.Endpoints, "etcd-endpoints", e.Endpoints, "comma-separated etcd client URLs, with --store etcd (OCTOROLL_ETCD_ENDPOINTS)")
	fs.StringVar(&e.Prefix, "etcd-prefix", e.Prefix, "key prefix of octoroll's keys in etcd (OCTOROLL_ETCD_PREFIX)")
	fs.DurationVar(&e.LeaseTTL, "lease-ttl", e.LeaseTTL, "lease TTL of a replica, whole seconds: how long a leader cut off from etcd may still be taken for the leader (OCTOROLL_LEASE_TTL)")
	fs.DurationVar(&e.Timeout, "etcd-timeout", e.Timeout, "timeout of one etcd request (OCTOROLL_ETCD_TIMEOUT)")
	fs.StringVar(&e.ReplicaID, "replica-id", e.ReplicaID, "name of this replica; default the host name (OCTOROLL_REPLICA_ID)")
	fs.StringVar(&e.AdvertiseAdmin, "advertise-admin", e.AdvertiseAdmin, "admin URL the other replicas forward mutations to; default http:// and --admin-addr (OCTOROLL_ADVERTISE_ADMIN)")
	fs.BoolVar(&c.XDSNodeIdentity, "xds-tls-require-node-identity", c.XDSNodeIdentity, "a proxy's client certificate must name its node id as a URI SAN or CN (OCTOROLL_XDS_TLS_REQUIRE_NODE_IDENTITY)")
	fs.BoolVar(&c.XDSInsecure, "xds-insecure", c.XDSInsecure, "allow plaintext, unauthenticated xDS beyond loopback, on a network you trust (OCTOROLL_XDS_INSECURE)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or console (OCTOROLL_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (OCTOROLL_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { c.adminTokenFlag = c.adminTokenFlag || f.Name == "admin-token" })
	return c, c.Validate()
}

// Validate reports every invalid setting.
func (c config) Validate() error {
	var errs []error
	if c.Config == "" {
		errs = append(errs, errors.New("config: a catalog file is required (--config or OCTOROLL_CONFIG)"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("state-dir: must not be empty"))
	}
	for _, a := range []struct{ name, addr string }{{"xds-addr", c.XDSAddr}, {"admin-addr", c.AdminAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", a.name, a.addr, err))
		}
	}
	if c.AdminToken != "" && c.AdminTokenFile != "" {
		errs = append(errs, errors.New("admin-token and admin-token-file: give one"))
	}
	if c.AdminReadTokenRequired && c.AdminToken == "" && c.AdminTokenFile == "" && c.AdminTokensFile == "" {
		errs = append(errs, errors.New("admin-read-token-required: needs a token (admin-token-file or admin-tokens-file)"))
	}
	if _, err := c.allowedHosts(); err != nil {
		errs = append(errs, err)
	}
	if c.PrometheusURL != "" {
		if u, err := url.Parse(c.PrometheusURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("prometheus-url: %q is not an http(s) URL", c.PrometheusURL))
		} else if pc, err := c.prometheus(); err != nil {
			errs = append(errs, err)
		} else if err := pc.Validate(); err != nil {
			errs = append(errs, err)
		}
	} else if c.Prometheus != (prometheusConfig{Timeout: c.Prometheus.Timeout}) {
		errs = append(errs, errors.New("prometheus-*: the Prometheus settings need prometheus-url"))
	}
	if c.Prometheus.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("prometheus-timeout: %s must be positive", c.Prometheus.Timeout))
	}
	if c.MetricsWindow < 0 {
		errs = append(errs, fmt.Errorf("metrics-window: %s must not be negative", c.MetricsWindow))
	}
	if c.ScrapeInterval <= 0 {
		errs = append(errs, fmt.Errorf("scrape-interval: %s must be positive", c.ScrapeInterval))
	}
	if c.DNSServer != "" {
		if _, _, err := net.SplitHostPort(c.DNSServer); err != nil {
			errs = append(errs, fmt.Errorf("dns-server: %q: %w", c.DNSServer, err))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dns-min-ttl", c.DNSMinTTL}, {"dns-max-ttl", c.DNSMaxTTL}, {"dns-refresh", c.DNSRefresh}} {
		if d.v != 0 && d.v < publish.MinDNSRefresh {
			errs = append(errs, fmt.Errorf("%s: %s is below the minimum of %s", d.name, d.v, publish.MinDNSRefresh))
		}
	}
	if c.DNSMaxTTL != 0 && c.DNSRefresh != 0 && c.DNSMaxTTL != c.DNSRefresh {
		errs = append(errs, fmt.Errorf("dns-refresh: %s differs from dns-max-ttl %s; dns-refresh is the former name of dns-max-ttl, set one", c.DNSRefresh, c.DNSMaxTTL))
	}
	if minTTL, maxTTL := c.dnsTTL(); minTTL > maxTTL {
		errs = append(errs, fmt.Errorf("dns-min-ttl: %s is above dns-max-ttl %s", minTTL, maxTTL))
	}
	if (c.XDSCert == "") != (c.XDSKey == "") {
		errs = append(errs, errors.New("xds-tls-cert and xds-tls-key must be set together"))
	}
	if c.XDSClientCA != "" && c.XDSCert == "" {
		errs = append(errs, errors.New("xds-tls-client-ca needs xds-tls-cert and xds-tls-key"))
	}
	switch c.Store {
	case "bbolt":
		if c.Etcd.Endpoints != "" {
			errs = append(errs, errors.New("etcd-endpoints: needs --store etcd"))
		}
	case "etcd":
		eps := c.endpoints()
		if len(eps) == 0 {
			errs = append(errs, errors.New("etcd-endpoints: --store etcd needs at least one etcd client URL"))
		}
		for _, ep := range eps {
			if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("etcd-endpoints: %q is not an http(s) URL", ep))
			}
		}
		if ttl := c.Etcd.LeaseTTL; ttl < time.Second || ttl%time.Second != 0 {
			errs = append(errs, fmt.Errorf("lease-ttl: %s must be whole seconds, at least 1s", ttl))
		}
		if c.Etcd.Timeout <= 0 {
			errs = append(errs, fmt.Errorf("etcd-timeout: %s must be positive", c.Etcd.Timeout))
		}
		if a := c.Etcd.AdvertiseAdmin; a != "" {
			if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("advertise-admin: %q is not an http(s) URL", a))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("store: %q is neither bbolt nor etcd", c.Store))
	}
	if c.XDSNodeIdentity && c.XDSClientCA == "" {
		errs = append(errs, errors.New("xds-tls-require-node-identity needs xds-tls-client-ca (client certificates)"))
	}
	if c.XDSCert == "" && !c.XDSInsecure && !admin.IsLoopback(c.XDSAddr) {
		errs = append(errs, fmt.Errorf("xds-addr: %q listens beyond loopback without TLS: anyone who reaches it reads every route and endpoint and can pose as a proxy; set xds-tls-cert and xds-tls-key (and xds-tls-client-ca for mutual TLS), or --xds-insecure (OCTOROLL_XDS_INSECURE) on a network you trust", c.XDSAddr))
	}
	if err := logging.Validate(c.LogFormat, c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// allowedHosts splits AdminAllowedHosts; every entry is a host name, an IP address or
// "*.domain", without scheme, port or path.
func (c config) allowedHosts() ([]string, error) {
	var out []string
	for _, h := range strings.Split(c.AdminAllowedHosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		name := strings.TrimPrefix(h, "*.")
		if strings.ContainsAny(name, "/:@*?# ") && net.ParseIP(name) == nil {
			return nil, fmt.Errorf("admin-allowed-hosts: %q: want a host name, an IP address or *.domain (no scheme, port or path)", h)
		}
		out = append(out, h)
	}
	return out, nil
}
