package controller

import (
	"math"
	"time"
)

// The statistics the judge uses; judge.go says why each is there.

// tri is a three-way test outcome.
type tri int

const (
	triUnknown tri = iota
	triClean
	triBreach
)

// z returns the standard normal quantile Φ⁻¹(c).
func z(c float64) float64 { return math.Sqrt2 * math.Erfinv(2*c-1) }

// alwaysN0 is the effective canary sample size at which the always-valid boundary is
// tightest (see alwaysZ).
const alwaysN0 = 1000

// alwaysZ is the multiplier of the standard error that keeps a test at error rate
// alpha however often it is repeated on a growing sample: the normal-mixture boundary
// of Robbins (1970), in the form of Howard et al. (2021, "Time-uniform, nonparametric,
// nonasymptotic confidence sequences", eq. 14), z = √((1 + 1/x)(2 ln(1/α) + ln(1 + x)))
// with x = n/n0 the sample's information relative to where the boundary is tightest.
// At α = 0.05 it is 3.0-3.2 for n between 3,000 and 30,000 (a fixed-sample test
// repeated every 30 s would use 1.645 and alarm far more often than α); it grows only
// like √(ln n) as data accumulates.
func alwaysZ(alpha, n float64) float64 {
	if n <= 0 {
		return math.Inf(1)
	}
	x := n / alwaysN0
	return math.Sqrt((1 + 1/x) * (2*math.Log(1/alpha) + math.Log1p(x)))
}

// wilson returns the Wilson score interval of k successes in n trials at quantile zq.
// k and n may be fractional (counts divided by a dispersion factor).
func wilson(k, n, zq float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	p := k / n
	z2 := zq * zq
	den := 1 + z2/n
	center := (p + z2/(2*n)) / den
	half := zq * math.Sqrt(p*(1-p)/n+z2/(4*n*n)) / den
	return math.Max(0, center-half), math.Min(1, center+half)
}

// deltaBounds returns the one-sided lower and upper confidence bounds of canary −
// stable error rate, as fractions, at quantile zq, with both versions' counts divided
// by the dispersion phi (≥ 1): Newcombe's method 10, each bound combining the distances
// to the matching Wilson bounds of the two rates.
func deltaBounds(ce, cn, se, sn uint64, zq, phi float64) (lo, hi float64) {
	phi = max(phi, 1)
	kc, nc := float64(ce)/phi, float64(cn)/phi
	ks, ns := float64(se)/phi, float64(sn)/phi
	pc, ps := kc/nc, ks/ns
	lc, uc := wilson(kc, nc, zq)
	ls, us := wilson(ks, ns, zq)
	d := pc - ps
	return d - math.Hypot(pc-lc, us-ps), d + math.Hypot(uc-pc, ps-ls)
}

// Interval is one check window's counts, kept to measure how clustered errors are.
type Interval struct {
	Requests uint64 `json:"n"`
	Errors   uint64 `json:"e"`
}

// maxIntervals is how many check windows the dispersion looks back over.
const maxIntervals = 20

// minIntervals is how many check windows the dispersion needs to be measured.
const minIntervals = 4

// intervalsWithTraffic counts the intervals that served requests.
func intervalsWithTraffic(iv []Interval) int {
	n := 0
	for _, i := range iv {
		if i.Requests > 0 {
			n++
		}
	}
	return n
}

