// Package api holds the admin API's wire types: every request and response body under
// /api/v1, its error codes and headers. The admin server encodes them and the CLI decodes
// them; change them only compatibly (add fields, never rename).
//
// Import rule (asserted by internal/deps): api imports only plain data — model,
// controller's rollout types and translate's Match — never the server (admin), the
// runner, the store, the catalog loader or the xds server, so that a client of the API
// links none of them.
package api

import (
	"time"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/translate"
)

// APIPrefix is the path prefix of the JSON API.
const APIPrefix = "/api/v1"

// ActorHeader names the person or system behind a mutating request; "admin" when absent.
const ActorHeader = "X-Octoroll-Actor"

// DefaultActor is the actor of a mutating request without ActorHeader.
const DefaultActor = "admin"

// Error is the body of every error response.
type Error struct {
	// Error is a human-readable message. It never contains a stack trace or a file path.
	Error string `json:"error"`
	// Code is a stable machine-readable code (see the Code* constants).
	Code string `json:"code"`
}

// Error codes.
const (
	CodeBadRequest       = "bad_request"        // 400: malformed body or parameter
	CodeInvalidSpec      = "invalid_spec"       // 400: the rollout spec does not validate
	CodeReasonRequired   = "reason_required"    // 400: abort without a reason
	CodeUnknownCommand   = "unknown_command"    // 400 (unknown action: 404 not_found)
	CodeUnknownCheck     = "unknown_check"      // 400: a reported check the rollout does not declare
	CodeUnauthorized     = "unauthorized"       // 401: missing or wrong bearer token
	CodeForbidden        = "forbidden"          // 403: mutations disabled (no token, not loopback)
	CodeForbiddenHost    = "forbidden_host"     // 403: Host names neither the admin address nor an allowed host
	CodeForbiddenOrigin  = "forbidden_origin"   // 403: a cross-origin mutation
	CodeForbiddenRole    = "forbidden_role"     // 403: the token's role may not do this
	CodeNotFound         = "not_found"          // 404
	CodeUnknownService   = "unknown_service"    // 404
	CodeUnknownProxy     = "unknown_proxy"      // 404: no connected proxy has the node id
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeActiveRollout    = "active_rollout"     // 409: the service already has an active rollout
	CodeNoActiveRollout  = "no_active_rollout"  // 409: the service has no active rollout
	CodeInvalidState     = "invalid_state"      // 409: command not valid in this state
	CodeCheckFailing     = "check_failing"      // 409: a check is failing; force overrides
	CodeOutsideWindow    = "outside_window"     // 409: outside the deployment window
	CodeFrozen           = "frozen"             // 409: a freeze is in force; override it with a reason
	CodeGateHeld         = "gate_held"          // 409: a gate hook did not answer go; force overrides
	CodeNotFrozen        = "not_frozen"         // 409: unfreeze without a freeze set by a person
	CodeTooLarge         = "too_large"          // 413: body over 1 MiB
	CodeUnsupportedType  = "unsupported_media"  // 415: Content-Type not JSON or YAML
	CodePreflight        = "preflight_failed"   // 422: pre-flight requirements not met
	CodeInternal         = "internal"           // 500
	CodeUnavailable      = "unavailable"        // 503: not ready, or a feature not wired
	CodeNotLeader        = "not_leader"         // 503: a mutation reached a replica that does not lead, and no leader is reachable
)

// ServicesResponse is GET /api/v1/services.
type ServicesResponse struct {
	Services []ServiceSummary `json:"services"`
	// Catalog is the state of the catalog the services come from: a newer catalog on
	// disk that is refused or invalid shows here (and in GET /api/v1/status).
	Catalog *model.CatalogStatus `json:"catalog,omitempty"`
	// Freeze is set while a freeze is in force (no start, no advance).
	Freeze *FreezeStatus `json:"freeze,omitempty"`
	// Replicas are the replicas and their leader, with several (as in GET
	// /api/v1/status).
	Replicas *Replicas `json:"replicas,omitempty"`
}

