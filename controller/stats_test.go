package controller

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/metrics"
)

// The always-valid boundary is wider than a fixed-sample quantile and grows only
// slowly with the sample.
func TestAlwaysZ(t *testing.T) {
	for _, tc := range []struct {
		alpha, n float64
		lo, hi   float64
	}{
		{0.05, 3000, 2.9, 3.3},
		{0.05, 30000, 2.9, 3.5},
		{0.01, 9000, 3.4, 3.7},
		{0.05, 10, 5, 100},
	} {
		if got := alwaysZ(tc.alpha, tc.n); got < tc.lo || got > tc.hi {
			t.Errorf("alwaysZ(%g, %g) = %.3f, want in [%g, %g]", tc.alpha, tc.n, got, tc.lo, tc.hi)
		}
	}
	if !math.IsInf(alwaysZ(0.05, 0), 1) {
		t.Error("no data must give an infinite boundary")
	}
}

// Independent errors measure a dispersion of 1; errors in clusters of 50 measure at
// least the cluster size's order (the upper bound is taken).
func TestDispersion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var indep, clustered []Interval
	for range maxIntervals {
		indep = append(indep, Interval{Requests: 6000, Errors: poisson(rng, 30)})
		clustered = append(clustered, Interval{Requests: 6000, Errors: 50 * poisson(rng, 0.6)})
	}
	if d := dispersion(indep); d != 1 {
		t.Errorf("independent errors: dispersion %.2f, want 1", d)
	}
	if d := dispersion(clustered); d < 40 {
		t.Errorf("clusters of 50: dispersion %.2f, want at least 40", d)
	}
	if d := dispersion(clustered[:minIntervals-1]); d != 1 {
		t.Errorf("too few intervals: %.2f, want 1 (not measured)", d)
	}
	// χ² quantiles (Wilson-Hilferty) against tabulated values.
	for _, tc := range []struct{ p, k, want float64 }{{0.05, 19, 10.117}, {0.99, 19, 36.191}, {0.05, 10, 3.940}} {
		if got := chi2Quantile(tc.p, tc.k); math.Abs(got-tc.want)/tc.want > 0.02 {
			t.Errorf("χ²(%g, %g) = %.3f, want %.3f", tc.p, tc.k, got, tc.want)
		}
	}
}

// The latency test on histograms: the share of canary requests slower than ratio ×
// stable P99 (rounded up to a bucket bound) against 1 %.
func TestLatencyTest(t *testing.T) {
	ms := time.Millisecond
	stable := lognormHist(190000, 202*ms)
	for _, tc := range []struct {
		name      string
		canary    Histogram
		ratio     float64
		want      tri
		wantInWhy string
	}{
		{"identical", lognormHist(10000, 202*ms), 1.1, triClean, ""},
		{"+30 % against ×1.1", lognormHist(10000, 263*ms), 1.1, triBreach, "slower than 229ms"},
		{"+30 % against ×1.25", lognormHist(10000, 263*ms), 1.25, triClean, ""},
		{"+60 % against ×1.25", lognormHist(10000, 323*ms), 1.25, triBreach, "≥ ×1.25 stable P99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLatency(VersionStats{Latency: tc.canary}, VersionStats{Latency: stable})
			got, why := l.test(tc.ratio, 0.01, 3, "", false)
			if got != tc.want || !strings.Contains(why, tc.wantInWhy) {
				t.Errorf("got %v %q, want %v with %q", got, why, tc.want, tc.wantInWhy)
			}
		})
	}
	// A stable sample too small to place its P99 tests nothing.
	l := newLatency(VersionStats{Latency: lognormHist(10000, 400*ms)}, VersionStats{Latency: lognormHist(50, 202*ms)})
	if got, why := l.test(1.1, 0.01, 3, "", false); got != triUnknown || why != "" {
		t.Errorf("50 stable requests: %v %q, want untested", got, why)
	}
	// Envoy's default buckets: t = 1.1 × 202 ms rounds up to 250 ms, then the test
	// counts requests slower than it; a true P99 of 240 ms stays clean however much data.
	envoy := func(n uint64, p99 time.Duration) Histogram {
		return lognormHistOn(metrics.EnvoyDefaultBucketsMS(), n, p99)
	}
	l = newLatency(VersionStats{Latency: envoy(1e6, 240*ms)}, VersionStats{Latency: envoy(1e7, 202*ms)})
	if got, _ := l.test(1.1, 0.01, 3, "", false); got != triClean {
		t.Errorf("Envoy buckets, +19 %%: %v, want clean (the ladder cannot show it)", got)
	}
}

// A relative pause margin for services whose baseline is far below the 0.1 pp margin:
// 0.05 % against 0.01 % is five times the baseline, not 0.1 pp above it.
func TestPauseErrorRatio(t *testing.T) {
	obs := func(g uint64) Observation {
		return rates(g, 50_000_000, 0.05, 0.01, 100*time.Millisecond, 100*time.Millisecond)
	}
	r := acked(t, testSpec(Minor))
	if r2, _ := step(r, t0.Add(time.Minute), obs(r.Generation)); r2.State != StateProgressing {
		t.Fatalf("absolute margin: %s %q, want no pause (+0.04 pp)", r2.State, r2.Reason)
	}
	spec := testSpec(Minor)
	spec.Thresholds.PauseErrorRatio = 2
	r = acked(t, spec)
	if r2, _ := step(r, t0.Add(time.Minute), obs(r.Generation)); r2.State != StatePaused || !strings.Contains(r2.Reason, "0.01 pp") {
		t.Fatalf("pauseErrorRatio 2: %s %q, want paused on a 0.01 pp margin", r2.State, r2.Reason)
	}
	spec.Thresholds.PauseErrorRatio = 1
	if _, _, err := New(t0, "r", spec, testService()); err == nil || !strings.Contains(err.Error(), "pauseErrorRatio") {
		t.Errorf("ratio 1 accepted: %v", err)
	}
}
