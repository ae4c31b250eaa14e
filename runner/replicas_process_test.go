package runner_test

import (
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/internal/etcdtest"
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
// (etcd's own server, in the test process), with a real gRPC xDS client on each. A
// rollout started and promoted through followers (they forward to the leader) is
// followed by every client. The leader is killed with SIGKILL mid-stage: a follower
// leads within the lease TTL + 2 s, the survivors keep serving the persisted weights
// (no weight moves by itself) with no failed RPC, and the rollout goes on from its
// persisted stage under the new leader.
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
	var followers []*octorollProc
	for _, p := range procs {
		if p != leader {
			followers = append(followers, p)
		}
	}
	clients := map[*octorollProc]*xdstest.Client{}
	for i, p := range procs {
		clients[p] = xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-" + string(rune('a'+i)),
			Target: "xds:///" + svcName, RPS: 300})
	}
	for _, p := range procs {
		waitSplit(t, clients[p], 0, 300)
	}

	spec := crashSpec()
	for i := range spec.Stages {
		spec.Stages[i].MinWindow = controller.Duration(time.Hour) // moves only by command
	}
	spec.CheckInterval = 0
	spec.SourceFailureLimit = 1000
	// Through a follower: forwarded to the leader.
	ro := followers[0].call(t, http.MethodPost, "/rollouts", spec)
	for _, p := range procs {
		waitSplit(t, clients[p], ro.CanaryWeight(), 300)
	}
	ro = followers[1].call(t, http.MethodPost, "/services/"+svcName+"/promote", map[string]any{"reason": "replicas test"})
	if ro.CanaryWeight() != 2500 {
		t.Fatalf("after promote: canary at %d, want 2500", ro.CanaryWeight())
	}
	for _, p := range procs {
		waitSplit(t, clients[p], 2500, 300)
	}
	want := ro.Weights()

	// kill -9 of the leader mid-stage.
	for _, p := range followers {
		if err := clients[p].Reset(waitTimeout); err != nil {
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
		r, err := clients[p].WaitTotal(300, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed != 0 {
			t.Errorf("client of surviving replica %s: %d failed RPCs across the failover: %v", p.admin, r.Failed, r.Errors)
		}
	}
	after := next.call(t, http.MethodGet, "/rollouts/"+ro.ID, nil)
	if after.State != ro.State || after.Stage != ro.Stage || after.Generation != ro.Generation {
		t.Fatalf("after the failover: %s stage %d gen %d, before %s stage %d gen %d",
			after.State, after.Stage, after.Generation, ro.State, ro.Stage, ro.Generation)
	}
	// The rollout goes on from its persisted stage, through either survivor.
	ro = followers[0].call(t, http.MethodPost, "/services/"+svcName+"/promote", map[string]any{"reason": "after failover"})
	if ro.CanaryWeight() != 5000 {
		t.Fatalf("promote after the failover: canary at %d, want 5000", ro.CanaryWeight())
	}
	for _, p := range followers {
		waitSplit(t, clients[p], 5000, 300)
	}
}
