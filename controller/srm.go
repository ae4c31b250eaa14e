package controller

import (
	"fmt"
	"math"

	"github.com/octoacme/octoroll/model"
)

// The sample-ratio guard.
//
// Every comparison of canary and stable assumes both saw the traffic the weights
// promise. octoroll knows the weight every proxy ACKed, so it can test that: when the
// canary's observed share of requests disagrees with it (a client that bypasses the
// mesh, a proxy that reconnected to another control plane, a retry storm on one
// version, a version whose requests are not all counted), the two versions no longer
// see the same population and their error rates and latencies cannot be compared. The
// check then holds with the reason, and a hold that lasts InconclusiveLimit pauses.
//
// The test is the likelihood-ratio (G) test of the canary's count against a binomial
// with the ACKed share, with Yates' continuity correction. Its signed root stays close
// to a standard normal far into the tails even at a 1 % share, where Pearson's
// chi-square (the same test to first order) overstates significance of excesses. A
// mismatch needs all of:
//   - p < SampleRatioAlpha (0.001): at one test per check and one check every 30 s this
//     still errs rarely, and the hold it causes is cheap;
//   - at least SampleRatioMinExpected requests expected on each side, so a few requests
//     never decide;
//   - a material deviation: the observed share off by at least SampleRatioMinDeviation
//     (a fifth) of the smaller expected share. Smoke tests and synthetics sent to the
//     canary, and the scrape lag at a weight change, move the share by a few percent of
//     itself; at 10,000 req/s those are "significant" but do not bias a comparison the
//     way a broken split does.
//
// It runs on the analysis window only: that window starts after every proxy ACKed the
// weights, so it holds no traffic split by earlier weights. It does not run in a flag
// stage (header routes send flagged requests to the canary whatever the weight) nor
// when one version should have no traffic at all.
const (
	SampleRatioAlpha        = 0.001
	SampleRatioMinExpected  = 100
	SampleRatioMinDeviation = 0.2
)

// SampleRatio is the sample-ratio test of one window: the evidence behind a hold.
type SampleRatio struct {
	CanaryRequests uint64 `json:"canaryRequests"`
	StableRequests uint64 `json:"stableRequests"`
	// ExpectedShare is the canary's share of requests the ACKed weights promise, and
	// ObservedShare the share it served, both in percent (0-100).
	ExpectedShare float64 `json:"expectedShare"`
	ObservedShare float64 `json:"observedShare"`
	// P is the two-sided p-value of the observed split under the expected one.
	P float64 `json:"p"`
	// Mismatch is true when the split is off significantly and materially: the
	// comparison of the two versions is not valid.
	Mismatch bool `json:"mismatch,omitempty"`
}

// String states the test's outcome with its numbers.
func (s SampleRatio) String() string {
	what := "sample ratio as expected"
	if s.Mismatch {
		what = "sample ratio mismatch, versions not comparable"
	}
	return fmt.Sprintf("%s: canary served %.3g%% of %d requests (%d), its ACKed weight is %.4g%%, p = %.2g",
		what, s.ObservedShare, s.CanaryRequests+s.StableRequests, s.CanaryRequests, s.ExpectedShare, s.P)
}

// CheckSampleRatio tests the canary's and stable's request counts of one window against
// the canary weight (out of model.TotalWeight) every proxy applied. ok is false when
// the split cannot be tested: a weight of 0 or all of it, or too few requests expected
// on either side. It is pure.
func CheckSampleRatio(canary, stable uint64, weight uint32) (s SampleRatio, ok bool) {
	if weight == 0 || weight >= model.TotalWeight {
		return SampleRatio{}, false
	}
	n := float64(canary) + float64(stable)
	p0 := float64(weight) / model.TotalWeight
	ec, es := n*p0, n*(1-p0)
	if ec < SampleRatioMinExpected || es < SampleRatioMinExpected {
		return SampleRatio{}, false
	}
	s = SampleRatio{
		CanaryRequests: canary, StableRequests: stable,
		ExpectedShare: 100 * p0, ObservedShare: 100 * float64(canary) / n,
		P: sampleRatioP(float64(canary), n, p0),
	}
	dev := math.Abs(float64(canary)/n-p0) / min(p0, 1-p0)
	s.Mismatch = s.P < SampleRatioAlpha && dev >= SampleRatioMinDeviation
	return s, true
}

// sampleRatioP is the two-sided p-value of k successes in n trials under share p0 by
// the G test with continuity correction: k is moved half a count towards its
// expectation before the likelihood ratio is taken.
func sampleRatioP(k, n, p0 float64) float64 {
	e := n * p0
	switch {
	case math.Abs(k-e) <= 0.5:
		return 1
	case k > e:
		k -= 0.5
	default:
		k += 0.5
	}
	g := 2 * (xlogy(k, k/e) + xlogy(n-k, (n-k)/(n-e)))
	return math.Erfc(math.Sqrt(max(g, 0) / 2))
}

// xlogy is x·ln(y), 0 when x is 0.
func xlogy(x, y float64) float64 {
	if x == 0 {
		return 0
	}
	return x * math.Log(y)
}
