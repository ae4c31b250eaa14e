package controller

import (
	"fmt"
	"time"

	"github.com/octoacme/octoroll/model"
)

// RouteAcks is what the xds layer reports of the route a service serves now: its
// version and how far it reached the proxies subscribed to it.
type RouteAcks struct {
	// RouteVersion is the served route version the counts refer to (opaque).
	RouteVersion string
	// Subscribed proxies watch the route; Acked of them ACKed RouteVersion, the last
	// at AckedAt (as the xds layer saw it); Stragglers have not.
	Subscribed int
	Acked      int
	AckedAt    time.Time
	Stragglers []string
	// NACK is a subscribed proxy's rejection of RouteVersion, if any.
	NACK string
}

// Reached reports whether weights published at publishedAt reached every proxy, and
// when. They did when every subscribed proxy ACKed them and none rejected them, at the
// last one's ACK; zero proxies are not every proxy, unless the service's proxies are
// optional: then none subscribed is reached at the publication.
func (a RouteAcks) Reached(optional bool, publishedAt time.Time) (time.Time, bool) {
	switch {
	case a.NACK != "":
		return time.Time{}, false
	case a.Subscribed > 0 && a.Acked == a.Subscribed:
		return a.AckedAt, true
	case a.Subscribed == 0 && optional:
		return publishedAt, true
	}
	return time.Time{}, false
}

// Restore is a rolled-back service's way back to its known-good weights. The service
// is restoring until they are served and every proxy ACKed them; the last proxy's ACK
// ends the time to restore. Past the rollout's ACK timeout the restore is recorded as
// not confirmed, once, and watched on. A publication of other weights (a new rollout)
// supersedes it. A confirmed restore stays on view until the service's next rollout.
//
// It is plain data the loop keeps per service: NewRestore at the rollback, Served on
// every publication of the known-good weights, Step on every tick with what the xds
// layer reports, Status for the API.
type Restore struct {
	RolloutID string
	Service   string
	// Version is the known-good version all traffic returns to.
	Version string
	Aborted bool
	// State, Stage and Generation are the rolled-back rollout's, for its events.
	State      State
	Stage      int
	Generation uint64
	// RolledBackAt is when the rollout rolled back (the time to restore starts there).
	RolledBackAt time.Time
	// Deadline is when the restore, not yet confirmed, is recorded as late.
	Deadline time.Time
	// Published is true once the known-good weights are served, since PublishedAt, in
	// route version RouteVersion.
	Published    bool
	PublishedAt  time.Time
	RouteVersion string
	// Late is set once the deadline passed (and was recorded).
	Late bool
	// Confirmed is set when every proxy ACKed the known-good weights; Result is the
	// restore's status then. Superseded is set when other weights were published
	// before. Either ends the watch.
	Confirmed  bool
	Result     model.Restore
	Superseded bool
}

// RestoreObservation is what the loop gathers for a restore on one tick.
type RestoreObservation struct {
	// NotPublished says why the known-good weights are not served, while they are not.
	NotPublished string
	// Acks is the service's served route and its ACKs.
	Acks RouteAcks
	// ProxiesOptional is the service's: with it, no proxy subscribed is restored.
	ProxiesOptional bool
	// NotPersisted says why the rollback is not on disk yet (it is served all the same).
	NotPersisted string
}

// NewRestore starts the restore of ro, which rolled back (or was aborted) at
// ro.EndedAt; now is when the loop starts watching it (at the rollback, or at a
// restart). Its known-good weights are not served yet: Served says when they are.
func NewRestore(now time.Time, ro Rollout) Restore {
	return Restore{
		RolloutID: ro.ID, Service: ro.Service, Version: ro.KnownGood(), Aborted: ro.Aborted,
		State: ro.State, Stage: ro.Stage, Generation: ro.Generation,
		RolledBackAt: ro.EndedAt,
		Deadline:     now.Add(max(ro.Plan.AckTimeout.D(), time.Second)),
	}
}

// Watching reports whether the restore still waits for the proxies.
func (w Restore) Watching() bool { return !w.Confirmed && !w.Superseded }

// Served records that the known-good weights are served at now, in route version
// routeVersion (a catalog change republishes them in a new one); they are published
// since the first time.
func (w Restore) Served(now time.Time, routeVersion string) Restore {
	if !w.Watching() {
		return w
	}
	w.RouteVersion = routeVersion
	if !w.Published {
		w.Published, w.PublishedAt = true, now
	}
	return w
}

// Status measures the restore against obs: how far the known-good weights reached the
// proxies. A restore that is over keeps the status it ended with.
func (w Restore) Status(obs RestoreObservation) model.Restore {
	if w.Confirmed {
		out := w.Result
		out.NotPersisted = obs.NotPersisted
		return out
	}
	out := model.Restore{RolloutID: w.RolloutID, Version: w.Version, Aborted: w.Aborted,
		RolledBackAt: w.RolledBackAt, Published: w.Published, NotPersisted: obs.NotPersisted}
	if !w.Published {
		out.NotPublished = obs.NotPublished
		if out.NotPublished == "" {
			out.NotPublished = "not served yet"
		}
	}
	out.Subscribed = obs.Acks.Subscribed
	if w.Published && obs.Acks.RouteVersion == w.RouteVersion {
		out.Acked, out.Stragglers = obs.Acks.Acked, obs.Acks.Stragglers
		if at, ok := obs.Acks.Reached(obs.ProxiesOptional, w.PublishedAt); ok {
			if at.Before(w.RolledBackAt) {
				at = w.RolledBackAt // an ACK is never before the rollback it confirms
			}
			out.Done, out.RestoredAt = true, at
		}
	}
	return out
}

// Step measures the restore at now against obs. When every proxy ACKed the known-good
// weights it is confirmed, with an acked event at the last proxy's ACK that says the
// time to restore; past the deadline, once, a hold event says it is not confirmed yet.
// Once other weights are published (obs reports another route version) it is
// superseded, without an event.
func (w Restore) Step(now time.Time, obs RestoreObservation) (Restore, []Event) {
	if !w.Watching() {
		return w, nil
	}
	if w.Published && obs.Acks.RouteVersion != w.RouteVersion {
		w.Superseded = true
		return w, nil
	}
	st := w.Status(obs)
	ev := Event{Time: now, RolloutID: w.RolloutID, Service: w.Service,
		State: w.State, Stage: w.Stage, Weight: 0, Generation: w.Generation}
	switch {
	case st.Done:
		ev.Kind, ev.Time = EventAcked, st.RestoredAt
		ev.Reason = fmt.Sprintf("%d of %d proxies serve 100%% %s, %s after the rollback",
			st.Acked, st.Subscribed, st.Version, model.FormatDuration(st.RestoredAt.Sub(st.RolledBackAt)))
		w.Confirmed, w.Result = true, st
		w.Result.NotPersisted = ""
	case !w.Late && !now.Before(w.Deadline):
		w.Late = true
		ev.Kind = EventHold
		ev.Reason = fmt.Sprintf("restore not confirmed %s after the rollback, still waiting: %s",
			model.FormatDuration(now.Sub(st.RolledBackAt)), st.Summary())
		ev.Stragglers = st.Stragglers
	default:
		return w, nil
	}
	return w, []Event{ev}
}
