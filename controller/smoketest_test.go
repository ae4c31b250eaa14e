package controller

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// httpSpec is a canary patch (one 5 % stage, 5 min window, 30 s checks) with a smoke
// test "home" and a synthetic "cart".
func httpSpec() Spec {
	spec := testSpec(Patch)
	spec.Strategy = StrategyCanary
	spec.SmokeTests = []HTTPCheck{{Name: "home", Path: "/"}}
	spec.Synthetics = []HTTPCheck{{Name: "cart", Path: "/cart"}}
	return spec
}

// httpObs is a clean observation plus the HTTP check results r wants at now; smoke and
// synth give each result's Passed.
func httpObs(smoke, synth bool) func(Rollout, time.Time) Observation {
	return func(r Rollout, now time.Time) Observation {
		obs := goodObs(r.Generation)
		wantSmoke, wantSynth := r.Wants(now)
		if wantSmoke {
			for _, c := range r.Plan.SmokeTests {
				obs.Smoke = append(obs.Smoke, CheckResult{Name: c.Name, Passed: smoke, Detail: "status 200"})
			}
		}
		if wantSynth {
			for _, c := range r.Plan.Synthetics {
				obs.Checks = append(obs.Checks, CheckResult{Name: c.Name, Passed: synth, Detail: "status 503"})
			}
		}
		return obs
	}
}

func TestWants(t *testing.T) {
	base, _ := mustNew(t, t0, httpSpec()) // pending, waiting for smoke tests
	at := func(mut func(*Rollout)) Rollout {
		r := base
		mut(&r)
		return r
	}
	stage := func(monitored time.Duration) func(*Rollout) {
		return func(r *Rollout) {
			r.State = StateProgressing
			r.Progress = freshProgress(t0)
			r.Progress.AckedAt = t0
			r.Progress.Monitored = Duration(monitored)
		}
	}
	now := t0.Add(time.Hour)
	window := &DeploymentWindow{Start: "09:00", End: "10:30"} // t0 is 10:00, now 11:00
	tests := []struct {
		name             string
		r                Rollout
		now              time.Time
		smoke, synthetic bool
	}{
		{"pending", base, now, true, false},
		{"pending outside the window", at(func(r *Rollout) { r.Plan.Window = window }), now, false, false},
		{"pending without smoke tests", at(func(r *Rollout) { r.Plan.SmokeTests = nil }), now, false, false},
		{"pending replay", at(func(r *Rollout) { r.Progress.LastCheck = now }), now, false, false},
		{"stage not ACKed", at(func(r *Rollout) {
			stage(0)(r)
			r.Progress.AckedAt = time.Time{}
			r.Progress.Monitored = Duration(5 * time.Minute)
		}), now, false, true},
		{"stage far from its window", at(stage(time.Minute)), now, false, true},
		{"stage one interval short by 1ns", at(stage(4*time.Minute + 30*time.Second - 1)), now, false, true},
		{"stage one interval short", at(stage(4*time.Minute + 30*time.Second)), now, true, true},
		{"stage window complete", at(stage(6 * time.Minute)), now, true, true},
		{"stage complete outside the window", at(func(r *Rollout) { stage(5 * time.Minute)(r); r.Plan.Window = window }), now, false, true},
		{"stage with a longer interval", at(func(r *Rollout) { stage(3 * time.Minute)(r); r.Plan.CheckInterval = Duration(2 * time.Minute) }), now, true, true},
		{"stage without synthetics", at(func(r *Rollout) { stage(5 * time.Minute)(r); r.Plan.Synthetics = nil }), now, true, false},
		{"paused in a stage", at(func(r *Rollout) { stage(5 * time.Minute)(r); r.State, r.PausedFrom = StatePaused, StateProgressing }), now, false, true},
		{"paused while pending", at(func(r *Rollout) { r.State, r.PausedFrom = StatePaused, StatePending }), now, false, false},
		{"monitoring", at(func(r *Rollout) { r.setFull(t0) }), now, false, true},
		{"rolled back", at(func(r *Rollout) { r.State = StateRolledBack }), now, false, false},
		{"completed", at(func(r *Rollout) { r.State = StateCompleted }), now, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			smoke, synth := tt.r.Wants(tt.now)
			if smoke != tt.smoke || synth != tt.synthetic {
				t.Errorf("Wants = %v, %v; want %v, %v", smoke, synth, tt.smoke, tt.synthetic)
			}
		})
	}
}

