package runner_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// splitRPCs is the size of each measured window: at 5 % the tolerance (5σ) is ±49
// RPCs around 100.
const splitRPCs = 2000

// clients starts the measuring client (reset for each window) and an observer that
// never resets, so that its counts cover the whole test, gaps between windows included.
func clients(t *testing.T, h *harness) (meter, observer *xdstest.Client) {
	t.Helper()
	meter = xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "meter", Zone: "zone-a", Target: "xds:///" + svcName})
	observer = xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: "observer", Target: "xds:///" + svcName,
		Concurrency: 1, RPS: 200})
	for _, c := range []*xdstest.Client{meter, observer} {
		if _, err := c.WaitTotal(100, waitTimeout); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, h.xs, 2)
	return meter, observer
}

func checkObserver(t *testing.T, observer *xdstest.Client) {
	t.Helper()
	r := observer.Report()
	t.Logf("observer over the whole test: %v, failed %d", r.OK, r.Failed)
	if r.Failed != 0 {
		t.Errorf("observer: %d failed RPCs: %v", r.Failed, r.Errors)
	}
	if r.Total() == 0 {
		t.Error("observer counted no RPC")
	}
}

// stepUntil steps the clock one check interval at a time until done holds for the
// active rollout (or it ended), and fails on a pause or rollback.
func stepUntil(t *testing.T, h *harness, id string, max int, done func(controller.Rollout) bool) controller.Rollout {
	t.Helper()
	for range max {
		h.step()
		ro := h.persisted(id)
		if ro.State == controller.StatePaused || ro.State == controller.StateRolledBack {
			t.Fatalf("rollout %s: %s (%s); events %v", ro.State, ro.Reason, ro.ID, kinds(h.events(id)))
		}
		if done(ro) {
			return ro
		}
	}
	ro := h.persisted(id)
	t.Fatalf("condition not reached after %d checks: %s stage %d, %s", max, ro.State, ro.Stage, ro.Reason)
	return ro
}

