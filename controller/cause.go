package controller

import (
	"errors"
	"time"
)

// Cause classifies why a decision was taken: a fixed set of snake_case values, carried
// by every event that records a decision (Event.Cause) and used as the reason label of
// octoroll's metrics. The free-text Reason says the rest.
type Cause string

// Causes.
const (
	CausePassed        Cause = "passed"         // every check passed (go, continue)
	CauseErrorRate     Cause = "error_rate"     // canary error rate above the baseline
	CauseLatency       Cause = "latency"        // canary P99 latency above the baseline
	CauseUnhealthy     Cause = "unhealthy"      // endpoints failing their health checks
	CauseAlert         Cause = "alert"          // critical alerts firing
	CauseNACK          Cause = "nack"           // proxies rejected the weights
	CauseSmoke         Cause = "smoke"          // a smoke test or smoke check failed
	CauseCheck         Cause = "check"          // a custom check failed
	CauseInconclusive  Cause = "inconclusive"   // not enough data, or not significant
	CauseSourceFailing Cause = "source_failing" // the metrics source failed repeatedly
	CauseAckTimeout    Cause = "ack_timeout"    // proxies did not ACK in time
	CauseAwaitingAck   Cause = "awaiting_ack"   // waiting for the proxies' ACK
	CauseNoProxies     Cause = "no_proxies"     // no proxy subscribed to the route
	CauseNotPublished  Cause = "not_published"  // the service's resources do not publish
	CauseMaxWindow     Cause = "max_window"     // a stage ran out of its maxWindow
	CauseOutsideWindow Cause = "outside_window" // outside the deployment window
	CauseManualPause   Cause = "manual_pause"   // paused by an operator
	CauseManualPromote Cause = "manual_promote" // promoted by an operator
	CauseManualAbort   Cause = "manual_abort"   // aborted by an operator
	CauseGate          Cause = "gate"           // a blocking webhook answered no-go, wait, or not at all
	CauseApproval      Cause = "approval"       // a stage waits for a person's approval
	CauseFrozen        Cause = "frozen"         // a freeze stops starts and advances
	CauseWarmup        Cause = "warmup"         // new weights warming up: only gross breaches judged
)

// Causes lists every Cause, for metrics that initialise their series at 0 and for tests.
var Causes = []Cause{
	CausePassed, CauseErrorRate, CauseLatency, CauseUnhealthy, CauseAlert, CauseNACK,
	CauseSmoke, CauseCheck, CauseInconclusive, CauseSourceFailing, CauseAckTimeout,
	CauseAwaitingAck, CauseNoProxies, CauseNotPublished, CauseMaxWindow, CauseOutsideWindow,
	CauseManualPause, CauseManualPromote, CauseManualAbort, CauseGate, CauseApproval, CauseFrozen,
	CauseWarmup,
}

// Decisions lists every Decision.
var Decisions = []Decision{DecisionGo, DecisionContinue, DecisionHold, DecisionPause, DecisionRollback}

// RollbackCauses are the causes a rollback can have.
var RollbackCauses = []Cause{CauseErrorRate, CauseLatency, CauseUnhealthy, CauseSmoke, CauseCheck, CauseManualAbort, CauseGate}

// Allows reports whether an operator command of kind fits r's state now: Apply would
// not refuse it with ErrInvalidState (a failing check or the deployment window, which
// Force overrides, do not count). It asks Apply itself, so the rule stays in one place.
func (r Rollout) Allows(now time.Time, kind CommandKind) bool {
	_, _, err := r.Apply(now, Command{Kind: kind, Actor: "operator", Reason: "allowed?", Force: true})
	return !errors.Is(err, ErrInvalidState) && !errors.Is(err, ErrUnknownCommand)
}