// Wants is exact about promotion: smoke is asked for on the very check that can Go, and
// not on the one before.
func TestWantsMatchesThePromotingCheck(t *testing.T) {
	r, _ := mustNew(t, t0, httpSpec())
	obs := httpObs(true, true)
	var asked []time.Time
	var advancedAt time.Time
	now := t0
	for r.State == StatePending || r.State == StateProgressing {
		now = now.Add(30 * time.Second)
		if smoke, _ := r.Wants(now); smoke {
			asked = append(asked, now)
		}
		var evs []Event
		r, evs = step(r, now, obs(r, now))
		if len(kinds(evs, EventStageAdvanced)) > 0 {
			advancedAt = now
		}
	}
	// Start at 0:30, ACK at 1:00, 5 min clean at 6:00.
	want := []time.Time{t0.Add(30 * time.Second), t0.Add(6 * time.Minute)}
	if !slices.EqualFunc(asked, want, time.Time.Equal) || !advancedAt.Equal(want[1]) {
		t.Fatalf("smoke asked at %v, advanced at %s; want %v", asked, advancedAt, want)
	}
}

func TestSmokeTestsGateStart(t *testing.T) {
	t.Run("missing holds, pass starts", func(t *testing.T) {
		r, evs := mustNew(t, t0, httpSpec())
		holds := kinds(evs, EventHold)
		if r.State != StatePending || r.CanaryWeight() != 0 || len(holds) != 1 || holds[0].Reason != "waiting for smoke tests: home" {
			t.Fatalf("state %s reason %q events %+v", r.State, r.Reason, evs)
		}
		// A check without the results keeps waiting, without a new event.
		r, evs = step(r, t0.Add(30*time.Second), goodObs(r.Generation))
		if r.State != StatePending || len(evs) != 0 {
			t.Fatalf("state %s events %+v", r.State, evs)
		}
		r, evs = step(r, t0.Add(time.Minute), httpObs(true, true)(r, t0.Add(time.Minute)))
		if r.State != StateProgressing || r.CanaryWeight() != 500 || len(kinds(evs, EventStarted)) != 1 || r.Reason != "" {
			t.Fatalf("state %s weight %d events %+v", r.State, r.CanaryWeight(), evs)
		}
	})
	t.Run("failure rolls back before any weight moved", func(t *testing.T) {
		r, evs := mustNew(t, t0, httpSpec())
		now := t0.Add(30 * time.Second)
		obs := goodObs(r.Generation)
		obs.Smoke = []CheckResult{{Name: "home", Passed: false, Detail: "status 503"}}
		r, more := step(r, now, obs)
		evs = append(evs, more...)
		rb := kinds(evs, EventRolledBack)
		if r.State != StateRolledBack || r.CanaryWeight() != 0 || len(rb) != 1 || !r.StartedAt.IsZero() || len(kinds(evs, EventStarted)) != 0 {
			t.Fatalf("state %s weight %d events %+v", r.State, r.CanaryWeight(), evs)
		}
		for _, e := range evs {
			if e.Weight != 0 {
				t.Errorf("event %s at canary weight %d", e.Kind, e.Weight)
			}
		}
		if rb[0].Reason != `smoke test "home" failed: status 503` || !slices.Equal(rb[0].Checks, []string{"home"}) ||
			rb[0].Decision != DecisionRollback || r.KnownGood() != "v1" || !r.EndedAt.Equal(now) {
			t.Errorf("rollback %+v", rb[0])
		}
	})
	t.Run("outside the window nothing is asked and it waits for the window", func(t *testing.T) {
		spec := httpSpec()
		spec.Window = &DeploymentWindow{Start: "10:30", End: "11:00"}
		r, _ := mustNew(t, t0, spec)
		if r.Reason != "outside deployment window" {
			t.Fatalf("reason %q", r.Reason)
		}
		var asked []time.Time
		r, _, _ = drive(r, t0, t0.Add(31*time.Minute), 30*time.Second, func(r Rollout, now time.Time) Observation {
			if s, _ := r.Wants(now); s {
				asked = append(asked, now)
			}
			return httpObs(true, true)(r, now)
		})
		if r.State != StateProgressing || !r.StartedAt.Equal(t0.Add(30*time.Minute)) ||
			!slices.EqualFunc(asked, []time.Time{t0.Add(30 * time.Minute)}, time.Time.Equal) {
			t.Fatalf("state %s started %s, smoke asked at %v", r.State, r.StartedAt, asked)
		}
	})
	t.Run("resume of a paused pending rollout waits for smoke tests", func(t *testing.T) {
		r, _ := mustNew(t, t0, httpSpec())
		r, _, err := r.Apply(t0.Add(time.Second), Command{Kind: CmdPause, Actor: "ana"})
		if err != nil {
			t.Fatal(err)
		}
		r, _, err = r.Apply(t0.Add(2*time.Second), Command{Kind: CmdResume, Actor: "ana"})
		if err != nil || r.State != StatePending || r.Reason != "waiting for smoke tests: home" {
			t.Fatalf("state %s reason %q err %v", r.State, r.Reason, err)
		}
	})
	t.Run("reported smoke checks alone still start at once", func(t *testing.T) {
		r, _ := mustNew(t, t0, testSpec(Minor))
		if r.State != StateProgressing {
			t.Fatalf("state %s", r.State)
		}
	})
}

