package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/octoacme/octoroll/model"
)

// PreflightError lists every missing pre-flight requirement that was not waived.
type PreflightError struct {
	// Missing are the waivable items (ItemRollbackPlan, ItemSummary, ItemSmokeTests).
	Missing []string
}

func (e *PreflightError) Error() string {
	var parts []string
	for _, m := range e.Missing {
		switch m {
		case ItemRollbackPlan:
			parts = append(parts, "release.rollbackPlan: no rollback/mitigation plan")
		case ItemSummary:
			parts = append(parts, "release.summary: no release summary")
		case ItemSmokeTests:
			parts = append(parts, "smokeTests/smokeChecks: no smoke tests configured")
		}
	}
	return fmt.Sprintf("pre-flight: %s (waive each with waivers[].item %s)",
		strings.Join(parts, "; "), strings.Join(e.Missing, ", "))
}

// Is makes errors.Is(err, ErrPreflight) true.
func (e *PreflightError) Is(target error) bool { return target == ErrPreflight }

// Preflight returns the guide's pre-release requirements spec lacks and has not
// waived, as a *PreflightError, or nil.
func Preflight(spec Spec) error {
	waived := map[string]bool{}
	for _, w := range spec.Waivers {
		waived[w.Item] = true
	}
	var missing []string
	if strings.TrimSpace(spec.Release.RollbackPlan) == "" && !waived[ItemRollbackPlan] {
		missing = append(missing, ItemRollbackPlan)
	}
	if strings.TrimSpace(spec.Release.Summary) == "" && !waived[ItemSummary] {
		missing = append(missing, ItemSummary)
	}
	if len(spec.SmokeChecks) == 0 && len(spec.SmokeTests) == 0 && !waived[ItemSmokeTests] {
		missing = append(missing, ItemSmokeTests)
	}
	if len(missing) > 0 {
		return &PreflightError{Missing: missing}
	}
	return nil
}

// New runs pre-flight and creates a rollout of spec.Canary on svc. It validates spec
// (ErrInvalidSpec, every field problem joined), checks it against svc, and refuses a
// rollout lacking a rollback plan, a summary or smoke checks unless each is waived
// (ErrPreflight, a *PreflightError listing every missing item). Waivers are recorded
// as events. Inside the deployment window (or for a critical patch) the first stage's
// weights are set at once, unless the plan has smoke tests: then the rollout is pending
// at 0 % canary until an observation carries every smoke test's passing result, as it
// is outside the window.
func New(now time.Time, id string, spec Spec, svc model.Service) (Rollout, []Event, error) {
	return Create(now, id, spec, svc, nil)
}

// Create is New during freeze (nil: none): a rollout whose spec does not override the
// freeze is refused with ErrFrozen; one that does starts, and the override is recorded.
func Create(now time.Time, id string, spec Spec, svc model.Service, freeze *Freeze) (Rollout, []Event, error) {
	var errs []error
	if id == "" {
		errs = append(errs, errors.New("id: required"))
	}
	if err := spec.Validate(); err != nil {
		errs = append(errs, err)
	}
	stable := spec.Stable
	if stable == "" {
		stable = svc.Stable
	}
	if spec.Service != "" && spec.Service != svc.Name {
		errs = append(errs, fmt.Errorf("service: %q is not the catalog service %q", spec.Service, svc.Name))
	}
	if _, ok := svc.Version(stable); !ok {
		errs = append(errs, fmt.Errorf("stable: version %q is not in the catalog service %q", stable, svc.Name))
	}
	if spec.Canary.Version != "" {
		_, inCatalog := svc.Version(spec.Canary.Version)
		switch {
		case spec.Canary.Version == stable:
			errs = append(errs, fmt.Errorf("canary.version: %q is the stable version", stable))
		case inCatalog && len(spec.Canary.Endpoints) > 0:
			errs = append(errs, fmt.Errorf("canary.endpoints: version %q is already in the catalog with its endpoints", spec.Canary.Version))
		case !inCatalog && len(spec.Canary.Endpoints) == 0:
			errs = append(errs, fmt.Errorf("canary.endpoints: required for version %q, which is not in the catalog", spec.Canary.Version))
		}
	}
	errs = append(errs, spec.validateCanaryEndpoints(svc, stable)...)
	if len(errs) > 0 {
		return Rollout{}, nil, fmt.Errorf("%w: %w", ErrInvalidSpec, errors.Join(errs...))
	}
	if err := Preflight(spec); err != nil {
		return Rollout{}, nil, err
	}
	if freeze != nil && strings.TrimSpace(spec.OverrideFreeze) == "" {
		return Rollout{}, nil, fmt.Errorf("%s (a critical patch may start with an override and a reason): %w", freeze.Summary(), ErrFrozen)
	}
	r := Rollout{
		ID: id, Service: svc.Name, Stable: stable, Canary: spec.Canary.Version,
		Spec: spec, Plan: resolve(withServiceGates(withServiceChecks(spec, svc), svc)), State: StatePending,
		CreatedAt: now, UpdatedAt: now,
		Progress: Progress{Since: now, AckWaitSince: now},
	}
	evs := []Event{r.event(now, EventCreated, func(e *Event) {
		e.Reason = fmt.Sprintf("%s release %s of %s: %s → %s, plan %s",
			spec.Release.Type, spec.Release.Name, svc.Name, stable, r.Canary, r.Plan)
	})}
	for _, w := range spec.Waivers {
		w := w
		evs = append(evs, r.event(now, EventWaiver, func(e *Event) {
			e.Waiver = &w
			e.Actor = w.By
			e.Reason = fmt.Sprintf("%s waived: %s", w.Item, w.Reason)
		}))
	}
	r, more := r.startAfterSmoke(now, Observation{Freeze: freeze})
	return r, append(evs, more...), nil
}

