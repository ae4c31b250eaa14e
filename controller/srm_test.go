package controller

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// binomial draws Binomial(n, p) exactly, by the geometric gaps between successes of the
// rarer outcome (about n·min(p, 1−p) draws).
func binomial(rng *rand.Rand, n uint64, p float64) uint64 {
	flip := p > 0.5
	if flip {
		p = 1 - p
	}
	var k, i uint64
	lq := math.Log1p(-p)
	for {
		gap := uint64(math.Floor(math.Log(1-rng.Float64()) / lq))
		i += gap + 1
		if i > n {
			break
		}
		k++
	}
	if flip {
		return n - k
	}
	return k
}

// A healthy split does not trip the guard in at least 999 of 1,000 windows at 1 %, 5 %
// and 50 %, and a 5 % weight served as 2 % trips it in every window.
func TestSampleRatioSeeded(t *testing.T) {
	t.Parallel()
	const windows = 1000
	trips := func(seed uint64, weight uint32, trueShare float64) (tripped, tested int) {
		rng := rand.New(rand.NewPCG(seed, 0x5a))
		for range windows {
			n := 20000 + rng.Uint64N(40000) // 200 req/s over 100-300 s
			c := binomial(rng, n, trueShare)
			s, ok := CheckSampleRatio(c, n-c, weight)
			if !ok {
				continue
			}
			tested++
			if s.Mismatch {
				tripped++
			}
		}
		return tripped, tested
	}
	for _, tc := range []struct {
		weight uint32
		share  float64
	}{{100, 0.01}, {500, 0.05}, {5000, 0.5}} {
		got, tested := trips(uint64(tc.weight), tc.weight, tc.share)
		t.Logf("healthy %g%%: tripped in %d of %d windows", 100*tc.share, got, tested)
		if tested != windows || got > windows/1000 {
			t.Errorf("healthy %g%%: tripped in %d of %d tested windows, want ≤ %d of %d", 100*tc.share, got, tested, windows/1000, windows)
		}
	}
	got, tested := trips(7, 500, 0.02)
	t.Logf("5%% weight served as 2%%: tripped in %d of %d windows", got, tested)
	if got < windows*999/1000 {
		t.Errorf("5%% weight served as 2%%: tripped in %d of %d windows, want ≥ 99.9 %%", got, tested)
	}
}

func TestCheckSampleRatio(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		canary, stable uint64
		weight         uint32
		ok, mismatch   bool
	}{
		{"weight 0", 0, 1000, 0, false, false},
		{"weight 100 %", 1000, 0, 10000, false, false},
		{"too few expected", 50, 950, 500, false, false},
		{"exact", 500, 9500, 500, true, false},
		{"significant but small (4.6 % of 5 %)", 46000, 954000, 500, true, false},
		{"half the share", 250, 9750, 500, true, true},
		{"twice the share", 2000, 8000, 1000, true, true},
		{"stable short at 50 %", 6500, 3500, 5000, true, true},
		{"off by a fifth but not significant", 120, 2380, 500, true, false},
	} {
		s, ok := CheckSampleRatio(tc.canary, tc.stable, tc.weight)
		if ok != tc.ok || s.Mismatch != tc.mismatch {
			t.Errorf("%s: ok %v mismatch %v (%+v), want %v %v", tc.name, ok, s.Mismatch, s, tc.ok, tc.mismatch)
		}
	}
	// The p-value tracks the exact binomial tail: 1 % of 10,000 is 100 ± 9.95.
	s, _ := CheckSampleRatio(133, 9867, 100)
	if s.P < 0.001 || s.P > 0.003 { // exact two-sided: 0.0021
		t.Errorf("p = %g for 133 of 10,000 at 1 %%, want ≈ 0.002", s.P)
	}
	s, _ = CheckSampleRatio(100, 9900, 100)
	if s.P != 1 {
		t.Errorf("p = %g at the expected count", s.P)
	}
}

