package controller

import (
	"math"
	"slices"
	"time"
)

// Reading a latency histogram inside its buckets, for the latency pause test (judge.go,
// "Latency as a test"). Between two bucket bounds the share of requests slower than x,
// S(x), is taken as a power-law segment: ln S linear in ln x through the two bounds.
// The stable P99 is the x where that S reaches 1 %, the canary's share slower than t is
// that S at t: one interpolation, loglog, for both.

// loglog returns the y at x on the straight line through (x0, y0) and (x1, y1) in
// log-log coordinates: y = y0 (x/x0)^k, the power law through both points. All
// arguments are positive and x0 ≠ x1. The relation is symmetric, so with the roles of
// x and y swapped it is its own inverse.
func loglog(x0, y0, x1, y1, x float64) float64 {
	return y0 * math.Exp(math.Log(x/x0)/math.Log(x1/x0)*math.Log(y1/y0))
}

// quantileInside estimates the q-quantile as the x where the share of requests slower
// than x, interpolated by loglog between the bounds of its bucket, reaches 1 − q. The
// shares are taken at their Wilson upper bounds at zq (zq 0: the shares themselves): a
// tail count is noisy, and a logarithm amplifies the noise of a small one (1 request
// slower than the upper bound where 12 were expected puts a P99 of 202 ms at 172 ms),
// so the estimate is an upper confidence bound that a small sample raises instead of
// lowering. In the first bucket (no lower bound to take a logarithm of) and where no
// share is left to take a logarithm of it is quantile's linear estimate. ok is false
// when the quantile falls in the +Inf bucket or h is empty.
func (h Histogram) quantileInside(q, zq float64) (time.Duration, bool) {
	total := h.total()
	if total == 0 {
		return 0, false
	}
	n, target := float64(total), 1-q
	var prevBound time.Duration
	prevShare := 1.0
	for i, c := range h.Counts {
		_, share := wilson(n-float64(c), n, zq)
		if share > target {
			prevBound, prevShare = h.Bounds[i], share
			continue
		}
		switch {
		case h.Bounds[i] == Inf:
			return 0, false
		case share == target:
			return h.Bounds[i], true
		case i == 0 || prevBound <= 0 || share <= 0:
			return h.quantile(q)
		}
		return time.Duration(loglog(prevShare, float64(prevBound), share, float64(h.Bounds[i]), target)), true
	}
	return 0, false
}

// slowShare is a histogram's share of requests slower than a threshold t and the
// share's Wilson bounds.
type slowShare struct {
	// at is where the share was read: t when interpolated, else the bound t was
	// rounded up to.
	at time.Duration
	// slow is the requests slower than the bound t was rounded up to (hi when
	// interpolated); n all requests. lo and hi are the bucket interpolated in, slowLo the
	// requests slower than lo (all zero when not interpolated).
	lo, hi              time.Duration
	slow, slowLo, n     uint64
	share, lower, upper float64
	interpolated        bool
}

// slower returns h's share of requests slower than t and its Wilson bounds at zq;
// ok is false when t is beyond the last finite bound (the histogram cannot see past
// it). With inside false, t is rounded up to the next bound (the rollback and gross
// tests: bucket width never makes a breach). With inside true the share is interpolated
// by loglog inside the bucket [lo, hi] around t, and so are its bounds: the Wilson
// bounds at lo and hi, interpolated the same way (monotone in both, so the interpolated
// lower bound is below the interpolated share). Below the first bound, on a bound, or
// with no request slower than hi, t is rounded up as without inside.
func (h Histogram) slower(t time.Duration, zq float64, inside bool) (slowShare, bool) {
	b, slow, ok := h.above(t)
	if !ok {
		return slowShare{}, false
	}
	n := h.total()
	s := slowShare{at: b, slow: slow, n: n}
	s.share = float64(slow) / float64(n)
	s.lower, s.upper = wilson(float64(slow), float64(n), zq)
	i := slices.Index(h.Bounds, b)
	if !inside || b == t || i == 0 || slow == 0 || h.Bounds[i-1] <= 0 {
		return s, true
	}
	lo := h.Bounds[i-1]
	slowLo := n - h.Counts[i-1]
	lLo, uLo := wilson(float64(slowLo), float64(n), zq)
	if lLo <= 0 || s.lower <= 0 {
		return s, true
	}
	x0, x1, x := float64(lo), float64(b), float64(t)
	return slowShare{at: t, lo: lo, hi: b, slow: slow, slowLo: slowLo, n: n, interpolated: true,
		share: loglog(x0, float64(slowLo)/float64(n), x1, s.share, x),
		lower: loglog(x0, lLo, x1, s.lower, x),
		upper: loglog(x0, uLo, x1, s.upper, x),
	}, true
}
