package replica

import (
	"context"
	"encoding/json"
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

// receiver is a webhook receiver that records the event id of every request.
type receiver struct {
	mu  sync.Mutex
	ids []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.ids = append(rc.ids, r.Header.Get(notify.EventIDHeader))
	rc.mu.Unlock()
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
