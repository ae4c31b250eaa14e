package controller

import (
	"errors"
	"testing"
	"time"
)

func TestCommands(t *testing.T) {
	at := t0.Add(5 * time.Minute)
	progressing := func() Rollout { return acked(t, testSpec(Minor)) }
	paused := func() Rollout {
		r, _, _ := progressing().Apply(at.Add(-time.Minute), Command{Kind: CmdPause, Actor: "ana", Reason: "looking"})
		return r
	}
	breachPaused := func() Rollout {
		r := progressing()
		o := goodObs(r.Generation)
		o.Alerts = []string{"HighLatency"}
		r, _ = step(r, at.Add(-time.Minute), o)
		return r
	}
	failing := func() Rollout {
		r := breachPaused()
		r, _, _ = r.Apply(at.Add(-30*time.Second), Command{Kind: CmdResume, Actor: "ana"})
		r.Progress.Failing = true
		return r
	}
	monitoring := func() Rollout {
		r, _, _ := progressing().Apply(at.Add(-time.Minute), Command{Kind: CmdPromoteFull, Actor: "ana"})
		return r
	}
	rolledBack := func() Rollout {
		r, _, _ := progressing().Apply(at.Add(-time.Minute), Command{Kind: CmdAbort, Actor: "sec", Reason: "CVE"})
		return r
	}
	completed := func() Rollout {
		r, _, _ := monitoring().Apply(at.Add(-30*time.Second), Command{Kind: CmdFinish, Actor: "ana"})
		return r
	}
	tests := []struct {
		name      string
		r         func() Rollout
		cmd       Command
		wantErr   error
		wantState State
		wantW     uint32
	}{
		{"pause progressing", progressing, Command{Kind: CmdPause, Actor: "ana"}, nil, StatePaused, 500},
		{"pause paused", paused, Command{Kind: CmdPause}, ErrInvalidState, "", 0},
		{"resume progressing", progressing, Command{Kind: CmdResume}, ErrInvalidState, "", 0},
		{"resume paused", paused, Command{Kind: CmdResume, Actor: "ana"}, nil, StateProgressing, 500},
		{"promote", progressing, Command{Kind: CmdPromote, Actor: "ana"}, nil, StateProgressing, 2500},
		{"promote manual pause", paused, Command{Kind: CmdPromote, Actor: "ana"}, nil, StateProgressing, 2500},
		{"promote breach pause", breachPaused, Command{Kind: CmdPromote, Actor: "ana"}, ErrCheckFailing, "", 0},
		{"promote breach pause forced", breachPaused, Command{Kind: CmdPromote, Actor: "ana", Force: true}, nil, StateProgressing, 2500},
		{"promote failing", failing, Command{Kind: CmdPromote}, ErrCheckFailing, "", 0},
		{"promote-full failing", failing, Command{Kind: CmdPromoteFull}, ErrCheckFailing, "", 0},
		{"promote-full", progressing, Command{Kind: CmdPromoteFull, Actor: "ana"}, nil, StateMonitoring, 10000},
		{"promote monitoring", monitoring, Command{Kind: CmdPromote}, ErrInvalidState, "", 0},
		{"finish progressing", progressing, Command{Kind: CmdFinish}, ErrInvalidState, "", 0},
		{"finish monitoring", monitoring, Command{Kind: CmdFinish, Actor: "ana"}, nil, StateCompleted, 10000},
		{"abort without reason", progressing, Command{Kind: CmdAbort, Actor: "ana"}, ErrReasonRequired, "", 0},
		{"abort", progressing, Command{Kind: CmdAbort, Actor: "sec", Reason: "CVE-2025-1"}, nil, StateRolledBack, 0},
		{"abort monitoring", monitoring, Command{Kind: CmdAbort, Actor: "sec", Reason: "data"}, nil, StateRolledBack, 0},
		{"abort rolled back", rolledBack, Command{Kind: CmdAbort, Reason: "again"}, ErrInvalidState, "", 0},
		{"resume completed", completed, Command{Kind: CmdResume}, ErrInvalidState, "", 0},
		{"unknown", progressing, Command{Kind: "explode"}, ErrUnknownCommand, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.r()
			r, evs, err := before.Apply(at, tt.cmd)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if r.State != before.State || r.Generation != before.Generation || evs != nil {
					t.Errorf("a refused command changed the rollout")
				}
				return
			}
			if r.State != tt.wantState || r.CanaryWeight() != tt.wantW {
				t.Errorf("state %s weight %d, want %s %d", r.State, r.CanaryWeight(), tt.wantState, tt.wantW)
			}
			if len(evs) < 2 || evs[0].Kind != EventCommand || evs[0].Actor != tt.cmd.Actor || evs[0].Command != tt.cmd.Kind ||
				evs[0].Reason != tt.cmd.Reason {
				t.Errorf("events %+v", evs)
			}
			checkWeights(t, r)
		})
	}
}

// After a manual resume the stage window starts over; autoResume resumes a
// breach-paused stage once it was clean for the stage's whole window.
func TestResume(t *testing.T) {
	spec := testSpec(Minor)
	spec.AutoResume = true
	r := acked(t, spec)
	o := goodObs(r.Generation)
	o.Alerts = []string{"HighLatency"}
	r, _ = step(r, t0.Add(time.Minute), o)
	if r.State != StatePaused {
		t.Fatal(r.State)
	}
	var resumedAt, advancedAt time.Time
	now := t0.Add(time.Minute)
	for r.Stage == 0 && now.Before(t0.Add(2*time.Hour)) {
		now = now.Add(30 * time.Second)
		var evs []Event
		r, evs = step(r, now, goodObs(r.Generation))
		if e := kinds(evs, EventResumed); len(e) == 1 {
			resumedAt = e[0].Time
		}
		if e := kinds(evs, EventStageAdvanced); len(e) == 1 {
			advancedAt = e[0].Time
		}
	}
	if !resumedAt.Equal(t0.Add(16*time.Minute)) || !advancedAt.Equal(t0.Add(16*time.Minute+30*time.Second)) {
		t.Errorf("resumed at %s, advanced at %s", resumedAt.Sub(t0), advancedAt.Sub(t0))
	}

	// A person's pause is never resumed automatically; their resume starts a new window.
	r = acked(t, spec)
	r, _, _ = r.Apply(t0.Add(45*time.Second), Command{Kind: CmdPause, Actor: "ana", Reason: "dashboards"})
	r, _, _ = drive(r, t0.Add(45*time.Second), t0.Add(time.Hour), 30*time.Second, good)
	if r.State != StatePaused {
		t.Fatalf("manual pause resumed automatically: %s", r.State)
	}
	r, _, err := r.Apply(t0.Add(time.Hour+10*time.Second), Command{Kind: CmdResume, Actor: "ana"})
	if err != nil {
		t.Fatal(err)
	}
	r, _, evs := drive(r, t0.Add(time.Hour+10*time.Second), t0.Add(2*time.Hour), 30*time.Second, good)
	adv := kinds(evs, EventStageAdvanced)
	if len(adv) == 0 || !adv[0].Time.Equal(t0.Add(time.Hour+10*time.Second+15*time.Minute)) {
		t.Errorf("advance after resume: %+v", adv)
	}
}
