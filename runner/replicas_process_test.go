package runner_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/internal/etcdtest"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// leaseTTL is the replicas' lease TTL in these tests.
const leaseTTL = 2 * time.Second

// leading reports whether the process says it leads (octoroll_leader on /metrics).
func (p *octorollProc) leading() bool {
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), "\noctoroll_leader 1\n")
}

// waitLeader polls until exactly one of procs leads, and returns it.
func waitLeader(t *testing.T, procs []*octorollProc, within time.Duration) *octorollProc {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var leaders []*octorollProc
		for _, p := range procs {
			if p.leading() {
				leaders = append(leaders, p)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d leaders after %s", len(leaders), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicasProcess runs three real octoroll processes on one real etcd server
// (etcd's own server, in the test process), with a real gRPC xDS client on each and one
// more behind a TCP load balancer whose first choice is the leader. A rollout started
// and promoted through followers (they forward to the leader) is followed by every
// client, and the leader's view of the route's ACKs counts the proxies of every
// replica, a straggler of a follower by name.
//
// The leader is killed with SIGKILL mid-stage: a follower leads within the lease TTL
// + 2 s, the survivors keep serving the persisted weights (no weight moves by itself)
// with no failed RPC, the balanced client reconnects to a survivor, and the rollout
// goes on from its persisted stage under the new leader. Then the new leader is killed
// mid-rollback (the rollback persisted, its restore not yet recorded): the last
// replica leads, serves the known-good version and completes the restore, counting
// every proxy left.
func TestReplicasProcess(t *testing.T) {
	bin := buildOctoroll(t)
	etcd := etcdtest.Start(t)
	v1, v2 := xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2")
	catalogFile, stateDir := processCatalog(t, v1, v2)

	var procs []*octorollProc
	for _, id := range []string{"r1", "r2", "r3"} {
		procs = append(procs, startOctoroll(t, bin, catalogFile, stateDir+"-"+id,
			"-store", "etcd", "-etcd-endpoints", etcd.Endpoint, "-lease-ttl", leaseTTL.String(), "-replica-id", id))
	}
	leader := waitLeader(t, procs, waitTimeout)
	followers := others(procs, leader)
	clients := map[*octorollProc]*xdstest.Client{}
	for i, p := range procs {
		clients[p] = xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-" + string(rune('a'+i)),
			Target: "xds:///" + svcName, RPS: 300})
	}
	lbAddrs := []string{leader.xds}
	for _, p := range followers {
		lbAddrs = append(lbAddrs, p.xds)
	}
	balanced := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: startFirstUp(t, lbAddrs...), NodeID: "client-lb",
		Target: "xds:///" + svcName, RPS: 300})
	all := []*xdstest.Client{balanced}
	for _, p := range procs {
		all = append(all, clients[p])
	}
	for _, c := range all {
		waitSplit(t, c, 0, 300)
	}
	stuck := stuckProxy(t, followers[1].xds, "stuck-proxy")

	// Every replica's status names the three replicas, the leader, and their proxies.
	leaderID := replicaStatus(t, leader).Self
	for _, p := range procs {
		deadline := time.Now().Add(waitTimeout)
		for {
			r := replicaStatus(t, p)
			proxies := 0
			for _, m := range r.Members {
				proxies += m.Proxies
			}
			if len(r.Members) == 3 && r.Leader == leaderID && proxies == 5 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: replicas %+v, want 3 led by %s with 5 proxies", p.admin, r, leaderID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if page := getBody(t, followers[0].admin+"/"); !strings.Contains(page, `id="replicas"`) || !strings.Contains(page, leaderID+" (leader)") {
		t.Errorf("the status page does not show the replicas and the leader %s", leaderID)
	}

	spec := commandOnlySpec()
	// Through a follower: forwarded to the leader.
	ro := followers[0].call(t, http.MethodPost, "/rollouts", spec)
	for _, c := range all {
		waitSplit(t, c, ro.CanaryWeight(), 300)
	}
	ro = followers[1].call(t, http.MethodPost, "/services/"+svcName+"/promote", map[string]any{"reason": "replicas test"})
	if ro.CanaryWeight() != 2500 {
		t.Fatalf("after promote: canary at %d, want 2500", ro.CanaryWeight())
	}
	for _, c := range all {
		waitSplit(t, c, 2500, 300)
	}
	want := ro.Weights()
	// The leader's ACK counts span the replicas: five proxies subscribed (one client on
	// each replica, the balanced one on the leader, the stuck one on a follower), the
	// four clients ACKed the new weights, and the straggler is named.
	d := leader.waitService(t, "ACKs of every replica", func(d api.ServiceDetail) bool {
		return d.Proxies.Subscribed == 5 && d.Proxies.Acked == 4
	})
	if !slices.Contains(d.Proxies.Stragglers, "stuck-proxy") || d.Proxies.Converged {
		t.Errorf("leader's convergence %+v: want stuck-proxy among the stragglers", d.Proxies)
	}
	t.Logf("leader's convergence across replicas: %d of %d ACKed, stragglers %v", d.Proxies.Acked, d.Proxies.Subscribed, d.Proxies.Stragglers)
	stuck()
	leader.waitService(t, "the straggler's record gone", func(d api.ServiceDetail) bool {
		return d.Proxies.Subscribed == 4 && d.Proxies.Converged
	})

	// kill -9 of the leader mid-stage.
	for _, c := range all {
		if err := c.Reset(waitTimeout); err != nil {
			t.Fatal(err)
		}
	}
	killed := time.Now()
	leader.kill()
	next := waitLeader(t, followers, leaseTTL+2*time.Second)
	t.Logf("failover: %s leads %s after the kill", next.admin, time.Since(killed).Round(time.Millisecond))
	for _, p := range followers {
		if got := p.servedRoute(t); !maps.Equal(got, want) {
			t.Errorf("%s serves %v after the failover, want the persisted %v", p.admin, got, want)
		}
	}
	for _, c := range append([]*xdstest.Client{balanced}, clients[followers[0]], clients[followers[1]]) {
		r, err := c.WaitTotal(300, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed != 0 {
			t.Errorf("client across the failover: %d failed RPCs: %v", r.Failed, r.Errors)
		}
	}
	after := next.call(t, http.MethodGet, "/rollouts/"+ro.ID, nil)
	if after.State != ro.State || after.Stage != ro.Stage || after.Generation != ro.Generation {
		t.Fatalf("after the failover: %s stage %d gen %d, before %s stage %d gen %d",
			after.State, after.Stage, after.Generation, ro.State, ro.Stage, ro.Generation)
	}
	// The rollout goes on from its persisted stage, through either survivor; the
	// balanced client reconnected to a survivor and follows too.
	ro = followers[0].call(t, http.MethodPost, "/services/"+svcName+"/promote", map[string]any{"reason": "after failover"})
	if ro.CanaryWeight() != 5000 {
		t.Fatalf("promote after the failover: canary at %d, want 5000", ro.CanaryWeight())
	}
	survivors := []*xdstest.Client{balanced, clients[followers[0]], clients[followers[1]]}
	for _, c := range survivors {
		waitSplit(t, c, 5000, 300)
	}
	next.waitService(t, "every surviving proxy counted", func(d api.ServiceDetail) bool {
		return d.Proxies.Subscribed == 3 && d.Proxies.Converged
	})

	// kill -9 of the leader mid-rollback: as soon as the rollback is in etcd.
	last := others(followers, next)[0]
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	wctx, wcancel := context.WithTimeout(context.Background(), waitTimeout)
	defer wcancel()
	persisted := cli.Watch(wctx, store.DefaultEtcdPrefix+"rollouts/"+ro.ID)
	for _, c := range survivors {
		if err := c.Reset(waitTimeout); err != nil {
			t.Fatal(err)
		}
	}
	aborted := make(chan string, 1)
	go func() {
		// The answer is the leader's, which may die before it is written.
		req, _ := http.NewRequest(http.MethodPost, last.admin+"/api/v1/services/"+svcName+"/abort", strings.NewReader(`{"reason":"mid-rollback kill"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Octoroll-Actor", "carol")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			aborted <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		aborted <- resp.Status + " " + string(b)
	}()
	var lastDoc string
	for resp := range persisted {
		if evs := resp.Events; len(evs) > 0 {
			if lastDoc = string(evs[len(evs)-1].Kv.Value); strings.Contains(lastDoc, `"state":"rolled_back"`) {
				break
			}
		}
	}
	if wctx.Err() != nil {
		t.Fatalf("the rollback was not persisted: %s; last record %s", <-aborted, lastDoc)
	}
	killed = time.Now()
	next.kill()
	if waitLeader(t, []*octorollProc{last}, leaseTTL+2*time.Second) != last {
		t.Fatal("the last replica does not lead")
	}
	t.Logf("failover mid-rollback: %s leads %s after the kill", last.admin, time.Since(killed).Round(time.Millisecond))
	survivors = []*xdstest.Client{balanced, clients[last]}
	for _, c := range survivors {
		r, err := c.WaitTotal(300, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed != 0 {
			t.Errorf("client across the failover mid-rollback: %d failed RPCs: %v", r.Failed, r.Errors)
		}
	}
	// The restore is recorded once: by the new leader when the old one died before
	// every proxy ACKed, else by the old one.
	deadline := time.Now().Add(waitTimeout)
	for {
		var evs api.EventsResponse
		last.getJSON(t, "/api/v1/events?kind="+controller.EventAcked+"&rollout="+ro.ID, &evs)
		var restored []string
		for _, ev := range evs.Events {
			if ev.State == controller.StateRolledBack {
				restored = append(restored, ev.Reason)
			}
		}
		if len(restored) > 1 {
			t.Fatalf("restore recorded %d times: %v", len(restored), restored)
		}
		if len(restored) == 1 {
			by := "the killed leader"
			if d := last.service(t, svcName); d.Restore != nil && d.Restore.RolloutID == ro.ID {
				by = "the new leader"
			}
			t.Logf("restore recorded by %s: %s", by, restored[0])
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restore was never recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The balanced client is back too, on the last replica.
	last.waitService(t, "both clients on the last replica", func(d api.ServiceDetail) bool {
		return d.Proxies.Subscribed == 2 && d.Proxies.Converged
	})
	if got := last.call(t, http.MethodGet, "/rollouts/"+ro.ID, nil); got.State != controller.StateRolledBack {
		t.Fatalf("after the failover mid-rollback: %s, want rolled_back", got.State)
	}
	if got := last.servedRoute(t); got["v1"] != 10000 {
		t.Errorf("the last replica serves %v, want v1=10000", got)
	}
	for _, c := range survivors {
		waitSplit(t, c, 0, 300)
	}
}

// replicaStatus reads the replicas from the process's GET /api/v1/status.
func replicaStatus(t *testing.T, p *octorollProc) api.Replicas {
	t.Helper()
	var st api.StatusResponse
	p.getJSON(t, "/api/v1/status", &st)
	if st.Replicas == nil {
		t.Fatalf("%s: no replicas in the status", p.admin)
	}
	return *st.Replicas
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// others are procs without p.
func others(procs []*octorollProc, p *octorollProc) []*octorollProc {
	var out []*octorollProc
	for _, q := range procs {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}

// TestReplicasEtcdFaultsProcess runs three real octoroll processes, each on a real
// etcd server through its own TCP proxy, with a real gRPC xDS client on each.
//
// The leader is partitioned from etcd (its proxy drops every byte both ways): it stops
// leading within its lease TTL, says why on /readyz, refuses commands (503
// not_leader), and keeps serving its last weights to its proxies with no failed RPC;
// another replica leads, and its decisions reach the proxies of the other replicas.
// Healed, the old leader follows the new one.
//
// Then etcd itself stops: every replica keeps serving with no failed RPC, none
// decides, every /readyz says etcd is unreachable. Restarted, a leader is elected and
// decisions resume from the persisted state, followed by every client.
func TestReplicasEtcdFaultsProcess(t *testing.T) {
	bin := buildOctoroll(t)
	etcd := etcdtest.Start(t)
	v1, v2 := xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2")
	catalogFile, stateDir := processCatalog(t, v1, v2)

	var procs []*octorollProc
	proxies := map[*octorollProc]*etcdtest.Proxy{}
	clients := map[*octorollProc]*xdstest.Client{}
	for i, id := range []string{"r1", "r2", "r3"} {
		px := etcd.Proxy(t)
		p := startOctoroll(t, bin, catalogFile, stateDir+"-"+id, "-store", "etcd", "-etcd-endpoints", px.Endpoint,
			"-lease-ttl", leaseTTL.String(), "-etcd-timeout", "1s", "-replica-id", id)
		procs, proxies[p] = append(procs, p), px
		clients[p] = xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-" + string(rune('a'+i)),
			Target: "xds:///" + svcName, RPS: 300})
	}
	leader := waitLeader(t, procs, waitTimeout)
	spec := commandOnlySpec()
	ro := leader.call(t, http.MethodPost, "/rollouts", spec)
	for _, p := range procs {
		waitSplit(t, clients[p], 500, 300)
	}

	// A partition of the leader from etcd.
	for _, p := range procs {
		if err := clients[p].Reset(waitTimeout); err != nil {
			t.Fatal(err)
		}
	}
	cut := time.Now()
	proxies[leader].Partition()
	rest := others(procs, leader)
	next := waitLeader(t, rest, leaseTTL+2*time.Second)
	t.Logf("partition: %s leads %s after the leader was cut off", next.admin, time.Since(cut).Round(time.Millisecond))
	deadline := time.Now().Add(leaseTTL + 2*time.Second)
	for leader.leading() {
		if time.Now().After(deadline) {
			t.Fatalf("the partitioned leader still leads %s after the cut", time.Since(cut))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, h := leader.readyz(t); code != http.StatusServiceUnavailable || !strings.Contains(h.Error, "etcd") {
		t.Errorf("partitioned replica's /readyz = %d %+v, want 503 naming etcd", code, h)
	}
	if code, body := leader.post(t, "/services/"+svcName+"/promote", map[string]any{"reason": "partitioned"}); code != http.StatusServiceUnavailable ||
		!strings.Contains(string(body), api.CodeNotLeader) {
		t.Errorf("promote on the partitioned replica = %d %s, want 503 not_leader", code, body)
	}
	ro = rest[0].call(t, http.MethodPost, "/services/"+svcName+"/promote", map[string]any{"reason": "new leader"})
	if ro.CanaryWeight() != 2500 {
		t.Fatalf("promote under the new leader: canary at %d, want 2500", ro.CanaryWeight())
	}
	for _, p := range rest {
		waitSplit(t, clients[p], 2500, 300)
	}
	// Cut off, the old leader serves what it served: nothing it could still decide
	// reaches its proxies, and they lose no RPC.
	if r := waitSplit(t, clients[leader], 500, 300); r.Failed != 0 {
		t.Errorf("client of the partitioned replica: %d failed RPCs", r.Failed)
	}
	proxies[leader].Heal()
	waitSplit(t, clients[leader], 2500, 300)
	if leader.leading() {
		t.Error("the healed replica leads again: the new leader's lease was alive")
	}

	// etcd stops: serving goes on, nobody decides.
	for _, p := range procs {
		if err := clients[p].Reset(waitTimeout); err != nil {
			t.Fatal(err)
		}
	}
	etcd.Stop()
	for _, p := range procs {
		deadline := time.Now().Add(leaseTTL + 2*time.Second)
		for p.leading() {
			if time.Now().After(deadline) {
				t.Fatalf("%s still leads with etcd down", p.admin)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, p := range procs {
		if code, h := p.readyz(t); code != http.StatusServiceUnavailable || !strings.Contains(h.Error, "etcd") {
			t.Errorf("%s /readyz with etcd down = %d %+v, want 503 naming etcd", p.admin, code, h)
		}
		if code, body := p.post(t, "/services/"+svcName+"/promote", map[string]any{"reason": "etcd down"}); code != http.StatusServiceUnavailable {
			t.Errorf("promote with etcd down = %d %s, want 503", code, body)
		}
	}
	for _, p := range procs {
		r, err := clients[p].WaitTotal(int64(300*leaseTTL/time.Second), waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed != 0 || !splitOKReport(r, 2500) {
			t.Errorf("client of %s with etcd down: %v, %d failed: %v", p.admin, r.OK, r.Failed, r.Errors)
		}
	}
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	leader = waitLeader(t, procs, waitTimeout)
	t.Logf("etcd restarted: %s leads %s later", leader.admin, time.Since(restarted).Round(time.Millisecond))
	for _, p := range procs {
		r, err := clients[p].WaitTotal(0, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed != 0 {
			t.Errorf("client of %s across the etcd outage: %d failed RPCs: %v", p.admin, r.Failed, r.Errors)
		}
	}
	after := leader.call(t, http.MethodGet, "/rollouts/"+ro.ID, nil)
	if after.Stage != ro.Stage || after.Generation != ro.Generation {
		t.Fatalf("after the etcd outage: stage %d gen %d, before stage %d gen %d", after.Stage, after.Generation, ro.Stage, ro.Generation)
	}
	ro = leader.call(t, http.MethodPost, "/services/"+svcName+"/promote", map[string]any{"reason": "etcd back"})
	if ro.CanaryWeight() != 5000 {
		t.Fatalf("promote after the etcd outage: canary at %d, want 5000", ro.CanaryWeight())
	}
	for _, p := range procs {
		waitSplit(t, clients[p], 5000, 300)
	}
}

// splitOKReport reports whether r's split matches w2.
func splitOKReport(r xdstest.Report, w2 uint32) bool {
	ok, _, _ := splitOK(r, w2)
	return ok
}
