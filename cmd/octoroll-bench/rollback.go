package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/internal/pagebench"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/metrics/promtest"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

const shopService = "shop"

type rollbackResult struct {
	Path, Settings, Target string
	TargetD                time.Duration
	Decision               time.Duration // fault → rolled_back event time
	AllAcked               time.Duration // fault → every subscribed proxy ACKed the rollback route
	Reason                 string
	Paused                 string // set when the rollout paused before it rolled back
	Skipped                string
}

// notifier forwards every persisted event without blocking the runner.
type notifier chan controller.Event

func (n notifier) Notify(ev controller.Event, _ controller.Rollout) {
	select {
	case n <- ev:
	default:
	}
}

// healthServer is one real gRPC server answering grpc.health.v1 SERVING.
type healthServer struct {
	addr string
	gs   *grpc.Server
}

func startHealthServer() (*healthServer, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	return &healthServer{addr: lis.Addr().String(), gs: gs}, nil
}

func endpointOf(addr string) catalog.Endpoint {
	ep, _ := catalog.ParseEndpoint(addr)
	return ep
}

// rollbackEnv is the real control plane of one service: xds server, store, prober and
// runner, with simulated proxies connected and a rollout of v2 started.
type rollbackEnv struct {
	ctx     context.Context
	cancel  context.CancelFunc
	srv     *xds.Server
	run     *runner.Runner
	prober  *healthcheck.Prober
	events  notifier
	child   *child
	stable  []*healthServer
	canary  []*healthServer
	closers []func()
}

func (e *rollbackEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

func newRollbackEnv(proxies int, hc catalog.HealthCheck, src metrics.Source, minWindow, checkInterval time.Duration) (_ *rollbackEnv, err error) {
	e := &rollbackEnv{events: make(notifier, 4096)}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.closers = append(e.closers, e.cancel)
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	svc := catalog.Service{Name: shopService, Port: 10001, Stable: "v1", HealthCheck: hc,
		Metrics: catalog.MetricQueries{Convention: catalog.ConventionApp}}
	for v, n := range map[string]int{"v1": 2, "v2": 3} {
		ver := catalog.Version{Name: v}
		for range n {
			hs, err := startHealthServer()
			if err != nil {
				return nil, err
			}
			e.closers = append(e.closers, hs.gs.Stop)
			ver.Endpoints = append(ver.Endpoints, endpointOf(hs.addr))
			if v == "v1" {
				e.stable = append(e.stable, hs)
			} else {
				e.canary = append(e.canary, hs)
			}
		}
		svc.Versions = append(svc.Versions, ver)
	}
	if svc.Versions[0].Name != "v1" {
		svc.Versions[0], svc.Versions[1] = svc.Versions[1], svc.Versions[0]
	}
	cat := &catalog.Catalog{Services: []catalog.Service{svc}}

	log := zap.NewNop()
	e.srv = xds.NewServer(log, xds.Options{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	served := make(chan struct{})
	go func() { _ = e.srv.Serve(e.ctx, lis); close(served) }()
	e.closers = append(e.closers, func() { e.cancel(); <-served })

	dir, err := os.MkdirTemp("", "octoroll-bench-store-")
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { _ = os.RemoveAll(dir) })
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, func() { _ = st.Close() })

	e.prober = healthcheck.New(log, healthcheck.Options{})
	probed := make(chan struct{})
	go func() { _ = e.prober.Run(e.ctx); close(probed) }()
	e.closers = append(e.closers, func() { e.cancel(); <-probed })

	e.run, err = runner.New(e.ctx, cat, runner.Options{
		Log: log, Store: st, XDS: e.srv, Metrics: src, Health: e.prober, Notify: e.events, MinWindow: minWindow,
	})
	if err != nil {
		return nil, err
	}
	ran := make(chan struct{})
	go func() { _ = e.run.Run(e.ctx); close(ran) }()
	e.closers = append(e.closers, func() { e.cancel(); <-ran })

	e.child, err = startChild(lis.Addr().String(), shopService, proxies)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.child.stop)
	if err := e.child.await("full 0", 3*time.Minute); err != nil {
		return nil, err
	}

	spec := pagebench.Spec(shopService, "benchmark release")
	spec.CheckInterval = controller.Duration(checkInterval)
	ro, err := e.run.Start(e.ctx, spec, "bench")
	if err != nil {
		return nil, err
	}
	if ro.State != controller.StateProgressing {
		return nil, fmt.Errorf("rollout is %s, want progressing", ro.State)
	}
	if err := e.srv.WaitAcked(e.ctx, shopService, e.srv.RouteVersion(shopService), time.Minute); err != nil {
		return nil, err
	}
	if err := poll(time.Minute, func() bool {
		return e.prober.Status(shopService, "v2").Healthy == len(e.canary) && e.prober.Status(shopService, "v1").Healthy == len(e.stable)
	}); err != nil {
		return nil, fmt.Errorf("endpoints never all healthy: %w", err)
	}
	return e, nil
}

// poll waits for cond, checking every 10ms, up to timeout.
func poll(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// awaitRollback waits for the rolled_back event after fault and then for every proxy
// to ACK the route served after it.
func (e *rollbackEnv) awaitRollback(fault time.Time, res *rollbackResult, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev := <-e.events:
			if ev.Kind == controller.EventPaused && res.Paused == "" {
				// Endpoints fail a probe apart: a check may see some down before all.
				res.Paused = fmt.Sprintf("paused first after %s (%s)", ms(ev.Time.Sub(fault)), ev.Reason)
			}
			if ev.Kind != controller.EventRolledBack {
				continue
			}
			res.Decision = ev.Time.Sub(fault)
			res.Reason = ev.Reason
			if err := e.srv.WaitAcked(e.ctx, shopService, e.srv.RouteVersion(shopService), time.Minute); err != nil {
				return err
			}
			res.AllAcked = time.Since(fault)
			if v, _ := e.run.Service(shopService); v.Weights["v1"] != catalog.TotalWeight {
				return fmt.Errorf("after rollback the weights are %v", v.Weights)
			}
			return nil
		case <-t.C:
			return fmt.Errorf("no rollback %s after the fault", timeout)
		}
	}
}

