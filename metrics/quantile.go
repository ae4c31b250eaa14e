package metrics

import (
	"math"
	"sort"
)

// Bucket is one cumulative histogram bucket: Count observations were <= UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// BucketQuantile estimates the q-quantile (0..1) of a classic histogram the way
// PromQL's histogram_quantile does: it finds the bucket holding the rank q×total and
// interpolates linearly inside it, taking the lowest bucket to start at 0 (when its
// upper bound is positive) and answering the highest finite bound when the rank lies
// in the +Inf bucket. The total is the count of the +Inf bucket, which must be
// present. Counts that decrease with the bound (a torn read) are raised to stay
// monotonic. It returns NaN when the histogram is empty or has no +Inf bucket.
// buckets is sorted in place.
func BucketQuantile(q float64, buckets []Bucket) float64 {
	if math.IsNaN(q) || q < 0 || q > 1 || len(buckets) == 0 {
		return math.NaN()
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].UpperBound < buckets[j].UpperBound })
	if !math.IsInf(buckets[len(buckets)-1].UpperBound, +1) {
		return math.NaN()
	}
	monotonic(buckets)
	total := buckets[len(buckets)-1].Count
	if total <= 0 {
		return math.NaN()
	}
	if len(buckets) == 1 {
		return math.NaN() // only +Inf: nothing to interpolate
	}
	rank := q * total
	i := sort.Search(len(buckets)-1, func(i int) bool { return buckets[i].Count >= rank })
	if i == len(buckets)-1 {
		return buckets[len(buckets)-2].UpperBound
	}
	if i == 0 && buckets[0].UpperBound <= 0 {
		return buckets[0].UpperBound
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = buckets[i-1].UpperBound, buckets[i-1].Count
	}
	upper, in := buckets[i].UpperBound, buckets[i].Count-below
	if in == 0 {
		return upper
	}
	return lower + (upper-lower)*((rank-below)/in)
}
