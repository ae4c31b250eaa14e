package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/model"
)

func TestWarmupResolvedAndValidated(t *testing.T) {
	t.Parallel()
	spec := testSpec(Minor)
	spec.Warmup = nil
	p, err := Resolve(spec)
	if err != nil {
		t.Fatal(err)
	}
	if p.Warmup.D() != DefaultWarmupChecks*DefaultCheckInterval {
		t.Errorf("default warmup %s, want two check intervals", p.Warmup)
	}
	spec.CheckInterval = Duration(10 * time.Second)
	if p, _ := Resolve(spec); p.Warmup.D() != 20*time.Second {
		t.Errorf("warmup %s at a 10s check interval, want 20s", p.Warmup)
	}
	off := model.ZeroableDuration(0)
	spec.Warmup = &off
	if p, _ := Resolve(spec); p.Warmup != 0 {
		t.Errorf("warmup: 0s resolved to %s", p.Warmup)
	}
	for _, bad := range []model.ZeroableDuration{-1, model.ZeroableDuration(MaxWarmup + time.Second)} {
		spec.Warmup = &bad
		if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "warmup") {
			t.Errorf("warmup %s: %v, want an error naming warmup", bad, err)
		}
	}
}

// warmupSpec is a minor release with one 5-minute stage and the default warm-up (1m).
func warmupSpec() Spec {
	spec := testSpec(Minor)
	spec.Warmup = nil
	spec.Stages = []StageSpec{{Percent: 50, MinWindow: Duration(5 * time.Minute)}, {Percent: 100}}
	return spec
}

func TestWarmupHoldsAndJudgesGrossOnly(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	r, _ := mustNew(t, t0, warmupSpec())
	// The canary is ×1.6 slower for its first 30 s, then as fast as the stable version.
	ackAt := t0.Add(100 * ms)
	obs := func(r Rollout, now time.Time) Observation {
		p99 := 100 * ms
		if now.Sub(ackAt) <= 30*time.Second {
			p99 = 160 * ms
		}
		o := split(r, now, 1000, 0.5, 0.5, p99, 100*ms)
		o.Convergence.AckedAt = ackAt
		return o
	}
	r, now, evs := drive(r, t0, t0.Add(60*time.Second), 30*time.Second, obs)
	if r.State != StateProgressing || r.Progress.Monitored != 0 {
		t.Fatalf("in the warm-up: state %s, %s monitored (%s)", r.State, r.Progress.Monitored, r.Reason)
	}
	if aw := r.AnalysisWindow(now); aw != 0 {
		t.Errorf("analysis window %s in the warm-up, want none", aw)
	}
	holds := kinds(evs, EventHold)
	if len(holds) != 1 || holds[0].Cause != CauseWarmup || !strings.Contains(holds[0].Reason, "warming up: the first 1m0s") {
		t.Fatalf("warm-up holds %+v", holds)
	}
	// After the warm-up the window starts: the slow first 30 s are not in it, the stage
	// takes its 5 minutes of monitored checks from there, and nothing pauses.
	r, now, evs = drive(r, now, t0.Add(10*time.Minute), 30*time.Second, obs)
	if r.Stage != 1 {
		t.Fatalf("stage %d state %s (%s), want the next stage", r.Stage, r.State, r.Reason)
	}
	adv := kinds(evs, EventStageAdvanced)
	if len(adv) != 1 || adv[0].Time.Sub(ackAt) < time.Minute+5*time.Minute {
		t.Fatalf("advanced %+v, want no sooner than warm-up + 5m after the ACK", adv)
	}
	if len(kinds(evs, EventPaused)) > 0 {
		t.Fatal("paused on a warm-up")
	}
	_ = now
}

func TestWarmupStillRollsBackGrossBreaches(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	r, _ := mustNew(t, t0, warmupSpec())
	r, _, evs := drive(r, t0, t0.Add(90*time.Second), 30*time.Second, func(r Rollout, now time.Time) Observation {
		o := split(r, now, 1000, 20, 0.5, 100*ms, 100*ms)
		o.Convergence.AckedAt = t0.Add(100 * ms)
		return o
	})
	if r.State != StateRolledBack {
		t.Fatalf("state %s (%s), want a gross breach rolled back within the warm-up", r.State, r.Reason)
	}
	if rb := kinds(evs, EventRolledBack); len(rb) != 1 || rb[0].Time.After(t0.Add(time.Minute)) || !strings.Contains(rb[0].Reason, "grossly") {
		t.Fatalf("rollback %+v", rb)
	}
}

func TestWarmupNotRepeatedOnResume(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	r, _ := mustNew(t, t0, warmupSpec())
	obs := func(r Rollout, now time.Time) Observation {
		o := split(r, now, 1000, 0.5, 0.5, 100*ms, 100*ms)
		o.Convergence.AckedAt = t0.Add(100 * ms)
		return o
	}
	r, now, _ := drive(r, t0, t0.Add(90*time.Second), 30*time.Second, obs)
	for i, c := range []Command{{Kind: CmdPause, Actor: "sre", Reason: "look"}, {Kind: CmdResume, Actor: "sre", Reason: "fine"}} {
		var err error
		if r, _, err = r.Apply(now.Add(time.Duration(i+1)*time.Second), c); err != nil {
			t.Fatal(err)
		}
	}
	if r.WarmingUp(now.Add(3 * time.Second)) {
		t.Fatal("a resume warms up again; the weights did not change")
	}
	if aw := r.AnalysisWindow(now.Add(32 * time.Second)); aw != 30*time.Second {
		t.Errorf("analysis window %s 30s after the resume, want 30s", aw)
	}
}
