package metrics_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/metrics/promtest"
)

// pki is a throw-away CA with a server certificate for 127.0.0.1 and
// prometheus.test, and a client certificate, as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{"prometheus.test"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kder)
	}
	p := pki{caFile: write("ca.crt", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// TestPrometheusAuthTLSRealServer: a real Prometheus behind basic auth and mutual TLS
// (its --web.config.file); the source connects only with the right credentials, CA,
// client certificate and server name, and every refusal is an error, never no data.
func TestPrometheusAuthTLSRealServer(t *testing.T) {
	promtest.Require(t)
	p := newPKI(t)
	srv := promtest.StartServer(t, nil, promtest.Options{Web: &promtest.Web{
		Users: map[string]string{"octoroll": "s3cret"},
		TLS: &promtest.TLS{CertFile: p.serverCert, KeyFile: p.serverKey, ClientCAFile: p.caFile,
			ProbeCertFile: p.clientCert, ProbeKeyFile: p.clientKey},
	}})
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("server URL %s, want https", srv.URL)
	}
	passFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(passFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := metrics.PrometheusConfig{
		Address: srv.URL, Username: "octoroll", PasswordFile: passFile,
		TLS: metrics.TLSConfig{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey},
	}
	tests := []struct {
		name   string
		change func(*metrics.PrometheusConfig)
		ok     bool
	}{
		{"password file", func(*metrics.PrometheusConfig) {}, true},
		{"password", func(c *metrics.PrometheusConfig) { c.PasswordFile, c.Password = "", "s3cret" }, true},
		{"server name", func(c *metrics.PrometheusConfig) { c.TLS.ServerName = "prometheus.test" }, true},
		{"insecure skip verify", func(c *metrics.PrometheusConfig) { c.TLS.CAFile, c.TLS.InsecureSkipVerify = "", true }, true},
		{"wrong password", func(c *metrics.PrometheusConfig) { c.PasswordFile, c.Password = "", "guess" }, false},
		{"no auth", func(c *metrics.PrometheusConfig) { c.Username, c.PasswordFile = "", "" }, false},
		{"unknown CA", func(c *metrics.PrometheusConfig) { c.TLS.CAFile = "" }, false},
		{"wrong server name", func(c *metrics.PrometheusConfig) { c.TLS.ServerName = "other.test" }, false},
		{"no client certificate", func(c *metrics.PrometheusConfig) { c.TLS.CertFile, c.TLS.KeyFile = "", "" }, false},
		{"plain http", func(c *metrics.PrometheusConfig) {
			c.Address, c.TLS = "http"+strings.TrimPrefix(srv.URL, "https"), metrics.TLSConfig{}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			src, err := metrics.NewPrometheus(zaptest.NewLogger(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			v, err := src.QueryValue(t.Context(), catalog.Service{Name: "checkout"}, "v1", `vector(7)`, time.Minute, time.Now())
			if tc.ok {
				if err != nil || v != 7 {
					t.Fatalf("QueryValue = %v, %v; want 7", v, err)
				}
				return
			}
			if err == nil || errors.Is(err, metrics.ErrNoData) {
				t.Fatalf("QueryValue = %v, %v; want a failure other than no data", v, err)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestPrometheusHeadersBearerTimeout: the bearer token (re-read from its file on every
// request), extra headers and the per-query timeout, seen by a recording server.
func TestPrometheusHeadersBearerTimeout(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []http.Header
	)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		if strings.Contains(r.FormValue("query"), "slow") {
			select {
			case <-block:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(vector("1")))
	}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := metrics.NewPrometheus(zaptest.NewLogger(t), metrics.PrometheusConfig{
		Address: srv.URL, BearerTokenFile: tokenFile, Timeout: 300 * time.Millisecond,
		Headers: map[string]string{"X-Scope-OrgID": "shop", "X-Extra": "a=b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := src.Query(ctx, "up", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Query(ctx, "up", time.Now()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(seen) != 2 || seen[0].Get("Authorization") != "Bearer first" || seen[1].Get("Authorization") != "Bearer second" ||
		seen[0].Get("X-Scope-OrgID") != "shop" || seen[0].Get("X-Extra") != "a=b" {
		t.Errorf("request headers %v", seen)
	}
	mu.Unlock()

	began := time.Now()
	_, err = src.Query(ctx, "slow", time.Now())
	if err == nil || errors.Is(err, metrics.ErrNoData) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow query: %v, want a deadline error", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("slow query returned after %v, want the 300ms timeout to end it", d)
	}
}

func TestPrometheusConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  metrics.PrometheusConfig
		want string // "" means valid
	}{
		{"minimal", metrics.PrometheusConfig{Address: "http://127.0.0.1:9090"}, ""},
		{"full basic", metrics.PrometheusConfig{Address: "https://p:9090", Username: "u", PasswordFile: "/f", Headers: map[string]string{"X-A": "1"},
			TLS: metrics.TLSConfig{CAFile: "/ca", CertFile: "/c", KeyFile: "/k", ServerName: "p"}}, ""},
		{"bearer", metrics.PrometheusConfig{Address: "http://p", BearerToken: "t"}, ""},
		{"no address", metrics.PrometheusConfig{}, "address is empty"},
		{"bad address", metrics.PrometheusConfig{Address: "ftp://p"}, "not an http(s) URL"},
		{"negative timeout", metrics.PrometheusConfig{Address: "http://p", Timeout: -time.Second}, "must not be negative"},
		{"password without user", metrics.PrometheusConfig{Address: "http://p", Password: "x"}, "needs a username"},
		{"user without password", metrics.PrometheusConfig{Address: "http://p", Username: "u"}, "needs a password"},
		{"password and file", metrics.PrometheusConfig{Address: "http://p", Username: "u", Password: "x", PasswordFile: "/f"}, "at most one of basic_auth password"},
		{"basic and bearer", metrics.PrometheusConfig{Address: "http://p", Username: "u", Password: "x", BearerToken: "t"}, "at most one of basic_auth"},
		{"token and file", metrics.PrometheusConfig{Address: "http://p", BearerToken: "t", BearerTokenFile: "/f"}, "at most one of bearer_token"},
		{"cert without key", metrics.PrometheusConfig{Address: "https://p", TLS: metrics.TLSConfig{CertFile: "/c"}}, "set together"},
		{"reserved header", metrics.PrometheusConfig{Address: "http://p", Headers: map[string]string{"Authorization": "x"}}, "not allowed"},
		{"bad header name", metrics.PrometheusConfig{Address: "http://p", Headers: map[string]string{"X A": "x"}}, "not a valid header name"},
		{"round tripper and settings", metrics.PrometheusConfig{Address: "http://p", BearerToken: "t", RoundTripper: http.DefaultTransport}, "one or the other"},
		{"credentials in the URL", metrics.PrometheusConfig{Address: "http://admin:hunter2@p:9090"}, "http://admin:xxxxx@p:9090: put credentials in the username and password settings"},
		{"TLS over http", metrics.PrometheusConfig{Address: "http://p", TLS: metrics.TLSConfig{CAFile: "/ca"}}, "TLS settings need an https URL"},
		{"header value with CR LF", metrics.PrometheusConfig{Address: "http://p", Headers: map[string]string{"X-A": "1\r\nX-B: 2"}}, "the value has a control character"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		// NewPrometheus refuses what Validate refuses (valid settings may still name
		// files that do not exist here).
		if _, nerr := metrics.NewPrometheus(zaptest.NewLogger(t), tc.cfg); tc.want != "" && nerr == nil {
			t.Errorf("%s: NewPrometheus accepted invalid settings", tc.name)
		}
	}
}
