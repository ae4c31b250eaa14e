package controller

import (
	"fmt"
	"strings"
	"time"

	"github.com/octoacme/octoroll/model"
)

// How smoke tests and synthetics take part in a rollout.
//
// The loop asks Wants before each check and runs what it asks for. Smoke tests gate
// movement: a pending rollout starts, and a stage advances on a Go, only when the
// observation carries a passing result of every smoke test (Observation.Smoke). A
// missing result holds ("waiting for smoke tests"); a failing one rolls back, at
// pending too, where nothing moved yet and the stable version keeps all traffic.
// Synthetics are checks like any other (Observation.Checks) that roll back on failure;
// a missing result is inconclusive.

// Wants tells the loop which HTTP checks to run for the check at now. smoke is true
// when that check could start the rollout (pending, inside the deployment window) or
// end the current stage with a Go: the stage's ACK is in and Monitored plus one check
// interval, the most one clean check adds, reaches the stage's MinWindow. synthetics is
// true while the canary takes traffic (progressing, monitoring, or paused from
// either). Both are false for a replayed check time and when the plan has none.
func (r Rollout) Wants(now time.Time) (smoke, synthetics bool) {
	if !r.Progress.LastCheck.IsZero() && !now.After(r.Progress.LastCheck) {
		return false, false
	}
	hasSmoke, hasSynth := len(r.Plan.SmokeTests) > 0, len(r.Plan.Synthetics) > 0
	inWindow, _ := r.windowAllows(now)
	switch r.State {
	case StatePending:
		return hasSmoke && inWindow, false
	case StateProgressing:
		return hasSmoke && r.couldAdvance(now), hasSynth
	case StatePaused:
		return false, hasSynth && r.PausedFrom != StatePending
	case StateMonitoring:
		return false, hasSynth
	}
	return false, false
}

// smokeFailure is the rollback finding of obs's failing smoke test results, or nil.
func (r Rollout) smokeFailure(obs Observation) *finding {
	var fs []finding
	for _, res := range obs.Smoke {
		if !res.Passed {
			fs = append(fs, finding{cause: CauseSmoke, reason: fmt.Sprintf("smoke test %q failed%s", res.Name, detail(res.Detail)),
				checks: []string{res.Name}})
		}
	}
	if len(fs) == 0 {
		return nil
	}
	f := mergeFindings(fs)
	return &f
}

// smokeMissing names the plan's smoke tests without a result in obs.
func (r Rollout) smokeMissing(obs Observation) []string {
	have := map[string]bool{}
	for _, res := range obs.Smoke {
		have[res.Name] = true
	}
	var missing []string
	for _, c := range r.Plan.SmokeTests {
		if !have[c.Name] {
			missing = append(missing, c.Name)
		}
	}
	return missing
}

// startAfterSmoke starts a pending rollout (tryStart) once no freeze stops it, obs
// carries every smoke test's result and every preRollout hook answered go; the caller
// has rolled back on a failing smoke test.
func (r Rollout) startAfterSmoke(now time.Time, obs Observation) (Rollout, []Event) {
	var evs []Event
	if ok, _ := r.windowAllows(now); ok {
		if r.frozen(obs.Freeze) {
			return r.frozenHold(now, obs.Freeze, nil)
		}
		if missing := r.smokeMissing(obs); len(missing) > 0 {
			return r.decide(now, DecisionHold, "waiting for smoke tests: "+strings.Join(missing, ", "), CauseSmoke, nil, EventHold)
		}
		g := r.gate(now, model.GatePreRollout, obs.Gates, obs.GatesPending)
		switch g.outcome {
		case gateNoGo:
			return r.gateNoGo(now, g, nil)
		case gateHold, gateMissing:
			r2, more := r.decide(now, DecisionHold, g.reason, CauseGate, nil, EventHold)
			return r2, append(g.events, more...)
		}
		evs = g.events
	}
	r, more := r.tryStart(now, obs.Freeze)
	return r, append(evs, more...)
}

// holdForSmoke holds a stage that would advance until obs carries every smoke test's
// result, pausing at the stage's MaxWindow like any other hold. held is false when
// nothing is missing.
func (r Rollout) holdForSmoke(now time.Time, st Stage, obs Observation, n *Numbers) (Rollout, []Event, bool) {
	missing := r.smokeMissing(obs)
	if len(missing) == 0 {
		return r, nil, false
	}
	if r2, evs, paused := r.maxWindow(now, st, n); paused {
		return r2, evs, true
	}
	r2, evs := r.decide(now, DecisionHold, "waiting for smoke tests: "+strings.Join(missing, ", "), CauseSmoke, n, EventHold)
	return r2, evs, true
}

// syntheticChecks are the plan's synthetics as checks judged like custom checks: a
// failure rolls back (critical functionality broken), a missing result is inconclusive.
func (r Rollout) syntheticChecks() []Check {
	out := make([]Check, 0, len(r.Plan.Synthetics))
	for _, s := range r.Plan.Synthetics {
		out = append(out, Check{Name: s.Name, OnFail: OnFailRollback})
	}
	return out
}

// smokeCheck refuses an operator's promotion whose smoke tests did not all run just
// before it (cmd.Smoke); a failing one rolls back instead (see Apply). Force skips both.
func (r Rollout) smokeCheck(cmd Command) error {
	if cmd.Force || len(r.Plan.SmokeTests) == 0 {
		return nil
	}
	if missing := r.smokeMissing(Observation{Smoke: cmd.Smoke}); len(missing) > 0 {
		return fmt.Errorf("%s: smoke tests not run: %s: %w", cmd.Kind, strings.Join(missing, ", "), ErrCheckFailing)
	}
	return nil
}
