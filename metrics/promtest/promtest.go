// Package promtest starts a real Prometheus server for tests. It finds the binary
// (OCTOROLL_PROMETHEUS, then prometheus on PATH, then /usr/bin/prometheus); when there
// is none the test is skipped, or fails when CI=true, because CI installs the Debian
// package prometheus and must not silently test less.
package promtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"
)

// ScrapeInterval is the scrape and evaluation interval of the server Start starts.
const ScrapeInterval = time.Second

// Options configure StartWith. Zero values take Start's defaults.
type Options struct {
	// ScrapeInterval is the scrape and evaluation interval (also the scrape timeout).
	// Default ScrapeInterval.
	ScrapeInterval time.Duration
	// Rules is the text of a Prometheus rule file to load (alerting and recording
	// rules); empty loads none.
	Rules string
	// MetricsPath is the path scraped on every target. Default /metrics.
	MetricsPath string
	// Web protects the server's HTTP API (Prometheus's --web.config.file); nil serves
	// plain HTTP to anyone.
	Web *Web
	// Features are Prometheus feature flags to enable (--enable-feature), such as
	// native-histograms, with which Prometheus scrapes the protobuf format and stores
	// native histograms.
	Features []string
}

// Web is the server's web configuration: basic auth and TLS.
type Web struct {
	// Users are the basic auth users, name to password in clear (promtest stores
	// their bcrypt hashes). Empty means no auth.
	Users map[string]string
	// TLS serves https when set.
	TLS *TLS
}

// TLS is the server's TLS: a certificate and key, and optionally a CA that client
// certificates must chain to (mutual TLS).
type TLS struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, makes the server require and verify client certificates;
	// ProbeCertFile and ProbeKeyFile are then the client certificate promtest's
	// readiness probe presents.
	ClientCAFile                string
	ProbeCertFile, ProbeKeyFile string
}

// Server is a running Prometheus server.
type Server struct {
	URL  string // base URL, http:// or https://
	stop func()
}

// Stop stops the server and waits for it to exit (at most 10s, then kills it). It
// may be called more than once; the test's cleanup calls it too.
func (s *Server) Stop() { s.stop() }

