package metrics_test

import (
	"math"
	"testing"

	"github.com/octoacme/octoroll/metrics"
)

func TestBucketQuantile(t *testing.T) {
	inf := math.Inf(+1)
	tests := []struct {
		name    string
		q       float64
		buckets []metrics.Bucket
		want    float64 // NaN for none
	}{
		{"interpolates inside a bucket", 0.99, []metrics.Bucket{{0.1, 900}, {0.5, 1000}, {inf, 1000}}, 0.1 + 0.4*(90.0/100)},
		{"lowest bucket starts at 0", 0.5, []metrics.Bucket{{0.2, 100}, {inf, 100}}, 0.1},
		{"rank in +Inf returns highest finite bound", 0.99, []metrics.Bucket{{0.1, 10}, {0.5, 20}, {inf, 100}}, 0.5},
		{"unsorted input", 0.5, []metrics.Bucket{{inf, 4}, {2, 4}, {1, 2}}, 1},
		{"non-monotonic counts are raised", 0.5, []metrics.Bucket{{1, 10}, {2, 5}, {inf, 20}}, 1 + 1*(0.0/1)},
		{"empty histogram", 0.99, []metrics.Bucket{{0.1, 0}, {inf, 0}}, math.NaN()},
		{"no +Inf bucket", 0.99, []metrics.Bucket{{0.1, 5}}, math.NaN()},
		{"only +Inf", 0.99, []metrics.Bucket{{inf, 5}}, math.NaN()},
		{"no buckets", 0.99, nil, math.NaN()},
		{"q out of range", 1.5, []metrics.Bucket{{0.1, 5}, {inf, 5}}, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := metrics.BucketQuantile(tt.q, tt.buckets)
			if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tt.want) > 1e-12) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
