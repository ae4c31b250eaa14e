package report

import (
	"fmt"
	"slices"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// BuildIncident describes the rollback of r from its events (sorted by time, as Build
// sorts them). With no events (a notification sent at the moment of the rollback) it
// works from r alone: the trigger is r.Reason and the time to detect runs from the
// monitor state r carries.
func BuildIncident(r controller.Rollout, events []controller.Event) Incident {
	inc := Incident{
		Trigger:      r.Reason,
		Aborted:      r.Aborted,
		KnownGood:    r.KnownGood(),
		RolledBackAt: r.EndedAt,
		RollbackPlan: r.Spec.Release.RollbackPlan,
	}
	rb := -1
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Kind == controller.EventRolledBack {
			rb = i
			break
		}
	}
	if rb < 0 {
		fromRollout(&inc, r)
		inc.ActionItems = actionItems(inc, r)
		return inc
	}
	ev := events[rb]
	inc.RolledBackAt = ev.Time
	if ev.Reason != "" {
		inc.Trigger = ev.Reason
	}
	inc.FailingChecks, inc.FailingEndpoints, inc.Alerts, inc.Numbers = ev.Checks, ev.Endpoints, ev.Alerts, ev.Numbers
	// The stage the rollback came from: the rolled_back event carries the state after
	// it (0 %), so look at the event before.
	inc.StageName, inc.Percent = ev.StageName, stagePercent(r, ev.Stage)
	// The decision or command behind the rollback, at the same instant, fills what the
	// rolled_back event does not carry.
	for i := rb - 1; i >= 0 && !events[i].Time.Before(ev.Time); i-- {
		e := events[i]
		switch {
		case e.Kind == controller.EventDecision && e.Decision == controller.DecisionRollback:
			inc.FailingChecks = orStrings(inc.FailingChecks, e.Checks)
			inc.FailingEndpoints = orStrings(inc.FailingEndpoints, e.Endpoints)
			inc.Alerts = orStrings(inc.Alerts, e.Alerts)
			if inc.Numbers == nil {
				inc.Numbers = e.Numbers
			}
			if inc.Trigger == "" {
				inc.Trigger = e.Reason
			}
		case e.Kind == controller.EventCommand && e.Command == controller.CmdAbort:
			inc.Aborted = true
			inc.Actor = e.Actor
			if inc.Trigger == "" {
				inc.Trigger = e.Reason
			}
		}
	}
	if inc.Numbers == nil {
		inc.Numbers = r.Progress.Last
	}
	inc.DetectedFrom, inc.DetectedSince = detectStart(r, events[:rb], ev, inc.Trigger)
	if !inc.DetectedSince.IsZero() {
		inc.TimeToDetect = catalog.Duration(nonNegative(inc.RolledBackAt.Sub(inc.DetectedSince)))
	}
	for _, e := range events[rb+1:] {
		if e.Kind == controller.EventAcked && e.Generation >= ev.Generation {
			inc.Restored = true
			inc.RestoredAt = e.Time
			inc.TimeToRestore = catalog.Duration(nonNegative(e.Time.Sub(inc.RolledBackAt)))
			break
		}
	}
	inc.ActionItems = actionItems(inc, r)
	return inc
}

