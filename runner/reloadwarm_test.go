package runner_test

import (
	"context"
	"slices"
	"testing"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// TestReloadNewStableWarmedFirst: a catalog reload that adds v2 and moves the idle
// service's stable to it first serves v2's cluster at weight 0 (every RPC still on v1);
// once the real client holds the cluster, the next tick publishes v2 at 100 %. The
// client fails no RPC across the reload.
func TestReloadNewStableWarmedFirst(t *testing.T) {
	cat := strictCatalog(t)
	v2 := cat.Services[0].Versions[1]
	cat.Services[0].Versions = cat.Services[0].Versions[:1]
	h := newHarness(t, cat, true)
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "client-reload", Target: "xds:///" + svcName})
	waitConverged(t, h.xs, 1)
	waitOnlyVersion(t, c, "v1", 100, waitTimeout)

	next := &catalog.Catalog{Services: []catalog.Service{cat.Services[0]}}
	next.Services[0].Versions = []catalog.Version{cat.Services[0].Versions[0], v2}
	next.Services[0].Stable = "v2"
	if err := c.Reset(waitTimeout); err != nil {
		t.Fatal(err)
	}
	if err := h.run.SetCatalog(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	v, _ := h.run.Service(svcName)
	if _, defined := v.Service.Version("v2"); !defined || v.Weights["v2"] != 0 || v.Weights["v1"] != catalog.TotalWeight {
		t.Fatalf("after the reload: versions %v weights %v, want v2 defined at weight 0", v.Service.Versions, v.Weights)
	}
	waitWarm(t, h, "v2")
	if r, err := c.WaitTotal(100, waitTimeout); err != nil || r.OK["v2"] != 0 || r.Failed != 0 {
		t.Fatalf("while v2 warms: %v, %d failed %v (%v), want every RPC on v1", r.OK, r.Failed, r.Errors, err)
	}

	h.step() // the tick sees the client holding v2's cluster and publishes the reload's weights
	if v, _ := h.run.Service(svcName); v.Weights["v2"] != catalog.TotalWeight {
		t.Fatalf("after the cluster was held: weights %v, want v2 at 100 %%", v.Weights)
	}
	r, err := c.WaitFor(waitTimeout, func(r xdstest.Report) bool { return r.OK["v2"] >= 200 || r.Failed > 0 })
	if err != nil || r.Failed != 0 {
		t.Fatalf("across the reload: %v, %d failed RPCs %v (%v), want none", r.OK, r.Failed, r.Errors, err)
	}
	waitOnlyVersion(t, c, "v2", 100, waitTimeout)
	evs, _, err := h.run.Events(runner.EventQuery{Service: svcName})
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(evs, func(e runner.EventRecord) bool { return e.Kind == controller.EventClusterLate }) {
		t.Errorf("a cluster_late event although the client held the cluster: %+v", evs)
	}
}
