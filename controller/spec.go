package controller

import (
	"time"

	"github.com/octoacme/octoroll/model"
)

// Duration is a time.Duration written in JSON and YAML as a Go duration string ("30s").
// Zero means "not set" in a Spec (the default applies).
type Duration = model.Duration

// ReleaseType picks the stage plan preset.
type ReleaseType string

// Release types of the guide.
const (
	Patch    ReleaseType = "patch"
	Minor    ReleaseType = "minor"
	Major    ReleaseType = "major"
	Breaking ReleaseType = "breaking"
)

// Patch strategies.
const (
	StrategyDirect = "direct" // straight to 100 %, then the monitoring window
	StrategyCanary = "canary" // quick canary 5 % for 5 min, then 100 %
)

// Waivable pre-flight items (Waiver.Item).
const (
	ItemRollbackPlan = "rollbackPlan"
	ItemSummary      = "summary"
	ItemSmokeTests   = "smokeTests"
)

// Check failure actions (Check.OnFail).
const (
	OnFailPause    = "pause"
	OnFailRollback = "rollback"
)

// Spec is what an operator asks for: the rollout file or the body of a start request.
// Every field but Service, Release.Type and Canary.Version is optional; zero values
// take the defaults of the release type's preset (see Resolve).
type Spec struct {
	// Service names the catalog service to roll out.
	Service string `json:"service" yaml:"service"`
	// Release is the release notes metadata; Release.Type picks the preset.
	Release Release `json:"release" yaml:"release"`
	// Critical marks a critical patch: the direct plan by default, and it may start and
	// advance outside the deployment window (the override is recorded as an event).
	// Only valid with Release.Type patch.
	Critical bool `json:"critical,omitempty" yaml:"critical,omitempty"`
	// Canary is the version being rolled out.
	Canary Canary `json:"canary" yaml:"canary"`
	// Stable is the known-good version; defaults to the catalog's stable version.
	Stable string `json:"stable,omitempty" yaml:"stable,omitempty"`
	// Strategy is direct or canary, for patches only. Defaults to direct when Critical,
	// canary otherwise.
	Strategy string `json:"strategy,omitempty" yaml:"strategy,omitempty"`
	// Stages replaces the preset's stages (all of them) when non-empty. A trailing
	// 100 % stage may be written; it is implied anyway (100 % is the monitoring window).
	Stages []StageSpec `json:"stages,omitempty" yaml:"stages,omitempty"`
	// Flag overrides the breaking-change flag route (default header x-canary: always).
	Flag *MatchSpec `json:"flag,omitempty" yaml:"flag,omitempty"`
	// Thresholds overrides the guide's thresholds for every stage; zero fields keep the
	// default.
	Thresholds Thresholds `json:"thresholds,omitempty" yaml:"thresholds,omitempty"`
	// CheckInterval is how often the loop gathers an Observation. Default 30s.
	CheckInterval Duration `json:"checkInterval,omitempty" yaml:"checkInterval,omitempty"`
	// InconclusiveLimit is how long a stage may Hold on inconclusive data before it
	// pauses. Default 10m.
	InconclusiveLimit Duration `json:"inconclusiveLimit,omitempty" yaml:"inconclusiveLimit,omitempty"`
	// AckTimeout is how long the proxies may take to ACK new weights before the
	// rollout pauses naming the stragglers. Default 2m.
	AckTimeout Duration `json:"ackTimeout,omitempty" yaml:"ackTimeout,omitempty"`
	// AnalysisWindow caps how far back the analysis window reaches: besides the last
	// check window, the error-rate and latency tests judge the traffic since the
	// current weights were ACKed (or the rollout resumed), at most this long. Default 1h.
	AnalysisWindow Duration `json:"analysisWindow,omitempty" yaml:"analysisWindow,omitempty"`
	// Warmup is how long after new weights are ACKed the analysis and sustain windows
	// wait to start: a new canary's first requests (cold caches, JIT, new connections)
	// are slower than its steady state. In the warm-up only gross breaches (and checks,
	// health, alerts) are judged, the stage holds, and no monitored time accrues.
	// Default two check intervals (1m at the default 30s); 0s turns it off.
	Warmup *model.ZeroableDuration `json:"warmup,omitempty" yaml:"warmup,omitempty"`
	// SourceFailureLimit is how many consecutive checks may find the metrics or alert
	// source failing (unreachable, 5xx, timeout, NaN, empty result, scrape target down)
	// before the rollout pauses; each such check holds. Default 5.
	SourceFailureLimit int `json:"sourceFailureLimit,omitempty" yaml:"sourceFailureLimit,omitempty"`
	// AutoResume resumes a paused rollout once its checks were clean for a full stage
	// window. Without it a person resumes.
	AutoResume bool `json:"autoResume,omitempty" yaml:"autoResume,omitempty"`
	// SmokeChecks names the smoke/synthetic checks whose results arrive in every
	// Observation. A failing one rolls back; a missing result is inconclusive.
	SmokeChecks []string `json:"smokeChecks,omitempty" yaml:"smokeChecks,omitempty"`
	// CustomChecks are further named checks (key user flows, business metrics, data
	// integrity) with what a failure does.
	CustomChecks []Check `json:"customChecks,omitempty" yaml:"customChecks,omitempty"`
	// SmokeTests are HTTP requests octoroll sends to the canary before the first weight
	// moves and before each promotion. The rollout starts or advances only when every
	// one passed in that check; a failure rolls back. They satisfy the smokeTests
	// pre-flight item.
	SmokeTests []HTTPCheck `json:"smokeTests,omitempty" yaml:"smokeTests,omitempty"`
	// Synthetics are key user flows octoroll sends to the canary every check interval
	// while the canary takes traffic (stages, paused, the monitoring window). A failure
	// rolls back; a missing result is inconclusive.
	Synthetics []HTTPCheck `json:"synthetics,omitempty" yaml:"synthetics,omitempty"`
	// Monitoring replaces the post-release monitoring phases (default Immediate 30m,
	// Short-term to 4h, Extended to 24h, Long-term to 72h).
	Monitoring []Phase `json:"monitoring,omitempty" yaml:"monitoring,omitempty"`
	// Holdback keeps the previous (known-good) version live at this share of traffic
	// ("1%", or basis points out of 10000) through the monitoring window, as a concurrent
	// control: the window's checks compare the canary with it over the same time, and a
	// breach rolls back as in a stage. When the window closes the canary takes 100 %.
	// Off (0) by default: the window then compares the canary with the stable version's
	// numbers over the last stage, and a breach of that older baseline pauses (only a
	// gross one rolls back). At most 10 %.
	Holdback Share `json:"holdback,omitempty" yaml:"holdback,omitempty"`
	// Window restricts starting and advancing to a deployment window. Nil: any time.
	Window *DeploymentWindow `json:"window,omitempty" yaml:"window,omitempty"`
	// Waivers waive pre-flight items (rollbackPlan, summary, smokeTests).
	Waivers []Waiver `json:"waivers,omitempty" yaml:"waivers,omitempty"`
	// Gates are blocking webhooks asked before the first weight moves (preRollout),
	// before each stage advance (confirmPromotion), once 100 % is ACKed (postRollout)
	// and told after a rollback (onRollback); the catalog service's gates are added
	// (see gates.go).
	Gates Gates `json:"gates,omitzero" yaml:"gates,omitempty"`
	// OverrideFreeze, when set, is the reason this rollout starts and advances during a
	// freeze (a critical patch); every start and advance it makes during one is
	// recorded. The API's overrideFreeze query parameter sets it.
	OverrideFreeze string `json:"overrideFreeze,omitempty" yaml:"overrideFreeze,omitempty"`
}