// WithCanary returns svc with the rollout's canary version appended when it is not in
// the catalog (a new version given with its endpoints), so that the translation defines
// its cluster. svc is not modified.
func (r Rollout) WithCanary(svc model.Service) (model.Service, error) {
	if _, ok := svc.Version(r.Canary); ok {
		return svc, nil
	}
	v := model.Version{Name: r.Canary, Zone: r.Spec.Canary.Zone}
	for _, s := range r.Spec.Canary.Endpoints {
		e, err := model.ParseEndpoint(s)
		if err != nil {
			return svc, fmt.Errorf("canary endpoint: %w", err)
		}
		v.Endpoints = append(v.Endpoints, e)
	}
	svc.Versions = append(slices.Clone(svc.Versions), v)
	return svc, nil
}

// event builds an event from r's current state; fill sets the specifics.
func (r Rollout) event(now time.Time, kind string, fill func(*Event)) Event {
	e := Event{
		Time: now, Kind: kind, RolloutID: r.ID, Service: r.Service, State: r.State,
		Stage: r.Stage, Weight: r.CanaryWeight(), Generation: r.Generation,
	}
	if st, ok := r.CurrentStage(); ok {
		e.StageName = st.Name
	} else if r.Stage >= len(r.Plan.Stages) && r.State != StatePending {
		e.StageName = "100%"
	}
	if r.State == StateMonitoring && r.Phase < len(r.Plan.Monitoring) {
		e.Phase = r.Plan.Monitoring[r.Phase].Name
	}
	if fill != nil {
		fill(&e)
	}
	return e
}

// windowAllows reports whether r may start or advance at now, and whether that is a
// critical patch overriding the window.
func (r Rollout) windowAllows(now time.Time) (ok, override bool) {
	if r.Plan.Window == nil || r.Plan.Window.Contains(now) {
		return true, false
	}
	if r.Plan.Critical {
		return true, true
	}
	return false, false
}

func (r *Rollout) noteOverride(now time.Time, override bool, what string) []Event {
	if !override {
		return nil
	}
	r.WindowOverrides++
	return []Event{r.event(now, EventWindowOverride, func(e *Event) {
		e.Reason = "critical patch " + what + " outside the deployment window"
	})}
}

// freshProgress starts the monitor state for newly set weights.
func freshProgress(now time.Time) Progress {
	return Progress{Since: now, AckWaitSince: now, LastCheck: now}
}

// next starts the monitor state for the next stage's weights, keeping what measures
// the service rather than the stage (the error dispersion's intervals).
func (p Progress) next(now time.Time) Progress {
	n := freshProgress(now)
	n.Intervals = p.Intervals
	return n
}

// tryStart moves a pending rollout to its first stage when the window allows; freeze
// is the freeze its spec overrides, if any.
func (r Rollout) tryStart(now time.Time, freeze *Freeze) (Rollout, []Event) {
	ok, override := r.windowAllows(now)
	if !ok {
		return r.decide(now, DecisionHold, "outside deployment window", CauseOutsideWindow, nil, EventHold)
	}
	evs := r.noteOverride(now, override, "started")
	evs = append(evs, r.noteFreezeOverride(now, freeze, r.Spec.OverrideFreeze, "", "started")...)
	r.State = StateProgressing
	r.StartedAt = now
	r.Stage = 0
	r.Reason = ""
	r.Generation++
	r.Progress = freshProgress(now)
	if len(r.Plan.Stages) == 0 {
		r.setFull(now)
	}
	evs = append(evs, r.event(now, EventStarted, func(e *Event) {
		e.Reason = "plan " + r.Plan.String()
	}))
	return r, evs
}

// setFull puts the canary at 100 % and opens the monitoring window, keeping the stable
// version's numbers of the last stage as the baseline.
func (r *Rollout) setFull(now time.Time) {
	if r.Progress.StableRequests > 0 {
		r.Baseline = &Baseline{Requests: r.Progress.StableRequests, Errors: r.Progress.StableErrors,
			P99: r.Progress.StableP99, Window: r.Progress.StableWindow, Latency: r.Progress.StableLatency}
	}
	r.State = StateMonitoring
	r.Stage = len(r.Plan.Stages)
	r.Phase = 0
	r.FullAt = now
	r.Progress = r.Progress.next(now)
}

// advance moves to the next stage (or 100 %): a Go.
func (r Rollout) advance(now time.Time, reason string, cause Cause, actor string, numbers *Numbers) (Rollout, []Event) {
	r.Generation++
	r.Reason = ""
	r.PausedFrom = ""
	r.PausedAt = time.Time{}
	r.PausedBy = ""
	r.Stage++
	if r.Stage >= len(r.Plan.Stages) {
		r.setFull(now)
	} else {
		r.State = StateProgressing
		r.Progress = r.Progress.next(now)
	}
	return r, []Event{r.event(now, EventStageAdvanced, func(e *Event) {
		e.Decision = DecisionGo
		e.Reason = reason
		e.Cause = cause
		e.Actor = actor
		e.Numbers = numbers
	})}
}

