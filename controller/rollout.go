package controller

import (
	"errors"
	"math"
	"time"

	"github.com/octoacme/octoroll/model"
)

// State is where a rollout is in its lifecycle.
//
//	pending ──(inside window)──▶ progressing ──(last stage Go)──▶ monitoring ──(window closes)──▶ completed
//	   │                          │     ▲                          │    ▲
//	   │                          ▼     │ resume                   ▼    │ resume
//	   │                         paused ┘                         paused┘
//	   └──────────── abort / no-go from any non-terminal state ──────────▶ rolled_back
type State string

// States. Completed and RolledBack are terminal.
const (
	StatePending     State = "pending"     // waiting for the deployment window; canary at 0
	StateProgressing State = "progressing" // in a stage, checking every interval
	StatePaused      State = "paused"      // weight held after a soft breach or by a person
	StateMonitoring  State = "monitoring"  // canary at 100 %, post-release window running
	StateCompleted   State = "completed"   // window closed; the canary is the new stable
	StateRolledBack  State = "rolled_back" // 100 % back on the known-good version
)

// Terminal reports whether s is completed or rolled_back.
func (s State) Terminal() bool { return s == StateCompleted || s == StateRolledBack }

// Decision is the verdict of one check interval.
type Decision string

// Decisions.
const (
	DecisionGo       Decision = "go"       // every check passed with enough data over the whole window: next stage
	DecisionContinue Decision = "continue" // this check passed; the window is not complete yet
	DecisionHold     Decision = "hold"     // inconclusive or not allowed to move: weight stays, not a pass
	DecisionPause    Decision = "pause"    // soft breach: weight stays, a person (or autoResume) decides
	DecisionRollback Decision = "rollback" // no-go: 100 % to the known-good version
)

// Event kinds. The lifecycle kinds are model's (shared with notification sinks).
const (
	EventStarted          = model.EventStarted
	EventStageAdvanced    = model.EventStageAdvanced
	EventPaused           = model.EventPaused
	EventResumed          = model.EventResumed
	EventRolledBack       = model.EventRolledBack
	EventCompleted        = model.EventCompleted
	EventMonitoringClosed = model.EventMonitoringClosed
	EventPublishFailed    = model.EventPublishFailed
	EventPublished        = model.EventPublished

	EventCreated        = "created"         // pre-flight passed; carries the release metadata summary
	EventWaiver         = "waiver"          // a pre-flight item was waived (Waiver set)
	EventWindowOverride = "window_override" // a critical patch started or advanced outside the window
	EventAcked          = "acked"           // every proxy ACKed Generation; the monitor clock starts
	EventDecision       = "decision"        // a check decision (emitted when decision or reason changes)
	EventHold           = "hold"            // a hold began or its reason changed
	EventCommand        = "command"         // an operator command was applied (Actor, Reason)
	EventPhase          = "phase"           // a monitoring phase began
	// EventClusterLate: the proxies had not loaded a new version's cluster by the ACK
	// timeout, so the weights routing to it were published anyway (Reason names the
	// proxies that had not).
	EventClusterLate    = "cluster_late"
	EventGate           = "gate"            // a gate hook answered (Gate set); recorded when its answer changes
	EventApproved       = "approved"        // a person approved the stage's advance (Actor)
	EventFreezeOverride = "freeze_override" // a start or advance during a freeze, by its override (Freeze set)
)

// Errors returned by Apply and New. Test with errors.Is.
var (
	ErrInvalidState   = errors.New("command not valid in this state")
	ErrCheckFailing   = errors.New("a check is failing; use force to override")
	ErrReasonRequired = errors.New("a reason is required")
	ErrUnknownCommand = errors.New("unknown command")
	ErrOutsideWindow  = errors.New("outside deployment window")
	ErrPreflight      = errors.New("pre-flight requirements not met")
	ErrInvalidSpec    = errors.New("invalid rollout spec")
	ErrFrozen         = errors.New("frozen: no rollout starts or advances until the freeze is lifted")
	ErrGateHeld       = errors.New("a gate did not answer go")
)

