package runner_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// clusterServed reports whether the xds server serves the cluster of svcName's version,
// as CDS and as EDS.
func clusterServed(xs *xds.Server, version string) (cds, eds bool) {
	name := translate.ClusterName(svcName, version)
	res := xs.Resources()
	for _, c := range res.Clusters {
		cds = cds || c.GetName() == name
	}
	for _, e := range res.Endpoints {
		eds = eds || e.GetClusterName() == name
	}
	return cds, eds
}

func clusterLateEvents(t *testing.T, h *harness) []runner.EventRecord {
	t.Helper()
	evs, _, err := h.run.Events(runner.EventQuery{Service: svcName})
	if err != nil {
		t.Fatal(err)
	}
	var out []runner.EventRecord
	for _, e := range evs {
		if e.Kind == controller.EventClusterLate {
			out = append(out, e)
		}
	}
	return out
}

// TestReloadDropsOldStableAfterRouteAcked: a catalog reload that moves stable to a new
// v2 and drops v1 in the same file. v2's cluster is loaded first; the publish that moves
// the route to v2 keeps v1's cluster (no route names it), and the next tick after the
// real client ACKed the new route removes it. The client fails no RPC across the reload.
func TestReloadDropsOldStableAfterRouteAcked(t *testing.T) {
	cat := strictCatalog(t)
	v1, v2 := cat.Services[0].Versions[0], cat.Services[0].Versions[1]
	cat.Services[0].Versions = []catalog.Version{v1}
	h := newHarness(t, cat, true)
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "client-drop", Target: "xds:///" + svcName})
	waitConverged(t, h.xs, 1)
	waitOnlyVersion(t, c, "v1", 100, waitTimeout)

	next := &catalog.Catalog{Services: []catalog.Service{cat.Services[0]}}
	next.Services[0].Versions = []catalog.Version{v2}
	next.Services[0].Stable = "v2"
	if err := c.Reset(waitTimeout); err != nil {
		t.Fatal(err)
	}
	if err := h.run.SetCatalog(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	waitWarm(t, h, "v2")
	h.step() // the client holds v2's cluster: the route moves to v2, v1 leaves the route
	if w := served(t, h.xs); w["v2"] != catalog.TotalWeight || len(w) != 1 {
		t.Fatalf("after the warm-up: route weights %v, want v2 alone", w)
	}
	if cds, eds := clusterServed(h.xs, "v1"); !cds || !eds {
		t.Fatalf("v1's cluster removed in the publish that moved the route (CDS %v, EDS %v); want it kept until the route is ACKed", cds, eds)
	}
	r, err := c.WaitFor(waitTimeout, func(r xdstest.Report) bool { return r.OK["v2"] >= 200 || r.Failed > 0 })
	if err != nil || r.Failed != 0 {
		t.Fatalf("across the reload: %v, %d failed RPCs %v (%v), want none", r.OK, r.Failed, r.Errors, err)
	}
	waitConverged(t, h.xs, 1)
	h.step() // the client ACKed a route without v1: its cluster goes
	if cds, eds := clusterServed(h.xs, "v1"); cds || eds {
		t.Fatalf("v1's cluster still served after the client ACKed the route without it (CDS %v, EDS %v)", cds, eds)
	}
	if err := c.Reset(waitTimeout); err != nil {
		t.Fatal(err)
	}
	r, err = c.WaitFor(waitTimeout, func(r xdstest.Report) bool { return r.OK["v2"] >= 200 || r.Failed > 0 })
	if err != nil || r.Failed != 0 || r.OK["v1"] != 0 {
		t.Fatalf("after v1's cluster left: %v, %d failed RPCs %v (%v), want every RPC on v2", r.OK, r.Failed, r.Errors, err)
	}
	if late := clusterLateEvents(t, h); len(late) != 0 {
		t.Errorf("cluster_late events although the client ACKed: %+v", late)
	}
}

// silentProxy subscribes to svcName's route over a raw ADS stream, reads the response
// and never ACKs it, until the test ends.
func silentProxy(t *testing.T, addr, node string) {
	t.Helper()
	stream, _ := rawADS(t, addr, 0)
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node},
		TypeUrl: resource.RouteType, ResourceNames: []string{translate.RouteName(svcName)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("read route: %v", err)
	}
}

// TestRetiredClusterLateWithoutAck: a proxy that watches the route and never ACKs keeps
// a dropped version's cluster served (it may still route to it) until the ACK timeout;
// then the cluster is removed and a cluster_late event names the proxy.
func TestRetiredClusterLateWithoutAck(t *testing.T) {
	cat := testCatalog(t, "127.0.0.1:9", "127.0.0.1:10")
	h := newHarness(t, cat, true)
	silentProxy(t, h.addr, "silent-proxy")
	deadline := time.Now().Add(waitTimeout)
	for h.xs.Convergence(svcName).Subscribed != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the raw stream never subscribed: %+v", h.xs.Convergence(svcName))
		}
		time.Sleep(10 * time.Millisecond)
	}

	next := &catalog.Catalog{Services: []catalog.Service{cat.Services[0]}}
	next.Services[0].Versions = []catalog.Version{cat.Services[0].Versions[1]}
	next.Services[0].Stable = "v2"
	if err := h.run.SetCatalog(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if w := served(t, h.xs); w["v2"] != catalog.TotalWeight || len(w) != 1 {
		t.Fatalf("after the reload: route weights %v, want v2 alone", w)
	}
	h.step()
	if cds, eds := clusterServed(h.xs, "v1"); !cds || !eds {
		t.Fatalf("v1's cluster removed while a proxy has not ACKed the route without it (CDS %v, EDS %v)", cds, eds)
	}
	if late := clusterLateEvents(t, h); len(late) != 0 {
		t.Fatalf("cluster_late before the ACK timeout: %+v", late)
	}

	h.clock.Advance(controller.DefaultAckTimeout)
	h.run.Evaluate(context.Background())
	if cds, eds := clusterServed(h.xs, "v1"); cds || eds {
		t.Fatalf("v1's cluster still served after the ACK timeout (CDS %v, EDS %v)", cds, eds)
	}
	late := clusterLateEvents(t, h)
	if len(late) != 1 || !strings.Contains(late[0].Reason, "silent-proxy") || !strings.Contains(late[0].Reason, "v1") {
		t.Fatalf("cluster_late events %+v, want one naming v1 and silent-proxy", late)
	}
}
