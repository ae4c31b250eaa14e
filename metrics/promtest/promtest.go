// Package promtest starts a real Prometheus server for tests. It finds the binary
// (OCTOROLL_PROMETHEUS, then prometheus on PATH, then /usr/bin/prometheus); when there
// is none the test is skipped, or fails when CI=true, because CI installs the Debian
// package prometheus and must not silently test less.
package promtest

import (
	"bytes"
	"context"
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
}

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
	interval := opts.ScrapeInterval
	if interval <= 0 {
		interval = ScrapeInterval
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
    static_configs:
      - targets: [%[2]s]
`, model.Duration(interval), strings.Join(targets, ", "))
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

	// The free port is found by listening and closing, so another process may take it
	// before Prometheus binds; a few attempts make that harmless.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		url, err := start(t, bin, cfgPath, filepath.Join(dir, fmt.Sprintf("data%d", attempt)))
		if err == nil {
			return url
		}
		lastErr = err
	}
	t.Fatalf("start prometheus: %v", lastErr)
	return ""
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

func start(t testing.TB, bin, cfgPath, dataDir string) (string, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()

	out := &syncBuffer{}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	url := "http://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return "", fmt.Errorf("prometheus exited (%v): %s", err, out.String())
		case <-ctx.Done():
			stop()
			return "", fmt.Errorf("prometheus not ready at %s after 30s: %s", url, out.String())
		case <-tick.C:
		}
		if ready(ctx, url) {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("prometheus output:\n%s", out.String())
				}
			})
			return url, nil
		}
	}
}

func ready(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/-/ready", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
