package runner_test

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// TestMain lets the test binary double as the proxyless gRPC client process that the
// integration tests start.
func TestMain(m *testing.M) {
	xdstest.RunClientIfRequested()
	os.Exit(m.Run())
}

const (
	svcName = "svc"
	// waitTimeout bounds every wait on a real client or server; generous for -race on
	// two cores, never reached when things work.
	waitTimeout = 60 * time.Second
	checkEvery  = 10 * time.Second
)

// t0 is the start of every test's clock.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// fakeClock is the runner's clock; the test moves it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// scriptedMetrics returns the scripted stats of each version; a version without a
// script has no data. With weights set, the stable version's requests and errors are
// scaled to the canary's by the weights served, as a real split would count them (the
// rates stay as scripted), so the sample-ratio guard sees the split it expects.
type scriptedMetrics struct {
	mu    sync.Mutex
	stats map[string]metrics.Stats
	calls int
	// weights returns the weights served for a service by version, nil when none.
	weights func(service string) map[string]uint32
}

var _ metrics.Source = (*scriptedMetrics)(nil)

func cleanMetrics() *scriptedMetrics {
	m := &scriptedMetrics{}
	m.Set("v1", metrics.Stats{Requests: 1000, Errors: 1, P99: 50 * time.Millisecond})
	m.Set("v2", metrics.Stats{Requests: 1000, Errors: 1, P99: 50 * time.Millisecond})
	return m
}

func (m *scriptedMetrics) Set(version string, s metrics.Stats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stats == nil {
		m.stats = map[string]metrics.Stats{}
	}
	m.stats[version] = s
}

func (m *scriptedMetrics) VersionStats(_ context.Context, svc catalog.Service, version string, _ time.Duration, _ time.Time) (metrics.Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	s, ok := m.stats[version]
	if !ok {
		return metrics.Stats{}, metrics.ErrNoData
	}
	if m.weights == nil || version != svc.Stable {
		return s, nil
	}
	w := m.weights(svc.Name)
	var canary string
	for v, wt := range w {
		if v != version && wt > 0 {
			canary = v // the other version with traffic
		}
	}
	c, ok := m.stats[canary]
	if ws, wc := w[version], w[canary]; ok && ws > 0 && wc > 0 && c.Requests > 0 {
		f := c.Requests * float64(ws) / float64(wc) / s.Requests
		s.Requests *= f
		s.Errors *= f
	}
	return s, nil
}

// testCatalog declares svcName with v1 (stable) and v2 at the given addresses. Its
// proxies are optional: most tests drive the runner with no proxy connected (the tests
// with a real client have it subscribed, and TestZeroProxiesHold clears the flag).
func testCatalog(t *testing.T, v1, v2 string) *catalog.Catalog {
	t.Helper()
	return &catalog.Catalog{Services: []catalog.Service{{
		Name: svcName, Port: 10001, Stable: "v1", ProxiesOptional: true,
		Versions: []catalog.Version{version(t, "v1", v1), version(t, "v2", v2)},
	}}}
}

func version(t *testing.T, name string, addrs ...string) catalog.Version {
	t.Helper()
	v := catalog.Version{Name: name, Zone: "zone-a"}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			t.Fatal(err)
		}
		v.Endpoints = append(v.Endpoints, catalog.Endpoint{Host: host, Port: uint32(p)})
	}
	return v
}

// minorSpec is a minor release of v2 on a compressed clock: 5 %, 25 %, 50 % for a
// minute each, checks every 10 s, and a 3-minute monitoring window.
func minorSpec() controller.Spec {
	return controller.Spec{
		Service: svcName,
		Release: controller.Release{
			Type: controller.Minor, Name: "2.0.0", Date: "2026-03-02",
			Summary:      "new pricing engine",
			RollbackPlan: "route 100% back to v1; no data migration",
		},
		Canary: controller.Canary{Version: "v2"},
		Stages: []controller.StageSpec{
			{Percent: 5, MinWindow: controller.Duration(time.Minute)},
			{Percent: 25, MinWindow: controller.Duration(time.Minute)},
			{Percent: 50, MinWindow: controller.Duration(time.Minute)},
		},
		CheckInterval: controller.Duration(checkEvery),
		AckTimeout:    controller.Duration(time.Minute),
		SmokeChecks:   []string{"checkout-flow"},
		Monitoring: []controller.Phase{
			{Name: "Immediate", Until: controller.Duration(time.Minute)},
			{Name: "Short-term", Until: controller.Duration(3 * time.Minute)},
		},
	}
}