// ServiceSummary is one service at a glance.
type ServiceSummary struct {
	Name string `json:"name"`
	// KnownGood is the version a no-go returns to (the stable version when idle).
	KnownGood string `json:"knownGood"`
	// Versions are the names of the service's versions (catalog + added by rollouts).
	Versions []string `json:"versions"`
	// Weights are the published weights by version, out of TotalWeight (10000);
	// WeightsPercent are the same in percent (model.Percent).
	Weights        map[string]uint32  `json:"weights"`
	WeightsPercent map[string]float64 `json:"weightsPercent"`
	TotalWeight    uint32             `json:"totalWeight"`
	// Proxies is how far the current weights have reached the proxies.
	Proxies ProxyConvergence `json:"proxies"`
	// Active is the active rollout, nil when idle.
	Active *RolloutSummary `json:"active,omitempty"`
	// Publication is set when the service's desired state is not what is served, or is
	// served from a stale DNS answer; nil when it is served.
	Publication *Publication `json:"publication,omitempty"`
	// Restore is the service's rollback in progress (done false: the service is
	// restoring until the known-good weights are served and every proxy ACKed them) or
	// its last one, until the next rollout starts; nil when there is none.
	Restore *model.Restore `json:"restore,omitempty"`
	// RestoreSummary says where the restore is, in a line: "aborted: 12 of 12 proxies
	// on v1", "aborted: publishing, 3 proxies not yet ACKed (…)".
	RestoreSummary string `json:"restoreSummary,omitempty"`
}

// Publication is whether a service's desired state is served. While it is not, the
// service's last good resources keep serving (Weights are theirs) and every tick retries.
type Publication struct {
	OK bool `json:"ok"`
	// Error says why the desired state is not served.
	Error        string    `json:"error,omitempty"`
	FailingSince time.Time `json:"failingSince,omitzero"`
	// Stale names DNS names served from an answer whose refresh failed.
	Stale []string `json:"stale,omitempty"`
	// Fallback is true while the service, failing with no last good resources (a
	// restart with a state that no longer translates), serves its catalog state at its
	// known-good version.
	Fallback bool `json:"fallback,omitempty"`
}

// PublishFailure is one service whose desired state is not served.
type PublishFailure struct {
	Service string    `json:"service"`
	Error   string    `json:"error"`
	Since   time.Time `json:"since,omitzero"`
}

// ProxyConvergence says how many subscribed proxies ACKed the current route of a service.
type ProxyConvergence struct {
	RouteVersion string `json:"routeVersion,omitempty"`
	Subscribed   int    `json:"subscribed"`
	Acked        int    `json:"acked"`
	// Converged is true when every subscribed proxy ACKed, and at least one subscribed:
	// with none, nobody serves the route.
	Converged  bool        `json:"converged"`
	Stragglers []string    `json:"stragglers,omitempty"`
	NACK       *model.Nack `json:"nack,omitempty"`
}

// ServiceDetail is GET /api/v1/services/{name}.
type ServiceDetail struct {
	ServiceSummary
	// Catalog is the effective catalog entry (catalog + versions added by rollouts).
	Catalog model.Service     `json:"catalog"`
	Matches []translate.Match `json:"matches,omitempty"`
	// Health is the active health-check state by version.
	Health map[string]VersionHealth `json:"health,omitempty"`
	// LastObservation holds the numbers of the last judged check of the active rollout.
	LastObservation *controller.Numbers `json:"lastObservation,omitempty"`
	// Thresholds are the thresholds of the active rollout's current stage (or of the
	// rollout's plan at 100 %), to compare LastObservation with.
	Thresholds *controller.Thresholds `json:"thresholds,omitempty"`
}

// VersionHealth is the active health-check state of one version's endpoints.
type VersionHealth struct {
	Total   int `json:"total"`
	Healthy int `json:"healthy"`
	// Unhealthy are the "host:port" addresses of unhealthy endpoints.
	Unhealthy []string `json:"unhealthy,omitempty"`
}

// RolloutsResponse is GET /api/v1/rollouts (newest first). Query parameters: service,
// state, active (true/false), limit.
type RolloutsResponse struct {
	Rollouts []RolloutSummary `json:"rollouts"`
}

// RolloutSummary is one rollout at a glance.
type RolloutSummary struct {
	ID         string           `json:"id"`
	Service    string           `json:"service"`
	Stable     string           `json:"stable"`
	Canary     string           `json:"canary"`
	Release    string           `json:"release,omitempty"` // release name or number
	Type       string           `json:"type"`              // patch, minor, major, breaking
	State      controller.State `json:"state"`
	PausedFrom controller.State `json:"pausedFrom,omitempty"`
	// Stage indexes the plan's stages; equal to Stages once at 100 %.
	Stage     int    `json:"stage"`
	StageName string `json:"stageName"`
	Stages    int    `json:"stages"`
	// CanaryWeight is out of TotalWeight (10000); CanaryPercent is the same in percent.
	CanaryWeight  uint32              `json:"canaryWeight"`
	CanaryPercent float64             `json:"canaryPercent"`
	Generation    uint64              `json:"generation"`
	Plan          string              `json:"plan"` // e.g. "5% 15m0s → 25% 30m0s → 100%"
	LastDecision  controller.Decision `json:"lastDecision,omitempty"`
	Reason        string              `json:"reason,omitempty"`
	Failing       bool                `json:"failing,omitempty"`
	Aborted       bool                `json:"aborted,omitempty"`
	CreatedAt     time.Time           `json:"createdAt"`
	UpdatedAt     time.Time           `json:"updatedAt"`
	StartedAt     time.Time           `json:"startedAt,omitzero"`
	FullAt        time.Time           `json:"fullAt,omitzero"`
	EndedAt       time.Time           `json:"endedAt,omitzero"`
	// AwaitingApproval is true while the current stage waits for a person's approve.
	AwaitingApproval bool `json:"awaitingApproval,omitempty"`
}