// rollback returns 100 % to the known-good version: a no-go.
func (r Rollout) rollback(now time.Time, f finding, actor string, numbers *Numbers) (Rollout, []Event) {
	r.State = StateRolledBack
	r.PausedFrom = ""
	r.PausedAt = time.Time{}
	r.Generation++
	r.Reason = f.reason
	r.EndedAt = now
	r.Progress = freshProgress(now)
	return r, []Event{r.event(now, EventRolledBack, func(e *Event) {
		e.Decision = DecisionRollback
		e.Reason = f.reason
		e.Cause = f.cause
		e.BreachSince = f.since
		e.Actor = actor
		e.Numbers = numbers
		e.Endpoints = f.endpoints
		e.Alerts = f.alerts
		e.Checks = f.checks
	})}
}

// pause holds the current weight after a soft breach (actor empty) or by a person.
func (r Rollout) pause(now time.Time, f finding, actor string, numbers *Numbers, stragglers []string) (Rollout, []Event) {
	r.PausedFrom = r.State
	r.PausedAt = now
	r.State = StatePaused
	r.Reason = f.reason
	r.PausedBy = actor
	r.Progress.Monitored = 0
	r.Progress.InconclusiveSince = time.Time{}
	r.Progress.LastDecision, r.Progress.LastReason = DecisionPause, f.reason
	return r, []Event{r.event(now, EventPaused, func(e *Event) {
		e.Decision = DecisionPause
		e.Reason = f.reason
		e.Cause = f.cause
		e.Actor = actor
		e.Numbers = numbers
		e.Endpoints = f.endpoints
		e.Alerts = f.alerts
		e.Checks = f.checks
		e.Stragglers = stragglers
	})}
}

// decide records a non-transition decision, emitting an event only when the decision
// or its reason changed since the last one (a 72 h window would otherwise log 8640).
func (r Rollout) decide(now time.Time, d Decision, reason string, cause Cause, numbers *Numbers, kind string) (Rollout, []Event) {
	if r.Progress.LastDecision == d && r.Progress.LastReason == reason {
		return r, nil
	}
	r.Progress.LastDecision, r.Progress.LastReason = d, reason
	switch d {
	case DecisionHold:
		r.Reason = reason
	case DecisionContinue:
		r.Reason = ""
	}
	return r, []Event{r.event(now, kind, func(e *Event) {
		e.Decision = d
		e.Reason = reason
		e.Cause = cause
		e.Numbers = numbers
	})}
}

// Step advances r by at most one transition. It does no I/O and never reads the wall clock.
//
// obs is the loop's observation for the check interval ending at now. An observation
// at or before the last judged one (a replay after a restart) changes nothing.
// Convergence counts only for obs.Convergence.Generation == r.Generation.
func (r Rollout) Step(now time.Time, obs Observation) (Rollout, []Event) {
	if !r.Progress.LastCheck.IsZero() && !now.After(r.Progress.LastCheck) {
		return r, nil
	}
	var evs []Event
	r.UpdatedAt = now
	conv := obs.Convergence
	if conv.Generation == r.Generation && conv.Acked && r.Progress.AckedAt.IsZero() && r.State != StatePending &&
		!(r.State == StatePaused && r.PausedFrom == StatePending) {
		at := r.ackInstant(now, conv)
		r.Progress.AckedAt = at
		r.Progress.WindowSince = at
		if r.Progress.AckWaitSince.After(at) {
			r.Progress.WindowSince = r.Progress.AckWaitSince // resumed after the ACK
		}
		evs = append(evs, r.event(at, EventAcked, func(e *Event) {
			e.Reason = fmt.Sprintf("every proxy applied weights generation %d (route version %s) %s after they were set",
				conv.Generation, conv.Version, model.FormatDuration(at.Sub(r.Progress.Since)))
		}))
	}
	if f := r.smokeFailure(obs); f != nil && !r.State.Terminal() {
		r.Progress.LastCheck = now
		r2, more := r.rollback(now, *f, "", r.Progress.Last)
		return r2, append(evs, more...)
	}
	var more []Event
	switch r.State {
	case StatePending:
		r.Progress.LastCheck = now
		r, more = r.startAfterSmoke(now, obs)
	case StateProgressing:
		r, more = r.stepStage(now, obs)
	case StatePaused:
		r, more = r.stepPaused(now, obs)
	case StateMonitoring:
		r, more = r.stepMonitoring(now, obs)
	default:
		r.Progress.LastCheck = now
	}
	return r, append(evs, more...)
}

// judgeInput builds the judge's configuration for r's current stage or phase.
func (r Rollout) judgeInput() judgeInput {
	in := judgeInput{th: r.Plan.Thresholds, smoke: r.Plan.SmokeChecks, checks: append(slices.Clone(r.Plan.Checks), r.syntheticChecks()...),
		nackGen: r.Generation, requireData: true}
	if st, ok := r.CurrentStage(); ok {
		in.th = st.Thresholds
	}
	if r.inMonitoring() {
		// With a holdback the previous version serves traffic beside the canary: it is
		// the baseline, over the same windows, as in a stage. Without one, the stable
		// version's numbers over the last stage stand in for it, and a breach of that
		// older baseline pauses rather than rolls back (unless gross): daily cycles and
		// traffic mix move both versions, and only one of them is measured now.
		if !r.HoldbackActive() {
			in.baseline = r.Baseline
			in.requireData = false
		}
		if r.Phase < len(r.Plan.Monitoring) {
			in.checks = append(slices.Clone(in.checks), r.Plan.Monitoring[r.Phase].Checks...)
		}
	}
	return in
}

