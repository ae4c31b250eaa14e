package runner_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/internal/etcdtest"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// holdingProxy subscribes on xdsAddr, as node id, to svcName's route, clusters and
// endpoints (its versions v1 and v2 by name), and ACKs every response at once except a
// CDS or EDS response carrying v2's cluster: it holds those un-ACKed (a proxy still
// loading the cluster) until release is called, which ACKs the latest of each and
// returns the instant it did.
func holdingProxy(t *testing.T, xdsAddr, id string) (release func() time.Time) {
	t.Helper()
	stream, _ := rawADS(t, xdsAddr, 0)
	v2 := translate.ClusterName(svcName, "v2")
	clusters := []string{translate.ClusterName(svcName, "v1"), v2}
	names := map[string][]string{resource.RouteType: {translate.RouteName(svcName)}, resource.ClusterType: clusters, resource.EndpointType: clusters}
	var mu sync.Mutex // guards sends, released and held
	released := false
	held := map[string]*discoveryv3.DiscoveryResponse{}
	ack := func(resp *discoveryv3.DiscoveryResponse) {
		_ = stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: id}, TypeUrl: resp.GetTypeUrl(),
			ResourceNames: names[resp.GetTypeUrl()], VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
	}
	for _, typ := range []string{resource.RouteType, resource.ClusterType, resource.EndpointType} {
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: id}, TypeUrl: typ, ResourceNames: names[typ]}); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			carries := false
			if typ := resp.GetTypeUrl(); typ == resource.ClusterType || typ == resource.EndpointType {
				for _, a := range resp.GetResources() {
					// A cluster and its load assignment carry the cluster's name.
					if strings.Contains(string(a.GetValue()), v2) {
						carries = true
					}
				}
			}
			mu.Lock()
			if carries && !released {
				held[resp.GetTypeUrl()] = resp
			} else {
				ack(resp)
			}
			mu.Unlock()
		}
	}()
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		released = true
		for _, resp := range held {
			ack(resp)
		}
		return time.Now()
	}
}

