package replica

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/internal/etcdtest"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/notify"
	"github.com/octoacme/octoroll/store"
)

// receiver is a webhook receiver that records the event id and the body of every
// request.
type receiver struct {
	mu     sync.Mutex
	ids    []string
	bodies [][]byte
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.ids = append(rc.ids, r.Header.Get(notify.EventIDHeader))
	rc.bodies = append(rc.bodies, body)
	rc.mu.Unlock()
}

func (rc *receiver) body(i int) []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.bodies[i]
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.ids...)
}

// notifyingMember is a replica whose real notifier posts to url.
func notifyingMember(t *testing.T, etcd *etcdtest.Server, prefix, id, url string) (*member, func()) {
	t.Helper()
	st := openStore(t, etcd.Endpoint, prefix)
	rep := New(Options{Store: st, Self: Info{ID: id}, TTL: time.Second, Interval: 100 * time.Millisecond,
		Load: func(context.Context) error { return nil }})
	n := notify.New(zap.NewNop(), []catalog.Sink{{Name: "hook", URL: url, Format: "json"}}, notify.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = rep.Run(ctx) })
	wg.Go(func() { _ = n.Run(ctx) })
	wg.Go(func() { _ = rep.RunNotifications(ctx, n) })
	stop := sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stop)
	return &member{rep: rep, st: st}, stop
}

// appendEvent records a lifecycle event of rollout r1 through m's store.
func appendEvent(t *testing.T, m *member, kind string, stage int) uint64 {
	t.Helper()
	ev := controller.Event{Time: time.Now().UTC(), RolloutID: "r1", Service: "svc", Kind: kind, Stage: stage}
	data, _ := json.Marshal(ev)
	seq, err := m.st.PutRollout("r1", "svc", true, []byte(`{"id":"r1","service":"svc"}`),
		[]store.Event{{Time: ev.Time, RolloutID: "r1", Service: "svc", Kind: kind, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// Notifications are sent by the leader only, each with a stable event id, and once
// across a failover: the new leader resumes after the last event its predecessor
// recorded as handed to the notifier.
func TestNotificationsOnceAcrossFailover(t *testing.T) {
	etcd := etcdtest.Start(t)
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	const prefix = "/notify/"
	a, stopA := notifyingMember(t, etcd, prefix, "a", hook.URL)
	waitFor(t, "a leads", a.rep.Leading)
	b, _ := notifyingMember(t, etcd, prefix, "b", hook.URL)

	appendEvent(t, a, model.EventStarted, 0)
	appendEvent(t, a, model.EventPaused, 1)
	last := appendEvent(t, a, model.EventResumed, 1)
	waitFor(t, "three notifications", func() bool { return len(rc.got()) == 3 })
	waitFor(t, "the cursor recorded", func() bool {
		resp, err := b.st.Client().Get(context.Background(), prefix+"cluster/"+notifiedKey)
		return err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == strconv.FormatUint(last, 10)
	})

	stopA()
	waitFor(t, "b leads", b.rep.Leading)
	appendEvent(t, b, model.EventCompleted, 2)
	waitFor(t, "the new leader's notification", func() bool { return len(rc.got()) >= 4 })
	// A sink delivers in order: a resend of the first three would have come before.
	ids := rc.got()
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			t.Errorf("event id %q empty or repeated: %v", id, ids)
		}
		seen[id] = true
	}
	if len(ids) != 4 {
		t.Errorf("%d notifications, want 4 (each event once): %v", len(ids), ids)
	}
}

// putRollout records rollout r (and event kind, when set, with the rollout as written)
// through m's store, as the runner does.
func putRollout(t *testing.T, m *member, r controller.Rollout, kind string) {
	t.Helper()
	doc, _ := json.Marshal(r)
	var evs []store.Event
	if kind != "" {
		ev := controller.Event{Time: time.Now().UTC(), RolloutID: r.ID, Service: r.Service, Kind: kind, State: r.State, Reason: r.Reason}
		data, _ := json.Marshal(ev)
		evs = append(evs, store.Event{Time: ev.Time, RolloutID: r.ID, Service: r.Service, Kind: kind, Data: data, Rollout: doc})
	}
	if _, err := m.st.PutRollout(r.ID, r.Service, !r.State.Terminal(), doc, evs); err != nil {
		t.Fatal(err)
	}
}

// A notification the next leader sends of an event its predecessor recorded but did
// not notify describes the rollout as it was at the event, not as it is when sent.
func TestNotificationReplayedAsAtTheEvent(t *testing.T) {
	etcd := etcdtest.Start(t)
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	const prefix = "/replay/"
	a, stopA := notifyingMember(t, etcd, prefix, "a", hook.URL)
	waitFor(t, "a leads", a.rep.Leading)
	ro := controller.Rollout{ID: "r1", Service: "svc", Canary: "v2", Stable: "v1", State: controller.StateProgressing, Reason: "started"}
	putRollout(t, a, ro, model.EventStarted)
	waitFor(t, "the start notified", func() bool { return len(rc.got()) == 1 })

	// The next leader records a rollback and changes the rollout after it, and is gone
	// before notifying either (it has no notifier).
	quiet := startMember(t, etcd, prefix, "quiet")
	stopA()
	waitFor(t, "quiet leads", quiet.rep.Leading)
	endedAt := time.Date(2025, 3, 3, 10, 9, 0, 0, time.UTC)
	ro.State, ro.Reason, ro.EndedAt = controller.StateRolledBack, "error rate 4pp over 1pp", endedAt
	ro.Progress.Last = &controller.Numbers{CanaryRequests: 1000, CanaryErrors: 40}
	putRollout(t, quiet, ro, model.EventRolledBack)
	ro.Progress.Last = &controller.Numbers{CanaryRequests: 9000, CanaryErrors: 41}
	putRollout(t, quiet, ro, "")

	b, _ := notifyingMember(t, etcd, prefix, "b", hook.URL)
	quiet.proxy.Partition()
	waitFor(t, "b leads", b.rep.Leading)
	waitFor(t, "the rollback notified", func() bool { return len(rc.got()) == 2 })
	var p notify.Payload
	if err := json.Unmarshal(rc.body(1), &p); err != nil {
		t.Fatal(err)
	}
	if p.Event != model.EventRolledBack || p.Incident == nil {
		t.Fatalf("second notification %s, incident %v: want the rollback's", p.Event, p.Incident)
	}
	if n := p.Incident.Numbers; p.Incident.Trigger != "error rate 4pp over 1pp" || n == nil || n.CanaryRequests != 1000 {
		t.Errorf("replayed rollback: trigger %q, numbers %+v; want the rollout as at the event (1000 canary requests)", p.Incident.Trigger, n)
	}
}
