package runner_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
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

// TestSlowServiceDoesNotHoldOthers: the checks of one service waiting on its metrics do
// not hold up another service's check in the same round.
func TestSlowServiceDoesNotHoldOthers(t *testing.T) {
	cat := &catalog.Catalog{}
	for i, name := range []string{"alpha", "beta"} {
		svc := testCatalog(t, "127.0.0.1:1", "127.0.0.1:2").Services[0]
		svc.Name, svc.Port = name, uint32(10001+i)
		cat.Services = append(cat.Services, svc)
	}
	src := &stuckMetrics{stuck: "alpha", release: make(chan struct{})}
	st, err := store.Open(t.TempDir(), store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	clock := &fakeClock{now: t0}
	run, err := runner.New(context.Background(), cat, runner.Options{
		Log: log, Store: st, XDS: xds.NewServer(log, xds.Options{}), Metrics: src, Now: clock.Now,
	})
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
