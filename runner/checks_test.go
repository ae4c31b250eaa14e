package runner_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
)

// TestReportedChecksSurviveRestart: a smoke check reported before a crash still counts
// after the restart, so the rollout advances instead of holding until it is reported
// again.
func TestReportedChecksSurviveRestart(t *testing.T) {
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	ctx := context.Background()
	ro, err := h.run.Start(ctx, minorSpec(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.run.ReportCheck(ctx, svcName, controller.CheckResult{Name: "checkout-flow", Passed: true}); err != nil {
		t.Fatal(err)
	}
	h.restart()
	for i := 0; i < 20 && h.active().Stage == 0; i++ {
		h.step()
	}
	if got := h.active(); got.Stage != 1 {
		t.Fatalf("after restart the rollout is at stage %d (%s: %s); want the smoke check remembered and stage 1", got.Stage, got.State, got.Reason)
	}
	if got := h.active().ID; got != ro.ID {
		t.Fatalf("active rollout %s, want %s", got, ro.ID)
	}
}

type firing []string

func (f *firing) FiringAlerts(context.Context, catalog.Service, time.Time) ([]string, error) {
	return *f, nil
}

// TestCriticalAlertPauses: a critical alert firing for the service pauses the rollout at
// its weight, naming the alert.
func TestCriticalAlertPauses(t *testing.T) {
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	alerts := &firing{}
	h.alerts = alerts
	h.restart()
	ctx := context.Background()
	if _, err := h.run.Start(ctx, minorSpec(), "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.run.ReportCheck(ctx, svcName, controller.CheckResult{Name: "checkout-flow", Passed: true}); err != nil {
		t.Fatal(err)
	}
	h.step()
	h.step()
	if got := h.active(); got.State != controller.StateProgressing {
		t.Fatalf("state %s (%s) before the alert, want progressing", got.State, got.Reason)
	}
	*alerts = firing{"CheckoutQueueStuck"}
	h.step()
	got := h.active()
	if got.State != controller.StatePaused || !strings.Contains(got.Reason, "CheckoutQueueStuck") {
		t.Fatalf("state %s, reason %q; want paused naming the alert", got.State, got.Reason)
	}
	if w := got.CanaryWeight(); w != 500 {
		t.Fatalf("canary weight %d while paused, want the stage's 500", w)
	}
}

// TestRestoreConfirmedAcrossRestart: a restart between a rollback and the proxies' ACK of
// the known-good weights still records the restore in the rollout's history.
func TestRestoreConfirmedAcrossRestart(t *testing.T) {
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	ctx := context.Background()
	ro, err := h.run.Start(ctx, minorSpec(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdAbort, Actor: "sre", Reason: "data integrity"}); err != nil {
		t.Fatal(err)
	}
	h.restart()
	h.step()
	var acked int
	for _, ev := range h.events(ro.ID) {
		if ev.Kind == controller.EventAcked && ev.State == controller.StateRolledBack {
			acked++
		}
	}
	if acked != 1 {
		t.Fatalf("%d restore confirmations after the restart, want 1: %v", acked, kinds(h.events(ro.ID)))
	}
	// Confirmed once: later checks add nothing.
	h.step()
	h.restart()
	h.step()
	n := 0
	for _, ev := range h.events(ro.ID) {
		if ev.Kind == controller.EventAcked && ev.State == controller.StateRolledBack {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d restore confirmations after more checks and a restart, want 1", n)
	}
}