func TestSmokeTestsGatePromotion(t *testing.T) {
	start := func(t *testing.T) Rollout {
		r, _ := mustNew(t, t0, httpSpec())
		r, _ = step(r, t0.Add(30*time.Second), httpObs(true, true)(r, t0.Add(30*time.Second)))
		if r.State != StateProgressing {
			t.Fatalf("state %s", r.State)
		}
		return r
	}
	noSmoke := func(r Rollout, now time.Time) Observation {
		obs := httpObs(true, true)(r, now)
		obs.Smoke = nil
		return obs
	}
	t.Run("window reached, smoke missing holds, then pass advances", func(t *testing.T) {
		r := start(t)
		// ACK at 1:00, MinWindow 5 min complete at 6:00.
		r, _, evs := drive(r, t0.Add(30*time.Second), t0.Add(6*time.Minute), 30*time.Second, noSmoke)
		holds := kinds(evs, EventHold)
		if r.State != StateProgressing || r.Stage != 0 || r.Progress.Monitored != Duration(5*time.Minute) || len(holds) == 0 ||
			holds[len(holds)-1].Reason != "waiting for smoke tests: home" || r.Reason != "waiting for smoke tests: home" {
			t.Fatalf("state %s stage %d monitored %s reason %q", r.State, r.Stage, r.Progress.Monitored, r.Reason)
		}
		if smoke, _ := r.Wants(t0.Add(6*time.Minute + 30*time.Second)); !smoke {
			t.Fatal("a held stage does not ask for smoke tests")
		}
		now := t0.Add(6*time.Minute + 30*time.Second)
		r, evs = step(r, now, httpObs(true, true)(r, now))
		adv := kinds(evs, EventStageAdvanced)
		if r.State != StateMonitoring || r.CanaryWeight() != 10000 || len(adv) != 1 || adv[0].Decision != DecisionGo {
			t.Fatalf("state %s events %+v", r.State, evs)
		}
	})
	t.Run("smoke never arriving pauses at maxWindow", func(t *testing.T) {
		r := start(t)
		r, _, _ = drive(r, t0.Add(30*time.Second), t0.Add(12*time.Minute), 30*time.Second, noSmoke)
		if r.State != StatePaused || r.PausedFrom != StateProgressing || !strings.Contains(r.Reason, "not conclusive within maxWindow") {
			t.Fatalf("state %s reason %q", r.State, r.Reason)
		}
	})
	t.Run("smoke failing at promotion rolls back", func(t *testing.T) {
		r := start(t)
		r, _, evs := drive(r, t0.Add(30*time.Second), t0.Add(10*time.Minute), 30*time.Second, httpObs(false, true))
		rb := kinds(evs, EventRolledBack)
		if r.State != StateRolledBack || r.Stage != 0 || len(rb) != 1 || !r.EndedAt.Equal(t0.Add(6*time.Minute)) ||
			!slices.Equal(rb[0].Checks, []string{"home"}) || rb[0].Weight != 0 {
			t.Fatalf("state %s stage %d ended %s events %+v", r.State, r.Stage, r.EndedAt, rb)
		}
	})
}

