package controller

import (
	"slices"
	"testing"
	"time"
)

// Every preset runs to completion on an injected clock with clean observations every
// 30 s: each stage advances one ACK (one check) plus its MinWindow after its weights
// were set, and the 72 h monitoring window closes 72 h after the ACK of 100 %.
func TestPresetsOverTime(t *testing.T) {
	critical := testSpec(Patch)
	critical.Critical = true
	patchCanary := testSpec(Patch)
	breakingCookie := testSpec(Breaking)
	breakingCookie.Flag = &MatchSpec{Cookie: "beta", Value: "1"}
	tests := []struct {
		name        string
		spec        Spec
		wantWeights []uint32 // canary weight after start and each advance
		wantWindows []time.Duration
		wantMatch   *Match // in force during the first stage
	}{
		{"patch direct (critical)", critical, []uint32{10000}, nil, nil},
		{"patch quick canary", patchCanary, []uint32{500, 10000}, []time.Duration{5 * time.Minute}, nil},
		{"minor", testSpec(Minor), []uint32{500, 2500, 5000, 10000},
			[]time.Duration{15 * time.Minute, 30 * time.Minute, 30 * time.Minute}, nil},
		{"major", testSpec(Major), []uint32{500, 1000, 2500, 5000, 10000},
			[]time.Duration{60 * time.Minute, 30 * time.Minute, 60 * time.Minute, 60 * time.Minute}, nil},
		{"breaking", testSpec(Breaking), []uint32{0, 500, 1000, 2500, 5000, 10000},
			[]time.Duration{30 * time.Minute, 60 * time.Minute, 30 * time.Minute, 60 * time.Minute, 60 * time.Minute},
			&Match{Header: "x-canary", Value: "always", Version: "v2"}},
		{"breaking, cookie flag", breakingCookie, []uint32{0, 500, 1000, 2500, 5000, 10000},
			[]time.Duration{30 * time.Minute, 60 * time.Minute, 30 * time.Minute, 60 * time.Minute, 60 * time.Minute},
			&Match{Cookie: "beta", Value: "1", Version: "v2"}},
	}
	const every = 30 * time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, evs := mustNew(t, t0, tt.spec)
			if r.State != StateProgressing && r.State != StateMonitoring {
				t.Fatalf("state after New = %s", r.State)
			}
			if len(kinds(evs, EventStarted)) != 1 {
				t.Fatalf("want one started event, got %+v", evs)
			}
			gotMatch := r.Matches()
			if tt.wantMatch == nil && gotMatch != nil || tt.wantMatch != nil && (len(gotMatch) != 1 || gotMatch[0] != *tt.wantMatch) {
				t.Errorf("Matches() = %+v, want %+v", gotMatch, tt.wantMatch)
			}
			weights := []uint32{r.CanaryWeight()}
			var advances []time.Time
			now := t0
			for !r.State.Terminal() && now.Before(t0.Add(100*time.Hour)) {
				now = now.Add(every)
				var evs []Event
				r, evs = step(r, now, goodObs(r.Generation))
				checkWeights(t, r)
				for _, e := range kinds(evs, EventStageAdvanced) {
					weights = append(weights, e.Weight)
					advances = append(advances, e.Time)
					if e.Decision != DecisionGo || e.Numbers == nil {
						t.Errorf("advance event without Go and numbers: %+v", e)
					}
				}
				if len(kinds(evs, EventRolledBack)) > 0 || len(kinds(evs, EventPaused)) > 0 {
					t.Fatalf("unexpected event at %s: %+v", now.Sub(t0), evs)
				}
			}
			if !slices.Equal(weights, tt.wantWeights) {
				t.Errorf("weights %v, want %v", weights, tt.wantWeights)
			}
			// Each stage: one check to see the ACK, then MinWindow of clean checks.
			want := t0
			for i, w := range tt.wantWindows {
				want = want.Add(every + w)
				if i >= len(advances) || !advances[i].Equal(want) {
					t.Fatalf("advance %d at %v, want %s", i, advances, want.Sub(t0))
				}
			}
			if r.State != StateCompleted {
				t.Fatalf("state %s, want completed", r.State)
			}
			wantEnd := want.Add(every + 72*time.Hour)
			if !r.EndedAt.Equal(wantEnd) {
				t.Errorf("completed at %s, want %s", r.EndedAt.Sub(t0), wantEnd.Sub(t0))
			}
			if v, ok := r.NewStable(); !ok || v != "v2" {
				t.Errorf("NewStable() = %q, %v", v, ok)
			}
			if r.Weights()["v2"] != 10000 || r.Matches() != nil {
				t.Errorf("completed weights %v matches %v", r.Weights(), r.Matches())
			}
		})
	}
}

func TestMonitoringPhases(t *testing.T) {
	spec := testSpec(Patch)
	spec.Critical = true
	r, _ := mustNew(t, t0, spec)
	r, _, evs := drive(r, t0, t0.Add(80*time.Hour), 30*time.Second, good)
	var phases []string
	for _, e := range kinds(evs, EventPhase) {
		phases = append(phases, e.Phase)
	}
	if want := []string{"Short-term", "Extended", "Long-term"}; !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	if len(kinds(evs, EventMonitoringClosed)) != 1 || len(kinds(evs, EventCompleted)) != 1 {
		t.Errorf("want one monitoring_closed and one completed event")
	}
	if r.State != StateCompleted {
		t.Errorf("state %s", r.State)
	}
}

// A no-go inside the monitoring window returns 100 % to the known-good version, and a
// phase's own check is evaluated only in its phase.
func TestMonitoringNoGo(t *testing.T) {
	spec := testSpec(Minor)
	spec.Monitoring = []Phase{
		{Name: "Immediate", Until: Duration(30 * time.Minute)},
		{Name: "Extended", Until: Duration(24 * time.Hour), Checks: []Check{{Name: "queue", OnFail: OnFailRollback}}},
	}
	r, _ := mustNew(t, t0, spec)
	r, now, _ := drive(r, t0, t0.Add(30*time.Hour), 30*time.Second, func(r Rollout, now time.Time) Observation {
		o := goodObs(r.Generation)
		if r.State == StateMonitoring {
			o.Stable = VersionStats{} // no traffic on the known-good version at 100 %
		}
		o.Checks = append(o.Checks, CheckResult{Name: "queue", Passed: r.Phase == 0})
		return o
	})
	if r.State != StateRolledBack {
		t.Fatalf("state %s", r.State)
	}
	if r.Weights()["v1"] != 10000 || r.Weights()["v2"] != 0 {
		t.Errorf("weights %v", r.Weights())
	}
	if d := now.Sub(r.FullAt); d < 30*time.Minute || d > 31*time.Minute {
		t.Errorf("rolled back %s after 100%%, want right after the Immediate phase", d)
	}
	if r.Baseline == nil || r.Baseline.Requests == 0 {
		t.Errorf("no baseline kept from the last stage")
	}
}
