package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/octoacme/octoroll/internal/logging"
)

// config is the daemon's settings: environment variables (prefix OCTOROLL_) first,
// then flags of the same name override them.
type config struct {
	Config         string        `env:"CONFIG"`                                // catalog YAML path
	StateDir       string        `env:"STATE_DIR" envDefault:"octoroll-state"` // bbolt state directory
	XDSAddr        string        `env:"XDS_ADDR" envDefault:":18000"`
	AdminAddr      string        `env:"ADMIN_ADDR" envDefault:"127.0.0.1:8080"`
	AdminToken     string        `env:"ADMIN_TOKEN"`
	PrometheusURL  string        `env:"PROMETHEUS_URL"`
	ScrapeInterval time.Duration `env:"SCRAPE_INTERVAL" envDefault:"5s"` // embedded scrape source
	MetricsWindow  time.Duration `env:"METRICS_WINDOW"`                  // lower bound of one check's metrics window
	XDSCert        string        `env:"XDS_TLS_CERT"`
	XDSKey         string        `env:"XDS_TLS_KEY"`
	XDSClientCA    string        `env:"XDS_TLS_CLIENT_CA"` // set to require client certificates (mTLS)
	LogFormat      string        `env:"LOG_FORMAT" envDefault:"json"`
	LogLevel       string        `env:"LOG_LEVEL" envDefault:"info"`
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
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "bearer token for mutating admin calls (OCTOROLL_ADMIN_TOKEN)")
	fs.StringVar(&c.PrometheusURL, "prometheus-url", c.PrometheusURL, "Prometheus server URL; empty scrapes versions directly (OCTOROLL_PROMETHEUS_URL)")
	fs.DurationVar(&c.MetricsWindow, "metrics-window", c.MetricsWindow, "shortest metrics window of one check; default the rollout's check interval (OCTOROLL_METRICS_WINDOW)")
	fs.DurationVar(&c.ScrapeInterval, "scrape-interval", c.ScrapeInterval, "scrape interval of the embedded metrics source (OCTOROLL_SCRAPE_INTERVAL)")
	fs.StringVar(&c.XDSCert, "xds-tls-cert", c.XDSCert, "xDS server certificate file (OCTOROLL_XDS_TLS_CERT)")
	fs.StringVar(&c.XDSKey, "xds-tls-key", c.XDSKey, "xDS server key file (OCTOROLL_XDS_TLS_KEY)")
	fs.StringVar(&c.XDSClientCA, "xds-tls-client-ca", c.XDSClientCA, "CA file; when set, xDS clients must present certificates (OCTOROLL_XDS_TLS_CLIENT_CA)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or console (OCTOROLL_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (OCTOROLL_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
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
	if c.PrometheusURL != "" {
		if u, err := url.Parse(c.PrometheusURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("prometheus-url: %q is not an http(s) URL", c.PrometheusURL))
		}
	}
	if c.MetricsWindow < 0 {
		errs = append(errs, fmt.Errorf("metrics-window: %s must not be negative", c.MetricsWindow))
	}
	if c.ScrapeInterval <= 0 {
		errs = append(errs, fmt.Errorf("scrape-interval: %s must be positive", c.ScrapeInterval))
	}
	if (c.XDSCert == "") != (c.XDSKey == "") {
		errs = append(errs, errors.New("xds-tls-cert and xds-tls-key must be set together"))
	}
	if c.XDSClientCA != "" && c.XDSCert == "" {
		errs = append(errs, errors.New("xds-tls-client-ca needs xds-tls-cert and xds-tls-key"))
	}
	if err := logging.Validate(c.LogFormat, c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
