package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// TestMain lets the test binary double as the proxyless gRPC xDS client process the
// dashboard test starts.
func TestMain(m *testing.M) {
	xdstest.RunClientIfRequested()
	os.Exit(m.Run())
}

// stampedVersion is the version the tests stamp into the binary, as the Dockerfile does
// with its VERSION build argument.
const stampedVersion = "v1.2.3-deploytest"

// waitTimeout bounds every wait on a real process; generous for -race on two cores.
const waitTimeout = 60 * time.Second

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildOctoroll builds cmd/octoroll once per test binary, with the version stamped the
// way deploy/Dockerfile stamps it (the same -ldflags, read from the Dockerfile).
func buildOctoroll(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "octoroll-deploytest-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "octoroll")
		ldflags := strings.ReplaceAll(dockerfileLDFlags(t), "${VERSION}", stampedVersion)
		out, err := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", builtBin, "github.com/octoacme/octoroll/cmd/octoroll").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build -ldflags %q: %v\n%s", ldflags, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// dockerfileLDFlags returns the -ldflags value of the Dockerfile's octoroll build, with
// ${VERSION} where the build argument goes.
func dockerfileLDFlags(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, `-ldflags "`)
	if i < 0 {
		t.Fatal(`Dockerfile: no -ldflags "..." in the octoroll build`)
	}
	rest := text[i+len(`-ldflags "`):]
	j := strings.Index(rest, `"`)
	if j < 0 {
		t.Fatal("Dockerfile: unterminated -ldflags")
	}
	return rest[:j]
}

// octorollProc is one running `octoroll serve`.
type octorollProc struct {
	admin string // http://host:port
	xds   string
	out   *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startOctoroll starts `octoroll serve` on the catalog with extra flags and waits
// until /readyz answers 200.
func startOctoroll(t *testing.T, bin, catalogFile string, extra ...string) *octorollProc {
	t.Helper()
	p := &octorollProc{xds: freeAddr(t), out: &lockedBuffer{}}
	adminAddr := freeAddr(t)
	p.admin = "http://" + adminAddr
	cmd := exec.Command(bin, append([]string{"serve", "-config", catalogFile, "-state-dir", t.TempDir(),
		"-xds-addr", p.xds, "-admin-addr", adminAddr, "-log-level", "warn"}, extra...)...)
	cmd.Env = append(os.Environ(), "OCTOROLL_ADMIN_TOKEN=")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("octoroll output:\n%s", p.out.String())
		}
	})
	poll(t, "octoroll ready", func() bool {
		select {
		case <-done:
			t.Fatalf("octoroll exited: %s", p.out.String())
		default:
		}
		resp, err := http.Get(p.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// poll calls cond until it holds, failing the test after waitTimeout.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get returns the body of GET path.
func (p *octorollProc) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(p.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// post sends a JSON body to the admin API and fails the test on a non-2xx answer.
func (p *octorollProc) post(t *testing.T, path string, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, p.admin+"/api/v1"+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Octoroll-Actor", "deploy-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", path, resp.Status, data)
	}
}

// appMetrics serves a version's application metrics in octoroll's app convention
// (metrics.RequestsMetric and metrics.LatencyMetric labelled service and version): each
// scrape finds 200 more requests, fast and successful.
func appMetrics(t *testing.T, service, version string) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"service": service, "version": version}
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.RequestsMetric, Help: "Requests.", ConstLabels: labels}, []string{"code"})
	lat := prometheus.NewHistogram(prometheus.HistogramOpts{Name: metrics.LatencyMetric, Help: "Latency.", ConstLabels: labels,
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1}})
	reg.MustRegister(reqs, lat)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 200 {
			reqs.WithLabelValues("200").Inc()
			lat.Observe(0.004 + float64(i%10)/1000)
		}
		h.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}
