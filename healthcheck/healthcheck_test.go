package healthcheck_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/healthcheck"
)

func endpoint(t *testing.T, addr string) catalog.Endpoint {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return catalog.Endpoint{Host: host, Port: uint32(p)}
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	return l
}

// closedAddr returns an address on 127.0.0.1 nothing listens on.
func closedAddr(t *testing.T) string {
	l := listen(t, "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	return addr
}

func service(hc catalog.HealthCheck, versions ...catalog.Version) catalog.Service {
	return catalog.Service{Name: "checkout", HealthCheck: hc, Versions: versions}
}

func version(name string, eps ...catalog.Endpoint) catalog.Version {
	return catalog.Version{Name: name, Endpoints: eps}
}

// start runs p until the test ends.
func start(t *testing.T, p *healthcheck.Prober) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

// waitFor waits on the change notifications until cond holds for the status of
// checkout/version, and returns that status.
func waitFor(t *testing.T, p *healthcheck.Prober, version, what string, cond func(healthcheck.VersionHealth) bool) healthcheck.VersionHealth {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		st := p.Status("checkout", version)
		if cond(st) {
			return st
		}
		select {
		case <-p.Changes():
		case <-deadline.C:
			t.Fatalf("%s: not within 15s; status %+v", what, st)
		}
	}
}

func healthy(st healthcheck.VersionHealth) bool { return st.Total > 0 && st.Healthy == st.Total }
func allDown(st healthcheck.VersionHealth) bool { return st.AllDown() }

var fast = catalog.HealthCheck{
	Interval: catalog.Duration(50 * time.Millisecond), Timeout: catalog.Duration(time.Second),
	HealthyThreshold: 2, UnhealthyThreshold: 2,
}

func withProtocol(hc catalog.HealthCheck, protocol, path string) catalog.HealthCheck {
	hc.Protocol, hc.Path = protocol, path
	return hc
}

func TestHTTP(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
	serve := func(l net.Listener) *http.Server {
		srv := &http.Server{Handler: mux}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
		return srv
	}
	l := listen(t, "127.0.0.1:0")
	addr := l.Addr().String()
	srv := serve(l)

	p := healthcheck.New(zaptest.NewLogger(t), healthcheck.Options{})
	p.Update([]catalog.Service{service(withProtocol(fast, "http", "/ready"), version("v2", endpoint(t, addr)))})
	start(t, p)

	waitFor(t, p, "v2", "healthy", healthy)
	status.Store(http.StatusServiceUnavailable)
	st := waitFor(t, p, "v2", "503 marks unhealthy", allDown)
	if e := st.Unhealthy[0]; e.Endpoint != addr || !strings.Contains(e.LastError, "503") || e.Since.IsZero() {
		t.Errorf("unhealthy endpoint = %+v, want %s with a 503 error", e, addr)
	}
	status.Store(http.StatusNoContent)
	waitFor(t, p, "v2", "204 marks healthy again", healthy)

	_ = srv.Close()
	waitFor(t, p, "v2", "server down", allDown)
	serve(listen(t, addr))
	waitFor(t, p, "v2", "server back", healthy)
}

func TestGRPC(t *testing.T) {
	hs := health.NewServer()
	serve := func(l net.Listener) *grpc.Server {
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, hs)
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(srv.Stop)
		return srv
	}
	l := listen(t, "127.0.0.1:0")
	addr := l.Addr().String()
	srv := serve(l)

	p := healthcheck.New(zaptest.NewLogger(t), healthcheck.Options{})
	p.Update([]catalog.Service{service(withProtocol(fast, "grpc", ""), version("v2", endpoint(t, addr)))})
	start(t, p)

	waitFor(t, p, "v2", "serving", healthy)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	st := waitFor(t, p, "v2", "not serving", allDown)
	if !strings.Contains(st.Unhealthy[0].LastError, "NOT_SERVING") {
		t.Errorf("last error = %q, want NOT_SERVING", st.Unhealthy[0].LastError)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, p, "v2", "serving again", healthy)

	srv.Stop()
	waitFor(t, p, "v2", "server down", allDown)
	serve(listen(t, addr))
	waitFor(t, p, "v2", "server back", healthy)
}

func TestTCP(t *testing.T) {
	accept := func(l net.Listener) {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		t.Cleanup(func() { l.Close() })
	}
	l := listen(t, "127.0.0.1:0")
	addr := l.Addr().String()
	accept(l)

	p := healthcheck.New(zaptest.NewLogger(t), healthcheck.Options{})
	// The protocol defaults to tcp.
	p.Update([]catalog.Service{service(fast, version("v2", endpoint(t, addr)))})
	start(t, p)

	waitFor(t, p, "v2", "accepting", healthy)
	l.Close()
	st := waitFor(t, p, "v2", "listener closed", allDown)
	if !strings.Contains(st.Unhealthy[0].LastError, "refused") {
		t.Errorf("last error = %q, want connection refused", st.Unhealthy[0].LastError)
	}
	accept(listen(t, addr))
	waitFor(t, p, "v2", "listening again", healthy)
}