// Gates are a rollout's blocking webhooks by point (model.Gates).
type Gates = model.Gates

// Webhook is one blocking webhook (model.Webhook).
type Webhook = model.Webhook

// GateAnswer is one hook's answer at a gate point (model.GateAnswer).
type GateAnswer = model.GateAnswer

// GatePending is a hook the loop is asking, or will ask again (model.GatePending).
type GatePending = model.GatePending

// Freeze is a freeze in force (model.Freeze).
type Freeze = model.Freeze

// ApprovalRequired is the value of StageSpec.Approval that makes a stage wait for a
// person's approve before it advances.
const ApprovalRequired = "required"

// Release is the guide's release notes template plus the rollback/mitigation plan.
type Release struct {
	// Name is the release name or number.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Type is patch, minor, major or breaking.
	Type ReleaseType `json:"type" yaml:"type"`
	// Date is the release date, YYYY-MM-DD.
	Date           string   `json:"date,omitempty" yaml:"date,omitempty"`
	Summary        string   `json:"summary,omitempty" yaml:"summary,omitempty"`
	NotableChanges []string `json:"notableChanges,omitempty" yaml:"notableChanges,omitempty"`
	MigrationSteps []string `json:"migrationSteps,omitempty" yaml:"migrationSteps,omitempty"`
	KnownIssues    []string `json:"knownIssues,omitempty" yaml:"knownIssues,omitempty"`
	RollbackPlan   string   `json:"rollbackPlan,omitempty" yaml:"rollbackPlan,omitempty"`
}

