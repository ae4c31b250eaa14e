package controller

import (
	"testing"
	"time"
)

func TestDeploymentWindowContains(t *testing.T) {
	office := DeploymentWindow{Days: []string{"mon", "Tuesday"}, Start: "09:00", End: "17:00", TimeZone: "Europe/Berlin"}
	night := DeploymentWindow{Days: []string{"fri"}, Start: "22:00", End: "04:00"}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	tests := []struct {
		w    DeploymentWindow
		at   time.Time
		want bool
	}{
		{office, time.Date(2025, 3, 3, 9, 0, 0, 0, berlin), true},
		{office, time.Date(2025, 3, 3, 8, 59, 59, 0, berlin), false},
		{office, time.Date(2025, 3, 3, 16, 59, 0, 0, berlin), true},
		{office, time.Date(2025, 3, 3, 17, 0, 0, 0, berlin), false},
		{office, time.Date(2025, 3, 5, 10, 0, 0, 0, berlin), false},  // Wednesday
		{office, time.Date(2025, 3, 3, 8, 30, 0, 0, time.UTC), true}, // 09:30 in Berlin
		{night, time.Date(2025, 3, 7, 23, 0, 0, 0, time.UTC), true},  // Friday night
		{night, time.Date(2025, 3, 8, 3, 59, 0, 0, time.UTC), true},  // Saturday early, Friday's window
		{night, time.Date(2025, 3, 8, 4, 0, 0, 0, time.UTC), false},
		{night, time.Date(2025, 3, 7, 3, 0, 0, 0, time.UTC), false}, // Friday early belongs to Thursday
	}
	for _, tt := range tests {
		if got := tt.w.Contains(tt.at); got != tt.want {
			t.Errorf("%+v.Contains(%s) = %v", tt.w, tt.at, got)
		}
	}
}

// Outside the window a rollout waits pending at 0 % and starts when the window opens;
// a stage whose window is complete holds at the window's end; a critical patch
// overrides the window and the override is recorded.
func TestDeploymentWindowGates(t *testing.T) {
	spec := testSpec(Minor)
	spec.Window = &DeploymentWindow{Start: "10:30", End: "10:50"}
	r, evs := mustNew(t, t0, spec) // 10:00
	if r.State != StatePending || r.CanaryWeight() != 0 || len(kinds(evs, EventHold)) != 1 || r.Reason != "outside deployment window" {
		t.Fatalf("state %s reason %q", r.State, r.Reason)
	}
	r, _, _ = drive(r, t0, t0.Add(30*time.Minute), 30*time.Second, good)
	if r.State != StateProgressing || !r.StartedAt.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("state %s started %s", r.State, r.StartedAt)
	}
	// The 15 min canary window completes at 10:45:30; the next Go would be 25 %'s at
	// 11:16, outside the window: it holds.
	r, _, _ = drive(r, t0.Add(30*time.Minute), t0.Add(2*time.Hour), 30*time.Second, good)
	if r.Stage != 1 || r.State != StateProgressing || r.Reason != "outside deployment window" || r.Progress.LastDecision != DecisionHold {
		t.Fatalf("stage %d state %s reason %q", r.Stage, r.State, r.Reason)
	}

	crit := testSpec(Patch)
	crit.Critical = true
	crit.Window = spec.Window
	r, evs = mustNew(t, t0, crit)
	if r.State != StateMonitoring || r.WindowOverrides != 1 || len(kinds(evs, EventWindowOverride)) != 1 {
		t.Fatalf("critical: state %s overrides %d", r.State, r.WindowOverrides)
	}
	// A critical quick canary also advances outside the window.
	crit.Strategy = StrategyCanary
	r, _ = mustNew(t, t0, crit)
	r, _, evs = drive(r, t0, t0.Add(time.Hour), 30*time.Second, good)
	if r.State != StateMonitoring || len(kinds(evs, EventWindowOverride)) != 1 {
		t.Fatalf("critical canary: state %s", r.State)
	}
}
