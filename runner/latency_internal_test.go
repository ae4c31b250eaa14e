package runner

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
)

func TestLatencyHistogram(t *testing.T) {
	inf := math.Inf(+1)
	tests := []struct {
		name string
		in   []metrics.Bucket
		want controller.Histogram
	}{
		{name: "none"},
		{name: "no +Inf bucket", in: []metrics.Bucket{{UpperBound: 0.1, Count: 3}}},
		{name: "seconds to durations",
			in: []metrics.Bucket{{UpperBound: 0.0011, Count: 2}, {UpperBound: 0.25, Count: 9}, {UpperBound: 63.32, Count: 10}, {UpperBound: inf, Count: 11}},
			want: controller.Histogram{
				Bounds: []time.Duration{1100 * time.Microsecond, 250 * time.Millisecond, 63320 * time.Millisecond, controller.Inf},
				Counts: []uint64{2, 9, 10, 11}}},
		{name: "negative bounds at zero, bounds past a duration's range at Inf, equal bounds merged",
			in: []metrics.Bucket{{UpperBound: -0.5, Count: 1}, {UpperBound: 0, Count: 2}, {UpperBound: 1e-10, Count: 3}, {UpperBound: 1, Count: 5}, {UpperBound: 1e12, Count: 6}, {UpperBound: inf, Count: 7}},
			want: controller.Histogram{
				Bounds: []time.Duration{0, time.Second, controller.Inf},
				Counts: []uint64{3, 5, 7}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := latencyHistogram(tt.in)
			if !slices.Equal(got.Bounds, tt.want.Bounds) || !slices.Equal(got.Counts, tt.want.Counts) {
				t.Errorf("latencyHistogram = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// histogramSource answers one version's stats, whatever the window.
type histogramSource struct {
	st  metrics.Stats
	err error
}

func (s histogramSource) VersionStats(context.Context, catalog.Service, string, time.Duration, time.Time) (metrics.Stats, error) {
	return s.st, s.err
}

// TestVersionStatsCarriesLatency: the numbers the engine judges carry the source's
// histogram next to the counts, and nothing when the source has none.
func TestVersionStatsCarriesLatency(t *testing.T) {
	r := &Runner{log: zaptest.NewLogger(t)}
	svc := catalog.Service{Name: "checkout"}
	r.opts.Metrics = histogramSource{st: metrics.Stats{Requests: 99.6, Errors: 1.2, P99: 80 * time.Millisecond,
		Latency: []metrics.Bucket{{UpperBound: 0.05, Count: 60}, {UpperBound: 0.1, Count: 99}, {UpperBound: math.Inf(+1), Count: 100}}}}
	got := r.versionStats(t.Context(), svc, "v2", time.Minute, time.Now())
	want := controller.Histogram{Bounds: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, controller.Inf}, Counts: []uint64{60, 99, 100}}
	if got.Requests != 100 || got.Errors != 1 || got.P99 != 80*time.Millisecond ||
		!slices.Equal(got.Latency.Bounds, want.Bounds) || !slices.Equal(got.Latency.Counts, want.Counts) {
		t.Errorf("versionStats = %+v, want 100 requests, 1 error, P99 80ms, latency %+v", got, want)
	}
	r.opts.Metrics = histogramSource{st: metrics.Stats{Requests: 10}}
	if got := r.versionStats(t.Context(), svc, "v2", time.Minute, time.Now()); got.Latency.Bounds != nil || got.Requests != 10 {
		t.Errorf("no histogram: %+v", got)
	}
	r.opts.Metrics = histogramSource{err: errors.New("boom")}
	if got := r.versionStats(t.Context(), svc, "v2", time.Minute, time.Now()); got.Err == nil || got.Latency.Bounds != nil {
		t.Errorf("failed source: %+v", got)
	}
}
