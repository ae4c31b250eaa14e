package controller

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/model"
)

// clock is a test clock the restore tests advance by hand.
type clock struct{ now time.Time }

func (c *clock) advance(d time.Duration) time.Time { c.now = c.now.Add(d); return c.now }

// aborted is a rollout an operator aborted at `at` (its ACK timeout is the default 2m).
func aborted(t *testing.T, at time.Time) Rollout {
	t.Helper()
	r, _, err := acked(t, testSpec(Minor)).Apply(at, Command{Kind: CmdAbort, Actor: "bob", Reason: "errors"})
	if err != nil || r.State != StateRolledBack || !r.EndedAt.Equal(at) {
		t.Fatalf("abort: %v, state %s ended %s", err, r.State, r.EndedAt)
	}
	return r
}

func acks(route string, subscribed, acked int, at time.Time, stragglers ...string) RestoreObservation {
	return RestoreObservation{Acks: RouteAcks{RouteVersion: route, Subscribed: subscribed, Acked: acked,
		AckedAt: at, Stragglers: stragglers}}
}

// TestRestoreEndsAtLastProxyAck: a restore is published, then restoring while proxies
// ACK, and confirmed at the last proxy's ACK instant (not the tick that saw it), with
// the time to restore in the event; its status stays on view, unchanged by later ticks.
func TestRestoreEndsAtLastProxyAck(t *testing.T) {
	c := &clock{now: t0.Add(time.Minute)}
	ro := aborted(t, c.now)
	w := NewRestore(c.now, ro)
	if st := w.Status(RestoreObservation{NotPublished: "dns: no such host", Acks: RouteAcks{RouteVersion: "r1", Subscribed: 3}}); st.Summary() != "aborted: publishing, 3 proxies not yet ACKed (dns: no such host)" {
		t.Fatalf("unpublished: %q", st.Summary())
	}
	if st := w.Status(RestoreObservation{}); st.NotPublished != "not served yet" {
		t.Fatalf("unpublished without a reason: %q", st.NotPublished)
	}
	w = w.Served(c.advance(20*time.Millisecond), "r2")
	next, evs := w.Step(c.now, acks("r2", 3, 1, c.now, "b", "c"))
	if len(evs) != 0 || !next.Watching() {
		t.Fatalf("partly ACKed: events %v, watching %v", evs, next.Watching())
	}
	if st := next.Status(acks("r2", 3, 1, c.now, "b", "c")); st.Done || st.Summary() != "aborted: restoring, 1 of 3 proxies on v1, 2 not yet ACKed" || len(st.Stragglers) != 2 {
		t.Fatalf("partly ACKed: %+v %q", st, st.Summary())
	}
	lastAck := ro.EndedAt.Add(1234 * time.Millisecond)
	next, evs = next.Step(c.advance(time.Second), acks("r2", 3, 3, lastAck))
	if len(evs) != 1 || evs[0].Kind != EventAcked || !evs[0].Time.Equal(lastAck) || next.Watching() || !next.Confirmed {
		t.Fatalf("all ACKed: events %+v, restore %+v", evs, next)
	}
	ev := evs[0]
	if ev.RolloutID != ro.ID || ev.Service != ro.Service || ev.State != StateRolledBack || ev.Generation != ro.Generation || ev.Weight != 0 {
		t.Errorf("event %+v, want the rolled-back rollout's", ev)
	}
	if ev.Reason != "3 of 3 proxies serve 100% v1, 1.23s after the rollback" {
		t.Errorf("event reason %q", ev.Reason)
	}
	want := model.Restore{RolloutID: ro.ID, Version: "v1", Aborted: true, RolledBackAt: ro.EndedAt, Published: true,
		Subscribed: 3, Acked: 3, Done: true, RestoredAt: lastAck}
	// Later ticks see other counts (a proxy left) or a store still failing: the
	// confirmed restore keeps its result and says only what is not persisted yet.
	later := acks("r2", 2, 2, lastAck)
	later.NotPersisted = "disk full"
	again, evs := next.Step(c.advance(time.Minute), later)
	want.NotPersisted = "disk full"
	if st := again.Status(later); len(evs) != 0 || !reflect.DeepEqual(st, want) {
		t.Fatalf("after the confirmation: events %v, status %+v, want %+v", evs, st, want)
	}
	if got := again.Status(later).Summary(); got != "aborted: 3 of 3 proxies on v1" {
		t.Errorf("summary %q", got)
	}
}

