package metrics_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/metrics/promtest"
)

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		<-tick.C
	}
}

func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// TestPrometheusRealServer runs a real Prometheus that scrapes a real target, drives
// known traffic and reads it back through VersionStats.
func TestPrometheusRealServer(t *testing.T) {
	a := newApp(t)
	a.touch("checkout", "v1", "200", "503")
	a.touch("checkout", "v2", "200", "404", "500", "Unavailable")
	url := promtest.Start(t, []string{a.addr})

	src, err := metrics.NewPrometheus(zaptest.NewLogger(t), metrics.PrometheusConfig{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	// Two scrapes of the zero-valued series, so that the traffic below is an increase.
	eventually(t, 30*time.Second, "two scrapes of the idle target", func() error {
		v, err := src.Query(ctx, `min(count_over_time(requests_total{service="checkout"}[1m]))`, time.Now())
		if err != nil {
			return err
		}
		if v < 2 {
			return errors.New("fewer than 2 samples")
		}
		return nil
	})
	t0 := time.Now()

	a.serve("checkout", "v2", "200", 880, 20*time.Millisecond)
	a.serve("checkout", "v2", "404", 20, 20*time.Millisecond)
	a.serve("checkout", "v2", "500", 60, 300*time.Millisecond)
	a.serve("checkout", "v2", "Unavailable", 20, 20*time.Millisecond)
	a.serve("checkout", "v2", "200", 20, 400*time.Millisecond)
	a.serve("checkout", "v1", "200", 499, 20*time.Millisecond)
	a.serve("checkout", "v1", "503", 1, 20*time.Millisecond)

	// Query at the timestamp of the latest scrape, with a window reaching back before
	// the traffic: the first sample in the window is 0 and the last is at the window's
	// end, so PromQL extrapolates nothing and the counts come back exactly.
	svc := catalog.Service{Name: "checkout", Metrics: catalog.MetricQueries{Convention: catalog.ConventionApp}}
	var v1, v2 metrics.Stats
	var window time.Duration
	var at time.Time
	eventually(t, 30*time.Second, "traffic visible in VersionStats", func() error {
		ts, err := src.Query(ctx, `max(timestamp(requests_total{service="checkout",version="v2",code="200"}))`, time.Now())
		if err != nil {
			return err
		}
		at = time.UnixMilli(int64(math.Round(ts * 1000)))
		window = at.Sub(t0) + 3*time.Second
		if v2, err = src.VersionStats(ctx, svc, "v2", window, at); err != nil {
			return err
		}
		if v2.Requests < 999 {
			return errors.New("v2 traffic not scraped yet")
		}
		v1, err = src.VersionStats(ctx, svc, "v1", window, at)
		return err
	})
	t.Logf("window %v at %v: v1 %+v, v2 %+v", window, at, v1, v2)

	if !within(v2.Requests, 1000, 1) || !within(v2.Errors, 80, 0.5) {
		t.Errorf("v2 = %+v, want 1000 requests, 80 errors", v2)
	}
	// 920 at 20ms, 80 at 300-400ms: rank 990 lies in the (0.25, 0.5] bucket.
	if v2.P99 <= 250*time.Millisecond || v2.P99 > 500*time.Millisecond {
		t.Errorf("v2 P99 = %v, want in (250ms, 500ms]", v2.P99)
	}
	if !within(v1.Requests, 500, 1) || !within(v1.Errors, 1, 0.1) {
		t.Errorf("v1 = %+v, want 500 requests, 1 error", v1)
	}
	if v1.P99 <= 10*time.Millisecond || v1.P99 > 25*time.Millisecond {
		t.Errorf("v1 P99 = %v, want in (10ms, 25ms]", v1.P99)
	}

	t.Run("custom templates", func(t *testing.T) {
		custom := catalog.Service{Name: "checkout", Metrics: catalog.MetricQueries{
			Convention: catalog.ConventionApp,
			Requests:   `sum(rate(requests_total{service="{{.Service}}",version="{{.Version}}",code="200"}[{{.Window}}]))`,
			ErrorRate:  `sum(rate(requests_total{service="{{.Service}}",version="{{.Version}}",code="500"}[{{.Window}}])) / sum(rate(requests_total{service="{{.Service}}",version="{{.Version}}",code="200"}[{{.Window}}]))`,
		}}
		st, err := src.VersionStats(ctx, custom, "v2", window, at)
		if err != nil {
			t.Fatal(err)
		}
		if !within(st.Requests, 900, 1) || !within(st.Errors, 60, 0.5) {
			t.Errorf("custom = %+v, want 900 requests, 60 errors", st)
		}
	})

	t.Run("unknown version is no data", func(t *testing.T) {
		_, err := src.VersionStats(ctx, svc, "v3", window, at)
		if !errors.Is(err, metrics.ErrNoData) {
			t.Errorf("err = %v, want ErrNoData", err)
		}
	})

	t.Run("window before any sample is no data", func(t *testing.T) {
		_, err := src.VersionStats(ctx, svc, "v2", time.Minute, t0.Add(-time.Hour))
		if !errors.Is(err, metrics.ErrNoData) {
			t.Errorf("err = %v, want ErrNoData", err)
		}
	})

	t.Run("invalid query is a failure, not no data", func(t *testing.T) {
		bad := catalog.Service{Name: "checkout", Metrics: catalog.MetricQueries{Convention: catalog.ConventionApp, Requests: `sum(rate(requests_total[{{.Window}}])`}}
		_, err := src.VersionStats(ctx, bad, "v2", window, at)
		if err == nil || errors.Is(err, metrics.ErrNoData) {
			t.Errorf("err = %v, want a query failure", err)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := src.VersionStats(cctx, svc, "v2", window, at)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}
