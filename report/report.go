// Package report builds the release report of one rollout: the release guide's release
// notes template filled from the rollout's release metadata, the outcome, a timeline of
// every transition, decision and command with the numbers measured, and on a rollback
// an incident section (trigger, time to detect, time to restore, action items).
//
// It is pure: a Rollout and its events in, a Report out, Markdown or JSON. It must not
// import store, xds, net/http or any package that performs I/O.
package report

import (
	"slices"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// Outcome results.
const (
	ResultCompleted  = "completed"
	ResultRolledBack = "rolled back"
	ResultInProgress = "in progress"
)

// Where the time to detect was measured from (Incident.DetectedFrom).
const (
	DetectFirstBreach = "start of the breach"
	DetectStageAcked  = "stage weights acknowledged"
	DetectStageStart  = "stage start"
	DetectRollout     = "rollout start"
)

// Report is the release report of one rollout.
type Report struct {
	RolloutID string `json:"rolloutId"`
	Service   string `json:"service"`
	// Stable is the known-good version the rollout started from; Canary the version
	// rolled out.
	Stable string `json:"stable"`
	Canary string `json:"canary"`
	// Notes is the release guide's release notes template, filled.
	Notes ReleaseNotes `json:"releaseNotes"`
	// Outcome is how the rollout ended (or where it is).
	Outcome Outcome `json:"outcome"`
	// Timeline has one row per transition, decision and command, oldest first.
	Timeline []Row `json:"timeline"`
	// Incident is set when the rollout was rolled back.
	Incident *Incident `json:"incident,omitempty"`
	// Waivers are the pre-flight items waived for this rollout.
	Waivers []controller.Waiver `json:"waivers,omitempty"`
	// WindowOverrides are the starts and advances made outside the deployment window.
	WindowOverrides []Override `json:"windowOverrides,omitempty"`
	// Gates are every gate hook's answer, approval and freeze override, oldest first.
	Gates []GateRow `json:"gates,omitempty"`
}

// ReleaseNotes is the guide's release notes template plus the rollback plan.
type ReleaseNotes struct {
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	Date           string   `json:"date,omitempty"`
	Summary        string   `json:"summary,omitempty"`
	NotableChanges []string `json:"notableChanges,omitempty"`
	MigrationSteps []string `json:"migrationSteps,omitempty"`
	KnownIssues    []string `json:"knownIssues,omitempty"`
	RollbackPlan   string   `json:"rollbackPlan,omitempty"`
}

// Outcome is the result and the durations of a rollout.
type Outcome struct {
	// Result is completed, rolled back or in progress.
	Result string           `json:"result"`
	State  controller.State `json:"state"`
	// Plan is the resolved plan in one line ("5% 15m0s → 25% 30m0s → 100%").
	Plan string `json:"plan"`
	// Stage is the stage the rollout ended in (or is in): its name and canary weight.
	StageName     string  `json:"stageName,omitempty"`
	CanaryPercent float64 `json:"canaryPercent"`
	Reason        string  `json:"reason,omitempty"`
	Aborted       bool    `json:"aborted,omitempty"`

	CreatedAt time.Time `json:"createdAt"`
	// StartedAt is when the first stage's weights were set; FullAt when 100 % was set;
	// EndedAt when the rollout completed or was rolled back.
	StartedAt time.Time `json:"startedAt,omitzero"`
	FullAt    time.Time `json:"fullAt,omitzero"`
	EndedAt   time.Time `json:"endedAt,omitzero"`
	// ToFull is StartedAt → FullAt; Total is StartedAt → EndedAt (zero when unknown).
	ToFull catalog.Duration `json:"toFull,omitempty"`
	Total  catalog.Duration `json:"total,omitempty"`
}

// Row is one line of the timeline.
type Row struct {
	Time      time.Time        `json:"time"`
	Kind      string           `json:"kind"`
	State     controller.State `json:"state"`
	Stage     int              `json:"stage"`
	StageName string           `json:"stageName,omitempty"`
	// Weight is the canary weight out of catalog.TotalWeight; Percent the same in percent.
	Weight   uint32              `json:"weight"`
	Percent  float64             `json:"percent"`
	Decision controller.Decision `json:"decision,omitempty"`
	// Command and Actor are set for operator commands.
	Command controller.CommandKind `json:"command,omitempty"`
	Actor   string                 `json:"actor,omitempty"`
	Force   bool                   `json:"force,omitempty"`
	Numbers *controller.Numbers    `json:"numbers,omitempty"`
	Reason  string                 `json:"reason,omitempty"`
	// Findings are the failing checks, unhealthy endpoints, firing alerts and proxies
	// that did not acknowledge, as carried by the event.
	Checks     []string `json:"checks,omitempty"`
	Endpoints  []string `json:"endpoints,omitempty"`
	Alerts     []string `json:"alerts,omitempty"`
	Stragglers []string `json:"stragglers,omitempty"`
	Phase      string   `json:"phase,omitempty"`
}

// Incident describes a rollback for the post-incident review.
type Incident struct {
	// Trigger is the reason of the rollback.
	Trigger string `json:"trigger"`
	// Aborted is true when a person aborted the rollout; Actor is who.
	Aborted bool   `json:"aborted,omitempty"`
	Actor   string `json:"actor,omitempty"`
	// FailingChecks, FailingEndpoints and Alerts are what failed at the rollback.
	FailingChecks    []string            `json:"failingChecks,omitempty"`
	FailingEndpoints []string            `json:"failingEndpoints,omitempty"`
	Alerts           []string            `json:"alerts,omitempty"`
	Numbers          *controller.Numbers `json:"numbers,omitempty"`
	// StageName and Percent are where the rollout was when it rolled back.
	StageName string  `json:"stageName,omitempty"`
	Percent   float64 `json:"percent"`
	// KnownGood is the version traffic returned to.
	KnownGood string `json:"knownGood"`
	// DetectedFrom says where the time to detect is measured from (DetectFirstBreach,
	// DetectStageAcked, DetectStageStart or DetectRollout), at DetectedSince.
	DetectedFrom  string    `json:"detectedFrom"`
	DetectedSince time.Time `json:"detectedSince,omitzero"`
	// RolledBackAt is the rollback decision; TimeToDetect runs from DetectedSince to it.
	RolledBackAt time.Time        `json:"rolledBackAt"`
	TimeToDetect catalog.Duration `json:"timeToDetect"`
	// RestoredAt is when every proxy acknowledged the known-good weights; zero (and
	// Restored false) when that was not confirmed.
	Restored      bool             `json:"restored"`
	RestoredAt    time.Time        `json:"restoredAt,omitzero"`
	TimeToRestore catalog.Duration `json:"timeToRestore,omitempty"`
	// RollbackPlan is the release's documented rollback/mitigation plan.
	RollbackPlan string `json:"rollbackPlan,omitempty"`
	// ActionItems are the post-incident items to capture.
	ActionItems []ActionItem `json:"actionItems"`
}

// ActionItem is one checklist item of an incident.
type ActionItem struct {
	Text string `json:"text"`
	Done bool   `json:"done"`
}

// Override is one start or advance outside the deployment window.
type Override struct {
	Time      time.Time `json:"time"`
	StageName string    `json:"stageName,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

// Build assembles the report of r from its events (any order; events of other
// rollouts are ignored).
func Build(r controller.Rollout, events []controller.Event) Report {
	// Reasons may quote errors naming URLs (a webhook's failure): their secrets are
	// redacted before anything is written.
	r.Reason = model.RedactText(r.Reason)
	evs := ownEvents(r.ID, events)
	rel := r.Spec.Release
	rep := Report{
		RolloutID: r.ID,
		Service:   r.Service,
		Stable:    r.Stable,
		Canary:    r.Canary,
		Notes: ReleaseNotes{
			Name:           rel.Name,
			Type:           string(rel.Type),
			Date:           rel.Date,
			Summary:        rel.Summary,
			NotableChanges: rel.NotableChanges,
			MigrationSteps: rel.MigrationSteps,
			KnownIssues:    rel.KnownIssues,
			RollbackPlan:   rel.RollbackPlan,
		},
		Outcome:  outcome(r),
		Timeline: make([]Row, 0, len(evs)),
		Waivers:  slices.Clone(r.Spec.Waivers),
	}
	if rep.Notes.Type == "" {
		rep.Notes.Type = string(r.Plan.Type)
	}
	for _, e := range evs {
		rep.Timeline = append(rep.Timeline, row(e))
		if g, ok := gateRow(e); ok {
			rep.Gates = append(rep.Gates, g)
		}
		if e.Kind == controller.EventWindowOverride {
			rep.WindowOverrides = append(rep.WindowOverrides, Override{Time: e.Time, StageName: e.StageName, Reason: e.Reason})
		}
	}
	if r.State == controller.StateRolledBack {
		inc := BuildIncident(r, evs)
		rep.Incident = &inc
	}
	return rep
}

// ownEvents returns the events of rollout id, sorted by time (stable, so events of
// one transition keep their order).
func ownEvents(id string, events []controller.Event) []controller.Event {
	out := make([]controller.Event, 0, len(events))
	for _, e := range events {
		if e.RolloutID == id || e.RolloutID == "" {
			e.Reason = model.RedactText(e.Reason)
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b controller.Event) int { return a.Time.Compare(b.Time) })
	return out
}

func outcome(r controller.Rollout) Outcome {
	o := Outcome{
		State:         r.State,
		Plan:          r.Plan.String(),
		CanaryPercent: model.Percent(r.CanaryWeight()),
		Reason:        r.Reason,
		Aborted:       r.Aborted,
		CreatedAt:     r.CreatedAt,
		StartedAt:     r.StartedAt,
		FullAt:        r.FullAt,
		EndedAt:       r.EndedAt,
	}
	switch r.State {
	case controller.StateCompleted:
		o.Result = ResultCompleted
	case controller.StateRolledBack:
		o.Result = ResultRolledBack
	default:
		o.Result = ResultInProgress
	}
	if st, ok := r.CurrentStage(); ok {
		o.StageName = st.Name
	} else if r.Stage >= len(r.Plan.Stages) && r.State != controller.StatePending {
		o.StageName = "100%"
	}
	if !r.StartedAt.IsZero() && !r.FullAt.IsZero() {
		o.ToFull = catalog.Duration(r.FullAt.Sub(r.StartedAt))
	}
	if !r.StartedAt.IsZero() && !r.EndedAt.IsZero() {
		o.Total = catalog.Duration(r.EndedAt.Sub(r.StartedAt))
	}
	return o
}

func row(e controller.Event) Row {
	return Row{
		Time:       e.Time,
		Kind:       e.Kind,
		State:      e.State,
		Stage:      e.Stage,
		StageName:  e.StageName,
		Weight:     e.Weight,
		Percent:    model.Percent(e.Weight),
		Decision:   e.Decision,
		Command:    e.Command,
		Actor:      e.Actor,
		Force:      e.Force,
		Numbers:    e.Numbers,
		Reason:     e.Reason,
		Checks:     e.Checks,
		Endpoints:  e.Endpoints,
		Alerts:     e.Alerts,
		Stragglers: e.Stragglers,
		Phase:      e.Phase,
	}
}
