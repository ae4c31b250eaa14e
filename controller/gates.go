package controller

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/octoacme/octoroll/model"
)

// How gates, approvals and freezes take part in a rollout.
//
// Gates are blocking webhooks. The loop asks GateWanted at each check and calls the
// hooks of the point it names in the background (outside the engine: the engine does
// no I/O), one call per rollout and point at a time; it hands each answer to Step once,
// in Observation.Gates, at the first check after it came, and names the hooks still
// being asked in Observation.GatesPending. The engine decides:
//
//   - preRollout: a pending rollout starts only when every hook answered go;
//   - confirmPromotion: a stage whose window passed advances only on every hook's go;
//   - postRollout: asked once 100 % is ACKed; the monitoring window closes (the
//     rollout completes) only after every hook answered go;
//   - onRollback: told after a rollback by the loop alone; it cannot stop a rollback.
//
// A missing answer, a wait or no answer at all (unreachable, timeout, 5xx: see
// model.AnswerError) holds: a gate never passes without a go. A no-go does what the
// hook's onFail says: rollback (at preRollout: the start is refused, nothing moved) or
// pause. Every answer is recorded as an event when it differs from the hook's last
// one in the stage.
//
// A stage with approval: required advances, once everything else allows it, only
// after a person approved it (CmdApprove); promote is a person's decision too.
//
// A freeze (Observation.Freeze) holds every start and advance, unless the spec
// overrides it (Spec.OverrideFreeze) or, for one promote, the command does; each such
// start or advance is recorded. Rollbacks, pauses and aborts are never frozen.

// withServiceGates adds the catalog service's hooks to spec's (a spec hook of the same
// name at the same point replaces the service's).
func withServiceGates(spec Spec, svc model.Service) Spec {
	spec.Gates = spec.Gates.Merge(svc.Gates)
	return spec
}

// frozen reports whether freeze stops r's starts and advances: one is in force and the
// spec does not override it.
func (r Rollout) frozen(freeze *Freeze) bool {
	return freeze != nil && strings.TrimSpace(r.Spec.OverrideFreeze) == ""
}

// couldAdvance reports whether the check at now could end the current stage with a
// Go: the stage's ACK is in, the deployment window allows it and Monitored plus one
// check interval, the most one clean check adds, reaches the stage's MinWindow.
func (r Rollout) couldAdvance(now time.Time) bool {
	st, ok := r.CurrentStage()
	inWindow, _ := r.windowAllows(now)
	return ok && r.State == StateProgressing && !r.Progress.AckedAt.IsZero() && inWindow &&
		r.Progress.Monitored+r.Plan.CheckInterval >= st.MinWindow
}

// needsApproval reports whether the current stage waits for a person's approval.
func (r Rollout) needsApproval() bool {
	st, ok := r.CurrentStage()
	return ok && st.Approval == ApprovalRequired && r.Progress.Approved == nil
}

// AwaitingApproval reports whether r is waiting for a person to approve its current
// stage's advance: the stage requires it, nobody approved yet, and its window passed.
func (r Rollout) AwaitingApproval() bool {
	st, ok := r.CurrentStage()
	return r.State == StateProgressing && r.needsApproval() && ok && !r.Progress.AckedAt.IsZero() &&
		r.Progress.Monitored >= st.MinWindow
}

// GateWanted tells the loop which gate point's hooks to ask for the check at now,
// given the freeze in force: preRollout for a pending rollout that could start,
// confirmPromotion for a stage that could advance (approved, when it needs it),
// postRollout at 100 % once ACKed until every hook said go. "" when none (also for a
// replayed check time and for a point without hooks).
func (r Rollout) GateWanted(now time.Time, freeze *Freeze) string {
	if !r.Progress.LastCheck.IsZero() && !now.After(r.Progress.LastCheck) {
		return ""
	}
	g := r.Plan.Gates
	switch r.State {
	case StatePending:
		if ok, _ := r.windowAllows(now); ok && len(g.PreRollout) > 0 && !r.frozen(freeze) {
			return model.GatePreRollout
		}
	case StateProgressing:
		if len(g.ConfirmPromotion) > 0 && r.couldAdvance(now) && !r.frozen(freeze) && !r.needsApproval() {
			return model.GateConfirmPromotion
		}
	case StateMonitoring:
		if len(g.PostRollout) > 0 && !r.PostRolloutPassed && !r.Progress.AckedAt.IsZero() {
			return model.GatePostRollout
		}
	}
	return ""
}

// gateOutcome is what the answers of one point's hooks allow.
type gateOutcome int

const (
	gatePass    gateOutcome = iota // every hook answered go
	gateMissing                    // some hook was not asked at this check
	gateHold                       // some hook answered wait or gave no answer
	gateNoGo                       // some hook answered no-go
)

// gateResult is the engine's reading of one point's answers.
type gateResult struct {
	outcome gateOutcome
	// reason says why it does not pass; noGo is the first no-go answer (with the
	// strongest onFail: rollback before pause).
	reason string
	noGo   *GateAnswer
	onFail string
	// events are the answers recorded (those that changed).
	events []Event
}