// TestRestoreLateOnce: past the ACK timeout an unconfirmed restore is recorded once, as
// a hold that names the stragglers, and is still confirmed when the ACK comes.
func TestRestoreLateOnce(t *testing.T) {
	c := &clock{now: t0.Add(time.Minute)}
	ro := aborted(t, c.now)
	w := NewRestore(c.now, ro).Served(c.now, "r2")
	obs := acks("r2", 2, 1, c.now, "b")
	w, evs := w.Step(c.advance(DefaultAckTimeout-time.Second), obs)
	if len(evs) != 0 {
		t.Fatalf("before the deadline: %v", evs)
	}
	w, evs = w.Step(c.advance(time.Second), obs)
	if len(evs) != 1 || evs[0].Kind != EventHold || !evs[0].Time.Equal(c.now) || !reflect.DeepEqual(evs[0].Stragglers, []string{"b"}) {
		t.Fatalf("at the deadline: %+v", evs)
	}
	if want := "restore not confirmed 2m0s after the rollback, still waiting: aborted: restoring, 1 of 2 proxies on v1, 1 not yet ACKed"; evs[0].Reason != want {
		t.Errorf("late reason %q, want %q", evs[0].Reason, want)
	}
	if w, evs = w.Step(c.advance(time.Minute), obs); len(evs) != 0 || !w.Watching() {
		t.Fatalf("late again: %v", evs)
	}
	ackAt := c.advance(10 * time.Second)
	if _, evs = w.Step(c.advance(time.Second), acks("r2", 2, 2, ackAt)); len(evs) != 1 || evs[0].Kind != EventAcked || !evs[0].Time.Equal(ackAt) ||
		!strings.Contains(evs[0].Reason, "3m10s after the rollback") {
		t.Fatalf("late ACK: %+v", evs)
	}
}

// TestRestoreNoProxy: zero proxies are not every proxy: the restore waits, unless the
// service's proxies are optional, when it is restored at the publication.
func TestRestoreNoProxy(t *testing.T) {
	c := &clock{now: t0.Add(time.Minute)}
	ro := aborted(t, c.now)
	w := NewRestore(c.now, ro)
	publishedAt := c.advance(300 * time.Millisecond)
	w = w.Served(publishedAt, "r2")
	obs := acks("r2", 0, 0, time.Time{})
	next, evs := w.Step(c.advance(time.Second), obs)
	if st := next.Status(obs); len(evs) != 0 || st.Done || st.Summary() != "aborted: restoring, no proxy subscribed" {
		t.Fatalf("no proxy: events %v, %q", evs, st.Summary())
	}
	obs.ProxiesOptional = true
	next, evs = w.Step(c.now, obs)
	if len(evs) != 1 || evs[0].Kind != EventAcked || !evs[0].Time.Equal(publishedAt) || next.Result.Summary() != "aborted: v1 published, no proxy subscribed" {
		t.Fatalf("no proxy, optional: events %+v, %q", evs, next.Result.Summary())
	}
}

// TestRestoreRouteVersions: a republication of the known-good weights (a catalog
// change) moves the route version the restore waits for; another route version served
// (a new rollout's) supersedes the restore, silently; before the known-good weights are
// served, no route version counts.
func TestRestoreRouteVersions(t *testing.T) {
	c := &clock{now: t0.Add(time.Minute)}
	ro := aborted(t, c.now)
	w := NewRestore(c.now, ro)
	if next, evs := w.Step(c.advance(time.Second), acks("r1", 1, 1, c.now)); len(evs) != 0 || !next.Watching() {
		t.Fatalf("unpublished, old route ACKed: events %v, restore %+v", evs, next)
	}
	w = w.Served(c.now, "r2")
	w = w.Served(c.advance(time.Second), "r3")
	if !w.PublishedAt.Equal(ro.EndedAt.Add(time.Second)) || w.RouteVersion != "r3" {
		t.Fatalf("republished: published at %s in %s, want the first publication and the new route", w.PublishedAt, w.RouteVersion)
	}
	if _, evs := w.Step(c.now, acks("r3", 1, 1, c.now)); len(evs) != 1 || evs[0].Kind != EventAcked {
		t.Fatalf("republished route ACKed: %v", evs)
	}
	next, evs := w.Step(c.now, acks("r4", 1, 1, c.now))
	if len(evs) != 0 || !next.Superseded || next.Watching() {
		t.Fatalf("another route served: events %v, restore %+v", evs, next)
	}
	if again := next.Served(c.now, "r5"); !reflect.DeepEqual(again, next) {
		t.Errorf("a superseded restore took a publication: %+v", again)
	}
}

// TestRestoreNACKAndEarlyACK: a proxy's rejection of the known-good route is no
// restore; an ACK instant before the rollback (the weights were already served) counts
// from the rollback.
func TestRestoreNACKAndEarlyACK(t *testing.T) {
	c := &clock{now: t0.Add(time.Minute)}
	ro := aborted(t, c.now)
	w := NewRestore(c.now, ro).Served(c.now, "r2")
	obs := acks("r2", 2, 2, c.now)
	obs.Acks.NACK = "b rejected route r2: bad"
	if _, evs := w.Step(c.advance(time.Second), obs); len(evs) != 0 {
		t.Fatalf("NACK: %v", evs)
	}
	next, evs := w.Step(c.now, acks("r2", 1, 1, t0.Add(-time.Second)))
	if len(evs) != 1 || !evs[0].Time.Equal(ro.EndedAt) || !next.Result.RestoredAt.Equal(ro.EndedAt) {
		t.Fatalf("early ACK: %+v", evs)
	}
}