// RolloutDetail is GET /api/v1/rollouts/{id}, and the response of POST /api/v1/rollouts
// (201) and of every action.
type RolloutDetail struct {
	RolloutSummary
	// Timeline has one step per plan stage plus the final 100 % step.
	Timeline []StageStep `json:"timeline"`
	// Decision is the latest decision event with its numbers, nil before any.
	Decision *DecisionView `json:"decision,omitempty"`
	// Rollout is the whole persisted rollout (spec, resolved plan, progress).
	Rollout controller.Rollout `json:"rollout"`
	// Restore is how far a rolled-back rollout's known-good weights reached the
	// proxies (while it is the service's last rollback); RestoreSummary says it in a
	// line.
	Restore        *model.Restore `json:"restore,omitempty"`
	RestoreSummary string         `json:"restoreSummary,omitempty"`
	// Warning is set when an action was applied and published but something remains:
	// "not yet persisted: …" (the store fails; the write is retried every tick). The
	// status is then 202.
	Warning string `json:"warning,omitempty"`
}

// Stage step statuses.
const (
	StepDone    = "done"
	StepCurrent = "current"
	StepPending = "pending"
	StepFailed  = "failed" // the step the rollout was rolled back from
)

// StageStep is one step of a rollout's plan and when it ran.
type StageStep struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	// Weight is the canary weight of the step out of TotalWeight (10000).
	Weight    uint32         `json:"weight"`
	Percent   float64        `json:"percent"`
	MinWindow model.Duration `json:"minWindow,omitempty"`
	MaxWindow model.Duration `json:"maxWindow,omitempty"`
	Status    string         `json:"status"` // done, current, pending, failed
	EnteredAt time.Time      `json:"enteredAt,omitzero"`
	LeftAt    time.Time      `json:"leftAt,omitzero"`
}

// DecisionView is the latest check decision of a rollout with the numbers behind it.
type DecisionView struct {
	Time     time.Time           `json:"time"`
	Decision controller.Decision `json:"decision"`
	Reason   string              `json:"reason,omitempty"`
	Numbers  *controller.Numbers `json:"numbers,omitempty"`
}

// StartRequest is the body of POST /api/v1/rollouts: a controller.Spec, as JSON or as
// YAML (Content-Type application/yaml, application/x-yaml or text/yaml). Unknown fields
// are rejected in both.
type StartRequest = controller.Spec

// ActionRequest is the body of POST /api/v1/services/{name}/{action} where action is
// pause, resume, promote, promote-full, abort or finish. The body may be empty except
// for abort, which requires a reason. The answer is a RolloutDetail: 200, or 202 with
// a Warning when the action is published but not yet persisted. An abort answers once
// every proxy ACKed the known-good weights, or after a few seconds with how far they
// got (RestoreSummary).
type ActionRequest struct {
	Reason string `json:"reason,omitempty"`
	// Force overrides "a check is failing", the deployment window and the gate hooks
	// (promote, promote-full, finish).
	Force bool `json:"force,omitempty"`
	// OverrideFreeze is the reason a promote or promote-full goes ahead during a
	// freeze (recorded with the actor).
	OverrideFreeze string `json:"overrideFreeze,omitempty"`
}

// Actions accepted by POST /api/v1/services/{name}/{action}. approve approves the
// current stage's advance (a stage with approval: required).
var Actions = []controller.CommandKind{
	controller.CmdPause, controller.CmdResume, controller.CmdPromote,
	controller.CmdPromoteFull, controller.CmdAbort, controller.CmdFinish, controller.CmdApprove,
}

// OverrideFreezeParam is the query parameter of POST /api/v1/rollouts that starts a
// rollout during a freeze, with the reason (the spec's overrideFreeze).
const OverrideFreezeParam = "overrideFreeze"