// Rollout is the whole state of one rollout: plain data, deterministic, JSON
// serialisable. After a JSON round trip Step continues exactly where it left off.
type Rollout struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	// Stable is the known-good version the rollout started from (and rolls back to).
	Stable string `json:"stable"`
	// Canary is the version rolled out.
	Canary string `json:"canary"`
	// Spec is the request as given (for the release report).
	Spec Spec `json:"spec"`
	// Plan is the resolved plan; behaviour depends on it only, not on today's presets.
	Plan Plan `json:"plan"`

	State State `json:"state"`
	// PausedFrom is the state a paused rollout returns to on resume (pending,
	// progressing or monitoring).
	PausedFrom State `json:"pausedFrom,omitempty"`
	// Stage indexes Plan.Stages; len(Plan.Stages) once at 100 %.
	Stage int `json:"stage"`
	// Generation increments on every change of Weights or Matches. The loop reports
	// convergence for a generation; only an ACK of the current one counts.
	Generation uint64 `json:"generation"`

	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// StartedAt is when the first stage's weights were set (zero while pending).
	StartedAt time.Time `json:"startedAt,omitzero"`
	// FullAt is when 100 % was set (zero before).
	FullAt time.Time `json:"fullAt,omitzero"`
	// EndedAt is when the rollout became completed or rolled_back.
	EndedAt time.Time `json:"endedAt,omitzero"`

	// Progress is the monitor state of the current stage or monitoring window.
	Progress Progress `json:"progress"`
	// Baseline is the stable version's numbers from the last stage, used as the
	// baseline during the monitoring window when the stable version has no traffic.
	Baseline *Baseline `json:"baseline,omitempty"`
	// Phase is the index into Plan.Monitoring of the current phase while monitoring.
	Phase int `json:"phase"`

	// PausedBy is the operator who paused; empty when a check paused the rollout
	// (only those resume automatically).
	PausedBy string `json:"pausedBy,omitempty"`
	// PausedAt is when the rollout was paused (zero unless paused).
	PausedAt time.Time `json:"pausedAt,omitzero"`
	// Reason says why the rollout is paused, rolled back or holding.
	Reason string `json:"reason,omitempty"`
	// Aborted is set when an operator aborted the rollout.
	Aborted bool `json:"aborted,omitempty"`
	// WindowOverrides counts starts/advances a critical patch made outside the window.
	WindowOverrides int `json:"windowOverrides,omitempty"`
	// FreezeOverrides counts starts/advances made during a freeze by an override.
	FreezeOverrides int `json:"freezeOverrides,omitempty"`
	// PostRolloutPassed is set once every postRollout hook answered go.
	PostRolloutPassed bool `json:"postRolloutPassed,omitempty"`
}

// Plan is a resolved Spec: presets and defaults applied.
type Plan struct {
	Type               ReleaseType `json:"type"`
	Strategy           string      `json:"strategy,omitempty"`
	Critical           bool        `json:"critical,omitempty"`
	Stages             []Stage     `json:"stages"`
	Thresholds         Thresholds  `json:"thresholds"`
	CheckInterval      Duration    `json:"checkInterval"`
	InconclusiveLimit  Duration    `json:"inconclusiveLimit"`
	AckTimeout         Duration    `json:"ackTimeout"`
	AnalysisWindow     Duration    `json:"analysisWindow,omitempty"`
	Warmup             Duration    `json:"warmup,omitempty"`
	SourceFailureLimit int         `json:"sourceFailureLimit,omitempty"`
	AutoResume         bool        `json:"autoResume,omitempty"`
	SmokeChecks        []string    `json:"smokeChecks,omitempty"`
	SmokeTests         []HTTPCheck `json:"smokeTests,omitempty"`
	Synthetics         []HTTPCheck `json:"synthetics,omitempty"`
	Checks             []Check     `json:"checks,omitempty"`
	Monitoring         []Phase     `json:"monitoring"`
	// Holdback is the previous version's weight out of model.TotalWeight during the
	// monitoring window (0: none; the canary has 100 %).
	Holdback uint32            `json:"holdback,omitempty"`
	Window   *DeploymentWindow `json:"window,omitempty"`
	// Gates are the rollout's hooks and its catalog service's.
	Gates Gates `json:"gates,omitzero"`
}