// Binary returns the path of the prometheus binary, or "" when there is none.
func Binary() string {
	if p := os.Getenv("OCTOROLL_PROMETHEUS"); p != "" {
		return p
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	return ""
}

// Require returns the prometheus binary, skipping the test when it is missing (failing
// it when CI=true).
func Require(t testing.TB) string {
	t.Helper()
	bin := Binary()
	if bin != "" {
		return bin
	}
	const why = "prometheus binary not found (apt-get install -y prometheus, or set OCTOROLL_PROMETHEUS)"
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// Start runs a Prometheus server on 127.0.0.1 that scrapes scrapeTargets (host:port,
// path /metrics) every ScrapeInterval in one job named "app", waits until it is ready
// and returns its base URL. The server and its storage are removed when the test ends.
func Start(t testing.TB, scrapeTargets []string) string {
	t.Helper()
	return StartWith(t, scrapeTargets, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, scrapeTargets []string, opts Options) string {
	t.Helper()
	return StartServer(t, scrapeTargets, opts).URL
}

// StartServer is StartWith returning the server, which the test may stop early.
func StartServer(t testing.TB, scrapeTargets []string, opts Options) *Server {
	t.Helper()
	interval := opts.ScrapeInterval
	if interval <= 0 {
		interval = ScrapeInterval
	}
	metricsPath := opts.MetricsPath
	if metricsPath == "" {
		metricsPath = "/metrics"
	}
	bin := Require(t)
	dir := t.TempDir()
	var targets []string
	for _, tg := range scrapeTargets {
		targets = append(targets, strconv.Quote(tg))
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: app
    metrics_path: %[3]s
    static_configs:
      - targets: [%[2]s]
`, model.Duration(interval), strings.Join(targets, ", "), strconv.Quote(metricsPath))
	if opts.Rules != "" {
		rulesPath := filepath.Join(dir, "rules.yml")
		if err := os.WriteFile(rulesPath, []byte(opts.Rules), 0o644); err != nil {
			t.Fatalf("write prometheus rules: %v", err)
		}
		cfg += "rule_files: [" + strconv.Quote(rulesPath) + "]\n"
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatalf("write prometheus config: %v", err)
	}
	var webPath string
	probe := &http.Client{Timeout: 5 * time.Second}
	probeReq := func(*http.Request) {}
	scheme := "http"
	if w := opts.Web; w != nil {
		webPath = filepath.Join(dir, "web.yml")
		web, err := webConfig(w)
		if err != nil {
			t.Fatalf("prometheus web config: %v", err)
		}
		if err := os.WriteFile(webPath, []byte(web), 0o600); err != nil {
			t.Fatalf("write prometheus web config: %v", err)
		}
		for user, pass := range w.Users {
			probeReq = func(r *http.Request) { r.SetBasicAuth(user, pass) }
			break
		}
		if w.TLS != nil {
			scheme = "https"
			// The probe only asks whether the server is up; the test checks the chain.
			tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // readiness probe of a test server
			if w.TLS.ProbeCertFile != "" {
				cert, err := tls.LoadX509KeyPair(w.TLS.ProbeCertFile, w.TLS.ProbeKeyFile)
				if err != nil {
					t.Fatalf("probe client certificate: %v", err)
				}
				tc.Certificates = []tls.Certificate{cert}
			}
			probe.Transport = &http.Transport{TLSClientConfig: tc}
		}
	}
	pr := prober{client: probe, decorate: probeReq, scheme: scheme}

	// The free port is found by listening and closing, so another process may take it
	// before Prometheus binds; a few attempts make that harmless.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		srv, err := start(t, bin, cfgPath, webPath, filepath.Join(dir, fmt.Sprintf("data%d", attempt)), opts.Features, pr)
		if err == nil {
			return srv
		}
		lastErr = err
	}
	t.Fatalf("start prometheus: %v", lastErr)
	return nil
}

// webConfig renders Prometheus's web configuration file.
func webConfig(w *Web) (string, error) {
	var b strings.Builder
	if t := w.TLS; t != nil {
		fmt.Fprintf(&b, "tls_server_config:\n  cert_file: %s\n  key_file: %s\n", strconv.Quote(t.CertFile), strconv.Quote(t.KeyFile))
		if t.ClientCAFile != "" {
			fmt.Fprintf(&b, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: %s\n", strconv.Quote(t.ClientCAFile))
		}
	}
	if len(w.Users) > 0 {
		b.WriteString("basic_auth_users:\n")
		for user, pass := range w.Users {
			// The lowest cost keeps the server's per-request check fast in tests.
			hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "  %s: %s\n", strconv.Quote(user), strconv.Quote(string(hash)))
		}
	}
	return b.String(), nil
}

// prober asks a starting server whether it is ready.
type prober struct {
	client   *http.Client
	decorate func(*http.Request)
	scheme   string
}

// syncBuffer collects the server's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t testing.TB, bin, cfgPath, webPath, dataDir string, features []string, pr prober) (*Server, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()

	out := &syncBuffer{}
	args := []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + dataDir,
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}
	if webPath != "" {
		args = append(args, "--web.config.file="+webPath)
	}
	if len(features) > 0 {
		args = append(args, "--enable-feature="+strings.Join(features, ","))
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}

	url := pr.scheme + "://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("prometheus exited (%v): %s", err, out.String())
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("prometheus not ready at %s after 30s: %s", url, out.String())
		case <-tick.C:
		}
		if pr.ready(ctx, url) {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("prometheus output:\n%s", out.String())
				}
			})
			return &Server{URL: url, stop: stop}, nil
		}
	}
}

func (pr prober) ready(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/-/ready", nil)
	if err != nil {
		return false
	}
	pr.decorate(req)
	resp, err := pr.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
