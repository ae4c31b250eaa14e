package envoytest

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// Sampled latencies follow the lognormal: the share slower than its P99 is about 1 %,
// and every count is whole.
func TestAddSampled(t *testing.T) {
	e := Start(t)
	d := WithP99(202*time.Millisecond, 0.6)
	e.AddSampled("svc|v1", 200000, 0, d, rand.New(rand.NewPCG(1, 2)))
	e.mu.Lock()
	c := e.clusters["svc|v1"]
	e.mu.Unlock()
	var slower float64 // slower than 250 ms: P(Z > ln(250/50)/0.6) = 0.37 %
	for i, b := range e.bounds {
		if b >= 250 {
			slower += c.buckets[i+1]
		}
		if c.buckets[i] != math.Trunc(c.buckets[i]) {
			t.Fatalf("bucket %g holds %g requests, want whole counts", b, c.buckets[i])
		}
	}
	if share := slower / 200000; share < 0.0030 || share > 0.0045 {
		t.Errorf("share slower than 250 ms %.4f, want about 0.0037", share)
	}
}