// Stage is one resolved stage.
type Stage struct {
	Name string `json:"name"`
	// Weight is the canary weight out of model.TotalWeight.
	Weight    uint32   `json:"weight"`
	MinWindow Duration `json:"minWindow"`
	MaxWindow Duration `json:"maxWindow"`
	// Thresholds are fully resolved for this stage.
	Thresholds Thresholds `json:"thresholds"`
	// Match, when set, routes flagged requests to the canary from this stage on
	// until 100 %.
	Match *MatchSpec `json:"match,omitempty"`
	// Approval is "required" when the stage waits for a person's approve to advance.
	Approval string `json:"approval,omitempty"`
}

// Progress is the monitor state of the current stage (or of the monitoring window).
// Every duration accrued is in the data, so a restart resumes it exactly.
type Progress struct {
	// Since is when the current weights were set.
	Since time.Time `json:"since"`
	// AckWaitSince starts the ACK timeout (Since, or the last resume).
	AckWaitSince time.Time `json:"ackWaitSince"`
	// AckedAt is when every proxy ACKed Generation: the monitor clock starts.
	AckedAt time.Time `json:"ackedAt,omitzero"`
	// WindowSince starts the MaxWindow clock: the ACK, or the last resume.
	WindowSince time.Time `json:"windowSince,omitzero"`
	// LastCheck is the time of the last observation judged.
	LastCheck time.Time `json:"lastCheck,omitzero"`
	// Monitored is the time covered by clean, conclusive checks since the monitor clock
	// started (or the last breach/resume). Go needs Monitored ≥ MinWindow.
	Monitored Duration `json:"monitored"`
	// InconclusiveSince is when the current run of inconclusive checks began.
	InconclusiveSince time.Time `json:"inconclusiveSince,omitzero"`
	// GrossSince is when the current run of checks with a gross metric breach began: a
	// gross breach rolls back when the next check confirms it.
	GrossSince time.Time `json:"grossSince,omitzero"`
	// Intervals are the stable version's counts over the last check windows (at most
	// 20), whose spread measures how clustered errors are (judge.go).
	Intervals []Interval `json:"intervals,omitempty"`
	// Failing is true while the last conclusive check breached a threshold or a check
	// failed; promote is refused then unless forced.
	Failing bool `json:"failing,omitempty"`
	// Counts of judged checks in this stage.
	Checks       int `json:"checks"`
	Clean        int `json:"clean"`
	Inconclusive int `json:"inconclusive"`
	Breaches     int `json:"breaches"`
	// SourceFailures counts consecutive checks on which the metrics or alert source
	// failed; at Plan.SourceFailureLimit the rollout pauses.
	SourceFailures int `json:"sourceFailures,omitempty"`
	// Stable accumulates the stable version's counts over conclusive checks (the
	// baseline carried into the monitoring window).
	StableRequests uint64    `json:"stableRequests,omitempty"`
	StableErrors   uint64    `json:"stableErrors,omitempty"`
	StableP99      Duration  `json:"stableP99,omitempty"`
	StableLatency  Histogram `json:"stableLatency,omitzero"`
	// StableWindow is the span those numbers cover; StableAnalysis is true when they
	// are one analysis window's (which replaces them) rather than a sum of check
	// windows (no longer added to once an analysis window was recorded).
	StableWindow   Duration `json:"stableWindow,omitempty"`
	StableAnalysis bool     `json:"stableAnalysis,omitempty"`
	// LastDecision and LastReason de-duplicate decision events.
	LastDecision Decision `json:"lastDecision,omitempty"`
	LastReason   string   `json:"lastReason,omitempty"`
	// Last holds the numbers of the last judged check.
	Last *Numbers `json:"last,omitempty"`
	// Approved is the approval of the current stage's advance, nil before one.
	Approved *Approval `json:"approved,omitempty"`
	// Gates are the last recorded answer of each hook in this stage (point/hook →
	// summary), so that an answer is recorded as an event when it changes only.
	Gates map[string]string `json:"gates,omitempty"`
}