// dispersion returns how much the errors over intervals spread beyond independent
// requests (Pearson's χ² over its degrees of freedom): 1 for independent requests (the
// χ² not above its 99th percentile), about the cluster size when errors arrive in
// clusters, then taken at its upper 95 % confidence bound. It is 1 until at least
// minIntervals intervals with requests and one error overall are known.
func dispersion(iv []Interval) float64 {
	var n, k float64
	m := 0
	for _, i := range iv {
		if i.Requests == 0 {
			continue
		}
		n += float64(i.Requests)
		k += float64(min(i.Errors, i.Requests))
		m++
	}
	if m < minIntervals || k == 0 || k == n {
		return 1
	}
	p := k / n
	var chi float64
	for _, i := range iv {
		if i.Requests == 0 {
			continue
		}
		ni := float64(i.Requests)
		d := float64(min(i.Errors, i.Requests)) - ni*p
		chi += d * d / (ni * p * (1 - p))
	}
	df := float64(m - 1)
	if chi <= chi2Quantile(0.99, df) {
		return 1 // no evidence of clustering
	}
	// The upper 95 % confidence bound of the dispersion: a spread measured over a few
	// clusters underestimates it as often as not.
	return max(1, chi/chi2Quantile(0.05, df))
}

// chi2Quantile approximates the p-quantile of the χ² distribution with k degrees of
// freedom (Wilson and Hilferty 1931): within 2 % for k ≥ 10; for fewer degrees of
// freedom its lower quantiles fall below the exact ones, which widens the dispersion's
// upper bound.
func chi2Quantile(p, k float64) float64 {
	a := 2 / (9 * k)
	c := 1 - a + z(p)*math.Sqrt(a)
	return k * c * c * c
}

// total returns the histogram's request count (its +Inf bucket), 0 when empty.
func (h Histogram) total() uint64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// valid reports whether h can be tested: matching lengths, ascending bounds ending in
// Inf, non-decreasing counts.
func (h Histogram) valid() bool {
	n := len(h.Bounds)
	if n < 2 || n != len(h.Counts) || h.Bounds[n-1] != Inf {
		return false
	}
	for i := 1; i < n; i++ {
		if h.Bounds[i] <= h.Bounds[i-1] || h.Counts[i] < h.Counts[i-1] {
			return false
		}
	}
	return true
}

// quantile estimates the q-quantile by linear interpolation inside its bucket (as
// Prometheus's histogram_quantile does); ok is false when the quantile falls in the
// +Inf bucket or h is empty.
func (h Histogram) quantile(q float64) (time.Duration, bool) {
	total := h.total()
	if total == 0 {
		return 0, false
	}
	rank := q * float64(total)
	for i, c := range h.Counts {
		if float64(c) < rank {
			continue
		}
		if h.Bounds[i] == Inf {
			return 0, false
		}
		lo, below := time.Duration(0), uint64(0)
		if i > 0 {
			lo, below = h.Bounds[i-1], h.Counts[i-1]
		}
		in := c - below
		if in == 0 {
			return h.Bounds[i], true
		}
		f := (rank - float64(below)) / float64(in)
		return lo + time.Duration(f*float64(h.Bounds[i]-lo)), true
	}
	return 0, false
}

// above returns the smallest finite bound ≥ t and the requests slower than it; ok is
// false when t is beyond the last finite bound (the histogram cannot see past it).
func (h Histogram) above(t time.Duration) (bound time.Duration, slower uint64, ok bool) {
	for i, b := range h.Bounds {
		if b == Inf {
			break
		}
		if b >= t {
			return b, h.total() - h.Counts[i], true
		}
	}
	return 0, 0, false
}

// add returns the bucket-wise sum of h and o when their bounds agree.
func (h Histogram) add(o Histogram) (Histogram, bool) {
	if len(h.Bounds) == 0 {
		return Histogram{Bounds: append([]time.Duration(nil), o.Bounds...), Counts: append([]uint64(nil), o.Counts...)}, true
	}
	if len(h.Bounds) != len(o.Bounds) {
		return h, false
	}
	out := Histogram{Bounds: append([]time.Duration(nil), h.Bounds...), Counts: make([]uint64, len(h.Counts))}
	for i := range h.Bounds {
		if h.Bounds[i] != o.Bounds[i] {
			return h, false
		}
		out.Counts[i] = h.Counts[i] + o.Counts[i]
	}
	return out, true
}