// harness is one octoroll process: a store on dir, an xds server and a runner.
type harness struct {
	t       *testing.T
	dir     string
	cat     *catalog.Catalog
	clock   *fakeClock
	metrics *scriptedMetrics
	log     *zap.Logger

	st   *store.Store
	xs   *xds.Server
	addr string // xds address when served
	run  *runner.Runner
	// alerts, notify and resolver, when set before open, are the runner's alert
	// source, notifier and DNS resolver.
	alerts   runner.AlertSource
	notify   runner.Notifier
	resolver publish.HostResolver
	// gates, when set before open, asks the rollouts' webhooks.
	gates runner.GateAsker
}

// newHarness opens a store in a fresh directory and starts a runner on it; serve
// also serves the xds server on 127.0.0.1:0 until the test ends.
func newHarness(t *testing.T, cat *catalog.Catalog, serve bool) *harness {
	t.Helper()
	return newHarnessWith(t, cat, serve, nil)
}

// newHarnessWith is newHarness with setup run on the harness before it opens.
func newHarnessWith(t *testing.T, cat *catalog.Catalog, serve bool, setup func(*harness)) *harness {
	t.Helper()
	h := &harness{
		t: t, dir: t.TempDir(), cat: cat, clock: &fakeClock{now: t0}, metrics: cleanMetrics(),
		log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
	}
	if setup != nil {
		setup(h)
	}
	h.open(serve)
	return h
}

// open starts a fresh store, xds server and runner on h.dir: a process (re)start.
func (h *harness) open(serve bool) {
	t := h.t
	t.Helper()
	st, err := store.Open(h.dir, store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h.st = st
	h.xs = xds.NewServer(h.log, xds.Options{Now: h.clock.Now})
	if serve {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.xs.Serve(ctx, lis) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("xds Serve: %v", err)
			}
		})
		h.addr = lis.Addr().String()
	}
	h.metrics.weights = func(service string) map[string]uint32 { return servedWeights(h.xs, service) }
	h.run, err = runner.New(context.Background(), h.cat, runner.Options{
		Log: h.log, Store: st, XDS: h.xs, Metrics: h.metrics, Now: h.clock.Now, Alerts: h.alerts, Notify: h.notify,
		Resolver: h.resolver, Gates: h.gates,
	})
	if err != nil {
		t.Fatalf("runner.New: %v", err)
	}
	t.Cleanup(h.run.Close)
}

// restart stops the process (closing its store, dropping its runner and xds server)
// and starts a new one on the same state directory, unserved.
func (h *harness) restart() {
	h.t.Helper()
	h.run.Close()
	if err := h.st.Close(); err != nil {
		h.t.Fatalf("close store: %v", err)
	}
	h.open(false)
}

// step advances the clock by one check interval and evaluates; the webhooks the
// checks asked in the background have answered when it returns.
func (h *harness) step() {
	h.clock.Advance(checkEvery)
	h.run.Evaluate(context.Background())
	h.run.WaitGates()
	if stale := h.run.StaleDesired(); len(stale) > 0 {
		h.t.Fatalf("desired state kept for %v differs from the one its inputs give", stale)
	}
}

// active returns the service's active rollout, failing the test when there is none.
func (h *harness) active() controller.Rollout {
	h.t.Helper()
	v, ok := h.run.Service(svcName)
	if !ok || v.Active == nil {
		h.t.Fatalf("no active rollout of %s", svcName)
	}
	return *v.Active
}

