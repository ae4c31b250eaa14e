package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/publish"
)

func TestPrometheusSettings(t *testing.T) {
	t.Setenv("OCTOROLL_CONFIG", "catalog.yaml")
	t.Setenv("OCTOROLL_PROMETHEUS_URL", "https://prometheus.example:9090")
	t.Setenv("OCTOROLL_PROMETHEUS_USERNAME", "octoroll")
	t.Setenv("OCTOROLL_PROMETHEUS_PASSWORD_FILE", "/run/secrets/prom-password")
	t.Setenv("OCTOROLL_PROMETHEUS_HEADERS", "X-Scope-OrgID=shop, X-Query=a=b")
	t.Setenv("OCTOROLL_PROMETHEUS_CA_FILE", "/etc/prom/ca.pem")
	t.Setenv("OCTOROLL_PROMETHEUS_INSECURE_SKIP_VERIFY", "false")
	c, err := loadConfig("serve", []string{"--prometheus-timeout", "3s", "--prometheus-server-name", "prom.internal",
		"--prometheus-cert-file", "/etc/prom/c.pem", "--prometheus-key-file", "/etc/prom/k.pem"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.prometheus()
	if err != nil {
		t.Fatal(err)
	}
	want := metrics.PrometheusConfig{
		Address: "https://prometheus.example:9090", Timeout: 3 * time.Second,
		Username: "octoroll", PasswordFile: "/run/secrets/prom-password",
		Headers: map[string]string{"X-Scope-OrgID": "shop", "X-Query": "a=b"},
		TLS:     metrics.TLSConfig{CAFile: "/etc/prom/ca.pem", CertFile: "/etc/prom/c.pem", KeyFile: "/etc/prom/k.pem", ServerName: "prom.internal"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("prometheus settings (-want +got):\n%s", diff)
	}
}

func TestPrometheusSettingsDefaultsAndErrors(t *testing.T) {
	t.Setenv("OCTOROLL_CONFIG", "catalog.yaml")
	c, err := loadConfig("serve", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Prometheus.Timeout != 10*time.Second {
		t.Errorf("default timeout %v, want 10s", c.Prometheus.Timeout)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"settings without url", []string{"--prometheus-username", "u"}, nil, "need prometheus-url"},
		{"zero timeout", []string{"--prometheus-timeout", "0s"}, nil, "prometheus-timeout: 0s must be positive"},
		{"user without password", []string{"--prometheus-url", "http://p:9090", "--prometheus-username", "u"}, nil, "needs a password"},
		{"basic and bearer", []string{"--prometheus-url", "http://p:9090", "--prometheus-username", "u", "--prometheus-bearer-token-file", "/t"},
			map[string]string{"OCTOROLL_PROMETHEUS_PASSWORD": "x"}, "at most one of basic_auth"},
		{"cert without key", []string{"--prometheus-url", "http://p:9090", "--prometheus-cert-file", "/c"}, nil, "set together"},
		{"bad headers", []string{"--prometheus-url", "http://p:9090", "--prometheus-headers", "X-A"}, nil, `prometheus-headers: an entry is not Name=value`},
		{"duplicate header", []string{"--prometheus-url", "http://p:9090", "--prometheus-headers", "X-A=1,X-A=2"}, nil, "given twice"},
		{"reserved header", []string{"--prometheus-url", "http://p:9090", "--prometheus-headers", "Authorization=x"}, nil, "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := loadConfig("serve", tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadConfig(%v) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestDNSSettings(t *testing.T) {
	t.Setenv("OCTOROLL_CONFIG", "catalog.yaml")
	c, err := loadConfig("serve", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := c.dnsTTL(); c.DNSServer != "" || lo != publish.DefaultDNSMinTTL || hi != publish.DefaultDNSMaxTTL {
		t.Errorf("defaults: server %q, TTL bounds %s-%s, want the system's servers, %s-%s", c.DNSServer, lo, hi,
			publish.DefaultDNSMinTTL, publish.DefaultDNSMaxTTL)
	}
	t.Setenv("OCTOROLL_DNS_SERVER", "10.0.0.53:53")
	t.Setenv("OCTOROLL_DNS_MIN_TTL", "3s")
	if c, err = loadConfig("serve", []string{"--dns-max-ttl", "2m"}); err != nil {
		t.Fatal(err)
	}
	if lo, hi := c.dnsTTL(); c.DNSServer != "10.0.0.53:53" || lo != 3*time.Second || hi != 2*time.Minute {
		t.Errorf("server %q, TTL bounds %s-%s, want 10.0.0.53:53, 3s-2m", c.DNSServer, lo, hi)
	}
	if r, note := c.resolver(); note != "" || !slices.Equal(r.(*publish.DNSClient).Servers, []string{"10.0.0.53:53"}) {
		t.Errorf("resolver %#v (%s), want a DNS client of the server", r, note)
	}
	// dns-refresh, the former name of the ceiling, still sets it; the floor follows a
	// ceiling below its default.
	t.Setenv("OCTOROLL_DNS_MIN_TTL", "")
	if c, err = loadConfig("serve", []string{"--dns-refresh", "2s"}); err != nil {
		t.Fatal(err)
	}
	if lo, hi := c.dnsTTL(); lo != 2*time.Second || hi != 2*time.Second {
		t.Errorf("--dns-refresh 2s: TTL bounds %s-%s, want 2s-2s", lo, hi)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dns-server", "10.0.0.53"}, `dns-server: "10.0.0.53"`},
		{[]string{"--dns-refresh", "100ms"}, "dns-refresh: 100ms is below the minimum of 1s"},
		{[]string{"--dns-min-ttl", "500ms"}, "dns-min-ttl: 500ms is below the minimum of 1s"},
		{[]string{"--dns-min-ttl", "1m", "--dns-max-ttl", "30s"}, "dns-min-ttl: 1m0s is above dns-max-ttl 30s"},
		{[]string{"--dns-refresh", "10s", "--dns-max-ttl", "30s"}, "dns-refresh: 10s differs from dns-max-ttl 30s"},
	} {
		if _, err := loadConfig("serve", tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("loadConfig(%v) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestAdminAccessSettings(t *testing.T) {
	t.Setenv("OCTOROLL_CONFIG", "catalog.yaml")
	t.Setenv("OCTOROLL_ADMIN_TOKENS_FILE", "/run/secrets/tokens.yaml")
	t.Setenv("OCTOROLL_ADMIN_ALLOWED_HOSTS", "octoroll, *.ops.example.com")
	c, err := loadConfig("serve", []string{"--admin-read-token-required"})
	if err != nil {
		t.Fatal(err)
	}
	hosts, _ := c.allowedHosts()
	if c.AdminTokensFile != "/run/secrets/tokens.yaml" || !c.AdminReadTokenRequired || c.adminTokenFlag ||
		strings.Join(hosts, ",") != "octoroll,*.ops.example.com" {
		t.Errorf("config %+v, hosts %v", c, hosts)
	}
	if c, err := loadConfig("serve", []string{"--admin-token", "x"}); err != nil || !c.adminTokenFlag {
		t.Errorf("--admin-token not noticed as a flag: %v", err)
	}
	t.Setenv("OCTOROLL_ADMIN_TOKENS_FILE", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--admin-read-token-required"}, "admin-read-token-required: needs a token"},
		{[]string{"--admin-token", "x", "--admin-token-file", "f"}, "admin-token and admin-token-file"},
		{[]string{"--admin-allowed-hosts", "http://octoroll:8080"}, `admin-allowed-hosts: "http://octoroll:8080"`},
	} {
		if _, err := loadConfig("serve", c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

func TestXDSBindSettings(t *testing.T) {
	t.Setenv("OCTOROLL_CONFIG", "catalog.yaml")
	c, err := loadConfig("serve", nil)
	if err != nil || c.XDSAddr != "127.0.0.1:18000" {
		t.Fatalf("default xds-addr %q (%v), want loopback", c.XDSAddr, err)
	}
	for _, ok := range [][]string{
		{"--xds-addr", "[::1]:18000"},
		{"--xds-addr", ":18000", "--xds-insecure"},
		{"--xds-addr", "0.0.0.0:18000", "--xds-tls-cert", "c.pem", "--xds-tls-key", "k.pem"},
		{"--xds-addr", ":18000", "--xds-tls-cert", "c.pem", "--xds-tls-key", "k.pem", "--xds-tls-client-ca", "ca.pem", "--xds-tls-require-node-identity"},
	} {
		if _, err := loadConfig("serve", ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--xds-addr", ":18000"}, `xds-addr: ":18000" listens beyond loopback without TLS`},
		{[]string{"--xds-addr", "10.0.0.5:18000"}, "--xds-insecure"},
		{[]string{"--xds-tls-require-node-identity"}, "xds-tls-require-node-identity needs xds-tls-client-ca"},
	} {
		if _, err := loadConfig("serve", c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