// observe judges obs and updates the counters every state shares: check counts, the
// gross-breach confirmation, the error dispersion and the stable baseline. A gross
// breach is a rollback finding of the verdict only once confirmed.
func (r *Rollout) observe(now time.Time, obs Observation) verdict {
	in := r.judgeInput()
	in.sampleRatio = r.sampleRatio(obs)
	p := &r.Progress
	in.dispersion, in.dispersionFrom = dispersion(p.Intervals), intervalsWithTraffic(p.Intervals)
	v := judge(obs, in)
	if s := obs.Stable; usable(s) && s.Requests > 0 {
		p.Intervals = append(p.Intervals, Interval{Requests: s.Requests, Errors: min(s.Errors, s.Requests)})
		if n := len(p.Intervals) - maxIntervals; n > 0 {
			p.Intervals = slices.Clone(p.Intervals[n:])
		}
	}
	// A gross metric breach rolls back when the next check confirms it: one window of
	// a burst (a cluster of errors that the dispersion has not seen yet) is not enough.
	var gross, keep []finding
	for i, f := range v.rollback {
		if f.span > 0 {
			v.rollback[i].since = now.Add(-f.span)
			f = v.rollback[i]
		}
		if f.gross {
			gross = append(gross, f)
		} else {
			keep = append(keep, f)
		}
	}
	switch {
	case len(gross) == 0:
		p.GrossSince = time.Time{}
	case p.GrossSince.IsZero():
		p.GrossSince = now
		v.rollback = keep
		v.inconclusive = append(v.inconclusive, "to be confirmed by the next check: "+mergeFindings(gross).reason)
	default:
		f := mergeFindings(gross)
		f.reason += fmt.Sprintf(" (confirmed on consecutive checks since %s)", p.GrossSince.UTC().Format(time.RFC3339))
		f.since = p.GrossSince
		v.rollback = append(keep, f)
	}
	if len(v.sourceFailure) > 0 {
		p.SourceFailures++
		if limit := r.sourceFailureLimit(); p.SourceFailures >= limit {
			why := v.sourceFailure[0]
			if n := len(v.sourceFailure) - 1; n > 0 {
				why += fmt.Sprintf(" (and %d more)", n)
			}
			f := finding{cause: CauseSourceFailing, reason: fmt.Sprintf("metrics source failing on %d consecutive checks: %s", p.SourceFailures, why)}
			v.pause = append(v.pause, f)
		}
	} else {
		p.SourceFailures = 0
	}
	if v.numbers != nil {
		v.numbers.Verdict, v.numbers.Reason = v.outcome()
	}
	p.Checks++
	switch {
	case v.failing():
		p.Breaches++
	case len(v.inconclusive) > 0:
		p.Inconclusive++
	default:
		p.Clean++
	}
	p.Failing = v.failing()
	if v.numbers != nil {
		p.Last = v.numbers
		p.noteStable(obs, in.th.MinRequests)
	}
	return v
}

// withServiceChecks adds the catalog service's query checks to spec's custom checks,
// except those whose name the spec already uses (its own entry replaces the catalog's).
// The rollout's plan then records every check it is judged by.
func withServiceChecks(spec Spec, svc model.Service) Spec {
	if len(svc.Metrics.Checks) == 0 {
		return spec
	}
	used := map[string]bool{}
	for _, n := range spec.SmokeChecks {
		used[n] = true
	}
	for _, c := range spec.CustomChecks {
		used[c.Name] = true
	}
	for _, c := range append(slices.Clone(spec.SmokeTests), spec.Synthetics...) {
		used[c.Name] = true
	}
	for _, ph := range spec.Monitoring {
		for _, c := range ph.Checks {
			used[c.Name] = true
		}
	}
	spec.CustomChecks = slices.Clone(spec.CustomChecks)
	for _, c := range svc.Metrics.Checks {
		if used[c.Name] {
			continue
		}
		spec.CustomChecks = append(spec.CustomChecks, Check{Name: c.Name, OnFail: c.OnFail, Query: c.Query, Min: c.Min, Max: c.Max})
	}
	return spec
}

func (r Rollout) sourceFailureLimit() int {
	if r.Plan.SourceFailureLimit > 0 {
		return r.Plan.SourceFailureLimit
	}
	return DefaultSourceFailureLimit
}

// AnalysisWindow is how far back the loop should gather the analysis window's numbers
// at now: since the current weights were ACKed or the rollout was last resumed, at
// most Plan.AnalysisWindow. It is 0 while the weights are not ACKed (nothing to judge
// yet) and when the rollout is not running.
func (r Rollout) AnalysisWindow(now time.Time) time.Duration {
	if r.State.Terminal() || r.State == StatePending || r.Progress.AckedAt.IsZero() {
		return 0
	}
	from := r.warmedAt()
	if r.Progress.WindowSince.After(from) {
		from = r.Progress.WindowSince
	}
	limit := r.Plan.AnalysisWindow.D()
	if limit <= 0 {
		limit = DefaultAnalysisWindow
	}
	return max(0, min(now.Sub(from), limit))
}

// warmedAt is when the current weights' warm-up ends (Plan.Warmup after their ACK).
func (r Rollout) warmedAt() time.Time { return r.Progress.AckedAt.Add(r.Plan.Warmup.D()) }

// WarmingUp reports whether the current weights are in their warm-up at now: ACKed and
// not yet warmed. A pause and resume keeps the weights and so does not restart it.
func (r Rollout) WarmingUp(now time.Time) bool {
	return !r.Progress.AckedAt.IsZero() && now.Before(r.warmedAt())
}

