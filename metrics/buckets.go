package metrics

import (
	"cmp"
	"math"
	"slices"
	"strconv"
)

// The latency bucket ladders. A histogram reads latency only at its bucket bounds, so
// the width of its buckets decides how small a latency change a rollout's checks can
// see: Envoy's default bounds step by ×2-2.5 around the usual P99s (…100, 250, 500
// ms…), wider than the guide's P99 bounds (×1.10 pause, ×1.25 no-go); octoroll's ladder
// steps by ×1.1.
const (
	// LatencyBucketFactor is the ratio between consecutive bounds of octoroll's ladder.
	LatencyBucketFactor = 1.1
	// LatencyBucketCount is the number of finite bounds of octoroll's ladder: 1 ms ×
	// 1.1^0 … 1.1^116, from 1 ms to 63.32 s.
	LatencyBucketCount = 117
)

// LatencyBucketsMS returns the latency histogram bounds octoroll ships, in
// milliseconds, as Envoy's stats_config.histogram_bucket_settings takes them: 1.1^i
// for i = 0 … LatencyBucketCount-1, each rounded to 4 significant digits (1, 1.1,
// 1.21, 1.331, …, 9412, 10350, …, 63320). deploy/envoy/bootstrap.yaml and
// deploy/kubernetes/example-app.yaml carry copies for upstream_rq_time, which
// deploy/deploy_test.go checks against it. A +Inf bucket follows the last bound. The
// slice is the caller's.
func LatencyBucketsMS() []float64 {
	out := make([]float64, LatencyBucketCount)
	for i := range out {
		out[i] = round4(math.Pow(LatencyBucketFactor, float64(i)))
	}
	return out
}

// LatencyBuckets returns the bounds of LatencyBucketsMS in seconds, for histograms in
// seconds such as the app convention's request_duration_seconds (the example app's).
// Each is the decimal of its LatencyBucketsMS bound shifted by three places (0.0011 for
// 1.1 ms), so the two expositions print the same digits. The slice is the caller's.
func LatencyBuckets() []float64 { return toSeconds(LatencyBucketsMS()) }

// EnvoyDefaultBucketsMS returns Envoy's default histogram bucket bounds, in
// milliseconds: the bounds of a proxy whose bootstrap sets no
// histogram_bucket_settings. A +Inf bucket follows the last. The slice is the caller's.
func EnvoyDefaultBucketsMS() []float64 {
	return []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}
}

// EnvoyDefaultBuckets returns the bounds of EnvoyDefaultBucketsMS in seconds. The
// slice is the caller's.
func EnvoyDefaultBuckets() []float64 { return toSeconds(EnvoyDefaultBucketsMS()) }

func round4(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 4, 64), 64)
	return v
}

// toSeconds divides every millisecond bound by 1000 in decimal, not in binary floating
// point (1.1/1000 is 0.0011000000000000001).
func toSeconds(ms []float64) []float64 {
	out := make([]float64, len(ms))
	for i, b := range ms {
		out[i], _ = strconv.ParseFloat(strconv.FormatFloat(b, 'g', -1, 64)+"e-3", 64)
	}
	return out
}

// Histogram normalises a latency histogram into the form of Stats.Latency, in a new
// slice: buckets sorted by bound, those with a NaN bound or count dropped, those of
// equal bound summed (the same bound written two ways, as "1" and "1.0", by two
// instances), counts rounded to whole requests and below zero raised to zero, then
// each count raised to at least the one below it, so that counts never decrease with
// the bound (a torn read, or increases extrapolated series by series, can break that;
// the rule is histogram_quantile's). It returns nil when the histogram has no +Inf
// bucket, whose count is the total.
func Histogram(buckets []Bucket) []Bucket {
	out := make([]Bucket, 0, len(buckets))
	for _, b := range buckets {
		if !math.IsNaN(b.UpperBound) && !math.IsNaN(b.Count) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b Bucket) int { return cmp.Compare(a.UpperBound, b.UpperBound) })
	merged := out[:0]
	for _, b := range out {
		if n := len(merged); n > 0 && merged[n-1].UpperBound == b.UpperBound {
			merged[n-1].Count += b.Count
			continue
		}
		merged = append(merged, b)
	}
	if len(merged) == 0 || !math.IsInf(merged[len(merged)-1].UpperBound, +1) {
		return nil
	}
	for i := range merged {
		merged[i].Count = max(math.Round(merged[i].Count), 0)
	}
	monotonic(merged)
	return merged
}

// monotonic raises each count of buckets (sorted by bound) to at least the one before.
func monotonic(buckets []Bucket) {
	for i := 1; i < len(buckets); i++ {
		if buckets[i].Count < buckets[i-1].Count {
			buckets[i].Count = buckets[i-1].Count
		}
	}
}

// NativeBucketBound returns the upper bound of bucket index of a native histogram of
// schema (-4 … 8): 2^(index·2^-schema), so each bucket is 2^(2^-schema) times wider
// than the one before (schema 3: ×1.0905).
func NativeBucketBound(schema, index int32) float64 {
	if schema >= 0 {
		return math.Exp2(float64(index) / float64(int64(1)<<schema))
	}
	return math.Exp2(float64(index) * float64(int64(1)<<-schema))
}
