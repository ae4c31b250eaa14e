package controller

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/metrics"
)

// histFrom is the expected histogram of n requests whose latency has the CDF cdf (of
// milliseconds), on the given bounds (ms).
func histFrom(boundsMS []float64, n uint64, cdf func(ms float64) float64) Histogram {
	var h Histogram
	for _, ms := range boundsMS {
		h.Bounds = append(h.Bounds, time.Duration(ms*float64(time.Millisecond)))
		h.Counts = append(h.Counts, uint64(math.Round(cdf(ms)*float64(n))))
	}
	h.Bounds = append(h.Bounds, Inf)
	h.Counts = append(h.Counts, n)
	return h
}

func lognormCDFms(median, sigma float64) func(float64) float64 {
	return func(ms float64) float64 { return 0.5 * math.Erfc(-math.Log(ms/median)/(sigma*math.Sqrt2)) }
}

// medianMS is the lognormal median (ms) whose P99 is p99 ms at σ.
func medianMS(p99, sigma float64) float64 { return p99 / math.Exp(z(0.99)*sigma) }

// When both versions have the same distribution the canary's interpolated share slower
// than ratio × the interpolated stable P99 is below 1 % whatever the shape: the same
// interpolation, decreasing, read further right. Swept over P99s on both ladders,
// including P99s exactly on a bound, a bimodal mix and heavy tails.
func TestLatencyInsideIdenticalNeverBreaches(t *testing.T) {
	shapes := map[string]func(p99 float64) func(float64) float64{
		"lognormal σ 0.6": func(p99 float64) func(float64) float64 { return lognormCDFms(medianMS(p99, 0.6), 0.6) },
		"lognormal σ 1.5": func(p99 float64) func(float64) float64 { return lognormCDFms(medianMS(p99, 1.5), 1.5) },
		// 97 % fast, 3 % on a slow path eight times slower: the P99 lands in the slow mode.
		"bimodal": func(p99 float64) func(float64) float64 {
			fast, slow := lognormCDFms(p99/8/2.5, 0.3), lognormCDFms(p99/1.6, 0.3)
			return func(ms float64) float64 { return 0.97*fast(ms) + 0.03*slow(ms) }
		},
		// Pareto with α 1.2: a tail heavier than any lognormal's.
		"pareto α 1.2": func(p99 float64) func(float64) float64 {
			xm := p99 / math.Pow(100, 1/1.2)
			return func(ms float64) float64 { return max(0, 1-math.Pow(xm/ms, 1.2)) }
		},
	}
	for _, l := range []ladder{envoyLadder, shippedLadder} {
		p99s := []float64{250, 500, 1000, 2500} // on Envoy's bounds
		if l.name == shippedLadder.name {
			p99s = []float64{l.ms[50], l.ms[60], l.ms[70]} // on the ladder's bounds
		}
		for p := 20.0; p < 3000; p *= 1.07 {
			p99s = append(p99s, p)
		}
		for name, shape := range shapes {
			for _, p99 := range p99s {
				h := histFrom(l.ms, 10_000_000, shape(p99))
				q, ok := h.quantileInside(0.99, 0)
				if !ok {
					continue
				}
				for _, ratio := range []float64{1.01, 1.1} {
					s, ok := h.slower(time.Duration(ratio*float64(q)), 0, true)
					if ok && s.share >= 0.01 {
						t.Errorf("%s, %s, P99 %.1f ms: share slower than ×%g P99 (%s) %.4f %%, want below 1 %%",
							l.name, name, p99, ratio, Duration(s.at), 100*s.share)
					}
				}
				lat := newLatency(VersionStats{Latency: h}, VersionStats{Latency: h})
				if got, why := lat.test(1.1, 0.01, 3, "", true); got == triBreach {
					t.Errorf("%s, %s, P99 %.1f ms: identical versions breach: %s", l.name, name, p99, why)
				}
			}
		}
	}
}

// Through Envoy's default buckets a P99 +30 % (lognormal median 50 ms σ 0.6, P99 202 ms,
// scaled ×1.3) pauses once the share is read inside the 100-250 ms bucket; rounded up
// to 500 ms, as the rollback test still reads it, it cannot show.
func TestLatencyInsideEnvoyPlus30Pauses(t *testing.T) {
	env := metrics.EnvoyDefaultBucketsMS()
	stable := histFrom(env, 114_000, lognormCDFms(50, 0.6))
	canary := histFrom(env, 6_000, lognormCDFms(65, 0.6))
	th := DefaultThresholds()
	w := judgedWindow{Sample: Sample{Window: 10 * time.Minute,
		Canary: VersionStats{Requests: 6_000, Latency: canary}, Stable: VersionStats{Requests: 114_000, Latency: stable}},
		rollback: true, pause: true, decides: true}
	o := judgeSample(w, judgeInput{th: th, requireData: true, dispersion: 1, dispersionFrom: minIntervals})
	if len(o.rollback) != 0 {
		t.Errorf("rolled back: %v, want the rollback test (rounded up to 500 ms) clean", o.rollback)
	}
	if len(o.pause) != 1 || !strings.Contains(o.pause[0].reason, "interpolated inside the bucket [100ms, 250ms]") {
		t.Fatalf("pause %v, want one latency pause read inside [100ms, 250ms]", o.pause)
	}
	n := o.numbers
	// The recorded bound is the threshold itself, ×1.1 the stable P99 (≈ 193 ms read
	// inside its bucket, at the upper bound of its rank), not a bucket bound.
	if b := n.LatencyBound.D(); b < 210*time.Millisecond || b > 225*time.Millisecond {
		t.Errorf("LatencyBound %s, want ×1.1 the interpolated stable P99 (210-225 ms)", b)
	}
	if n.CanarySlowPct < 1.8 || n.CanarySlowLowPct <= 1 || n.CanarySlowLowPct >= n.CanarySlowPct {
		t.Errorf("canary slow %.3f %% (lower bound %.3f %%), want about 2 %% with a lower bound above 1 %% and below it", n.CanarySlowPct, n.CanarySlowLowPct)
	}
	// The rollback and gross tests still round up: the share slower than 500 ms.
	lat := newLatency(w.Canary, w.Stable)
	if got, why := lat.test(1.1, 0.01, 3, "", false); got != triClean || lat.bound != 500*time.Millisecond {
		t.Errorf("rounded-up test: %v %q at %s, want clean at 500ms", got, why, lat.bound)
	}
}

