package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/internal/etcdtest"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// routeLog is a gRPC xDS client subscribed to svcName's route that ACKs every response
// and keeps the canary weight (of v2) of each, in order.
type routeLog struct {
	mu   sync.Mutex
	seen []uint32
}

func watchRoutes(t *testing.T, xdsAddr, id string) *routeLog {
	t.Helper()
	stream, cancel := rawADS(t, xdsAddr, 0)
	l := &routeLog{}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: id}, TypeUrl: resource.RouteType,
		ResourceNames: []string{translate.RouteName(svcName)}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			if w, err := routeSplit(resp); err == nil {
				l.mu.Lock()
				l.seen = append(l.seen, w["v2"])
				l.mu.Unlock()
			}
			req.VersionInfo, req.ResponseNonce = resp.GetVersionInfo(), resp.GetNonce()
			if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
				return
			}
		}
	})
	return l
}

// weights are the canary weights received so far.
func (l *routeLog) weights() []uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uint32(nil), l.seen...)
}

// waitLast polls until the last canary weight received is w.
func (l *routeLog) waitLast(t *testing.T, w uint32) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if s := l.weights(); len(s) > 0 && s[len(s)-1] == w {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("route weights received %v, want the last at %d", l.weights(), w)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postAsync posts body to the process's API path in the background; the channel
// receives the status and body.
func postAsync(p *octorollProc, path string, body string) <-chan string {
	out := make(chan string, 1)
	go func() {
		resp, err := http.Post(p.admin+"/api/v1"+path, "application/json", strings.NewReader(body))
		if err != nil {
			out <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- resp.Status + " " + string(b)
	}()
	return out
}

// afterCut are the documents of key written after revision rev, newest first, and the
// events appended after it.
func afterCut(t *testing.T, cli *clientv3.Client, key string, rev int64) (docs, events []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for len(resp.Kvs) == 1 && resp.Kvs[0].ModRevision > rev {
		var rec store.RolloutRecord
		if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(rec.Doc))
		if resp, err = cli.Get(ctx, key, clientv3.WithRev(resp.Kvs[0].ModRevision-1)); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := cli.Get(ctx, store.DefaultEtcdPrefix+"events/", clientv3.WithPrefix(), clientv3.WithMinModRev(rev+1))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range evs.Kvs {
		events = append(events, string(kv.Value))
	}
	return docs, events
}

func etcdRev(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, store.DefaultEtcdPrefix+"meta/schema")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// notLeaderAnswer reports whether answer is 503 not_leader saying that the replica is
// fenced or lost (or may have lost) its lease.
func notLeaderAnswer(answer string) bool {
	return strings.HasPrefix(answer, "503") && strings.Contains(answer, api.CodeNotLeader) &&
		(strings.Contains(answer, "fenced") || strings.Contains(answer, "lease"))
}

// TestReplicasHeldLeaderProcess runs two real octoroll processes on a real etcd, each
// through its own TCP proxy, with a real gRPC xDS client and a route watcher on each.
// Each replica's etcd timeout (5 s) is longer than the lease TTL (2 s).
//
// The leader's etcd traffic is held (both ways, not dropped) and a promote is sent to
// it at once: it still takes itself for the leader, so the promote's write is held
// too. The other replica leads within the lease TTL and promotes twice; then the held
// bytes reach etcd, the fence refuses the old leader's write, and its answer is 503
// not_leader saying it is fenced (or that its lease ran out). Its proxies never get the
// weight it decided, neither etcd's history of the rollout nor the new leader's events
// hold anything of it, and it follows the new leader.
//
// Then the new leader's traffic is held and an abort is sent to it: its write times out
// after its lease ran out, and the rollback is not published, not even to its own
// proxies (a replica that cannot tell whether it leads publishes nothing it decided,
// rollbacks included); its answer is 503 not_leader; the other replica leads and the
// rollout is where the last persisted decision left it.
func TestReplicasHeldLeaderProcess(t *testing.T) {
	bin := buildOctoroll(t)
	etcd := etcdtest.Start(t)
	v1, v2 := xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2")
	catalogFile, stateDir := processCatalog(t, v1, v2)
	const etcdTimeout = 5 * time.Second // longer than leaseTTL

	var procs []*octorollProc
	proxies := map[*octorollProc]*etcdtest.Proxy{}
	clients := map[*octorollProc]*xdstest.Client{}
	for i, id := range []string{"h1", "h2"} {
		px := etcd.Proxy(t)
		p := startOctoroll(t, bin, catalogFile, stateDir+"-"+id, "-store", "etcd", "-etcd-endpoints", px.Endpoint,
			"-lease-ttl", leaseTTL.String(), "-etcd-timeout", etcdTimeout.String(), "-replica-id", id)
		procs, proxies[p] = append(procs, p), px
		clients[p] = xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-" + string(rune('a'+i)),
			Target: "xds:///" + svcName, RPS: 300})
	}
	leader := waitLeader(t, procs, waitTimeout)
	other := others(procs, leader)[0]
	spec := commandOnlySpec()
	ro := leader.call(t, http.MethodPost, "/rollouts", spec)
	for _, p := range procs {
		waitSplit(t, clients[p], 500, 300)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	key := store.DefaultEtcdPrefix + "rollouts/" + ro.ID

	// The leader's etcd traffic is held; a promote is sent to it at once.
	const heldPromote, heldAbort = "promote by the held leader", "abort by the held leader"
	routes := watchRoutes(t, leader.xds, "route-watch-1")
	routes.waitLast(t, 500)
	for _, p := range procs {
		if err := clients[p].Reset(waitTimeout); err != nil {
			t.Fatal(err)
		}
	}
	cutRev := etcdRev(t, cli)
	proxies[leader].PauseTx()
	proxies[leader].PauseRx()
	cut := time.Now()
	promoted := postAsync(leader, "/services/"+svcName+"/promote", `{"reason":"`+heldPromote+`"}`)
	if waitLeader(t, []*octorollProc{other}, leaseTTL+waitTimeout) != other {
		t.Fatal("the other replica does not lead")
	}
	t.Logf("held: %s leads %s after the cut", other.admin, time.Since(cut).Round(time.Millisecond))
	other.call(t, http.MethodPost, "/services/"+svcName+"/promote", map[string]any{"reason": "new leader"})
	if ro = other.call(t, http.MethodPost, "/services/"+svcName+"/promote", map[string]any{"reason": "new leader"}); ro.CanaryWeight() != 5000 {
		t.Fatalf("the new leader's promotes: canary at %d, want 5000", ro.CanaryWeight())
	}
	waitSplit(t, clients[other], 5000, 300)
	proxies[leader].UnpauseTx()
	proxies[leader].UnpauseRx()
	answer := <-promoted
	t.Logf("the held leader's promote, %s after the cut: %s", time.Since(cut).Round(time.Millisecond), answer)
	if !notLeaderAnswer(answer) {
		t.Errorf("the held leader's promote answered %s, want 503 not_leader saying it is fenced or lost its lease", answer)
	}
	// It follows the new leader; its proxies never got the weight it decided.
	routes.waitLast(t, 5000)
	waitSplit(t, clients[leader], 5000, 300)
	for _, w := range routes.weights() {
		if w != 500 && w != 5000 {
			t.Errorf("the held leader's proxies got canary weights %v: %d is no persisted decision", routes.weights(), w)
		}
	}
	// The rollout's writes after the cut, newest first, are the new leader's: a late
	// write of the held leader would go back a generation.
	docs, events := afterCut(t, cli, key, cutRev)
	newer := ro.Generation
	for i, raw := range docs {
		var d controller.Rollout
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			t.Fatal(err)
		}
		switch {
		case i == 0 && (d.Generation != ro.Generation || d.CanaryWeight() != 5000):
			t.Errorf("the rollout's last write: generation %d at %d, want the new leader's %d at 5000", d.Generation, d.CanaryWeight(), ro.Generation)
		case d.Generation > newer:
			t.Errorf("a write after the cut went back from generation %d to %d", d.Generation, newer)
		}
		newer = d.Generation
	}
	if len(docs) < 2 {
		t.Errorf("%d writes of the rollout after the cut, want the new leader's two promotes at least", len(docs))
	}
	for _, ev := range events {
		if strings.Contains(ev, heldPromote) {
			t.Errorf("etcd holds an event of the held leader's promote: %s", ev)
		}
	}
	var evs api.EventsResponse
	other.getJSON(t, "/api/v1/events?rollout="+ro.ID, &evs)
	for _, ev := range evs.Events {
		if ev.Reason == heldPromote {
			t.Errorf("the new leader's events hold the held leader's promote: %+v", ev)
		}
	}
	for _, p := range procs {
		r, err := clients[p].WaitTotal(0, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed != 0 {
			t.Errorf("client of %s: %d failed RPCs: %v", p.admin, r.Failed, r.Errors)
		}
	}

	// The new leader's traffic is held; an abort is sent to it at once. Its write times
	// out after its lease ran out: the rollback is published nowhere.
	routes = watchRoutes(t, other.xds, "route-watch-2")
	routes.waitLast(t, 5000)
	cutRev = etcdRev(t, cli)
	proxies[other].PauseTx()
	proxies[other].PauseRx()
	cut = time.Now()
	aborted := postAsync(other, "/services/"+svcName+"/abort", `{"reason":"`+heldAbort+`"}`)
	if waitLeader(t, []*octorollProc{leader}, leaseTTL+waitTimeout) != leader {
		t.Fatal("the first replica does not lead again")
	}
	answer = <-aborted
	t.Logf("the held leader's abort, %s after the cut: %s", time.Since(cut).Round(time.Millisecond), answer)
	if !notLeaderAnswer(answer) {
		t.Errorf("the held leader's abort answered %s, want 503 not_leader saying it lost its lease", answer)
	}
	if got := other.servedRoute(t); got["v2"] != 5000 {
		t.Errorf("the held replica serves %v after its abort failed, want the persisted v2=5000", got)
	}
	proxies[other].UnpauseTx()
	proxies[other].UnpauseRx()
	deadline := time.Now().Add(waitTimeout)
	for code, _ := other.readyz(t); code != http.StatusOK; code, _ = other.readyz(t) {
		if time.Now().After(deadline) {
			t.Fatalf("the healed replica is not ready after %s", waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := leader.call(t, http.MethodGet, "/rollouts/"+ro.ID, nil); got.State.Terminal() || got.CanaryWeight() != 5000 {
		t.Errorf("after the held abort: %s at %d, want the rollout active at 5000", got.State, got.CanaryWeight())
	}
	if w := routes.weights(); len(w) != 1 {
		t.Errorf("the held replica's proxies got canary weights %v, want only the persisted 5000", w)
	}
	docs, events = afterCut(t, cli, key, cutRev)
	for _, raw := range docs {
		var d controller.Rollout
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			t.Fatal(err)
		}
		if d.State.Terminal() || d.Generation != ro.Generation {
			t.Errorf("a write of the rollout after the second cut: %s generation %d, want it active at generation %d", d.State, d.Generation, ro.Generation)
		}
	}
	for _, ev := range events {
		if strings.Contains(ev, heldAbort) {
			t.Errorf("etcd holds an event of the held leader's abort: %s", ev)
		}
	}
	if r := waitSplit(t, clients[other], 5000, 300); r.Failed != 0 {
		t.Errorf("client of the held replica: %d failed RPCs", r.Failed)
	}
}