func TestUpdateKeepsState(t *testing.T) {
	up := listen(t, "127.0.0.1:0")
	t.Cleanup(func() { up.Close() })
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	stable := version("v1", endpoint(t, up.Addr().String()))
	down := closedAddr(t)
	canary := version("v2", endpoint(t, down))
	fixed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	p := healthcheck.New(zaptest.NewLogger(t), healthcheck.Options{Now: func() time.Time { return fixed }})
	p.Update([]catalog.Service{service(fast, stable, canary)})
	start(t, p)
	waitFor(t, p, "v1", "stable healthy", healthy)
	st := waitFor(t, p, "v2", "canary down", allDown)
	want := []healthcheck.EndpointHealth{{Endpoint: down, LastError: st.Unhealthy[0].LastError, Since: fixed}}
	if diff := cmp.Diff(want, st.Unhealthy); diff != "" {
		t.Errorf("unhealthy (-want +got):\n%s", diff)
	}

	// A new canary version is added; the old ones keep their state at once.
	third := version("v3", endpoint(t, closedAddr(t)))
	p.Update([]catalog.Service{service(fast, stable, canary, third)})
	if st := p.Status("checkout", "v2"); !st.AllDown() {
		t.Errorf("v2 after update = %+v, want still all down", st)
	}
	if st := p.Status("checkout", "v1"); !healthy(st) {
		t.Errorf("v1 after update = %+v, want still healthy", st)
	}
	if st := p.Status("checkout", "v3"); st.Total != 1 || st.Healthy != 0 {
		t.Errorf("v3 just added = %+v, want 1 endpoint, not healthy", st)
	}
	waitFor(t, p, "v3", "v3 probed", allDown)

	// Removing v2 forgets it.
	p.Update([]catalog.Service{service(fast, stable, third)})
	if st := p.Status("checkout", "v2"); st.Total != 0 {
		t.Errorf("removed v2 = %+v, want nothing", st)
	}
	// A changed health check starts the state over.
	slower := fast
	slower.UnhealthyThreshold = 3
	p.Update([]catalog.Service{service(slower, stable, third)})
	if st := p.Status("checkout", "v3"); st.Total != 1 || len(st.Unhealthy) != 0 {
		t.Errorf("v3 with a new health check = %+v, want undecided", st)
	}
	waitFor(t, p, "v3", "v3 probed again", allDown)
}

func TestUnknownProtocol(t *testing.T) {
	p := healthcheck.New(zaptest.NewLogger(t), healthcheck.Options{})
	p.Update([]catalog.Service{service(withProtocol(fast, "udp", ""), version("v2", endpoint(t, closedAddr(t))))})
	start(t, p)
	st := waitFor(t, p, "v2", "unknown protocol fails", allDown)
	if !strings.Contains(st.Unhealthy[0].LastError, `"udp"`) {
		t.Errorf("last error = %q", st.Unhealthy[0].LastError)
	}
}

// TestDetectionLatency measures, with the guide's 1s interval and the default
// unhealthy threshold of 2, the time from every canary endpoint going down to the
// change notification that reports them all down. It logs the figure; it asserts only
// that the notification comes.
func TestDetectionLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a few seconds")
	}
	var ls []net.Listener
	var eps []catalog.Endpoint
	for range 3 {
		l := listen(t, "127.0.0.1:0")
		ls = append(ls, l)
		eps = append(eps, endpoint(t, l.Addr().String()))
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	hc := catalog.HealthCheck{Interval: catalog.Duration(time.Second), UnhealthyThreshold: 2}
	p := healthcheck.New(zaptest.NewLogger(t), healthcheck.Options{})
	p.Update([]catalog.Service{service(hc, version("v2", eps...))})
	start(t, p)
	waitFor(t, p, "v2", "healthy", healthy)

	down := time.Now()
	for _, l := range ls {
		l.Close()
	}
	waitFor(t, p, "v2", "all down", allDown)
	t.Logf("detection latency: %v (interval 1s, unhealthy threshold 2, %d endpoints)", time.Since(down).Round(time.Millisecond), len(eps))
}