func TestSynthetics(t *testing.T) {
	running := func(t *testing.T) Rollout {
		r, _ := mustNew(t, t0, httpSpec())
		r, _ = step(r, t0.Add(30*time.Second), httpObs(true, true)(r, t0.Add(30*time.Second)))
		return r
	}
	t.Run("missing is inconclusive", func(t *testing.T) {
		r := running(t)
		noSynth := func(r Rollout, now time.Time) Observation {
			obs := httpObs(true, true)(r, now)
			obs.Checks = goodObs(r.Generation).Checks
			return obs
		}
		r, _, _ = drive(r, t0.Add(30*time.Second), t0.Add(8*time.Minute), 30*time.Second, noSynth)
		if r.State != StateProgressing || r.Stage != 0 || r.Progress.Monitored != 0 || !strings.Contains(r.Reason, `check "cart" has no result`) {
			t.Fatalf("state %s monitored %s reason %q", r.State, r.Progress.Monitored, r.Reason)
		}
	})
	t.Run("failing in a stage rolls back", func(t *testing.T) {
		r := running(t)
		r, now, evs := drive(r, t0.Add(30*time.Second), t0.Add(time.Hour), 30*time.Second, httpObs(true, false))
		rb := kinds(evs, EventRolledBack)
		if r.State != StateRolledBack || !now.Equal(t0.Add(time.Minute)) || len(rb) != 1 || !slices.Equal(rb[0].Checks, []string{"cart"}) ||
			!strings.Contains(rb[0].Reason, `check "cart" failed: status 503`) {
			t.Fatalf("state %s at %s events %+v", r.State, now, rb)
		}
	})
	t.Run("failing while paused rolls back", func(t *testing.T) {
		r := running(t)
		r, _, err := r.Apply(t0.Add(40*time.Second), Command{Kind: CmdPause, Actor: "ana"})
		if err != nil {
			t.Fatal(err)
		}
		now := t0.Add(time.Minute)
		r, _ = step(r, now, httpObs(true, false)(r, now))
		if r.State != StateRolledBack {
			t.Fatalf("state %s", r.State)
		}
	})
	t.Run("failing during the monitoring window rolls back", func(t *testing.T) {
		r := running(t)
		r, now, _ := drive(r, t0.Add(30*time.Second), t0.Add(2*time.Hour), 30*time.Second, httpObs(true, true))
		if r.State != StateMonitoring || !r.FullAt.Equal(t0.Add(6*time.Minute)) {
			t.Fatalf("state %s full at %s", r.State, r.FullAt)
		}
		r, _, evs := drive(r, now, now.Add(time.Hour), 30*time.Second, httpObs(true, false))
		rb := kinds(evs, EventRolledBack)
		if r.State != StateRolledBack || r.CanaryWeight() != 0 || len(rb) != 1 || !slices.Equal(rb[0].Checks, []string{"cart"}) ||
			!r.EndedAt.Equal(now.Add(30*time.Second)) {
			t.Fatalf("state %s ended %s events %+v", r.State, r.EndedAt, rb)
		}
	})
	t.Run("a passing rollout completes, smoke asked twice", func(t *testing.T) {
		r, _ := mustNew(t, t0, httpSpec())
		obs := httpObs(true, true)
		asked := 0
		r, _, _ = drive(r, t0, t0.Add(80*time.Hour), 30*time.Second, func(r Rollout, now time.Time) Observation {
			if s, _ := r.Wants(now); s {
				asked++
			}
			return obs(r, now)
		})
		if r.State != StateCompleted || asked != 2 {
			t.Fatalf("state %s, smoke asked %d times", r.State, asked)
		}
	})
}