// servedClusters are the names of the clusters p serves.
func (p *octorollProc) servedClusters(t *testing.T) []string {
	t.Helper()
	stream, stop := rawADS(t, p.xds, waitTimeout)
	defer stop()
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "cluster-probe"}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("read clusters: %v", err)
	}
	var out []string
	for _, a := range resp.GetResources() {
		for _, v := range []string{"v1", "v2"} {
			if n := translate.ClusterName(svcName, v); strings.Contains(string(a.GetValue()), n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// holds reports whether the proxy id connected to p ACKed CDS and EDS responses
// carrying cluster.
func (p *octorollProc) holds(t *testing.T, id, cluster string) bool {
	t.Helper()
	var pr api.ProxiesResponse
	p.getJSON(t, "/api/v1/proxies", &pr)
	for _, ps := range pr.Proxies {
		if ps.NodeID == id {
			return ps.Types[resource.ClusterType].Acked[cluster] != "" && ps.Types[resource.EndpointType].Acked[cluster] != ""
		}
	}
	return false
}

// poll waits until cond holds.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicasNewCanaryWarmingProcess runs three real octoroll processes on one real
// etcd, a real gRPC-Go xDS client on each, and on a follower one more proxy that holds
// a new cluster un-ACKed. A rollout to a version new to the proxies (not in the
// catalog) first serves its cluster at weight 0 on every replica; while the follower's
// proxy has not loaded it, the leader does not publish the stage's weights, though every
// other proxy holds it. Once that proxy ACKs the cluster, the leader publishes the
// weights, every replica serves them, and the client of the other follower fails no
// RPC across the switch.
func TestReplicasNewCanaryWarmingProcess(t *testing.T) {
	bin := buildOctoroll(t)
	etcd := etcdtest.Start(t)
	v1, v2 := xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2")
	dir := t.TempDir()
	catalogFile := filepath.Join(dir, "catalog.yaml")
	cat := fmt.Sprintf("services:\n  - name: %s\n    port: 10001\n    stable: v1\n    versions:\n      - name: v1\n        endpoints: [%s]\n", svcName, v1)
	if err := os.WriteFile(catalogFile, []byte(cat), 0o600); err != nil {
		t.Fatal(err)
	}
	var procs []*octorollProc
	for _, id := range []string{"r1", "r2", "r3"} {
		procs = append(procs, startOctoroll(t, bin, catalogFile, filepath.Join(dir, "state-"+id),
			"-store", "etcd", "-etcd-endpoints", etcd.Endpoint, "-lease-ttl", leaseTTL.String(), "-replica-id", id))
	}
	leader := waitLeader(t, procs, waitTimeout)
	followers := others(procs, leader)
	clients := map[*octorollProc]*xdstest.Client{}
	nodes := map[*octorollProc]string{}
	for i, p := range procs {
		nodes[p] = "client-" + string(rune('a'+i))
		clients[p] = xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: nodes[p], Target: "xds:///" + svcName, RPS: 300})
	}
	for _, c := range clients {
		waitSplit(t, c, 0, 300)
	}
	release := holdingProxy(t, followers[1].xds, "loading-proxy")
	leader.waitService(t, "four proxies on three replicas", func(d api.ServiceDetail) bool {
		return d.Proxies.Subscribed == 4 && d.Proxies.Converged
	})

	spec := commandOnlySpec()
	spec.CheckInterval = controller.Duration(time.Second) // the leader's checks mark its time
	spec.SourceFailureLimit = 1000
	spec.Canary = controller.Canary{Version: "v2", Endpoints: []string{v2}}
	ro := followers[0].call(t, http.MethodPost, "/rollouts", spec) // forwarded to the leader
	stage := ro.CanaryWeight()
	if stage == 0 {
		t.Fatalf("rollout %+v: no stage weight", ro.Weights())
	}

	// Every replica serves the new cluster at weight 0, and every proxy but the
	// loading one holds it.
	v2Cluster := translate.ClusterName(svcName, "v2")
	for _, p := range procs {
		poll(t, p.admin+" serves "+v2Cluster, func() bool { return slices.Contains(p.servedClusters(t), v2Cluster) })
		poll(t, nodes[p]+" holds "+v2Cluster, func() bool { return p.holds(t, nodes[p], v2Cluster) })
	}
	// The leader holds the rollout on the follower's proxy: two of its checks (a second
	// apart, as its warming ticks) after every other proxy held the cluster, the
	// rollout is still not published, the proxies loading the cluster, and no replica
	// routes to it.
	othersHeld := time.Now()
	poll(t, "the leader holding the rollout on the loading proxy", func() bool {
		got := leader.call(t, http.MethodGet, "/rollouts/"+ro.ID, nil)
		if !got.Progress.AckedAt.IsZero() {
			t.Fatalf("the leader's rollout: %s %q, stage weights ACKed at %s while a proxy was loading the cluster", got.State, got.Reason, got.Progress.AckedAt)
		}
		return strings.Contains(got.Reason, "loading the cluster of new version v2") && got.Progress.LastCheck.After(othersHeld.Add(2*time.Second))
	})
	for _, p := range procs {
		if w := p.servedRoute(t); w["v2"] != 0 {
			t.Fatalf("%s serves %v while a proxy of %s is loading the cluster: want v2 at 0", p.admin, w, followers[1].admin)
		}
	}

	watched := clients[followers[0]]
	if err := watched.Reset(waitTimeout); err != nil {
		t.Fatal(err)
	}
	released := release()
	r, err := watched.WaitFor(waitTimeout, func(r xdstest.Report) bool { return r.OK["v2"] >= 50 || r.Failed > 0 })
	if err != nil || r.Failed != 0 {
		t.Fatalf("follower's client across the switch to v2: %v, %d failed %v (%v), want none failed", r.OK, r.Failed, r.Errors, err)
	}
	for _, p := range procs {
		waitSplit(t, clients[p], stage, 300)
	}
	leader.waitService(t, "the stage's weights ACKed by every proxy", func(d api.ServiceDetail) bool {
		return d.Proxies.Subscribed == 4 && d.Proxies.Converged
	})
	var after controller.Rollout
	poll(t, "the stage clock started", func() bool {
		after = leader.call(t, http.MethodGet, "/rollouts/"+ro.ID, nil)
		return !after.Progress.AckedAt.IsZero()
	})
	if !after.Progress.AckedAt.After(released) {
		t.Errorf("the stage's weights were ACKed at %s, before the follower's proxy held the cluster (%s)", after.Progress.AckedAt, released)
	}
}