func TestConfigOf(t *testing.T) {
	tests := []struct {
		in   catalog.HealthCheck
		want healthcheck.Config
	}{
		{catalog.HealthCheck{}, healthcheck.Config{Protocol: "tcp", Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 2,
			ExpectedStatuses: []catalog.StatusRange{"200-299"}}},
		{catalog.HealthCheck{Protocol: "http", Path: "/ready", Interval: catalog.Duration(time.Second), Timeout: catalog.Duration(200 * time.Millisecond), HealthyThreshold: 3, UnhealthyThreshold: 4,
			ExpectedStatuses: []catalog.StatusRange{"200", "204"}},
			healthcheck.Config{Protocol: "http", Path: "/ready", Interval: time.Second, Timeout: 200 * time.Millisecond, HealthyThreshold: 3, UnhealthyThreshold: 4,
				ExpectedStatuses: []catalog.StatusRange{"200", "204"}}},
		{catalog.HealthCheck{Protocol: "grpc", GRPCService: "shop.Checkout"},
			healthcheck.Config{Protocol: "grpc", Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 2,
				ExpectedStatuses: []catalog.StatusRange{"200-299"}, GRPCService: "shop.Checkout"}},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if diff := cmp.Diff(tt.want, healthcheck.ConfigOf(tt.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// manualTicker hands the prober a tick channel the test drives. A send returns once
// the endpoint's loop has recorded its previous probe and is waiting for the tick.
func manualTicker() (chan time.Time, func(time.Duration) (<-chan time.Time, func())) {
	ticks := make(chan time.Time)
	return ticks, func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} }
}

// scriptedHTTP serves each health request with the status the test sends on the
// returned channel, so that the test decides every probe's answer.
func scriptedHTTP(t *testing.T) (addr string, codes chan int) {
	codes = make(chan int)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case code := <-codes:
			if code/100 == 3 {
				w.Header().Set("Location", "/elsewhere")
			}
			w.WriteHeader(code)
		case <-r.Context().Done():
		}
	})}
	l := listen(t, "127.0.0.1:0")
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String(), codes
}

// TestThresholdsAndExpectedStatuses answers probe after probe and checks the state
// after each one: an unhealthy threshold of 3 needs three failures in a row, a healthy
// threshold of 2 two successes in a row, and only the expected statuses pass.
func TestThresholdsAndExpectedStatuses(t *testing.T) {
	addr, codes := scriptedHTTP(t)
	ticks, newTicker := manualTicker()
	hc := catalog.HealthCheck{
		Protocol: "http", Path: "/ready",
		// The test's ticks pace the probes; the timeout only bounds a stuck test.
		Interval: catalog.Duration(time.Hour), Timeout: catalog.Duration(30 * time.Second),
		HealthyThreshold: 2, UnhealthyThreshold: 3,
		ExpectedStatuses: []catalog.StatusRange{"204", "300-302"},
	}
	p := healthcheck.New(zaptest.NewLogger(t), healthcheck.Options{NewTicker: newTicker})
	p.Update([]catalog.Service{service(hc, version("v2", endpoint(t, addr)))})
	start(t, p)

	const (
		undecided = "undecided"
		up        = "healthy"
		down      = "unhealthy"
	)
	stateOf := func() string {
		st := p.Status("checkout", "v2")
		switch {
		case st.Total != 1:
			t.Fatalf("status %+v, want one endpoint", st)
		case st.Healthy == 1:
			return up
		case len(st.Unhealthy) == 1:
			return down
		}
		return undecided
	}
	for i, step := range []struct {
		code int
		want string
	}{
		{204, undecided}, // 1 success of 2
		{204, up},
		{200, up}, // 200 is not expected: 1 failure of 3
		{500, up}, // 2 failures of 3
		{301, up}, // a 3xx in 300-302 passes (redirects are not followed) and resets the count
		{503, up},
		{404, up},
		{200, down}, // the third failure in a row
		{302, down}, // 1 success of 2
		{500, down}, // resets the successes
		{204, down},
		{300, up},
	} {
		codes <- step.code   // the waiting probe gets its answer
		ticks <- time.Time{} // returns once that probe is recorded
		if got := stateOf(); got != step.want {
			t.Fatalf("probe %d (status %d): %s, want %s", i+1, step.code, got, step.want)
		}
	}
	codes <- 418
	ticks <- time.Time{}
	codes <- 418
	ticks <- time.Time{}
	codes <- 418
	ticks <- time.Time{}
	st := p.Status("checkout", "v2")
	if len(st.Unhealthy) != 1 || !strings.Contains(st.Unhealthy[0].LastError, "418") || !strings.Contains(st.Unhealthy[0].LastError, "want 204, 300-302") {
		t.Errorf("status %+v, want unhealthy with a 418 error naming the expected statuses", st)
	}
}