// A rollout with HTTP checks survives a JSON round trip: the restored one asks for the
// same checks and decides the same.
func TestHTTPChecksJSONResume(t *testing.T) {
	spec := httpSpec()
	spec.SmokeTests[0].Headers = map[string]string{"X-Smoke": "1"}
	spec.SmokeTests[0].Expect = HTTPExpect{Status: []int{200}, JSON: []JSONExpect{{Path: "status", Equals: "ok"}}}
	r, _ := mustNew(t, t0, spec)
	restored := roundTrip(t, r)
	if !bytes.Equal(mustJSON(t, r), mustJSON(t, restored)) {
		t.Fatal("round trip changed the rollout")
	}
	a, _, evA := drive(r, t0, t0.Add(80*time.Hour), 30*time.Second, httpObs(true, true))
	b, _, evB := drive(restored, t0, t0.Add(80*time.Hour), 30*time.Second, httpObs(true, true))
	if a.State != StateCompleted || !bytes.Equal(mustJSON(t, a), mustJSON(t, b)) || !bytes.Equal(mustJSON(t, evA), mustJSON(t, evB)) {
		t.Fatalf("restored rollout diverged (%s)", a.State)
	}
}

// An operator's promote needs a pass of every smoke test, run just before it.
func TestPromoteNeedsSmokeTests(t *testing.T) {
	r, _ := mustNew(t, t0, httpSpec())
	r, _ = step(r, t0.Add(30*time.Second), httpObs(true, true)(r, t0.Add(30*time.Second)))
	now := t0.Add(time.Minute)
	for _, tc := range []struct {
		name  string
		cmd   Command
		error string
	}{
		{"not run", Command{Kind: CmdPromote, Actor: "bob"}, "promote: smoke tests not run: home"},
		{"passed", Command{Kind: CmdPromote, Actor: "bob", Smoke: []CheckResult{{Name: "home", Passed: true}}}, ""},
		{"forced", Command{Kind: CmdPromoteFull, Actor: "bob", Force: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, _, err := r.Apply(now, tc.cmd)
			switch {
			case tc.error == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.error != "" && (!errors.Is(err, ErrCheckFailing) || !strings.Contains(err.Error(), tc.error)):
				t.Fatalf("error %v, want %q", err, tc.error)
			case tc.error == "" && next.State != StateMonitoring:
				t.Fatalf("state %s after promote", next.State)
			case tc.error != "" && next.State != StateProgressing:
				t.Fatalf("state %s after a refused promote", next.State)
			}
		})
	}
}

// A smoke test failing for an operator's promote is critical functionality broken: the
// rollout rolls back, as on the loop's own promotions.
func TestPromoteSmokeFailureRollsBack(t *testing.T) {
	r, _ := mustNew(t, t0, httpSpec())
	r, _ = step(r, t0.Add(30*time.Second), httpObs(true, true)(r, t0.Add(30*time.Second)))
	next, evs, err := r.Apply(t0.Add(time.Minute), Command{Kind: CmdPromote, Actor: "bob",
		Smoke: []CheckResult{{Name: "home", Detail: "status 503"}}})
	if err != nil || next.State != StateRolledBack || next.CanaryWeight() != 0 ||
		!strings.Contains(next.Reason, `smoke test "home" failed: status 503 (run for the promote by bob)`) ||
		len(kinds(evs, EventRolledBack)) != 1 {
		t.Fatalf("err %v, state %s at %d, reason %q", err, next.State, next.CanaryWeight(), next.Reason)
	}
}