// Approval is a person's approval of a stage's advance.
type Approval struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// Baseline is the stable version measured during the last stage: over the stage's
// last analysis window (all its traffic since the ACK or the last resume, at most
// Plan.AnalysisWindow), or, when none was gathered, the sum of its check windows.
type Baseline struct {
	Requests uint64   `json:"requests"`
	Errors   uint64   `json:"errors"`
	P99      Duration `json:"p99"`
	// Window is the span of the stage's traffic the numbers cover (0 in rollouts
	// persisted before it was recorded).
	Window Duration `json:"window,omitempty"`
	// Latency is the stable version's latency histogram over that span, when the
	// source has one.
	Latency Histogram `json:"latency,omitzero"`
}

// Numbers are the measurements behind a decision, for events and the release report.
type Numbers struct {
	CanaryRequests uint64 `json:"canaryRequests"`
	CanaryErrors   uint64 `json:"canaryErrors"`
	StableRequests uint64 `json:"stableRequests"`
	StableErrors   uint64 `json:"stableErrors"`
	// Error rates in percent (0-100).
	CanaryErrorPct float64 `json:"canaryErrorPct"`
	StableErrorPct float64 `json:"stableErrorPct"`
	// DeltaLowPP is the lower confidence bound of canary − stable error rate, in
	// percentage points, at the configured confidence.
	DeltaLowPP float64 `json:"deltaLowPP"`
	// DeltaHighPP is the upper confidence bound at the same confidence: with
	// DeltaLowPP it is the interval of the difference (a 90 % two-sided interval at
	// the default 0.95).
	DeltaHighPP float64  `json:"deltaHighPP"`
	CanaryP99   Duration `json:"canaryP99"`
	StableP99   Duration `json:"stableP99"`
	// LatencyRatio is CanaryP99 / StableP99 (0 when unknown).
	LatencyRatio float64 `json:"latencyRatio,omitempty"`
	// Window is the span of traffic the numbers cover: the analysis window, or the
	// check window when the analysis window was not judged.
	Window Duration `json:"window,omitempty"`
	// Baseline is true when the stable numbers are the baseline carried from the last
	// stage (the stable version had too little traffic in the window).
	Baseline bool `json:"baseline,omitempty"`
	// Thresholds are the bounds the numbers were judged against.
	Thresholds *Thresholds `json:"thresholds,omitempty"`
	// Verdict is the outcome of the whole check: clean, inconclusive, pause or
	// rollback; Reason says why.
	Verdict string `json:"verdict,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Recent are the numbers of the last check window alone, when it was judged too.
	Recent *Numbers `json:"recent,omitempty"`
	// Sustain are the numbers of the sustain window (the last RollbackSustain), when it
	// was judged apart from the analysis window.
	Sustain *Numbers `json:"sustain,omitempty"`
	// Dispersion is what the error counts were divided by for clustered errors (1:
	// independent requests).
	Dispersion float64 `json:"dispersion,omitempty"`
	// LatencyBound is the threshold the pause test counted the canary's slow requests
	// at: the pause ratio × stable P99, with the share interpolated inside its bucket
	// (or the bound it was rounded up to where there is nothing to interpolate, see
	// judge.go); CanarySlowPct is the canary's share of requests slower than it and
	// CanarySlowLowPct that share's lower bound. A P99 beyond the pause ratio means a
	// share above 1 %.
	LatencyBound     Duration `json:"latencyBound,omitempty"`
	CanarySlowPct    float64  `json:"canarySlowPct,omitempty"`
	CanarySlowLowPct float64  `json:"canarySlowLowPct,omitempty"`
	// SampleRatio is the sample-ratio test of the analysis window against the ACKed
	// weights, when it ran.
	SampleRatio *SampleRatio `json:"sampleRatio,omitempty"`
}

// Verdicts of one check (Numbers.Verdict).
const (
	VerdictClean        = "clean"
	VerdictInconclusive = "inconclusive"
	VerdictPause        = "pause"
	VerdictRollback     = "rollback"
)

// Observation is what the loop gathered over one check interval.
type Observation struct {
	// Canary and Stable are each version's numbers over the check window.
	Canary VersionStats
	Stable VersionStats
	// Window is the length of the check window (recorded with the numbers).
	Window time.Duration
	// Analysis are both versions' numbers over the analysis window (see
	// Rollout.AnalysisWindow); zero when the loop did not gather them.
	Analysis Sample
	// Sustain are both versions' numbers over the sustain window (see
	// Rollout.SustainWindow), when it is shorter than the analysis window.
	Sustain Sample
	// AlertsErr says why the alert source could not be read: a source failure.
	AlertsErr string
	// Health is the active health-check state of each version's endpoints.
	Health HealthStats
	// Alerts are the names of critical alerts firing; any pauses.
	Alerts []string
	// Checks are reported smoke checks (Spec.SmokeChecks), synthetic and custom check
	// results.
	Checks []CheckResult
	// Smoke are the results of the plan's smoke tests run for this check (the loop runs
	// them when Rollout.Wants asks). Starting and advancing need a passing result of
	// every one; any failing result rolls back.
	Smoke []CheckResult
	// Convergence is the xds layer's view of a weights generation.
	Convergence Convergence
	// Gates are the answers of the hooks of the gate point Rollout.GateWanted asked
	// for, received since the last check: the loop asks the hooks in the background
	// and hands each answer once.
	Gates []GateAnswer
	// GatesPending are the hooks of that point the loop is still asking (or will ask
	// again once a wait answer's retryAfter passed): they hold, as a missing answer
	// does, and the hold says so.
	GatesPending []GatePending
	// Freeze is the freeze in force at this check, nil when none: no start, no advance
	// (unless the spec overrides it).
	Freeze *Freeze
}

// Sample is both versions' numbers over one window.
type Sample struct {
	Window time.Duration
	Canary VersionStats
	Stable VersionStats
}

// VersionStats are one version's request numbers over a check window.
type VersionStats struct {
	Requests uint64
	Errors   uint64
	P99      time.Duration
	// Err is set when the metrics source failed; the numbers are then inconclusive,
	// never a pass.
	Err error
	// Inconclusive says why the numbers cannot be judged (empty result, …).
	Inconclusive string
	// Latency is the window's latency histogram (cumulative counts, bounds ascending,
	// the last +Inf), when the source has one; the latency rule tests it. Without it
	// the rule falls back to P99 alone and says so.
	Latency Histogram
}

// Histogram is a cumulative latency histogram: Bounds[i] is an upper bound and
// Counts[i] the requests that took at most that long; bounds ascend and the last is
// Inf (every request). Counts never decrease.
type Histogram struct {
	Bounds []time.Duration `json:"bounds,omitempty"`
	Counts []uint64        `json:"counts,omitempty"`
}

// Inf is the +Inf bound of a Histogram.
const Inf = time.Duration(math.MaxInt64)

// HealthStats are the active health-check results per version.
type HealthStats struct {
	Canary EndpointHealth
	Stable EndpointHealth
}

// EndpointHealth is one version's endpoints. Total 0 means no health data.
type EndpointHealth struct {
	Total     int
	Unhealthy []string // "host:port" of each unhealthy endpoint
}

// CheckResult is one named check's latest result.
type CheckResult struct {
	Name   string
	Passed bool
	Detail string
	// Inconclusive says why the check could not be evaluated (its query failed or
	// returned no data); Passed is then meaningless. It holds the check and counts as
	// a source failure.
	Inconclusive string `json:",omitempty"`
	// Duration is how long an executed check (smoke test, synthetic) took; zero for
	// results reported through the API.
	Duration time.Duration `json:",omitempty"`
}

// Convergence is what the xds layer reports for one weights generation: whether it is
// published, and whether every proxy ACKed it and when.
type Convergence struct {
	// Generation is the Rollout.Generation these fields refer to; a report for another
	// generation is ignored.
	Generation uint64
	// Version is the published route configuration version (opaque).
	Version string
	// Published is true when the generation's weights are what the xds server serves.
	// When they are not, NotPublished says why (the service's resources do not resolve
	// or translate; the last good ones keep serving) and the rollout holds: nothing
	// measured reflects its weights. A report with neither says nothing on publication.
	Published    bool
	NotPublished string
	// Subscribed is the number of proxies subscribed to the service's route. With none,
	// nobody serves the weights: the rollout holds unless Acked says the service may go
	// without proxies.
	Subscribed int
	// Acked is true when every subscribed proxy ACKed this generation (and at least one
	// subscribed, unless the service's proxies are optional).
	Acked bool
	// AckedAt is when the last proxy ACKed this generation, as the xds layer saw it: the
	// monitor clock starts there. Zero: the instant of the check.
	AckedAt time.Time
	// Stragglers are the proxies that have not ACKed yet.
	Stragglers []string
	// NACK is a proxy's rejection message for this generation, if any.
	NACK string
}

// CommandKind names an operator command.
type CommandKind string

// Operator commands.
const (
	CmdPause       CommandKind = "pause"
	CmdResume      CommandKind = "resume"
	CmdPromote     CommandKind = "promote"      // end this stage's window early
	CmdPromoteFull CommandKind = "promote-full" // straight to 100 %
	CmdAbort       CommandKind = "abort"        // roll back; Reason required
	CmdFinish      CommandKind = "finish"       // close the monitoring window early
	CmdApprove     CommandKind = "approve"      // approve the current stage's advance (approval: required)
)

// Command is an operator command with who and why.
type Command struct {
	Kind   CommandKind `json:"kind"`
	Actor  string      `json:"actor"`
	Reason string      `json:"reason,omitempty"`
	// Force overrides "a check is failing", the smoke tests and the deployment window
	// for promote, promote-full and finish.
	Force bool `json:"force,omitempty"`
	// Smoke are the results of the plan's smoke tests run just before a promote or
	// promote-full; the loop fills them in (never the caller). Without Force, every
	// smoke test must have passed.
	Smoke []CheckResult `json:"-"`
	// Gates are the answers of the confirmPromotion hooks asked just before a promote
	// or promote-full; the loop fills them in. Without Force, every hook must answer go.
	Gates []GateAnswer `json:"-"`
	// Freeze is the freeze in force, filled in by the loop: promote, promote-full and a
	// resume that would start the rollout are refused during it (ErrFrozen) unless
	// OverrideFreeze gives a reason.
	Freeze         *Freeze `json:"-"`
	OverrideFreeze string  `json:"overrideFreeze,omitempty"`
}

// Event is one entry of a rollout's timeline; it carries enough for the release report.
type Event struct {
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	RolloutID string    `json:"rolloutId"`
	Service   string    `json:"service"`
	// State is the rollout's state after the event.
	State State `json:"state"`
	// Stage and StageName identify the stage after the event.
	Stage     int    `json:"stage"`
	StageName string `json:"stageName,omitempty"`
	// Weight is the canary weight after the event, out of model.TotalWeight.
	Weight     uint32   `json:"weight"`
	Generation uint64   `json:"generation"`
	Decision   Decision `json:"decision,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	// Cause classifies the decision of an event that records one (see Cause).
	Cause Cause `json:"cause,omitempty"`
	// BreachSince is, for a rollback decided by a metric breach, when the breach began
	// as measured: the start of the sustain window it was measured over, or the first
	// of the consecutive gross checks. The release report's time to detect starts there.
	BreachSince time.Time `json:"breachSince,omitzero"`
	// Actor and Command are set for operator commands.
	Actor   string      `json:"actor,omitempty"`
	Command CommandKind `json:"command,omitempty"`
	Force   bool        `json:"force,omitempty"`
	// Numbers are the measurements behind a decision.
	Numbers *Numbers `json:"numbers,omitempty"`
	// Endpoints are failing canary endpoints; Stragglers proxies that did not ACK;
	// Alerts firing alerts; Checks failing check names.
	Endpoints  []string `json:"endpoints,omitempty"`
	Stragglers []string `json:"stragglers,omitempty"`
	Alerts     []string `json:"alerts,omitempty"`
	Checks     []string `json:"checks,omitempty"`
	Waiver     *Waiver  `json:"waiver,omitempty"`
	Phase      string   `json:"phase,omitempty"`
	// Gate is a hook's answer (gate events, and the no-go or hold it caused).
	Gate *GateAnswer `json:"gate,omitempty"`
	// Freeze is the freeze a start or advance overrode (freeze_override events).
	Freeze *Freeze `json:"freeze,omitempty"`
}

// Match routes requests carrying a header or cookie to a version; it mirrors
// translate.Match field for field so the loop converts it directly.
type Match struct {
	Header  string `json:"header,omitempty"`
	Cookie  string `json:"cookie,omitempty"`
	Value   string `json:"value"`
	Version string `json:"version"`
}