// TestGRPCService asks a real gRPC health server about one service: the endpoint
// follows that service's status, not the server's, and an unknown service fails.
func TestGRPCService(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("shop.Checkout", healthpb.HealthCheckResponse_SERVING)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	l := listen(t, "127.0.0.1:0")
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	addr := l.Addr().String()

	hc := withProtocol(fast, "grpc", "")
	hc.GRPCService = "shop.Checkout"
	other := hc
	other.GRPCService = "shop.Unknown"
	p := healthcheck.New(zaptest.NewLogger(t), healthcheck.Options{})
	p.Update([]catalog.Service{service(hc, version("v2", endpoint(t, addr)))})
	start(t, p)

	waitFor(t, p, "v2", "service serving", healthy)
	// The whole server going NOT_SERVING does not touch the service's own status.
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus("shop.Checkout", healthpb.HealthCheckResponse_NOT_SERVING)
	st := waitFor(t, p, "v2", "service not serving", allDown)
	if e := st.Unhealthy[0].LastError; !strings.Contains(e, `"shop.Checkout"`) || !strings.Contains(e, "NOT_SERVING") {
		t.Errorf("last error = %q, want the service name and NOT_SERVING", e)
	}
	hs.SetServingStatus("shop.Checkout", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, p, "v2", "service serving again while the server is not", healthy)

	p.Update([]catalog.Service{service(other, version("v2", endpoint(t, addr)))})
	st = waitFor(t, p, "v2", "unknown service", allDown)
	if e := st.Unhealthy[0].LastError; !strings.Contains(e, `"shop.Unknown"`) || !strings.Contains(e, "NotFound") {
		t.Errorf("last error = %q, want NotFound for the service", e)
	}
}

// answers is what Options.Resolve answers for one name, switched by the test.
type answers struct{ v atomic.Value } // holds []netip.Addr, nil for a failure

func (a *answers) set(ips ...netip.Addr) { a.v.Store(ips) }

func (a *answers) resolve(host string) ([]netip.Addr, error) {
	if host != "backend.test" {
		return nil, fmt.Errorf("unknown name %q", host)
	}
	ips, _ := a.v.Load().([]netip.Addr)
	if len(ips) == 0 {
		return nil, errors.New("server misbehaving")
	}
	return ips, nil
}

// TestResolvedNames probes an endpoint given by a DNS name at the address Resolve
// answers: while the name has no answer it is not probed and counts neither way, so
// that a DNS outage does not mark it unhealthy; a new answer is probed at once.
func TestResolvedNames(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	ticks, newTicker := manualTicker()
	hc := catalog.HealthCheck{
		Protocol: "http", Path: "/ready",
		Interval: catalog.Duration(time.Hour), Timeout: catalog.Duration(30 * time.Second),
		HealthyThreshold: 2, UnhealthyThreshold: 2,
	}
	var dns answers
	p := healthcheck.New(zaptest.NewLogger(t), healthcheck.Options{NewTicker: newTicker, Resolve: dns.resolve})
	p.Update([]catalog.Service{service(hc, version("v2", catalog.Endpoint{Host: "backend.test", Port: uint32(ap.Port())}))})
	start(t, p)
	state := func() string {
		st := p.Status("checkout", "v2")
		switch {
		case st.Healthy == 1:
			return "healthy"
		case len(st.Unhealthy) == 1:
			return "unhealthy: " + st.Unhealthy[0].LastError
		}
		return "undecided"
	}
	// No answer yet: not probed (the server answers 200, so a probe would count).
	for range 3 {
		ticks <- time.Time{}
	}
	if got := state(); got != "undecided" {
		t.Fatalf("before the name resolves: %s, want undecided", got)
	}
	// until polls state, ticking the prober while it waits, until want(state) holds.
	until := func(what string, want func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for got := state(); !want(got); got = state() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s", what, got)
			}
			select {
			case ticks <- time.Time{}:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	dns.set(ap.Addr())
	until("resolved, want healthy", func(s string) bool { return s == "healthy" })
	dns.set() // the lookups fail
	for range 5 {
		ticks <- time.Time{}
	}
	if got := state(); got != "healthy" {
		t.Fatalf("during the DNS outage: %s, want healthy", got)
	}
	// The name moves to an address nothing listens on: probed there, and down.
	dns.set(ap.Addr().Next()) // 127.0.0.2: the server listens on 127.0.0.1 only
	until("after the name moved, want unhealthy", func(s string) bool { return strings.HasPrefix(s, "unhealthy: ") })
}

// TestResolvedNamesGRPC probes a gRPC endpoint given by a DNS name through Resolve.
func TestResolvedNamesGRPC(t *testing.T) {
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	l := listen(t, "127.0.0.1:0")
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	ap := netip.MustParseAddrPort(l.Addr().String())
	var dns answers
	dns.set(ap.Addr())
	p := healthcheck.New(zaptest.NewLogger(t), healthcheck.Options{Resolve: dns.resolve})
	p.Update([]catalog.Service{service(withProtocol(fast, "grpc", ""), version("v2", catalog.Endpoint{Host: "backend.test", Port: uint32(ap.Port())}))})
	start(t, p)
	waitFor(t, p, "v2", "serving", healthy)
}