func TestMinorRolloutReachesClients(t *testing.T) {
	h := newHarness(t, testCatalog(t, xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2")), true)
	ctx := context.Background()
	meter, observer := clients(t, h)
	waitSplit(t, meter, 0, splitRPCs)

	ro, err := h.run.Start(ctx, minorSpec(), "alice")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	id := ro.ID
	if err := h.run.ReportCheck(ctx, svcName, controller.CheckResult{Name: "checkout-flow", Passed: true}); err != nil {
		t.Fatal(err)
	}

	for i, w := range []uint32{500, 2500, 5000} {
		ro = h.persisted(id)
		if ro.State != controller.StateProgressing || ro.Stage != i || ro.CanaryWeight() != w {
			t.Fatalf("stage %d: persisted %s stage %d weight %d, want progressing at %d", i, ro.State, ro.Stage, ro.CanaryWeight(), w)
		}
		if got := served(t, h.xs); got["v2"] != w || got["v1"] != 10000-w {
			t.Fatalf("stage %d: served %v, want v2=%d", i, got, w)
		}
		// The monitor clock starts on the ACK of both clients: wait for it before time
		// moves, so that no check of this stage runs on weights not yet in force.
		waitConverged(t, h.xs, 2)
		waitSplit(t, meter, w, splitRPCs)
		ro = stepUntil(t, h, id, 20, func(r controller.Rollout) bool { return r.Stage != i })
	}
	if ro.State != controller.StateMonitoring || ro.CanaryWeight() != 10000 {
		t.Fatalf("after the last stage: %s weight %d, want monitoring at 100%%", ro.State, ro.CanaryWeight())
	}
	if got := served(t, h.xs); got["v2"] != 10000 || got["v1"] != 0 {
		t.Fatalf("monitoring: served %v, want v2=10000 with v1 kept at 0", got)
	}
	waitConverged(t, h.xs, 2)
	waitSplit(t, meter, 10000, splitRPCs)
	ro = stepUntil(t, h, id, 40, func(r controller.Rollout) bool { return r.State.Terminal() })
	if ro.State != controller.StateCompleted {
		t.Fatalf("final state %s, want completed", ro.State)
	}

	// Idle again: the runner publishes 100 % of the new stable version.
	v, _ := h.run.Service(svcName)
	if v.Active != nil || v.KnownGood != "v2" || v.Service.Stable != "v2" || v.Weights["v2"] != 10000 {
		t.Errorf("service after completion: active %v knownGood %s stable %s weights %v", v.Active, v.KnownGood, v.Service.Stable, v.Weights)
	}
	if got := served(t, h.xs); got["v2"] != 10000 {
		t.Errorf("served after completion %v", got)
	}
	waitConverged(t, h.xs, 2)
	waitSplit(t, meter, 10000, splitRPCs)
	checkObserver(t, observer)

	// The timeline in the store: created, started, one ACK per weights generation,
	// three advances to 25, 50 and 100 %, the phases, then the close.
	evs := h.events(id)
	got := kinds(evs)
	t.Logf("events: %v", got)
	var advanced []uint32
	acked := 0
	for _, e := range evs {
		switch e.Kind {
		case controller.EventStageAdvanced:
			advanced = append(advanced, e.Weight)
		case controller.EventAcked:
			acked++
		case controller.EventHold:
			if e.Cause != controller.CauseWarmup {
				t.Errorf("unexpected event %s: %s", e.Kind, e.Reason)
			}
		case controller.EventPaused, controller.EventRolledBack:
			t.Errorf("unexpected event %s: %s", e.Kind, e.Reason)
		}
	}
	if !slices.Equal(advanced, []uint32{2500, 5000, 10000}) {
		t.Errorf("stage_advanced weights %v, want [2500 5000 10000]", advanced)
	}
	if acked != 4 {
		t.Errorf("%d acked events, want 4 (one per weights generation)", acked)
	}
	for _, k := range []string{controller.EventCreated, controller.EventStarted, controller.EventPhase,
		controller.EventMonitoringClosed, controller.EventCompleted} {
		if !slices.Contains(got, k) {
			t.Errorf("no %s event", k)
		}
	}
	if got[0] != controller.EventCreated || got[len(got)-1] != controller.EventCompleted {
		t.Errorf("timeline %v: want created first and completed last", got)
	}
	if evs[0].Actor != "alice" {
		t.Errorf("created by %q, want alice", evs[0].Actor)
	}
}

func TestRollbackReachesClients(t *testing.T) {
	h := newHarness(t, testCatalog(t, xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2")), true)
	ctx := context.Background()
	meter, observer := clients(t, h)

	ro, err := h.run.Start(ctx, minorSpec(), "alice")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	id := ro.ID
	if err := h.run.ReportCheck(ctx, svcName, controller.CheckResult{Name: "checkout-flow", Passed: true}); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, h.xs, 2)
	waitSplit(t, meter, 500, splitRPCs)
	// One clean check into the stage, then the canary fails a third of its requests:
	// far past the no-go bound (stable + 1 pp), a gross breach that does not wait for
	// the sustained rule, only for the next check to confirm it.
	ro = stepUntil(t, h, id, 1, func(controller.Rollout) bool { return true })
	if ro.Progress.AckedAt.IsZero() {
		t.Fatalf("first check did not record the ACK: %+v", ro.Progress)
	}
	h.metrics.Set("v2", metrics.Stats{Requests: 1200, Errors: 400, P99: 50 * time.Millisecond})
	h.step()
	ro = h.persisted(id)
	if ro.State != controller.StateProgressing || ro.Progress.GrossSince.IsZero() ||
		!strings.Contains(ro.Progress.LastReason, "to be confirmed by the next check: error rate grossly above baseline") {
		t.Fatalf("at the first gross check: %s (%s), want a hold to be confirmed", ro.State, ro.Progress.LastReason)
	}
	if got := served(t, h.xs); got["v2"] != 500 {
		t.Fatalf("served while the breach is confirmed %v, want v2 still at 500", got)
	}
	h.step()
	ro = h.persisted(id)
	if ro.State != controller.StateRolledBack || ro.CanaryWeight() != 0 || !strings.Contains(ro.Reason, "confirmed on consecutive checks") {
		t.Fatalf("after the breach: %s weight %d (%s), want rolled_back at 0", ro.State, ro.CanaryWeight(), ro.Reason)
	}
	t.Logf("rolled back: %s", ro.Reason)
	if got := served(t, h.xs); got["v1"] != 10000 || got["v2"] != 0 {
		t.Fatalf("served after rollback %v, want v1=10000 with v2 kept at 0", got)
	}

	// Both clients ACK the known-good weights; the next evaluation records it.
	waitConverged(t, h.xs, 2)
	h.run.Evaluate(ctx)
	evs := h.events(id)
	last := evs[len(evs)-1]
	if last.Kind != controller.EventAcked || !strings.Contains(last.Reason, "2 of 2 proxies serve 100% v1") {
		t.Errorf("last event %s %q, want the restore confirmation", last.Kind, last.Reason)
	}
	t.Logf("restore: %s", last.Reason)
	h.run.Evaluate(ctx) // recorded once
	if n := len(h.events(id)); n != len(evs) {
		t.Errorf("events %d -> %d after another evaluation", len(evs), n)
	}

	r := waitSplit(t, meter, 0, splitRPCs)
	if r.OK["v2"] != 0 {
		t.Errorf("v2 served %d RPCs after the rollback", r.OK["v2"])
	}
	v, _ := h.run.Service(svcName)
	if v.Active != nil || v.KnownGood != "v1" || v.Weights["v1"] != 10000 {
		t.Errorf("service after rollback: active %v knownGood %s weights %v", v.Active, v.KnownGood, v.Weights)
	}
	checkObserver(t, observer)
	t.Logf("events: %v", kinds(evs))
}
