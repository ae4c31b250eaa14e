package controller

import (
	"slices"
	"testing"
	"time"
)

// TestDecisionEventsCarryCause: every event that records a decision carries one of
// Causes, the one that names why.
func TestDecisionEventsCarryCause(t *testing.T) {
	at := t0.Add(5 * time.Minute)
	check := func(name string, evs []Event, want Cause) {
		t.Helper()
		found := false
		for _, e := range evs {
			if e.Decision == "" {
				continue
			}
			if !slices.Contains(Causes, e.Cause) {
				t.Errorf("%s: %s event with decision %s has cause %q, not one of Causes", name, e.Kind, e.Decision, e.Cause)
			}
			if e.Cause == want {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no decision event with cause %s in %+v", name, want, evs)
		}
	}
	r := acked(t, testSpec(Minor))
	_, evs, _ := r.Apply(at, Command{Kind: CmdAbort, Actor: "sec", Reason: "CVE"})
	check("abort", evs, CauseManualAbort)
	_, evs, _ = r.Apply(at, Command{Kind: CmdPause, Actor: "ana"})
	check("pause", evs, CauseManualPause)
	_, evs, _ = r.Apply(at, Command{Kind: CmdPromote, Actor: "ana"})
	check("promote", evs, CauseManualPromote)
	o := goodObs(r.Generation)
	o.Alerts = []string{"HighLatency"}
	_, evs = step(r, at, o)
	check("alert", evs, CauseAlert)
	o = goodObs(r.Generation)
	o.Health.Canary.Unhealthy = []string{"10.0.0.1:80", "10.0.0.2:80"} // both of its 2
	_, evs = step(r, at, o)
	check("unhealthy", evs, CauseUnhealthy)
	_, _, evs = drive(r, at, at.Add(2*time.Hour), DefaultCheckInterval, good)
	check("clean", evs, CausePassed)
}