// SustainWindow is how far back the loop should gather the sustain window's numbers at
// now: the analysis window, at most the rollback sustain (5 min). A marginal rollback
// needs a breach over a whole sustain window (judge.go).
func (r Rollout) SustainWindow(now time.Time) time.Duration {
	th := r.Plan.Thresholds
	if st, ok := r.CurrentStage(); ok {
		th = st.Thresholds
	}
	return min(r.AnalysisWindow(now), th.RollbackSustain.D())
}

// accrue adds the time covered by a clean check to Monitored: the span since the last
// check (or the end of the warm-up after the ACK), at most one check interval, since one
// observation covers one check window and time nobody observed (a crash, a stalled
// loop) is not monitoring.
func (r *Rollout) accrue(now time.Time) {
	p := &r.Progress
	from := p.LastCheck
	if w := r.warmedAt(); w.After(from) {
		from = w // the warm-up is not monitored
	}
	d := now.Sub(from)
	if d > r.Plan.CheckInterval.D() {
		d = r.Plan.CheckInterval.D()
	}
	if d > 0 {
		p.Monitored += Duration(d)
	}
}

// act is the verdict-to-transition rule every state shares: a no-go rolls back, else
// a soft breach pauses (when pause is set: a paused rollout only rolls back). acted
// is false when the verdict asks for neither.
func (r Rollout) act(now time.Time, v verdict, pause bool) (Rollout, []Event, bool) {
	r.Progress.LastCheck = now
	switch {
	case len(v.rollback) > 0:
		r2, evs := r.rollback(now, mergeFindings(v.rollback), "", v.numbers)
		return r2, evs, true
	case pause && len(v.pause) > 0:
		r2, evs := r.pause(now, mergeFindings(v.pause), "", v.numbers, nil)
		return r2, evs, true
	}
	return r, nil, false
}

func (r Rollout) stepStage(now time.Time, obs Observation) (Rollout, []Event) {
	st := r.Plan.Stages[r.Stage]
	v := r.observe(now, obs)
	p := &r.Progress
	if r2, evs, acted := r.act(now, v, true); acted {
		return r2, evs
	}
	if p.AckedAt.IsZero() {
		p.LastCheck = now
		return r.awaitAck(now, obs.Convergence, v.numbers)
	}
	if len(v.inconclusive) > 0 {
		p.LastCheck = now
		if p.InconclusiveSince.IsZero() {
			p.InconclusiveSince = now
		}
		reason := "inconclusive: " + strings.Join(v.inconclusive, "; ")
		if d := now.Sub(p.InconclusiveSince); d >= r.Plan.InconclusiveLimit.D() {
			return r.pause(now, finding{cause: CauseInconclusive, reason: fmt.Sprintf("inconclusive for %s: %s", Duration(d), strings.Join(v.inconclusive, "; "))}, "", v.numbers, nil)
		}
		if r2, evs, paused := r.maxWindow(now, st, v.numbers); paused {
			return r2, evs
		}
		return r.decide(now, DecisionHold, reason, CauseInconclusive, v.numbers, EventHold)
	}
	p.InconclusiveSince = time.Time{}
	if r.WarmingUp(now) {
		p.LastCheck = now
		return r.decide(now, DecisionHold, fmt.Sprintf("warming up: the first %s after the ACK judges gross breaches only (warmup)", r.Plan.Warmup),
			CauseWarmup, v.numbers, EventHold)
	}
	r.accrue(now)
	p.LastCheck = now
	if p.Monitored >= st.MinWindow {
		ok, override := r.windowAllows(now)
		if !ok {
			return r.decide(now, DecisionHold, "outside deployment window", CauseOutsideWindow, v.numbers, EventHold)
		}
		if r.frozen(obs.Freeze) {
			return r.frozenHold(now, obs.Freeze, v.numbers)
		}
		if r2, evs, held := r.holdForSmoke(now, st, obs, v.numbers); held {
			return r2, evs
		}
		if r.needsApproval() {
			return r.decide(now, DecisionHold, fmt.Sprintf("waiting for approval of stage %s (octoroll approve %s)", st.Name, r.Service), CauseApproval, v.numbers, EventHold)
		}
		g := r.gate(now, model.GateConfirmPromotion, obs.Gates, obs.GatesPending)
		switch g.outcome {
		case gateNoGo:
			return r.gateNoGo(now, g, v.numbers)
		case gateHold, gateMissing:
			r2, more := r.decide(now, DecisionHold, g.reason, CauseGate, v.numbers, EventHold)
			return r2, append(g.events, more...)
		}
		evs := append(g.events, r.noteOverride(now, override, "advanced")...)
		evs = append(evs, r.noteFreezeOverride(now, obs.Freeze, r.Spec.OverrideFreeze, "", "advanced")...)
		reason := fmt.Sprintf("every check passed with enough data for %s in stage %s", p.Monitored, st.Name)
		if a := p.Approved; a != nil {
			reason += ", approved by " + a.By
		}
		r2, more := r.advance(now, reason, CausePassed, "", v.numbers)
		return r2, append(evs, more...)
	}
	if r2, evs, paused := r.maxWindow(now, st, v.numbers); paused {
		return r2, evs
	}
	return r.decide(now, DecisionContinue, fmt.Sprintf("checks passing, %s of %s monitored", p.Monitored, st.MinWindow), CausePassed, nil, EventDecision)
}

// ackInstant is when the proxies applied r's weights, as conv reports it: the last
// proxy's ACK, never before the weights were set nor after now (the instant of the
// check when the report has none).
func (r Rollout) ackInstant(now time.Time, conv Convergence) time.Time {
	at := conv.AckedAt
	if at.IsZero() || at.After(now) {
		at = now
	}
	if at.Before(r.Progress.Since) {
		at = r.Progress.Since
	}
	return at
}