// On a mismatch a stage holds with the evidence in the reason, pauses after the
// inconclusive limit, and a gross error rate still rolls back.
func TestSampleRatioHolds(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	mismatched := func(r Rollout, now time.Time, canaryPct float64) Observation {
		o := split(r, now, 1000, canaryPct, 0.5, 100*ms, 100*ms)
		if o.Analysis.Window > 0 {
			o.Analysis.Canary.Requests = o.Analysis.Canary.Requests * 2 / 5 // 5 % served as 2 %
			o.Analysis.Canary.Errors = uint64(float64(o.Analysis.Canary.Requests) * canaryPct / 100)
		}
		return o
	}
	r := acked(t, testSpec(Minor))
	r.Progress.Intervals = steadyIntervals(28500, 142) // the stable version's 0.5 %
	r2, evs := step(r, t0.Add(2*time.Minute), mismatched(r, t0.Add(2*time.Minute), 0.5))
	if r2.State != StateProgressing || r2.Progress.LastDecision != DecisionHold {
		t.Fatalf("state %s decision %s", r2.State, r2.Progress.LastDecision)
	}
	holds := kinds(evs, EventHold)
	if len(holds) != 1 || !strings.Contains(holds[0].Reason, "sample ratio mismatch") ||
		!strings.Contains(holds[0].Reason, "ACKed weight is 5%") || !strings.Contains(holds[0].Reason, "p = ") {
		t.Fatalf("hold events %+v", holds)
	}
	if n := r2.Progress.Last; n == nil || n.SampleRatio == nil || !n.SampleRatio.Mismatch || math.Abs(n.SampleRatio.ObservedShare-2) > 0.1 {
		t.Fatalf("numbers %+v", r2.Progress.Last)
	}
	if r2.Progress.Monitored != 0 {
		t.Errorf("a mismatched window accrued %s of monitoring", r2.Progress.Monitored)
	}
	r3, now, _ := drive(r, t0.Add(90*time.Second), t0.Add(time.Hour), 30*time.Second, func(r Rollout, now time.Time) Observation {
		return mismatched(r, now, 0.5)
	})
	if r3.State != StatePaused || !strings.Contains(r3.Reason, "inconclusive for") || !strings.Contains(r3.Reason, "sample ratio") {
		t.Fatalf("after the limit: state %s reason %q at %s", r3.State, r3.Reason, now.Sub(t0))
	}
	r4, _ := step(r, t0.Add(2*time.Minute), mismatched(r, t0.Add(2*time.Minute), 15))
	r4, _ = step(r4, t0.Add(150*time.Second), mismatched(r4, t0.Add(150*time.Second), 15))
	if r4.State != StateRolledBack || !strings.Contains(r4.Reason, "grossly") {
		t.Fatalf("gross breach under a mismatch: state %s reason %q", r4.State, r4.Reason)
	}
	// A matching split is recorded as tested and judged as usual.
	r5, _ := step(r, t0.Add(2*time.Minute), split(r, t0.Add(2*time.Minute), 1000, 0.5, 0.5, 100*ms, 100*ms))
	if n := r5.Progress.Last; n == nil || n.SampleRatio == nil || n.SampleRatio.Mismatch || n.Verdict != VerdictClean {
		t.Fatalf("matching split: %+v", r5.Progress.Last)
	}
}

// A flag stage routes flagged requests to the canary whatever its weight: no test.
func TestSampleRatioNotInFlagStage(t *testing.T) {
	t.Parallel()
	spec := testSpec(Breaking)
	r, _ := mustNew(t, t0, spec)
	r, _ = step(r, t0.Add(30*time.Second), goodObs(r.Generation))
	if len(r.Matches()) == 0 || r.Progress.AckedAt.IsZero() {
		t.Fatalf("not in an ACKed flag stage")
	}
	o := goodObs(r.Generation)
	o.Analysis = Sample{Window: time.Minute, Canary: VersionStats{Requests: 3000, P99: time.Millisecond}, Stable: VersionStats{Requests: 30000, P99: time.Millisecond}}
	if sr := r.sampleRatio(o); sr != nil {
		t.Fatalf("tested in a flag stage: %+v", sr)
	}
}