// persisted reads the rollout from the store, as a restart would.
func (h *harness) persisted(id string) controller.Rollout {
	h.t.Helper()
	doc, err := h.st.GetRollout(id)
	if err != nil {
		h.t.Fatalf("GetRollout(%s): %v", id, err)
	}
	var ro controller.Rollout
	if err := json.Unmarshal(doc, &ro); err != nil {
		h.t.Fatal(err)
	}
	return ro
}

// events returns the kinds of the rollout's persisted events, in order.
func (h *harness) events(id string) []controller.Event {
	h.t.Helper()
	evs, err := h.run.RolloutEvents(id)
	if err != nil {
		h.t.Fatalf("RolloutEvents(%s): %v", id, err)
	}
	return evs
}

func kinds(evs []controller.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

// served returns the weights of the split route the xds server serves for svcName, by
// version.
func served(t *testing.T, xs *xds.Server) map[string]uint32 {
	t.Helper()
	w := servedWeights(xs, svcName)
	if w == nil {
		t.Fatalf("no route %q served", svcName)
	}
	return w
}

// servedWeights returns the weights of the split route the xds server serves for
// service, by version; nil when it serves none.
func servedWeights(xs *xds.Server, service string) map[string]uint32 {
	for _, rc := range xs.Resources().Routes {
		if rc.GetName() != translate.RouteName(service) {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				wc := r.GetRoute().GetWeightedClusters()
				if wc == nil {
					continue
				}
				out := map[string]uint32{}
				for _, c := range wc.GetClusters() {
					out[strings.TrimPrefix(c.GetName(), service+translate.NameSeparator)] = c.GetWeight().GetValue()
				}
				return out
			}
		}
	}
	return nil
}

// waitConverged waits until at least n proxies subscribe to svcName's route and every
// one ACKed the version served now.
func waitConverged(t *testing.T, xs *xds.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		c := xs.Convergence(svcName)
		if c.Subscribed >= n && c.Done() && c.RouteVersion != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d proxies subscribed and ACKed not reached: %+v", n, c)
		}
		// WaitAcked wakes on every connect and ACK; it is the poll interval here.
		_ = xs.WaitAcked(context.Background(), svcName, c.RouteVersion, 100*time.Millisecond)
	}
}

// splitOK reports whether v2's share of r is w2/10000 within 5 binomial sigmas (exact
// at 0 and 100 %), and the tolerance.
func splitOK(r xdstest.Report, w2 uint32) (ok bool, want, tol float64) {
	n := float64(r.Succeeded())
	p := float64(w2) / catalog.TotalWeight
	got := float64(r.OK["v2"])
	tol = 5 * math.Sqrt(n*p*(1-p))
	want = n * p
	return math.Abs(got-want) <= tol, want, tol
}

// waitSplit measures the client's split over windows of at least n RPCs until it
// matches w2 (the client may still apply the previous route for a moment after its
// ACK), and returns the matching window. Every window must be free of failures.
func waitSplit(t *testing.T, c *xdstest.Client, w2 uint32, n int64) xdstest.Report {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if err := c.Reset(waitTimeout); err != nil {
			t.Fatal(err)
		}
		r, err := c.WaitTotal(n, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed != 0 {
			t.Errorf("split %d: %d failed RPCs: %v", w2, r.Failed, r.Errors)
		}
		ok, want, tol := splitOK(r, w2)
		if ok {
			t.Logf("split v2=%5.2f%%: %v of %d RPCs (want v2 %.1f ± %.1f), failed %d",
				float64(w2)/100, r.OK, r.Total(), want, tol, r.Failed)
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("split v2=%.2f%% not reached: %v of %d RPCs, want v2 %.1f ± %.1f", float64(w2)/100, r.OK, r.Total(), want, tol)
		}
		t.Logf("split v2=%5.2f%% not yet: %v", float64(w2)/100, r.OK)
	}
}