// Canary names the version rolled out: one already in the catalog (Endpoints empty) or
// a new one with its endpoints.
type Canary struct {
	Version string `json:"version" yaml:"version"`
	// Endpoints are "host:port" addresses of a version not in the catalog.
	Endpoints []string `json:"endpoints,omitempty" yaml:"endpoints,omitempty"`
	Zone      string   `json:"zone,omitempty" yaml:"zone,omitempty"`
}

// StageSpec is one stage as written by an operator.
type StageSpec struct {
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Weight is the canary weight out of model.TotalWeight (10000). Exclusive with
	// Percent.
	Weight uint32 `json:"weight,omitempty" yaml:"weight,omitempty"`
	// Percent is the canary weight in percent (0.01 resolution). Exclusive with Weight.
	Percent float64 `json:"percent,omitempty" yaml:"percent,omitempty"`
	// MinWindow is how long every check must pass before Go. Required unless the stage
	// is the trailing 100 %.
	MinWindow Duration `json:"minWindow,omitempty" yaml:"minWindow,omitempty"`
	// MaxWindow is how long after the ACK the stage may go without a Go before it
	// pauses. Default 2 × MinWindow (the guide's 15-30 and 30-60 min ranges).
	MaxWindow Duration `json:"maxWindow,omitempty" yaml:"maxWindow,omitempty"`
	// Thresholds overrides the rollout's thresholds in this stage.
	Thresholds Thresholds `json:"thresholds,omitempty" yaml:"thresholds,omitempty"`
	// Match makes this a flag stage: requests carrying the header or cookie go to the
	// canary whatever the weight (usually 0).
	Match *MatchSpec `json:"match,omitempty" yaml:"match,omitempty"`
	// Approval "required" makes the stage wait, once its window passed, for a person to
	// approve the advance (octoroll approve SERVICE).
	Approval string `json:"approval,omitempty" yaml:"approval,omitempty"`
}

// MatchSpec is a header or cookie flag.
type MatchSpec struct {
	Header string `json:"header,omitempty" yaml:"header,omitempty"`
	Cookie string `json:"cookie,omitempty" yaml:"cookie,omitempty"`
	Value  string `json:"value" yaml:"value"`
}