// FreezeRequest is the body of POST /api/v1/freeze (reason required) and of POST
// /api/v1/unfreeze (reason optional).
type FreezeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// FreezeStatus is GET /api/v1/freeze and the answer of freeze and unfreeze: whether
// anything is frozen now, the freeze set by a person and the catalog's freeze windows.
type FreezeStatus struct {
	Frozen bool `json:"frozen"`
	// Active are the freezes in force: the one set by a person first, then the catalog
	// windows containing now.
	Active []model.Freeze `json:"active,omitempty"`
	// Manual is the freeze set by a person (octoroll freeze), nil when none.
	Manual *model.Freeze `json:"manual,omitempty"`
	// Windows are the catalog's freeze windows that have not ended.
	Windows []model.FreezeWindow `json:"windows,omitempty"`
	// Summary says it in a line ("frozen by alice since …: incident 42").
	Summary string `json:"summary,omitempty"`
}

// CheckRequest is the body of POST /api/v1/services/{name}/checks: the latest result of
// a named smoke, synthetic or custom check for the service's active rollout.
type CheckRequest struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

// CheckResponse acknowledges a CheckRequest.
type CheckResponse struct {
	Service string `json:"service"`
	Name    string `json:"name"`
	Passed  bool   `json:"passed"`
}

// EventsResponse is GET /api/v1/events. Query parameters: after (cursor), limit
// (default 100, max 1000), rollout, service, kind.
type EventsResponse struct {
	Events []EventRecord `json:"events"`
	// Next is the cursor to pass as after for the following page; polling with it
	// never misses or repeats an event. An empty page means no more events for now.
	Next uint64 `json:"next"`
}

// EventRecord is one stored event with its sequence number; the event's fields are
// flattened next to seq.
type EventRecord struct {
	Seq uint64 `json:"seq"`
	controller.Event
	// WeightPercent is the event's Weight (out of TotalWeight) in percent.
	WeightPercent float64 `json:"weightPercent"`
}

// NewEventRecord is the record of event e stored at seq.
func NewEventRecord(seq uint64, e controller.Event) EventRecord {
	return EventRecord{Seq: seq, Event: e, WeightPercent: model.Percent(e.Weight)}
}

// ProxiesResponse is GET /api/v1/proxies.
type ProxiesResponse struct {
	Proxies []model.ProxyStatus `json:"proxies"`
}

// StatusResponse is GET /api/v1/status.
type StatusResponse struct {
	Version string              `json:"version"`
	Time    time.Time           `json:"time"`
	Catalog model.CatalogStatus `json:"catalog"`
	XDS     model.XDSStats      `json:"xds"`
	// Ready is empty when the server is ready, otherwise why not.
	Ready string `json:"ready,omitempty"`
	// PublishFailures are the services whose desired state is not served, by name.
	PublishFailures []PublishFailure `json:"publishFailures,omitempty"`
	// Freeze is the freeze switch and the catalog's freeze windows.
	Freeze *FreezeStatus `json:"freeze,omitempty"`
	// Replicas are the replicas and their leader, with several replicas on etcd.
	Replicas *Replicas `json:"replicas,omitempty"`
	// Auth describes the admin tokens; absent when none are configured.
	Auth *AuthStatus `json:"auth,omitempty"`
}

// AuthStatus is the state of the admin tokens: how many are in force and whether the
// last reload of their file failed (the previous tokens then stay in force).
type AuthStatus struct {
	File        string    `json:"file,omitempty"`
	Tokens      int       `json:"tokens"`
	LoadedAt    time.Time `json:"loadedAt"`
	Failing     bool      `json:"failing,omitempty"`
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// ReadsNeedToken is true when reads need a viewer token too.
	ReadsNeedToken bool `json:"readsNeedToken,omitempty"`
}

// HealthResponse is the body of /healthz and /readyz.
type HealthResponse struct {
	Status string `json:"status"` // ok, or not ready
	Error  string `json:"error,omitempty"`
}

// Replicas is the set of octoroll replicas sharing one etcd (absent with one replica
// on its bbolt file): which one leads and decides, and each one's state.
type Replicas struct {
	// Self is the id of the replica that answered; Leader the leader's id, "" while
	// none is known (an election under way, or etcd unreachable from Self).
	Self   string `json:"self"`
	Leader string `json:"leader,omitempty"`
	// Members are the live replicas (their lease is alive), by id.
	Members []Replica `json:"members"`
}

// Replica is one live replica.
type Replica struct {
	ID string `json:"id"`
	// Admin is its admin URL (where followers forward mutations); XDS its xDS address.
	Admin string `json:"admin"`
	XDS   string `json:"xds,omitempty"`
	// Leader is true for the replica that decides.
	Leader bool `json:"leader"`
	// Proxies are the proxies connected to it.
	Proxies int `json:"proxies"`
	// Updated is when it last wrote its record to etcd.
	Updated time.Time `json:"updated"`
	// Error says why it cannot take part now (etcd unreachable, its lease lost); known
	// for Self only.
	Error string `json:"error,omitempty"`
}