// TestRouteAcksReached is the one rule for "every proxy has the weights", for a
// rollout's generation as for a restore.
func TestRouteAcksReached(t *testing.T) {
	pub, ack := t0, t0.Add(time.Second)
	for _, tc := range []struct {
		name     string
		a        RouteAcks
		optional bool
		at       time.Time
		ok       bool
	}{
		{"all", RouteAcks{Subscribed: 2, Acked: 2, AckedAt: ack}, false, ack, true},
		{"some", RouteAcks{Subscribed: 2, Acked: 1, AckedAt: ack}, false, time.Time{}, false},
		{"nack", RouteAcks{Subscribed: 2, Acked: 2, AckedAt: ack, NACK: "x"}, false, time.Time{}, false},
		{"none", RouteAcks{}, false, time.Time{}, false},
		{"none optional", RouteAcks{}, true, pub, true},
		{"all optional", RouteAcks{Subscribed: 1, Acked: 1, AckedAt: ack}, true, ack, true},
	} {
		if at, ok := tc.a.Reached(tc.optional, pub); ok != tc.ok || !at.Equal(tc.at) {
			t.Errorf("%s: %s %v, want %s %v", tc.name, at, ok, tc.at, tc.ok)
		}
	}
}

// TestServiceStateAfter: after a rollout the known-good version is its canary if it
// completed, its stable version otherwise; a canary with its own endpoints is recorded
// (replacing an earlier one of that name); one that does not validate never is, nor
// made known-good.
func TestServiceStateAfter(t *testing.T) {
	completed := func(canary Canary) Rollout {
		spec := testSpec(Minor)
		spec.Canary = canary
		r := Rollout{ID: "r1", Service: "checkout", Stable: "v1", Canary: canary.Version, Spec: spec, State: StateCompleted}
		return r
	}
	rolledBack := func(canary Canary) Rollout {
		r := completed(canary)
		r.State = StateRolledBack
		return r
	}
	old := model.Version{Name: "v3", Endpoints: []model.Endpoint{{Host: "10.0.3.9", Port: 80}}}
	st := ServiceState{Stable: "v0", Versions: []model.Version{old}}
	v3 := Canary{Version: "v3", Endpoints: []string{"10.0.3.1:8080", "10.0.3.2:8080"}, Zone: "z1"}
	wantV3 := model.Version{Name: "v3", Zone: "z1", Endpoints: []model.Endpoint{{Host: "10.0.3.1", Port: 8080}, {Host: "10.0.3.2", Port: 8080}}}
	bad := Canary{Version: "v|3", Endpoints: []string{"10.0.3.1:8080"}}
	for _, tc := range []struct {
		name string
		ro   Rollout
		want ServiceState
	}{
		{"completed, catalog canary", completed(Canary{Version: "v2"}), ServiceState{Stable: "v2", Versions: []model.Version{old}}},
		{"rolled back, catalog canary", rolledBack(Canary{Version: "v2"}), ServiceState{Stable: "v1", Versions: []model.Version{old}}},
		{"completed, own endpoints", completed(v3), ServiceState{Stable: "v3", Versions: []model.Version{wantV3}}},
		{"rolled back, own endpoints", rolledBack(v3), ServiceState{Stable: "v1", Versions: []model.Version{wantV3}}},
		{"completed, invalid canary", completed(bad), st},
		{"rolled back, invalid canary", rolledBack(bad), ServiceState{Stable: "v1", Versions: []model.Version{old}}},
	} {
		if got := st.After(tc.ro); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if !reflect.DeepEqual(st.Versions, []model.Version{old}) {
		t.Errorf("After changed its receiver's versions: %+v", st.Versions)
	}
}

// TestServiceStateTranslatable: a recorded version that does not validate is left out,
// with the known-good version naming it; the persisted form keeps its field names.
func TestServiceStateTranslatable(t *testing.T) {
	good := model.Version{Name: "v2", Endpoints: []model.Endpoint{{Host: "10.0.2.1", Port: 80}}}
	bad := model.Version{Name: "v|3", Endpoints: []model.Endpoint{{Host: "10.0.3.1", Port: 80}}}
	got, left := ServiceState{Stable: "v|3", Versions: []model.Version{bad, good}}.Translatable()
	if !reflect.DeepEqual(got, ServiceState{Versions: []model.Version{good}}) || len(left) != 1 || left[0].Version != "v|3" || left[0].Err == nil {
		t.Fatalf("got %+v, left out %+v", got, left)
	}
	doc, err := json.Marshal(ServiceState{Stable: "v2", Versions: []model.Version{good}})
	if err != nil || !strings.HasPrefix(string(doc), `{"stable":"v2","versions":[{"name":"v2"`) {
		t.Fatalf("persisted form %s %v", doc, err)
	}
}