// awaitAck holds while r's weights are not yet published or ACKed by every proxy, and
// pauses when the proxies have not ACKed them within the plan's ACK timeout, naming
// the stragglers. The timeout counts from the publication: a service whose resources
// fail to publish holds (the publication is retried every tick and reported on its
// own), and nothing it measures reflects r's weights.
func (r Rollout) awaitAck(now time.Time, conv Convergence, n *Numbers) (Rollout, []Event) {
	ours := conv.Generation == r.Generation
	if ours && !conv.Published && conv.NotPublished != "" {
		r.Progress.AckWaitSince = now
		return r.decide(now, DecisionHold, "not published: "+conv.NotPublished, CauseNotPublished, n, EventHold)
	}
	stragglers := sorted(conv.Stragglers)
	if d := now.Sub(r.Progress.AckWaitSince); d >= r.Plan.AckTimeout.D() {
		reason := fmt.Sprintf("proxies did not ACK weights generation %d within %s; stragglers: %s",
			r.Generation, r.Plan.AckTimeout, strings.Join(stragglers, ", "))
		if ours && conv.Published && conv.Subscribed == 0 {
			reason = fmt.Sprintf("no proxy subscribed to the route of %s within %s: nobody serves weights generation %d",
				r.Service, r.Plan.AckTimeout, r.Generation)
		}
		cause := CauseAckTimeout
		if ours && conv.Published && conv.Subscribed == 0 {
			cause = CauseNoProxies
		}
		return r.pause(now, finding{cause: cause, reason: reason}, "", n, stragglers)
	}
	if ours && conv.Published && conv.Subscribed == 0 {
		return r.decide(now, DecisionHold, fmt.Sprintf("no proxy subscribed to the route of %s (weights generation %d)", r.Service, r.Generation), CauseNoProxies, n, EventHold)
	}
	reason := fmt.Sprintf("waiting for proxies to ACK weights generation %d", r.Generation)
	if ours && conv.Subscribed > 0 {
		reason += fmt.Sprintf(" (%d of %d proxies not yet)", len(stragglers), conv.Subscribed)
	}
	return r.decide(now, DecisionHold, reason, CauseAwaitingAck, n, EventHold)
}

// maxWindow pauses a stage that reached MaxWindow after its ACK without a Go.
func (r Rollout) maxWindow(now time.Time, st Stage, n *Numbers) (Rollout, []Event, bool) {
	if st.MaxWindow <= 0 || now.Sub(r.Progress.WindowSince) < st.MaxWindow.D() {
		return r, nil, false
	}
	r2, evs := r.pause(now, finding{cause: CauseMaxWindow, reason: fmt.Sprintf("stage %s not conclusive within maxWindow %s (%s of %s monitored clean)",
		st.Name, st.MaxWindow, r.Progress.Monitored, st.MinWindow)}, "", n, nil)
	return r2, evs, true
}

// resumeWindow is how long a paused rollout must be clean before autoResume.
func (r Rollout) resumeWindow() time.Duration {
	if st, ok := r.CurrentStage(); ok && r.PausedFrom == StateProgressing {
		return st.MinWindow.D()
	}
	return DefaultResumeWindow
}

func (r Rollout) stepPaused(now time.Time, obs Observation) (Rollout, []Event) {
	if r.PausedFrom == StatePending {
		r.Progress.LastCheck = now
		return r, nil
	}
	v := r.observe(now, obs)
	p := &r.Progress
	if r2, evs, acted := r.act(now, v, false); acted {
		return r2, evs
	}
	if !r.Plan.AutoResume || r.PausedBy != "" {
		p.LastCheck = now
		return r, nil
	}
	switch {
	case v.failing():
		p.Monitored = 0
	case v.clean() && !p.AckedAt.IsZero():
		r.accrue(now)
	}
	p.LastCheck = now
	if w := r.resumeWindow(); p.Monitored.D() >= w {
		reason := fmt.Sprintf("clean for %s after: %s", p.Monitored, r.Reason)
		r.State = r.PausedFrom
		r.PausedFrom = ""
		r.PausedAt = time.Time{}
		r.Reason = ""
		p.InconclusiveSince = time.Time{}
		p.SourceFailures = 0
		p.WindowSince = now
		p.LastDecision, p.LastReason = "", ""
		return r, []Event{r.event(now, EventResumed, func(e *Event) {
			e.Reason = reason
			e.Numbers = v.numbers
		})}
	}
	return r, nil
}