// detectStart finds where the time to detect starts: the first breach of the rule that
// decided the rollback (rb, whose reason is trigger). It walks back from the rollback
// over that rule's run of breaching checks (a pause is one: with the guide's thresholds
// an error-rate breach pauses first and rolls back once sustained); breaches of other
// rules neither start nor end the run, a clean check or a stage start (or resume) ends
// it. A rollback decided by a sustained breach names where its run began even when no
// event marks it (checks while paused record none). A rollback no rule decided (an
// operator's abort) starts from the first breach of any rule in the run before it.
// Without a breach, it is the acknowledgement (or start) of the stage the rollback
// came from.
func detectStart(r controller.Rollout, before []controller.Event, rb controller.Event, trigger string) (string, time.Time) {
	rules := controller.Rules(trigger)
	byRule := rb.Actor == "" && len(rules) > 0
	first := rb.BreachSince
	earlier := func(t time.Time) {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
run:
	for i := len(before) - 1; i >= 0; i-- {
		e := before[i]
		switch {
		case (e.Decision == controller.DecisionPause || e.Decision == controller.DecisionRollback) && e.Actor == "":
			if !byRule || sharesRule(rules, controller.Rules(e.Reason)) {
				earlier(e.Time)
			}
		case e.Decision == controller.DecisionGo || e.Decision == controller.DecisionContinue:
			break run
		case stageStart(e.Kind) || e.Kind == controller.EventAcked:
			break run
		}
	}
	if byRule && first.IsZero() {
		// The deciding check was the rule's first breach.
		first = rb.Time
	}
	if !first.IsZero() {
		return DetectFirstBreach, first
	}
	for i := len(before) - 1; i >= 0; i-- {
		switch e := before[i]; {
		case e.Kind == controller.EventAcked:
			return DetectStageAcked, e.Time
		case stageStart(e.Kind):
			return DetectStageStart, e.Time
		}
	}
	if !r.StartedAt.IsZero() {
		return DetectRollout, r.StartedAt
	}
	return DetectRollout, r.CreatedAt
}

func sharesRule(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func stageStart(kind string) bool {
	return kind == controller.EventStageAdvanced || kind == controller.EventStarted || kind == controller.EventResumed
}

// fromRollout fills the detection start from the monitor state r carries.
func fromRollout(inc *Incident, r controller.Rollout) {
	p := r.Progress
	inc.Numbers = p.Last
	if st, ok := r.CurrentStage(); ok {
		inc.StageName = st.Name
	}
	inc.Percent = stagePercent(r, r.Stage)
	// A rolled-back rollout starts a fresh monitor state at the rollback, so only
	// marks strictly before it say anything about detection.
	before := func(t time.Time) bool {
		return !t.IsZero() && (inc.RolledBackAt.IsZero() || t.Before(inc.RolledBackAt))
	}
	switch {
	case before(p.GrossSince):
		inc.DetectedFrom, inc.DetectedSince = DetectFirstBreach, p.GrossSince
	case before(p.AckedAt):
		inc.DetectedFrom, inc.DetectedSince = DetectStageAcked, p.AckedAt
	case before(p.Since):
		inc.DetectedFrom, inc.DetectedSince = DetectStageStart, p.Since
	case before(r.StartedAt):
		inc.DetectedFrom, inc.DetectedSince = DetectRollout, r.StartedAt
	default:
		inc.DetectedFrom, inc.DetectedSince = DetectRollout, r.CreatedAt
	}
	if !inc.RolledBackAt.IsZero() {
		inc.TimeToDetect = catalog.Duration(nonNegative(inc.RolledBackAt.Sub(inc.DetectedSince)))
	}
}

// actionItems is the guide's "triage root cause and capture action items" as a
// checklist; none is done when the report is generated.
func actionItems(inc Incident, r controller.Rollout) []ActionItem {
	trigger := inc.Trigger
	if trigger == "" {
		trigger = "the rollback"
	}
	items := []string{
		fmt.Sprintf("Triage the root cause of %q", trigger),
		fmt.Sprintf("Fix the defect in %s and link the change", r.Canary),
		"Add a regression test that reproduces the failure",
		"Update the rollback / mitigation plan with what this rollback showed",
		fmt.Sprintf("Review the checks and thresholds: was a time to detect of %s acceptable?", inc.TimeToDetect),
		"Tell stakeholders and support about the impact and the new release date",
		"Hold a retrospective and record the action items",
	}
	if !inc.Restored {
		items = slices.Insert(items, 0, fmt.Sprintf("Confirm every proxy routes 100%% to %s (restore not confirmed)", inc.KnownGood))
	}
	out := make([]ActionItem, len(items))
	for i, t := range items {
		out[i] = ActionItem{Text: t}
	}
	return out
}

// stagePercent is the canary weight of stage i of r's plan in percent (100 at or past
// the end of the plan).
func stagePercent(r controller.Rollout, i int) float64 {
	if i >= 0 && i < len(r.Plan.Stages) {
		return model.Percent(r.Plan.Stages[i].Weight)
	}
	return 100
}

func orStrings(have, more []string) []string {
	if len(have) > 0 {
		return have
	}
	return more
}

func nonNegative(d time.Duration) time.Duration { return max(d, 0) }
