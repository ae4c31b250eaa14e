package controller

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

func propertySpec(autoResume bool) Spec {
	s := testSpec(Breaking)
	s.Stages = []StageSpec{
		{Match: &MatchSpec{Header: "x-canary", Value: "always"}, MinWindow: Duration(time.Minute)},
		{Percent: 5, MinWindow: Duration(2 * time.Minute)},
		{Percent: 50, MinWindow: Duration(2 * time.Minute)},
	}
	s.Monitoring = []Phase{{Name: "Immediate", Until: Duration(10 * time.Minute)}, {Name: "Rest", Until: Duration(20 * time.Minute)}}
	s.AutoResume = autoResume
	return s
}

// action turns one input byte into an observation or a command.
func action(b byte, r Rollout) (obs Observation, cmd *Command, clean bool, dt time.Duration) {
	dt = 30 * time.Second
	if b == 255 {
		dt = time.Hour // an outage of the loop
	}
	o := goodObs(r.Generation)
	switch b % 12 {
	case 0, 1, 2, 3:
		return o, nil, true, dt
	case 4:
		// A straggler after the generation was ACKed (a proxy that connected later)
		// does not stop the monitor clock: the ACK is sticky per generation.
		o.Convergence = Convergence{Generation: r.Generation, Stragglers: []string{"p1"}}
		return o, nil, !r.Progress.AckedAt.IsZero(), dt
	case 5:
		o.Canary.Requests = 10
	case 6:
		o.Alerts = []string{"A"}
	case 7:
		o.Canary = VersionStats{Requests: 1_000_000, Errors: 25_000, P99: 100 * time.Millisecond}
		o.Stable = VersionStats{Requests: 1_000_000, Errors: 5_000, P99: 100 * time.Millisecond}
	case 8:
		o.Health.Canary.Unhealthy = []string{"10.0.1.1:8080"}
	case 9:
		o.Health.Canary.Unhealthy = []string{"10.0.1.1:8080", "10.0.1.2:8080"}
	case 10:
		o.Convergence.NACK = "bad"
	case 11:
		kinds := []CommandKind{CmdPause, CmdResume, CmdPromote, CmdPromoteFull, CmdAbort, CmdFinish}
		c := Command{Kind: kinds[int(b>>4)%len(kinds)], Actor: "fuzz", Reason: "r", Force: b&0x80 != 0}
		return o, &c, false, 5 * time.Second
	}
	return o, nil, false, dt
}

func roundTrip(t testing.TB, r Rollout) Rollout {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var out Rollout
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSequence runs the input and checks the invariants after every step:
// weights always sum to TotalWeight; the canary never has more weight than its current
// stage allows; Step advances at most one stage and only on a clean, conclusive
// observation; every rollback ends at 0 % canary and stays there; and a copy that
// goes through JSON after every step behaves identically.
func checkSequence(t testing.TB, input []byte, autoResume bool) {
	r, _, err := New(t0, "r1", propertySpec(autoResume), testService())
	if err != nil {
		t.Fatal(err)
	}
	twin := roundTrip(t, r)
	now := t0
	for i, b := range input {
		obs, cmd, clean, dt := action(b, r)
		now = now.Add(dt)
		before := r
		var evs, twinEvs []Event
		if cmd != nil {
			r, evs, _ = r.Apply(now, *cmd)
			twin, twinEvs, _ = twin.Apply(now, *cmd)
		} else {
			r, evs = step(r, now, obs)
			twin, twinEvs = step(twin, now, obs)
		}
		twin = roundTrip(t, twin)
		if !bytes.Equal(mustJSON(t, r), mustJSON(t, twin)) || !bytes.Equal(mustJSON(t, evs), mustJSON(t, twinEvs)) {
			t.Fatalf("step %d: JSON round trip diverged:\n%s\n%s", i, mustJSON(t, r), mustJSON(t, twin))
		}
		checkWeights(t, r)
		w := r.CanaryWeight()
		switch {
		case r.State == StateRolledBack || r.State == StatePending:
			if w != 0 {
				t.Fatalf("step %d: %s with canary weight %d", i, r.State, w)
			}
		case r.Stage < len(r.Plan.Stages):
			if w != r.Plan.Stages[r.Stage].Weight {
				t.Fatalf("step %d: canary weight %d in stage %d (%d)", i, w, r.Stage, r.Plan.Stages[r.Stage].Weight)
			}
		}
		if before.State == StateRolledBack && (r.State != StateRolledBack || r.Generation != before.Generation) {
			t.Fatalf("step %d: left rolled_back", i)
		}
		if cmd == nil {
			if r.Stage > before.Stage+1 {
				t.Fatalf("step %d: Step jumped from stage %d to %d", i, before.Stage, r.Stage)
			}
			if r.Stage > before.Stage && before.State != StatePending && !clean {
				t.Fatalf("step %d: advanced on a non-clean observation (byte %d)", i, b)
			}
			if r.CanaryWeight() > before.CanaryWeight() && !clean && before.State != StatePending {
				t.Fatalf("step %d: canary weight rose %d → %d on a non-clean observation", i, before.CanaryWeight(), r.CanaryWeight())
			}
		}
		if r.State == StateRolledBack && (r.Weights()[r.Canary] != 0 || r.Matches() != nil) {
			t.Fatalf("step %d: rollback left the canary weight %v matches %v", i, r.Weights(), r.Matches())
		}
	}
}

func TestPropertyRandomSequences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 80; n++ {
		input := make([]byte, 50+rng.IntN(250))
		for i := range input {
			// Mostly clean checks, so that rollouts get far.
			if rng.IntN(3) > 0 {
				input[i] = byte(rng.IntN(4))
			} else {
				input[i] = byte(rng.IntN(256))
			}
		}
		checkSequence(t, input, n%2 == 0)
	}
}