func (r Rollout) stepMonitoring(now time.Time, obs Observation) (Rollout, []Event) {
	p := &r.Progress
	if p.AckedAt.IsZero() {
		v := r.observe(now, obs)
		p.LastCheck = now
		if r2, evs, acted := r.act(now, v, true); acted {
			return r2, evs
		}
		return r.awaitAck(now, obs.Convergence, v.numbers)
	}
	var evs []Event
	elapsed := now.Sub(p.AckedAt)
	for r.Phase < len(r.Plan.Monitoring)-1 && elapsed >= r.Plan.Monitoring[r.Phase].Until.D() {
		r.Phase++
		evs = append(evs, r.event(now, EventPhase, func(e *Event) {
			e.Reason = fmt.Sprintf("monitoring phase %s until %s after 100%%", r.Plan.Monitoring[r.Phase].Name, r.Plan.Monitoring[r.Phase].Until)
		}))
	}
	v := r.observe(now, obs)
	p.LastCheck = now
	if r2, more, acted := r.act(now, v, true); acted {
		return r2, append(evs, more...)
	}
	gated := len(r.Plan.Gates.PostRollout) > 0 && !r.PostRolloutPassed
	var gateReason string
	if gated {
		g := r.gate(now, model.GatePostRollout, obs.Gates, obs.GatesPending)
		evs = append(evs, g.events...)
		switch g.outcome {
		case gateNoGo:
			g.events = nil
			r2, more := r.gateNoGo(now, g, v.numbers)
			return r2, append(evs, more...)
		case gatePass:
			r.PostRolloutPassed, gated = true, false
		default:
			gateReason = g.reason
		}
	}
	end := r.Plan.Monitoring[len(r.Plan.Monitoring)-1].Until.D()
	if elapsed >= end {
		if gated {
			r2, more := r.decide(now, DecisionHold, fmt.Sprintf("monitoring window of %s closed; %s", Duration(end), gateReason), CauseGate, nil, EventHold)
			return r2, append(evs, more...)
		}
		if r.holdback() > 0 {
			// Completing moves the holdback's traffic to the canary: a weight change
			// forward, which a freeze holds as it holds an advance.
			if r.frozen(obs.Freeze) {
				r2, more := r.decide(now, DecisionHold, fmt.Sprintf("monitoring window of %s closed; completing ends the holdback: %s",
					Duration(end), obs.Freeze.Summary()), CauseFrozen, nil, EventHold)
				return r2, append(evs, more...)
			}
			evs = append(evs, r.noteFreezeOverride(now, obs.Freeze, r.Spec.OverrideFreeze, "", "completed, ending the holdback,")...)
		}
		r2, more := r.complete(now, fmt.Sprintf("monitoring window of %s closed without a no-go", Duration(end)), "")
		return r2, append(evs, more...)
	}
	// Inconclusive data at 100 % has nothing to hold back: it is recorded, not paused on.
	d, reason, cause := DecisionContinue, "monitoring, checks passing", CausePassed
	if len(v.inconclusive) > 0 {
		d, reason, cause = DecisionHold, "monitoring, inconclusive: "+strings.Join(v.inconclusive, "; "), CauseInconclusive
	}
	r2, more := r.decide(now, d, reason, cause, nil, EventDecision)
	return r2, append(evs, more...)
}

// complete closes the monitoring window: the canary becomes the new stable and takes
// the holdback's share too.
func (r Rollout) complete(now time.Time, reason, actor string) (Rollout, []Event) {
	r.State = StateMonitoring
	closed := r.event(now, EventMonitoringClosed, func(e *Event) { e.Reason = reason; e.Actor = actor })
	if r.holdback() > 0 {
		r.Generation++ // the weights change: the holdback ends
	}
	r.State = StateCompleted
	r.PausedFrom = ""
	r.PausedAt = time.Time{}
	r.Reason = ""
	r.EndedAt = now
	return r, []Event{closed, r.event(now, EventCompleted, func(e *Event) {
		e.Reason = fmt.Sprintf("%s is the new stable version of %s", r.Canary, r.Service)
		e.Actor = actor
	})}
}

