package runner_test

import (
	"context"
	"testing"

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