// runHealthRollback stops every canary endpoint's server at a known instant. interval
// 0 keeps the catalog's default health-check interval; the check interval is the
// default (30 s): a prober state change forces a check.
func runHealthRollback(proxies int, interval, _ time.Duration) (*rollbackResult, error) {
	res := &rollbackResult{Path: "health check, every canary endpoint down", Target: "≤ 3 s", TargetD: 3 * time.Second}
	hc := catalog.HealthCheck{Protocol: catalog.ProtocolGRPC}
	if interval > 0 {
		hc.Interval = catalog.Duration(interval)
		hc.Timeout = catalog.Duration(interval / 2)
		res.Settings = fmt.Sprintf("probe every %s, unhealthy after %d failures, check interval 30 s", interval, catalog.DefaultUnhealthyThreshold)
	} else {
		res.Settings = fmt.Sprintf("defaults: probe every %s, unhealthy after %d failures, check interval 30 s", catalog.DefaultHealthCheckInterval, catalog.DefaultUnhealthyThreshold)
		res.Target = ""
	}
	e, err := newRollbackEnv(proxies, hc, nil, 0, 0)
	if err != nil {
		return res, err
	}
	defer e.close()
	fault := time.Now()
	for _, hs := range e.canary {
		hs.gs.Stop()
	}
	return res, e.awaitRollback(fault, res, 2*time.Minute)
}

// appTarget is an example-app-like metrics endpoint: a client_golang registry with
// requests_total{service,version,code} and request_duration_seconds{service,version}.
type appTarget struct {
	addr     string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	srv      *http.Server
}

func startAppTarget() (*appTarget, error) {
	reg := prometheus.NewRegistry()
	a := &appTarget{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metrics.RequestsMetric, Help: "Served requests by code."},
			[]string{"service", "version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metrics.LatencyMetric, Help: "Request duration.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .03, .05, .075, .1, .15, .2, .3, .5, .75, 1, 2.5, 5, 10}},
			[]string{"service", "version"}),
	}
	reg.MustRegister(a.requests, a.duration)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a.addr = lis.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.srv.Serve(lis) }()
	return a, nil
}

func (a *appTarget) serve(version string, n int, code string) {
	a.requests.WithLabelValues(shopService, version, code).Add(float64(n))
	h := a.duration.WithLabelValues(shopService, version)
	for range n {
		h.Observe(0.012)
	}
}

// runPromRollback makes the canary fail every request at a known instant, with a real
// Prometheus scraping example-app-like targets. checkInterval and window 0 are the
// defaults (30 s check interval, the window is the check interval).
func runPromRollback(proxies int, scrape, checkInterval, window time.Duration) (*rollbackResult, error) {
	res := &rollbackResult{Path: "Prometheus, canary fails every request", Target: "≤ 30 s", TargetD: 30 * time.Second}
	ci := checkInterval
	if ci == 0 {
		ci = controller.DefaultCheckInterval
		res.Target = ""
	}
	res.Settings = fmt.Sprintf("scrape %s, window %s, check interval %s; fault injected just after a conclusive check", scrape, max(ci, window), ci)
	if checkInterval == 0 {
		res.Settings = "defaults: " + res.Settings
	}
	if promtest.Binary() == "" {
		res.Skipped = "skipped: prometheus not installed"
		return res, nil
	}
	stable, err := startAppTarget()
	if err != nil {
		return res, err
	}
	defer stable.srv.Close()
	canary, err := startAppTarget()
	if err != nil {
		return res, err
	}
	defer canary.srv.Close()
	var failing atomic.Bool
	stopTraffic := make(chan struct{})
	defer close(stopTraffic)
	go func() {
		// 200 requests/s on stable, 100/s on the canary.
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopTraffic:
				return
			case <-t.C:
			}
			stable.serve("v1", 2, "200")
			code := "200"
			if failing.Load() {
				code = "500"
			}
			canary.serve("v2", 1, code)
		}
	}()

	tb := &benchTB{}
	defer tb.close()
	var url string
	if err := tb.run(func() {
		url = promtest.StartWith(tb, []string{stable.addr, canary.addr}, promtest.Options{ScrapeInterval: scrape})
	}); err != nil {
		return res, err
	}
	src, err := metrics.NewPrometheus(zap.NewNop(), metrics.PrometheusConfig{Address: url})
	if err != nil {
		return res, err
	}
	e, err := newRollbackEnv(proxies, catalog.HealthCheck{Protocol: catalog.ProtocolGRPC}, src, window, checkInterval)
	if err != nil {
		return res, err
	}
	defer e.close()
	// Wait for a check judged on enough data, then fail the canary right after it.
	var lastChecks int
	if err := poll(3*time.Minute, func() bool {
		v, _ := e.run.Service(shopService)
		if v.Active == nil || v.LastObservation == nil || v.LastObservation.CanaryRequests < 100 {
			return false
		}
		if lastChecks == 0 {
			lastChecks = v.Active.Progress.Checks
		}
		return v.Active.Progress.Checks > lastChecks
	}); err != nil {
		return res, fmt.Errorf("no conclusive check: %w", err)
	}
	fault := time.Now()
	failing.Store(true)
	return res, e.awaitRollback(fault, res, 3*time.Minute)
}