// Apply applies an operator command and records it, with Actor and Reason, as an event.
// It returns ErrInvalidState when the command does not fit the state, ErrCheckFailing
// when promote, promote-full or finish would override a failing check without Force,
// ErrOutsideWindow when promoting outside the deployment window without Force, and
// ErrReasonRequired for an abort without a reason. On error r is returned unchanged.
func (r Rollout) Apply(now time.Time, cmd Command) (Rollout, []Event, error) {
	orig := r
	if r.State.Terminal() {
		return orig, nil, fmt.Errorf("%s: rollout is %s: %w", cmd.Kind, r.State, ErrInvalidState)
	}
	invalid := func() (Rollout, []Event, error) {
		return orig, nil, fmt.Errorf("%s: rollout is %s: %w", cmd.Kind, r.State, ErrInvalidState)
	}
	r.UpdatedAt = now
	record := r.event(now, EventCommand, func(e *Event) {
		e.Actor, e.Reason, e.Command, e.Force = cmd.Actor, cmd.Reason, cmd.Kind, cmd.Force
	})
	who := cmd.Actor
	if who == "" {
		who = "operator"
	}
	why := ""
	if cmd.Reason != "" {
		why = ": " + cmd.Reason
	}
	var evs []Event
	switch cmd.Kind {
	case CmdPause:
		if r.State == StatePaused {
			return invalid()
		}
		r, evs = r.pause(now, finding{cause: CauseManualPause, reason: "paused by " + who + why}, who, r.Progress.Last, nil)
	case CmdResume:
		if r.State != StatePaused {
			return invalid()
		}
		reason := fmt.Sprintf("resumed by %s%s (was: %s)", who, why, r.Reason)
		r.State = r.PausedFrom
		r.PausedFrom = ""
		r.PausedAt = time.Time{}
		r.PausedBy = ""
		r.Reason = ""
		// A fresh window: the stage must be clean for all of it again.
		r.Progress.Monitored = 0
		r.Progress.InconclusiveSince = time.Time{}
		r.Progress.SourceFailures = 0
		r.Progress.AckWaitSince = now
		if !r.Progress.AckedAt.IsZero() {
			r.Progress.WindowSince = now
		}
		r.Progress.LastDecision, r.Progress.LastReason = "", ""
		evs = []Event{r.event(now, EventResumed, func(e *Event) { e.Reason = reason; e.Actor = who })}
		if r.State == StatePending {
			var more []Event
			r, more = r.startAfterSmoke(now, Observation{Freeze: cmd.Freeze})
			evs = append(evs, more...)
		}
	case CmdApprove:
		var err error
		if r, evs, err = r.approve(now, cmd, who); err != nil {
			return orig, nil, err
		}
	case CmdPromote, CmdPromoteFull:
		stageState := r.State == StateProgressing || (r.State == StatePaused && r.PausedFrom == StateProgressing)
		if !stageState {
			return invalid()
		}
		if err := r.overrideCheck(cmd); err != nil {
			return orig, nil, err
		}
		if err := r.smokeCheck(cmd); err != nil {
			return orig, nil, err
		}
		if f := r.smokeFailure(Observation{Smoke: cmd.Smoke}); f != nil && !cmd.Force {
			// The smoke tests run for the promote found critical functionality broken:
			// the guide's no-go, as on the loop's own promotions.
			f.reason = fmt.Sprintf("%s (run for the promote by %s)", f.reason, who)
			r2, evs := r.rollback(now, *f, "", r.Progress.Last)
			return r2, evs, nil
		}
		ok, override := r.windowAllows(now)
		if !ok && !cmd.Force {
			return orig, nil, fmt.Errorf("%s: %w", cmd.Kind, ErrOutsideWindow)
		}
		overrideFreeze := strings.TrimSpace(cmd.OverrideFreeze)
		if r.frozen(cmd.Freeze) && overrideFreeze == "" {
			return orig, nil, fmt.Errorf("%s: %s (override it with a reason): %w", cmd.Kind, cmd.Freeze.Summary(), ErrFrozen)
		}
		if overrideFreeze == "" {
			overrideFreeze = r.Spec.OverrideFreeze
		}
		var gevs []Event
		if len(r.Plan.Gates.ConfirmPromotion) > 0 && !cmd.Force {
			g := r.gate(now, model.GateConfirmPromotion, cmd.Gates, nil)
			switch g.outcome {
			case gateNoGo:
				g.reason = fmt.Sprintf("%s (asked for the promote by %s)", g.reason, who)
				r2, evs := r.gateNoGo(now, g, r.Progress.Last)
				return r2, append([]Event{record}, evs...), nil
			case gateHold, gateMissing:
				return orig, nil, fmt.Errorf("%s: %s: %w", cmd.Kind, g.reason, ErrGateHeld)
			}
			gevs = g.events
		}
		evs = append(gevs, r.noteOverride(now, override, "promoted")...)
		evs = append(evs, r.noteFreezeOverride(now, cmd.Freeze, overrideFreeze, who, "promoted")...)
		reason := fmt.Sprintf("promoted by %s%s", who, why)
		if cmd.Kind == CmdPromoteFull {
			r.Stage = len(r.Plan.Stages) - 1
			reason = fmt.Sprintf("promoted to 100%% by %s%s", who, why)
		}
		var more []Event
		r, more = r.advance(now, reason, CauseManualPromote, who, r.Progress.Last)
		evs = append(evs, more...)
	case CmdAbort:
		if strings.TrimSpace(cmd.Reason) == "" {
			return orig, nil, fmt.Errorf("abort: %w", ErrReasonRequired)
		}
		r.Aborted = true
		r, evs = r.rollback(now, finding{cause: CauseManualAbort, reason: "aborted by " + who + why}, who, r.Progress.Last)
	case CmdFinish:
		if !(r.State == StateMonitoring || (r.State == StatePaused && r.PausedFrom == StateMonitoring)) {
			return invalid()
		}
		if err := r.overrideCheck(cmd); err != nil {
			return orig, nil, err
		}
		if len(r.Plan.Gates.PostRollout) > 0 && !r.PostRolloutPassed && !cmd.Force {
			return orig, nil, fmt.Errorf("%s: the postRollout gate has not answered go (force overrides): %w", cmd.Kind, ErrGateHeld)
		}
		if r.holdback() > 0 {
			// Finishing ends the holdback: traffic moves forward, held by a freeze.
			overrideFreeze := strings.TrimSpace(cmd.OverrideFreeze)
			if r.frozen(cmd.Freeze) && overrideFreeze == "" {
				return orig, nil, fmt.Errorf("%s: it ends the holdback during a freeze: %s (override it with a reason): %w", cmd.Kind, cmd.Freeze.Summary(), ErrFrozen)
			}
			if overrideFreeze == "" {
				overrideFreeze = r.Spec.OverrideFreeze
			}
			evs = r.noteFreezeOverride(now, cmd.Freeze, overrideFreeze, who, "finished, ending the holdback,")
		}
		var more []Event
		r, more = r.complete(now, "monitoring window closed early by "+who+why, who)
		evs = append(evs, more...)
	default:
		return orig, nil, fmt.Errorf("%q: %w", cmd.Kind, ErrUnknownCommand)
	}
	return r, append([]Event{record}, evs...), nil
}

// overrideCheck refuses to move past a failing check, or past a pause a check caused,
// without Force.
func (r Rollout) overrideCheck(cmd Command) error {
	if cmd.Force {
		return nil
	}
	if r.Progress.Failing {
		return fmt.Errorf("%s: last check failed (%s): %w", cmd.Kind, r.Reason, ErrCheckFailing)
	}
	if r.State == StatePaused && r.PausedBy == "" {
		return fmt.Errorf("%s: paused by a check (%s): %w", cmd.Kind, r.Reason, ErrCheckFailing)
	}
	return nil
}
