package runner_test

import (
	"context"
	"slices"
	"testing"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
)

func TestCatalogReloadKeepsActiveRollout(t *testing.T) {
	ctx := context.Background()
	prev := testCatalog(t, "127.0.0.1:1", "127.0.0.1:2")
	h := newHarness(t, prev, false)
	ro, err := h.run.Start(ctx, crashSpec(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	route := h.xs.RouteVersion(svcName)

	refused := map[string]*catalog.Catalog{
		"drops the canary version": {Services: []catalog.Service{{
			Name: svcName, Port: 10001, Stable: "v1", Versions: []catalog.Version{version(t, "v1", "127.0.0.1:1")},
		}}},
		"drops the stable version": {Services: []catalog.Service{{
			Name: svcName, Port: 10001, Stable: "v2", Versions: []catalog.Version{version(t, "v2", "127.0.0.1:2")},
		}}},
		"drops the service": {Services: []catalog.Service{{
			Name: "other", Port: 10002, Stable: "v1", Versions: []catalog.Version{version(t, "v1", "127.0.0.1:3")},
		}}},
	}
	for name, cat := range refused {
		err := h.run.SetCatalog(ctx, cat)
		if err == nil {
			t.Errorf("SetCatalog that %s: accepted", name)
			continue
		}
		t.Logf("SetCatalog that %s: %v", name, err)
		if h.run.Catalog() != prev {
			t.Errorf("SetCatalog that %s: the new catalog is in use", name)
		}
		if got := h.xs.RouteVersion(svcName); got != route {
			t.Errorf("SetCatalog that %s: route %s -> %s", name, route, got)
		}
		if got := served(t, h.xs); got["v1"] != 9500 || got["v2"] != 500 {
			t.Errorf("SetCatalog that %s: serves %v", name, got)
		}
	}

	// A compatible change: a second v1 endpoint and a new version v3. The rollout's
	// weights stay, v3 gets a cluster at weight 0.
	next := testCatalog(t, "127.0.0.1:1", "127.0.0.1:2")
	next.Services[0].Versions[0] = version(t, "v1", "127.0.0.1:1", "127.0.0.1:4")
	next.Services[0].Versions = append(next.Services[0].Versions, version(t, "v3", "127.0.0.1:5"))
	if err := h.run.SetCatalog(ctx, next); err != nil {
		t.Fatalf("compatible SetCatalog: %v", err)
	}
	if h.run.Catalog() != next {
		t.Error("compatible catalog not in use")
	}
	if got := served(t, h.xs); got["v1"] != 9500 || got["v2"] != 500 || got["v3"] != 0 || len(got) != 3 {
		t.Errorf("after a compatible change serves %v, want v1=9500 v2=500 v3=0", got)
	}
	var eps int
	for _, cla := range h.xs.Resources().Endpoints {
		if cla.GetClusterName() == svcName+"|v1" {
			for _, l := range cla.GetEndpoints() {
				eps += len(l.GetLbEndpoints())
			}
		}
	}
	if eps != 2 {
		t.Errorf("v1 serves %d endpoints, want 2", eps)
	}

	// The route changed under the rollout (new cluster in the split) with the same
	// weights: their ACK still starts the stage's monitor clock.
	h.step()
	got := h.persisted(ro.ID)
	if got.Progress.AckedAt.IsZero() || got.State != controller.StateProgressing {
		t.Fatalf("after a compatible catalog change the weights' ACK is not recorded: %s, %s", got.State, got.Reason)
	}
	if !slices.Contains(kinds(h.events(ro.ID)), controller.EventAcked) {
		t.Error("no acked event")
	}
	for got.Stage == 0 {
		h.step()
		got = h.persisted(ro.ID)
		if got.State != controller.StateProgressing {
			t.Fatalf("%s: %s", got.State, got.Reason)
		}
	}
	if w := served(t, h.xs); w["v2"] != 2500 || w["v3"] != 0 {
		t.Errorf("next stage serves %v", w)
	}
}

// TestCatalogReloadDuringRestore changes the catalog between a rollback and the ACK of
// its known-good weights: the restore is still confirmed (the new route carries the
// same weights), not dropped as superseded.
func TestCatalogReloadDuringRestore(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	ro, err := h.run.Start(ctx, crashSpec(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdAbort, Actor: "bob", Reason: "bad build"}); err != nil {
		t.Fatal(err)
	}
	next := testCatalog(t, "127.0.0.1:1", "127.0.0.1:2")
	next.Services[0].Versions = append(next.Services[0].Versions, version(t, "v3", "127.0.0.1:5"))
	if err := h.run.SetCatalog(ctx, next); err != nil {
		t.Fatal(err)
	}
	h.run.Evaluate(ctx)
	evs := h.events(ro.ID)
	if last := evs[len(evs)-1]; last.Kind != controller.EventAcked {
		t.Errorf("last event %s, want the restore confirmation; timeline %v", last.Kind, kinds(evs))
	}
}