func FuzzStep(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7, 7}, false)
	f.Add([]byte{0, 6, 0, 0, 11, 27, 0, 255, 9}, true)
	f.Add(bytes.Repeat([]byte{0, 1, 2, 5}, 100), true)
	f.Fuzz(func(t *testing.T, input []byte, autoResume bool) {
		checkSequence(t, input, autoResume)
	})
}

// A rollout marshalled to JSON mid-stage and restored resumes identically: the same
// events at the same times, monitored time kept, no jump forward and no return to 0 %.
func TestJSONResume(t *testing.T) {
	r, _ := mustNew(t, t0, testSpec(Minor))
	r, now, _ := drive(r, t0, t0.Add(25*time.Minute), 30*time.Second, good) // in the 25 % stage
	if r.Stage != 1 || r.Progress.Monitored == 0 {
		t.Fatalf("stage %d monitored %s", r.Stage, r.Progress.Monitored)
	}
	restored := roundTrip(t, r)
	if restored.CanaryWeight() != 2500 || restored.Progress.Monitored != r.Progress.Monitored {
		t.Fatalf("restored weight %d monitored %s", restored.CanaryWeight(), restored.Progress.Monitored)
	}
	a, _, evA := drive(r, now, now.Add(80*time.Hour), 30*time.Second, good)
	b, _, evB := drive(restored, now, now.Add(80*time.Hour), 30*time.Second, good)
	if !bytes.Equal(mustJSON(t, a), mustJSON(t, b)) || !bytes.Equal(mustJSON(t, evA), mustJSON(t, evB)) {
		t.Fatal("restored rollout diverged")
	}

	// A restart after a 10 minute outage: the unobserved time is not monitoring time,
	// the weight stays, and the stage completes its window afterwards.
	later := now.Add(10 * time.Minute)
	c, evs := step(restored, later, goodObs(restored.Generation))
	if c.Stage != 1 || c.CanaryWeight() != 2500 || c.Progress.Monitored != restored.Progress.Monitored+Duration(30*time.Second) ||
		len(kinds(evs, EventStageAdvanced)) != 0 {
		t.Fatalf("after outage: stage %d monitored %s → %s", c.Stage, restored.Progress.Monitored, c.Progress.Monitored)
	}
	// Replaying an observation at or before the last check changes nothing.
	if d, evs := step(c, later, goodObs(c.Generation)); len(evs) != 0 || !bytes.Equal(mustJSON(t, d), mustJSON(t, c)) {
		t.Fatal("replayed observation changed the rollout")
	}
}
