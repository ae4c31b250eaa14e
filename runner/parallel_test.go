package runner_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

// stuckMetrics answers at once except for one service, whose queries wait until
// released (a slow or hung metrics backend for that service).
type stuckMetrics struct {
	stuck   string
	release chan struct{}
}

func (m *stuckMetrics) VersionStats(ctx context.Context, svc catalog.Service, _ string, _ time.Duration, _ time.Time) (metrics.Stats, error) {
	if svc.Name == m.stuck {
		select {
		case <-m.release:
		case <-ctx.Done():
			return metrics.Stats{}, ctx.Err()
		}
	}
	return metrics.Stats{Requests: 1000, Errors: 1, P99: 50 * time.Millisecond}, nil
}

// twoServices starts a runner with opts (its log, store and xds server filled in) on a
// catalog of two services, alpha and beta, each with a rollout started, and returns the
// runner and the rollout ids by service.
func twoServices(t *testing.T, opts runner.Options) (*runner.Runner, map[string]string) {
	t.Helper()
	cat := &catalog.Catalog{}
	for i, name := range []string{"alpha", "beta"} {
		svc := testCatalog(t, "127.0.0.1:1", "127.0.0.1:2").Services[0]
		svc.Name, svc.Port = name, uint32(10001+i)
		cat.Services = append(cat.Services, svc)
	}
	st, err := store.Open(t.TempDir(), store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	opts.Log = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	opts.Store, opts.XDS = st, xds.NewServer(opts.Log, xds.Options{})
	run, err := runner.New(context.Background(), cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, name := range []string{"alpha", "beta"} {
		spec := crashSpec()
		spec.Service = name
		ro, err := run.Start(context.Background(), spec, "test")
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = ro.ID
	}
	return run, ids
}

// TestSlowServiceDoesNotHoldOthers: the checks of one service waiting on its metrics do
// not hold up another service's check in the same round.
func TestSlowServiceDoesNotHoldOthers(t *testing.T) {
	src := &stuckMetrics{stuck: "alpha", release: make(chan struct{})}
	clock := &fakeClock{now: t0}
	run, ids := twoServices(t, runner.Options{Metrics: src, Now: clock.Now})
	clock.Advance(checkEvery)
	done := make(chan struct{})
	go func() { defer close(done); run.Evaluate(context.Background()) }()

	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ro, err := run.Rollout(ids["beta"])
		if err != nil {
			t.Fatal(err)
		}
		if ro.Progress.Checks > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("beta was not checked while alpha's metrics hung")
		}
		<-tick.C
	}
	if ro, _ := run.Rollout(ids["alpha"]); ro.Progress.Checks != 0 {
		t.Fatalf("alpha checked before its metrics answered: %+v", ro.Progress)
	}
	close(src.release)
	<-done
	if ro, _ := run.Rollout(ids["alpha"]); ro.Progress.Checks != 1 || ro.State != controller.StateProgressing {
		t.Fatalf("alpha after its metrics answered: %s, %d checks", ro.State, ro.Progress.Checks)
	}
}

// fakeHealth is a health source whose statuses the test sets; each Set notifies.
type fakeHealth struct {
	mu      sync.Mutex
	status  map[string]healthcheck.VersionHealth // by "service/version"
	changes chan struct{}
}

func (f *fakeHealth) Update([]catalog.Service) {}
func (f *fakeHealth) Changes() <-chan struct{} { return f.changes }
func (f *fakeHealth) Status(service, version string) healthcheck.VersionHealth {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status[service+"/"+version]
}
func (f *fakeHealth) Set(service, version string, h healthcheck.VersionHealth) {
	f.mu.Lock()
	f.status[service+"/"+version] = h
	f.mu.Unlock()
	f.changes <- struct{}{}
}

// TestHealthChangeChecksOnlyItsService: a health change checks at once the rollout of
// the service whose health changed, not every rollout (their synthetics would run
// again on every flap elsewhere).
func TestHealthChangeChecksOnlyItsService(t *testing.T) {
	fh := &fakeHealth{status: map[string]healthcheck.VersionHealth{}, changes: make(chan struct{})}
	clock := &fakeClock{now: t0} // moved by a second at a time: no check falls due by time
	run, ids := twoServices(t, runner.Options{Metrics: cleanMetrics(), Health: fh, Now: clock.Now, Tick: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	checks := func(name string) int {
		ro, err := run.Rollout(ids[name])
		if err != nil {
			t.Fatal(err)
		}
		return ro.Progress.Checks
	}
	deadline := time.Now().Add(waitTimeout)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	waitChecks := func(name string, n int) {
		t.Helper()
		for checks(name) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d checks, want %d", name, checks(name), n)
			}
			<-poll.C
		}
	}
	// The prober's first results are new for every service: each is checked once.
	clock.Advance(time.Second)
	fh.Set("beta", "v1", healthcheck.VersionHealth{Total: 1, Healthy: 1})
	waitChecks("alpha", 1)
	waitChecks("beta", 1)
	// Then only the service whose health changed.
	for i := 2; i <= 3; i++ {
		clock.Advance(time.Second)
		fh.Set("alpha", "v2", healthcheck.VersionHealth{Total: 1, Healthy: i % 2})
		waitChecks("alpha", i)
	}
	if n := checks("beta"); n != 1 {
		t.Fatalf("beta checked %d times, want once: alpha's health changes forced it", n)
	}
}
