package model

import "slices"

// Rollout event kinds, shared by the rollout engine, the notifier and the sink filters
// of the catalog (Sink.Events).
const (
	EventStarted          = "started"
	EventStageAdvanced    = "stage_advanced"
	EventPaused           = "paused"
	EventResumed          = "resumed"
	EventRolledBack       = "rolled_back"
	EventCompleted        = "completed"
	EventMonitoringClosed = "monitoring_closed"
	// EventPublishFailed: a service's desired state could not be published (its DNS
	// names do not resolve, its resources do not translate); its last good resources
	// keep serving. Sent once per distinct failure.
	EventPublishFailed = "publish_failed"
	// EventPublished: a service whose publication failed is served again.
	EventPublished = "published"
	// EventFrozen: a person froze every rollout start and advance (octoroll freeze),
	// or changed the freeze's reason; EventUnfrozen: the freeze was lifted. Neither
	// belongs to a rollout.
	EventFrozen   = "frozen"
	EventUnfrozen = "unfrozen"
)

// EventNames returns every rollout event name, in lifecycle order. The slice is a
// fresh copy.
func EventNames() []string {
	return []string{
		EventStarted, EventStageAdvanced, EventPaused, EventResumed,
		EventRolledBack, EventCompleted, EventMonitoringClosed,
		EventPublishFailed, EventPublished, EventFrozen, EventUnfrozen,
	}
}

// IsEventName reports whether name is one of EventNames.
func IsEventName(name string) bool {
	return slices.Contains(EventNames(), name)
}