// Thresholds are the guide's monitoring thresholds. In a Spec or StageSpec a zero
// field means "inherit"; in a resolved Plan every field is set.
type Thresholds struct {
	// PauseErrorRatePP pauses when the canary error rate exceeds the stable error rate
	// by more than this many percentage points. Default 0.1.
	PauseErrorRatePP float64 `json:"pauseErrorRatePP,omitempty" yaml:"pauseErrorRatePP,omitempty"`
	// PauseErrorRatio, when set (> 1), replaces PauseErrorRatePP with a relative
	// margin: pause when the canary error rate exceeds the stable rate × ratio, for
	// services whose baseline is far below 0.1 %.
	PauseErrorRatio float64 `json:"pauseErrorRatio,omitempty" yaml:"pauseErrorRatio,omitempty"`
	// PauseLatencyRatio pauses when canary P99 > stable P99 × ratio. Default 1.10.
	PauseLatencyRatio float64 `json:"pauseLatencyRatio,omitempty" yaml:"pauseLatencyRatio,omitempty"`
	// RollbackErrorRatePP rolls back when the canary error rate exceeds the stable one
	// by more than this many percentage points, measured over a whole RollbackSustain
	// window (judge.go). Default 1.
	RollbackErrorRatePP float64 `json:"rollbackErrorRatePP,omitempty" yaml:"rollbackErrorRatePP,omitempty"`
	// RollbackSustain is the window a marginal no-go (RollbackErrorRatePP,
	// RollbackLatencyRatio) is measured over: the last RollbackSustain since the ACK.
	// Default 5m.
	RollbackSustain Duration `json:"rollbackSustain,omitempty" yaml:"rollbackSustain,omitempty"`
	// RollbackLatencyRatio rolls back when canary P99 > stable P99 × ratio. Default 1.25.
	RollbackLatencyRatio float64 `json:"rollbackLatencyRatio,omitempty" yaml:"rollbackLatencyRatio,omitempty"`
	// MinRequests is the number of requests each of canary and stable must have served
	// in one check window for that check to be conclusive. Default 100.
	MinRequests uint64 `json:"minRequests,omitempty" yaml:"minRequests,omitempty"`
	// Confidence is the one-sided confidence level at which an error-rate difference
	// counts as a breach (the rule is documented in judge.go). Default 0.95.
	Confidence float64 `json:"confidence,omitempty" yaml:"confidence,omitempty"`
	// GrossFactor: an error-rate breach whose lower confidence bound (at
	// GrossConfidence) is at least GrossFactor × RollbackErrorRatePP rolls back at
	// once, without waiting for RollbackSustain. Default 5.
	GrossFactor float64 `json:"grossFactor,omitempty" yaml:"grossFactor,omitempty"`
	// PauseConfidence is the confidence level at which an error-rate difference beyond
	// PauseErrorRatePP pauses. Default 0.99.
	PauseConfidence float64 `json:"pauseConfidence,omitempty" yaml:"pauseConfidence,omitempty"`
	// GrossConfidence is the confidence level of the gross test. Default 0.999.
	GrossConfidence float64 `json:"grossConfidence,omitempty" yaml:"grossConfidence,omitempty"`
}

// Check is a named check: a business metric, queue depth or data-integrity query the
// loop evaluates against bounds, or (without Query) a result reported through the API.
type Check struct {
	Name string `json:"name" yaml:"name"`
	// OnFail is pause or rollback (default pause).
	OnFail string `json:"onFail,omitempty" yaml:"onFail,omitempty"`
	// Query is a PromQL template evaluated every check against the metrics source, with
	// {{.Service}}, {{.Version}} (the canary), {{.Cluster}} and {{.Window}} substituted;
	// it must return one value. Empty: the result is reported (POST …/checks).
	Query string `json:"query,omitempty" yaml:"query,omitempty"`
	// Min and Max bound the query's value (inclusive); a value outside fails the check.
	// At least one is required with Query.
	Min *float64 `json:"min,omitempty" yaml:"min,omitempty"`
	Max *float64 `json:"max,omitempty" yaml:"max,omitempty"`
}

// Phase is one phase of the post-release monitoring window. It runs from the end of
// the previous phase (0 for the first) until Until, measured from the ACK of 100 %.
type Phase struct {
	Name  string   `json:"name" yaml:"name"`
	Until Duration `json:"until" yaml:"until"`
	// Checks are evaluated during this phase in addition to the rollout's checks.
	Checks []Check `json:"checks,omitempty" yaml:"checks,omitempty"`
}