// gate reads the answers of point's hooks in answers and records each one that
// changed since the hook's last recorded answer in the stage.
// A hook without an answer that the loop is asking (pending) holds with what it waits
// for; one neither answered nor pending was not asked yet.
func (r *Rollout) gate(now time.Time, point string, answers []GateAnswer, pending []GatePending) gateResult {
	hooks := r.Plan.Gates.At(point)
	res := gateResult{outcome: gatePass}
	var missing, held []string
	for _, h := range hooks {
		i := slices.IndexFunc(answers, func(a GateAnswer) bool { return a.Point == point && a.Hook == h.Name })
		if i < 0 {
			if j := slices.IndexFunc(pending, func(p GatePending) bool { return p.Point == point && p.Hook == h.Name }); j >= 0 {
				held = append(held, pending[j].Summary())
			} else {
				missing = append(missing, h.Name)
			}
			continue
		}
		a := answers[i]
		key := point + "/" + h.Name
		seen := a.Answer + "|" + a.Reason + "|" + a.Error + "|" + fmt.Sprint(a.Status)
		if r.Progress.Gates[key] != seen {
			if r.Progress.Gates == nil {
				r.Progress.Gates = map[string]string{}
			}
			r.Progress.Gates[key] = seen
			ans := a
			res.events = append(res.events, r.event(now, EventGate, func(e *Event) {
				e.Gate = &ans
				e.Reason = ans.Summary()
			}))
		}
		switch a.Answer {
		case model.AnswerGo:
		case model.AnswerNoGo:
			if res.noGo == nil || (h.OnFailOrDefault() == model.GateOnFailRollback && res.onFail != model.GateOnFailRollback) {
				ans := a
				res.noGo, res.onFail = &ans, h.OnFailOrDefault()
			}
		default:
			held = append(held, a.Summary())
		}
	}
	switch {
	case res.noGo != nil:
		res.outcome, res.reason = gateNoGo, fmt.Sprintf("gate %s: %s", point, res.noGo.Summary())
	case len(held) > 0:
		res.outcome, res.reason = gateHold, fmt.Sprintf("waiting for gate %s: %s", point, strings.Join(held, "; "))
	case len(missing) > 0:
		res.outcome, res.reason = gateMissing, fmt.Sprintf("waiting for gate %s: %s not asked yet", point, strings.Join(missing, ", "))
	}
	return res
}

// gateNoGo acts on a no-go as its hook's onFail says: roll back (at pending: the start
// is refused; nothing moved) or pause.
func (r Rollout) gateNoGo(now time.Time, g gateResult, n *Numbers) (Rollout, []Event) {
	f := finding{reason: g.reason}
	var r2 Rollout
	var evs []Event
	if g.onFail == model.GateOnFailPause {
		r2, evs = r.pause(now, f, "", n, nil)
	} else {
		if r.State == StatePending {
			f.reason += "; the start is refused, no weight moved"
		}
		r2, evs = r.rollback(now, f, "", n)
	}
	for i := range evs {
		evs[i].Gate = g.noGo
	}
	return r2, append(g.events, evs...)
}

// noteFreezeOverride records a start or advance made during freeze by the override of
// reason (the spec's or a command's), by actor.
func (r *Rollout) noteFreezeOverride(now time.Time, freeze *Freeze, reason, actor, what string) []Event {
	if freeze == nil {
		return nil
	}
	r.FreezeOverrides++
	f := *freeze
	return []Event{r.event(now, EventFreezeOverride, func(e *Event) {
		e.Freeze = &f
		e.Actor = actor
		e.Reason = fmt.Sprintf("%s during a freeze (%s); override: %s", what, f.Summary(), reason)
	})}
}

// frozenHold holds r during freeze.
func (r Rollout) frozenHold(now time.Time, freeze *Freeze, n *Numbers) (Rollout, []Event) {
	return r.decide(now, DecisionHold, freeze.Summary(), CauseFrozen, n, EventHold)
}

// approve records a person's approval of the current stage's advance.
func (r Rollout) approve(now time.Time, cmd Command, who string) (Rollout, []Event, error) {
	stageState := r.State == StateProgressing || (r.State == StatePaused && r.PausedFrom == StateProgressing)
	st, ok := r.CurrentStage()
	switch {
	case !stageState || !ok:
		return r, nil, fmt.Errorf("%s: rollout is %s, not in a stage: %w", cmd.Kind, r.State, ErrInvalidState)
	case st.Approval != ApprovalRequired:
		return r, nil, fmt.Errorf("%s: stage %s does not require an approval: %w", cmd.Kind, st.Name, ErrInvalidState)
	case r.Progress.Approved != nil:
		return r, nil, fmt.Errorf("%s: stage %s was approved by %s at %s: %w", cmd.Kind, st.Name,
			r.Progress.Approved.By, r.Progress.Approved.At.UTC().Format(time.RFC3339), ErrInvalidState)
	}
	r.Progress.Approved = &Approval{By: who, At: now, Reason: cmd.Reason}
	// The next check decides again: the approval may be all it waited for.
	r.Progress.LastDecision, r.Progress.LastReason = "", ""
	return r, []Event{r.event(now, EventApproved, func(e *Event) {
		e.Actor = who
		e.Reason = fmt.Sprintf("stage %s approved by %s", st.Name, who)
		if cmd.Reason != "" {
			e.Reason += ": " + cmd.Reason
		}
	})}, nil
}
