package model

import (
	"fmt"
	"time"
)

// Restore is how far a rollback's known-good weights have reached the proxies. A
// rolled-back service is restoring until they are served and every proxy ACKed them;
// the last restore of a service stays on view until its next rollout starts.
type Restore struct {
	RolloutID string `json:"rolloutId"`
	// Version is the known-good version all traffic returns to.
	Version string `json:"version"`
	// Aborted is true when an operator aborted the rollout.
	Aborted      bool      `json:"aborted,omitempty"`
	RolledBackAt time.Time `json:"rolledBackAt"`
	// Published is true once the known-good weights are what the xds server serves;
	// until then NotPublished says why (the last good resources keep serving).
	Published    bool   `json:"published"`
	NotPublished string `json:"notPublished,omitempty"`
	// Subscribed proxies watch the service's route; Acked of them ACKed the known-good
	// weights; Stragglers have not.
	Subscribed int      `json:"subscribed"`
	Acked      int      `json:"acked"`
	Stragglers []string `json:"stragglers,omitempty"`
	// Done is true when every subscribed proxy (at least one, unless the service's
	// proxies are optional) ACKed the known-good weights; RestoredAt is the last one's
	// ACK (the time to restore ends there).
	Done       bool      `json:"done"`
	RestoredAt time.Time `json:"restoredAt,omitzero"`
	// NotPersisted says why the rollback is not on disk yet (it is served all the same).
	NotPersisted string `json:"notPersisted,omitempty"`
}

// Summary says in a line how far the restore is: "aborted: 12 of 12 proxies on v1",
// "aborted: publishing, 3 proxies not yet ACKed".
func (d Restore) Summary() string {
	what := "rolled back"
	if d.Aborted {
		what = "aborted"
	}
	switch {
	case !d.Published:
		return fmt.Sprintf("%s: publishing, %d proxies not yet ACKed (%s)", what, d.Subscribed, d.NotPublished)
	case d.Done && d.Subscribed == 0:
		return fmt.Sprintf("%s: %s published, no proxy subscribed", what, d.Version)
	case d.Done:
		return fmt.Sprintf("%s: %d of %d proxies on %s", what, d.Acked, d.Subscribed, d.Version)
	case d.Subscribed == 0:
		return fmt.Sprintf("%s: restoring, no proxy subscribed", what)
	default:
		return fmt.Sprintf("%s: restoring, %d of %d proxies on %s, %d not yet ACKed", what, d.Acked, d.Subscribed, d.Version, d.Subscribed-d.Acked)
	}
}
