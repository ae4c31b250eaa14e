package runner_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
)

// TestFreezeHoldsHoldbackEnd: a freeze set during the monitoring window of a rollout
// with a holdback keeps the holdback's share on the previous version after the window
// closed (completing would move it forward); a no-go still rolls back through the
// freeze; once unfrozen the other rollout completes and the canary gets all traffic.
func TestFreezeHoldsHoldbackEnd(t *testing.T) {
	for _, breach := range []bool{false, true} {
		h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
		ctx := context.Background()
		spec := crashSpec()
		spec.Holdback = 300 // 3 %
		ro, err := h.run.Start(ctx, spec, "alice")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200 && h.persisted(ro.ID).State != controller.StateMonitoring; i++ {
			h.step()
		}
		if _, err := h.run.Freeze(ctx, "incident 42", "bob"); err != nil {
			t.Fatal(err)
		}
		end := h.persisted(ro.ID).FullAt.Add(h.persisted(ro.ID).Plan.Monitoring[len(spec.Monitoring)-1].Until.D())
		for h.clock.Now().Before(end.Add(time.Minute)) {
			h.step()
		}
		got := h.persisted(ro.ID)
		if got.State != controller.StateMonitoring || !strings.Contains(got.Reason, "completing ends the holdback: frozen by bob") {
			t.Fatalf("frozen past the window: %s (%s)", got.State, got.Reason)
		}
		if w := served(t, h.xs); w["v1"] != 300 || w["v2"] != 9700 {
			t.Fatalf("frozen past the window serves %v, want the holdback kept (v1=300 v2=9700)", w)
		}
		if breach {
			h.metrics.Set("v1", metrics.Stats{Requests: 1000, Errors: 1, P99: 50 * time.Millisecond})
			h.metrics.Set("v2", metrics.Stats{Requests: 100000, Errors: 33333, P99: 50 * time.Millisecond})
			for i := 0; i < 50 && !h.persisted(ro.ID).State.Terminal(); i++ {
				h.step()
			}
			if got := h.persisted(ro.ID); got.State != controller.StateRolledBack {
				t.Fatalf("a no-go during the freeze: %s (%s)", got.State, got.Reason)
			}
			if w := served(t, h.xs); w["v1"] != 10000 {
				t.Fatalf("rolled back during the freeze serves %v", w)
			}
			continue
		}
		if _, err := h.run.Unfreeze(ctx, "over", "bob"); err != nil {
			t.Fatal(err)
		}
		h.step()
		h.step()
		if got := h.persisted(ro.ID); got.State != controller.StateCompleted {
			t.Fatalf("after the freeze: %s (%s)", got.State, got.Reason)
		}
		if w := served(t, h.xs); w["v2"] != 10000 {
			t.Fatalf("completed serves %v", w)
		}
	}
}
