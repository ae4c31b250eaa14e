package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/model"
)

// TestGatePendingHolds: a hook the loop is still asking holds with "asking hook", one
// whose wait carried retryAfter holds until then, and neither is recorded as an answer;
// the go handed at a later check starts the rollout.
func TestGatePendingHolds(t *testing.T) {
	r, _ := mustNew(t, t0, gateSpec(""))
	now := t0.Add(30 * time.Second)
	obs := goodObs(r.Generation)
	obs.GatesPending = []GatePending{{Hook: "backup", Point: model.GatePreRollout}}
	r, evs := step(r, now, obs)
	if r.State != StatePending || r.Reason != `waiting for gate preRollout: asking hook "backup"` || len(kinds(evs, EventGate)) != 0 {
		t.Fatalf("asking: %s (%s), %d gate events", r.State, r.Reason, len(kinds(evs, EventGate)))
	}
	now = now.Add(30 * time.Second)
	retry := now.Add(5 * time.Minute)
	obs.GatesPending = []GatePending{{Hook: "backup", Point: model.GatePreRollout, RetryAt: retry}}
	r, _ = step(r, now, obs)
	if !strings.Contains(r.Reason, `hook "backup" asked again at `+retry.Format(time.RFC3339)+" (retryAfter)") {
		t.Fatalf("retryAfter: %s", r.Reason)
	}
	now = now.Add(30 * time.Second)
	obs.GatesPending = nil
	obs.Gates = []GateAnswer{{Hook: "backup", Point: model.GatePreRollout, Answer: model.AnswerGo, Status: 200, At: now}}
	r, _ = step(r, now, obs)
	if r.State != StateProgressing {
		t.Fatalf("after the go: %s (%s)", r.State, r.Reason)
	}
}

// TestFreezeHoldsHoldbackEnd: completing a rollout with a holdback moves the holdback's
// traffic to the canary, so a freeze holds it (the window closed, the weights stay),
// finish is refused without an override and recorded with one, and a rollback still
// goes through; lifting the freeze completes it.
func TestFreezeHoldsHoldbackEnd(t *testing.T) {
	freeze := &Freeze{Reason: "incident 42", By: "alice", Since: t0}
	ms := time.Millisecond
	clean := func(r Rollout, now time.Time) Observation { return split(r, now, 1000, 0.5, 0.5, 100*ms, 100*ms) }
	r, _ := mustNew(t, t0, holdbackSpec(200))
	r, now, _ := drive(r, t0, t0.Add(time.Hour), 30*time.Second, clean)
	if r.State != StateMonitoring || !r.HoldbackActive() {
		t.Fatalf("state %s, holdback %v", r.State, r.HoldbackActive())
	}
	gen := r.Generation
	frozen := func(r Rollout, now time.Time) Observation {
		o := clean(r, now)
		o.Freeze = freeze
		return o
	}
	held, now, _ := drive(r, now, now.Add(3*time.Hour), 30*time.Second, frozen)
	if held.State != StateMonitoring || held.Generation != gen || held.Weights()["v1"] != 200 ||
		!strings.Contains(held.Reason, "completing ends the holdback: frozen by alice") {
		t.Fatalf("frozen after the window: %s gen %d weights %v (%s)", held.State, held.Generation, held.Weights(), held.Reason)
	}
	if _, _, err := held.Apply(now, Command{Kind: CmdFinish, Actor: "bob", Freeze: freeze}); !errors.Is(err, ErrFrozen) {
		t.Fatalf("finish during a freeze: %v", err)
	}
	fin, evs, err := held.Apply(now, Command{Kind: CmdFinish, Actor: "bob", Freeze: freeze, OverrideFreeze: "holdback no longer needed"})
	if err != nil || fin.State != StateCompleted || fin.FreezeOverrides != 1 || len(kinds(evs, EventFreezeOverride)) != 1 {
		t.Fatalf("finish with an override: %s, %d overrides, %v", fin.State, fin.FreezeOverrides, err)
	}
	rb, _, err := held.Apply(now, Command{Kind: CmdAbort, Actor: "bob", Reason: "bad", Freeze: freeze})
	if err != nil || rb.State != StateRolledBack {
		t.Fatalf("abort during a freeze: %s, %v", rb.State, err)
	}
	done, _, _ := drive(held, now, now.Add(time.Minute), 30*time.Second, clean)
	if done.State != StateCompleted || done.Generation != gen+1 {
		t.Fatalf("after the freeze: %s gen %d", done.State, done.Generation)
	}
	// Without a holdback completing moves nothing: a freeze does not hold it.
	r, _ = mustNew(t, t0, holdbackSpec(0))
	r, now, _ = drive(r, t0, t0.Add(time.Hour), 30*time.Second, clean)
	done, _, _ = drive(r, now, now.Add(time.Hour), 30*time.Second, frozen)
	if done.State != StateCompleted {
		t.Fatalf("without a holdback during a freeze: %s (%s)", done.State, done.Reason)
	}
}