// On a pure power-law tail (Pareto) the interpolation is exact: the quantile and the
// share inside a bucket are the distribution's own.
func TestLatencyInsidePowerLawExact(t *testing.T) {
	const xm, alpha = 20.0, 2.5
	h := histFrom(metrics.EnvoyDefaultBucketsMS(), 1_000_000_000_000, func(ms float64) float64 {
		return max(0, 1-math.Pow(xm/ms, alpha))
	})
	q, ok := h.quantileInside(0.99, 0)
	want := xm * math.Pow(100, 1/alpha) // 126.2 ms, inside the 100-250 ms bucket
	if got := float64(q) / float64(time.Millisecond); !ok || math.Abs(got-want)/want > 1e-6 {
		t.Errorf("P99 %v (%v), want %.4f ms", q, ok, want)
	}
	for _, ms := range []float64{30, 120, 200, 400} {
		s, ok := h.slower(time.Duration(ms*float64(time.Millisecond)), 3, true)
		want := math.Pow(xm/ms, alpha)
		if !ok || !s.interpolated || math.Abs(s.share-want)/want > 1e-6 {
			t.Errorf("share slower than %g ms: %+v, want %.6g interpolated", ms, s, want)
		}
		if s.lower >= s.share || s.upper <= s.share {
			t.Errorf("share slower than %g ms: bounds [%g, %g] do not straddle %g", ms, s.lower, s.upper, s.share)
		}
	}
}

// Where interpolation has nothing to work with the share is read at the next bound, as
// the rollback test reads it: on a bound, below the first bound, and when no request is
// slower than the bucket's upper bound (S = 0 has no logarithm).
func TestLatencyInsideEdges(t *testing.T) {
	ms := time.Millisecond
	h := Histogram{Bounds: []time.Duration{10 * ms, 100 * ms, 250 * ms, 500 * ms, Inf}, Counts: []uint64{100, 900, 990, 1000, 1000}}
	for _, tc := range []struct {
		t      time.Duration
		at     time.Duration
		share  float64
		inside bool
	}{
		{100 * ms, 100 * ms, 0.1, false},  // on a bound
		{5 * ms, 10 * ms, 0.9, false},     // below the first bound
		{300 * ms, 500 * ms, 0, false},    // nothing slower than 500 ms
		{250 * ms, 250 * ms, 0.01, false}, // on a bound
		{200 * ms, 200 * ms, 0.1 * math.Pow(0.1, math.Log(2)/math.Log(2.5)), true},
	} {
		s, ok := h.slower(tc.t, 3, true)
		if !ok || s.at != tc.at || s.interpolated != tc.inside || math.Abs(s.share-tc.share) > 1e-12 {
			t.Errorf("slower than %s: at %s share %g interpolated %v, want at %s share %g interpolated %v",
				tc.t, s.at, s.share, s.interpolated, tc.at, tc.share, tc.inside)
		}
	}
	if _, ok := h.slower(600*ms, 3, true); ok {
		t.Error("beyond the last finite bound: tested, want untestable")
	}
	// The quantile in a bucket with nothing slower than its upper bound, or in the first
	// bucket, is the linear estimate.
	for _, q := range []float64{0.995, 0.05} {
		lin, _ := h.quantile(q)
		if got, ok := h.quantileInside(q, 0); !ok || got != lin {
			t.Errorf("quantileInside(%g) = %s, want the linear %s", q, got, lin)
		}
	}
	h.Counts[3] = 999
	if _, ok := h.quantileInside(0.9995, 0); ok {
		t.Error("quantile in the +Inf bucket placed, want not ok")
	}
}

// A small stable sample whose tail count came out low (1 request slower than 250 ms
// where 12 were expected) must not pull its P99 down: read at the upper confidence
// bounds of its tail shares, the estimate stays above the true P99 (202 ms).
func TestLatencyInsideSmallStableTail(t *testing.T) {
	h := histFrom(metrics.EnvoyDefaultBucketsMS(), 3360, lognormCDFms(50, 0.6))
	i := slices.Index(h.Bounds, 250*time.Millisecond)
	h.Counts[i] = 3359
	point, ok := h.quantileInside(0.99, 0)
	if !ok || point > 180*time.Millisecond {
		t.Fatalf("point estimate %s (%v): the case no longer shows the noise", point, ok)
	}
	if q, ok := h.quantileInside(0.99, alwaysZ(0.01, 3360)); !ok || q < 202*time.Millisecond {
		t.Errorf("P99 at the upper bounds %s (%v), want at least the true 202ms", q, ok)
	}
}
