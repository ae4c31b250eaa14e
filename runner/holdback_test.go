package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
)

// TestHoldbackServed: through the monitoring window the xds server serves the
// holdback's share on the previous version; when the window closes the canary gets
// all of it, and a no-go in the window returns all of it to the previous version.
func TestHoldbackServed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breach bool
		want   controller.State
		served map[string]uint32
	}{
		{"window closes", false, controller.StateCompleted, map[string]uint32{"v1": 0, "v2": 10000}},
		{"no-go in the window", true, controller.StateRolledBack, map[string]uint32{"v1": 10000, "v2": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
			spec := crashSpec()
			spec.Holdback = 300 // 3 %
			ro, err := h.run.Start(context.Background(), spec, "alice")
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 200 && h.persisted(ro.ID).State != controller.StateMonitoring; i++ {
				h.step()
			}
			if got := h.persisted(ro.ID); got.State != controller.StateMonitoring || !got.HoldbackActive() {
				t.Fatalf("state %s (%s), want monitoring with the holdback", got.State, got.Reason)
			}
			if w := served(t, h.xs); w["v1"] != 300 || w["v2"] != 9700 {
				t.Fatalf("monitoring window serves %v, want v1=300 v2=9700", w)
			}
			if tc.breach {
				// The canary fails a third of its requests; the holdback (scaled to its 3 %
				// by the scripted source) serves enough to be compared with.
				h.metrics.Set("v1", metrics.Stats{Requests: 1000, Errors: 1, P99: 50 * time.Millisecond})
				h.metrics.Set("v2", metrics.Stats{Requests: 100000, Errors: 33333, P99: 50 * time.Millisecond})
			}
			for i := 0; i < 200 && !h.persisted(ro.ID).State.Terminal(); i++ {
				h.step()
			}
			if got := h.persisted(ro.ID); got.State != tc.want {
				t.Fatalf("state %s (%s), want %s", got.State, got.Reason, tc.want)
			}
			h.step() // the terminal weights are published
			if w := served(t, h.xs); w["v1"] != tc.served["v1"] || w["v2"] != tc.served["v2"] {
				t.Errorf("after the window serves %v, want %v", w, tc.served)
			}
		})
	}
}