// DeploymentWindow is when a rollout may start and advance. A window whose End is
// before its Start runs overnight into the next day; Days names the day it starts on.
type DeploymentWindow struct {
	// Days are weekday names or three-letter abbreviations (mon, Tuesday, …); empty
	// means every day.
	Days []string `json:"days,omitempty" yaml:"days,omitempty"`
	// Start and End are HH:MM in TimeZone.
	Start string `json:"start" yaml:"start"`
	End   string `json:"end" yaml:"end"`
	// TimeZone is an IANA zone name; default UTC.
	TimeZone string `json:"timeZone,omitempty" yaml:"timeZone,omitempty"`
}

// Waiver waives one pre-flight item, with who and why.
type Waiver struct {
	Item   string `json:"item" yaml:"item"`
	Reason string `json:"reason" yaml:"reason"`
	By     string `json:"by" yaml:"by"`
}

// Defaults of an HTTPCheck.
const (
	DefaultHTTPCheckMethod  = "GET"
	DefaultHTTPCheckTimeout = 5 * time.Second
)

// HTTPCheck is a smoke test or synthetic key flow: one HTTP request aimed at the canary
// version, judged by its response.
type HTTPCheck struct {
	// Name identifies the check in events and reports; unique among all checks.
	Name string `json:"name" yaml:"name"`
	// Method is the HTTP method; default GET.
	Method string `json:"method,omitempty" yaml:"method,omitempty"`
	// Path is the request path with an optional query; it starts with /.
	Path string `json:"path" yaml:"path"`
	// Headers are sent with the request (Host sets the request's host).
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	// Body is sent as the request body.
	Body string `json:"body,omitempty" yaml:"body,omitempty"`
	// URL, when set (http(s)://host:port of an Envoy listener), sends one request
	// through the proxy with the pin header naming the canary version, so it reaches the
	// canary whatever the weights. Empty sends the request to every canary endpoint
	// directly, and every one must pass.
	URL string `json:"url,omitempty" yaml:"url,omitempty"`
	// Port replaces the endpoint's port for direct requests (an admin or health port).
	Port uint32 `json:"port,omitempty" yaml:"port,omitempty"`
	// Timeout bounds one request, response body included; default 5s.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// Expect is what a passing response looks like.
	Expect HTTPExpect `json:"expect,omitzero" yaml:"expect,omitempty"`
}

// HTTPExpect is what a passing response looks like; every field set must hold.
type HTTPExpect struct {
	// Status lists the accepted status codes; empty accepts any 2xx.
	Status []int `json:"status,omitempty" yaml:"status,omitempty"`
	// BodyContains must occur in the response body (its first MaxBody bytes).
	BodyContains string `json:"bodyContains,omitempty" yaml:"bodyContains,omitempty"`
	// JSON are fields the response body, parsed as JSON, must have.
	JSON []JSONExpect `json:"json,omitempty" yaml:"json,omitempty"`
}

// JSONExpect is one JSON field of a response.
type JSONExpect struct {
	// Path is a dotted path into the body: object keys and array indexes, as in
	// "status" or "items.0.id". The body itself is ".".
	Path string `json:"path" yaml:"path"`
	// Equals is the expected value as text: a string's contents, a number as written or
	// any number equal to it (200, 2e2), true, false or null. An object or array never
	// equals.
	Equals string `json:"equals" yaml:"equals"`
}

// MethodOrDefault is c's method, GET when unset.
func (c HTTPCheck) MethodOrDefault() string {
	if c.Method == "" {
		return DefaultHTTPCheckMethod
	}
	return c.Method
}

// TimeoutOrDefault is c's timeout, 5s when unset (a resolved plan caps the default
// at the check interval).
func (c HTTPCheck) TimeoutOrDefault() time.Duration {
	if c.Timeout <= 0 {
		return DefaultHTTPCheckTimeout
	}
	return c.Timeout.D()
}
