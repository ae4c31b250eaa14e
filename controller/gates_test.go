package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/model"
)

// gateSpec is a canary patch (one 5 % stage of 5 min, 30 s checks, a short monitoring
// window) with one hook at each of preRollout, confirmPromotion and postRollout.
func gateSpec(onFail string) Spec {
	spec := testSpec(Patch)
	spec.Strategy = StrategyCanary
	spec.Monitoring = []Phase{{Name: "Immediate", Until: Duration(10 * time.Minute)}}
	hook := func(name string) []Webhook {
		return []Webhook{{Name: name, URL: "http://127.0.0.1:1/" + name, SecretFile: "/secret", OnFail: onFail}}
	}
	spec.Gates = Gates{PreRollout: hook("backup"), ConfirmPromotion: hook("qa"), PostRollout: hook("verify")}
	return spec
}

// gateObs is a clean observation carrying answer from every hook r asks at now.
func gateObs(answer func(point string) string) func(Rollout, time.Time) Observation {
	return func(r Rollout, now time.Time) Observation {
		obs := goodObs(r.Generation)
		if p := r.GateWanted(now, nil); p != "" {
			for _, h := range r.Plan.Gates.At(p) {
				a := answer(p)
				ga := GateAnswer{Hook: h.Name, Point: p, Answer: a, Status: 200, Reason: "said " + a, At: now}
				if a == model.AnswerError {
					ga.Status, ga.Reason, ga.Error = 500, "", "HTTP 500"
				}
				obs.Gates = append(obs.Gates, ga)
			}
		}
		return obs
	}
}

func allGo(string) string { return model.AnswerGo }

func TestGatesGoAllTheWay(t *testing.T) {
	r, evs := mustNew(t, t0, gateSpec(""))
	if r.State != StatePending || !strings.Contains(r.Reason, "waiting for gate preRollout: backup not asked yet") {
		t.Fatalf("created %s (%s)", r.State, r.Reason)
	}
	if got := r.GateWanted(t0.Add(time.Second), nil); got != model.GatePreRollout {
		t.Fatalf("GateWanted pending = %q", got)
	}
	r, _, more := drive(r, t0, t0.Add(2*time.Hour), 30*time.Second, gateObs(allGo))
	evs = append(evs, more...)
	if r.State != StateCompleted {
		t.Fatalf("state %s (%s)", r.State, r.Reason)
	}
	var points []string
	for _, e := range kinds(evs, EventGate) {
		points = append(points, e.Gate.Point+"="+e.Gate.Answer)
	}
	if strings.Join(points, ",") != "preRollout=go,confirmPromotion=go,postRollout=go" {
		t.Fatalf("gate events %v", points)
	}
	if !r.PostRolloutPassed {
		t.Fatal("postRollout not recorded as passed")
	}
}

func TestGateWaitAndErrorHoldNeverPass(t *testing.T) {
	for _, answer := range []string{model.AnswerWait, model.AnswerError} {
		t.Run(answer, func(t *testing.T) {
			r, _ := mustNew(t, t0, gateSpec(""))
			r, _, evs := drive(r, t0, t0.Add(time.Hour), 30*time.Second, gateObs(func(string) string { return answer }))
			if r.State != StatePending || r.CanaryWeight() != 0 {
				t.Fatalf("after an hour of %s: %s at %d", answer, r.State, r.CanaryWeight())
			}
			if !strings.Contains(r.Reason, "waiting for gate preRollout") {
				t.Fatalf("reason %q", r.Reason)
			}
			// The same answer is recorded once, not on every check.
			if n := len(kinds(evs, EventGate)); n != 1 {
				t.Fatalf("%d gate events for one unchanging answer", n)
			}
		})
	}
}

func TestGateNoGo(t *testing.T) {
	noGoAt := func(point string) func(string) string {
		return func(p string) string {
			if p == point {
				return model.AnswerNoGo
			}
			return model.AnswerGo
		}
	}
	t.Run("preRollout refuses the start", func(t *testing.T) {
		r, _ := mustNew(t, t0, gateSpec(""))
		r, _, evs := drive(r, t0, t0.Add(time.Hour), 30*time.Second, gateObs(noGoAt(model.GatePreRollout)))
		if r.State != StateRolledBack || !r.StartedAt.IsZero() || !strings.Contains(r.Reason, "start is refused") {
			t.Fatalf("%s (%s)", r.State, r.Reason)
		}
		rb := kinds(evs, EventRolledBack)
		if len(rb) != 1 || rb[0].Gate == nil || rb[0].Gate.Hook != "backup" || rb[0].Weight != 0 {
			t.Fatalf("rollback event %+v", rb)
		}
	})
	t.Run("confirmPromotion rolls back", func(t *testing.T) {
		r, _ := mustNew(t, t0, gateSpec(""))
		r, _, _ = drive(r, t0, t0.Add(time.Hour), 30*time.Second, gateObs(noGoAt(model.GateConfirmPromotion)))
		if r.State != StateRolledBack || r.Stage != 0 || !strings.Contains(r.Reason, `hook "qa" (confirmPromotion) answered no-go`) {
			t.Fatalf("%s stage %d (%s)", r.State, r.Stage, r.Reason)
		}
	})
	t.Run("confirmPromotion pauses with onFail pause", func(t *testing.T) {
		r, _ := mustNew(t, t0, gateSpec(model.GateOnFailPause))
		r, _, _ = drive(r, t0, t0.Add(time.Hour), 30*time.Second, gateObs(noGoAt(model.GateConfirmPromotion)))
		if r.State != StatePaused || r.PausedFrom != StateProgressing || r.CanaryWeight() != 500 {
			t.Fatalf("%s from %s at %d (%s)", r.State, r.PausedFrom, r.CanaryWeight(), r.Reason)
		}
	})
	t.Run("postRollout rolls back from 100%", func(t *testing.T) {
		r, _ := mustNew(t, t0, gateSpec(""))
		r, _, _ = drive(r, t0, t0.Add(time.Hour), 30*time.Second, gateObs(noGoAt(model.GatePostRollout)))
		if r.State != StateRolledBack || r.FullAt.IsZero() {
			t.Fatalf("%s (%s)", r.State, r.Reason)
		}
	})
}

func TestPostRolloutWaitHoldsCompletion(t *testing.T) {
	r, _ := mustNew(t, t0, gateSpec(""))
	answer := func(p string) string {
		if p == model.GatePostRollout {
			return model.AnswerWait
		}
		return model.AnswerGo
	}
	r, now, _ := drive(r, t0, t0.Add(time.Hour), 30*time.Second, gateObs(answer))
	if r.State != StateMonitoring || !strings.Contains(r.Reason, "monitoring window of 10m0s closed; waiting for gate postRollout") {
		t.Fatalf("%s (%s)", r.State, r.Reason)
	}
	if _, _, err := r.Apply(now, Command{Kind: CmdFinish, Actor: "bob"}); !errors.Is(err, ErrGateHeld) {
		t.Fatalf("finish before the postRollout go: %v", err)
	}
	r, _, _ = drive(r, now, now.Add(time.Minute), 30*time.Second, gateObs(allGo))
	if r.State != StateCompleted {
		t.Fatalf("after the go: %s (%s)", r.State, r.Reason)
	}
}

func TestApprovalRequired(t *testing.T) {
	spec := testSpec(Minor)
	spec.Stages = []StageSpec{
		{Percent: 5, MinWindow: Duration(5 * time.Minute), Approval: ApprovalRequired},
		{Percent: 50, MinWindow: Duration(5 * time.Minute)},
	}
	spec.Monitoring = []Phase{{Name: "Immediate", Until: Duration(10 * time.Minute)}}
	r, _ := mustNew(t, t0, spec)
	r, now, _ := drive(r, t0, t0.Add(time.Hour), 30*time.Second, good)
	if r.State != StateProgressing || r.Stage != 0 || !r.AwaitingApproval() ||
		r.Reason != "waiting for approval of stage 5% (octoroll approve checkout)" {
		t.Fatalf("after an hour: %s stage %d (%s), awaiting %v", r.State, r.Stage, r.Reason, r.AwaitingApproval())
	}
	r, evs, err := r.Apply(now, Command{Kind: CmdApprove, Actor: "carol", Reason: "dashboards fine"})
	if err != nil {
		t.Fatal(err)
	}
	if a := kinds(evs, EventApproved); len(a) != 1 || a[0].Actor != "carol" || !strings.Contains(a[0].Reason, "dashboards fine") {
		t.Fatalf("approve events %+v", evs)
	}
	if _, _, err := r.Apply(now, Command{Kind: CmdApprove, Actor: "dave"}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("second approve: %v", err)
	}
	r, _ = step(r, now.Add(30*time.Second), goodObs(r.Generation))
	if r.Stage != 1 || r.Progress.Approved != nil {
		t.Fatalf("after the approval: stage %d, approved %+v", r.Stage, r.Progress.Approved)
	}
	// Stage 2 needs none.
	if _, _, err := r.Apply(now, Command{Kind: CmdApprove, Actor: "carol"}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("approve of a stage without approval: %v", err)
	}
}

func TestFreeze(t *testing.T) {
	freeze := &Freeze{Reason: "incident 42", By: "alice", Since: t0}
	spec := testSpec(Minor)
	if _, _, err := Create(t0, "r1", spec, testService(), freeze); !errors.Is(err, ErrFrozen) || !strings.Contains(err.Error(), "incident 42") {
		t.Fatalf("start during a freeze: %v", err)
	}
	r, _ := mustNew(t, t0, spec)
	frozen := func(r Rollout, now time.Time) Observation {
		o := goodObs(r.Generation)
		o.Freeze = freeze
		return o
	}
	r, now, _ := drive(r, t0, t0.Add(3*time.Hour), 30*time.Second, frozen)
	if r.State != StateProgressing || r.Stage != 0 || !strings.HasPrefix(r.Reason, "frozen by alice") {
		t.Fatalf("during the freeze: %s stage %d (%s)", r.State, r.Stage, r.Reason)
	}
	if _, _, err := r.Apply(now, Command{Kind: CmdPromote, Actor: "bob", Freeze: freeze}); !errors.Is(err, ErrFrozen) {
		t.Fatalf("promote during a freeze: %v", err)
	}
	r2, evs, err := r.Apply(now, Command{Kind: CmdPromote, Actor: "bob", Freeze: freeze, OverrideFreeze: "CVE fix"})
	if err != nil || r2.Stage != 1 || r2.FreezeOverrides != 1 {
		t.Fatalf("promote with an override: stage %d, err %v", r2.Stage, err)
	}
	if o := kinds(evs, EventFreezeOverride); len(o) != 1 || o[0].Actor != "bob" || o[0].Freeze == nil || !strings.Contains(o[0].Reason, "CVE fix") {
		t.Fatalf("override events %+v", o)
	}
	// Rollbacks still work during a freeze.
	r3, _, err := r.Apply(now, Command{Kind: CmdAbort, Actor: "bob", Reason: "bad", Freeze: freeze})
	if err != nil || r3.State != StateRolledBack {
		t.Fatalf("abort during a freeze: %s, %v", r3.State, err)
	}
	// A spec with an override starts and advances through the freeze, each recorded.
	spec.OverrideFreeze = "critical security patch"
	r, evs, err = Create(t0, "r2", spec, testService(), freeze)
	if err != nil || r.State != StateProgressing {
		t.Fatalf("start with an override: %s, %v", r.State, err)
	}
	r, _, more := drive(r, t0, t0.Add(3*time.Hour), 30*time.Second, frozen)
	evs = append(evs, more...)
	if r.State != StateMonitoring || len(kinds(evs, EventFreezeOverride)) != 4 {
		t.Fatalf("%s with %d overrides recorded, want monitoring and 4 (start, 3 advances)", r.State, len(kinds(evs, EventFreezeOverride)))
	}
}

func TestGateSpecValidation(t *testing.T) {
	spec := testSpec(Minor)
	spec.Gates = Gates{
		PreRollout: []Webhook{{Name: "a", URL: "ftp://x"}, {Name: "a", URL: "http://x", SecretFile: "s", OnFail: "explode"}},
		OnRollback: []Webhook{{Name: "b", URL: "http://x", SecretFile: "s", OnFail: "pause"}},
	}
	spec.Stages = []StageSpec{{Percent: 5, MinWindow: Duration(time.Minute), Approval: "yes"}, {Percent: 100, Approval: ApprovalRequired}}
	err := spec.Validate()
	for _, want := range []string{
		`gates.preRollout[0].url: "ftp://x": want an http or https URL`,
		"gates.preRollout[0].secretFile: required",
		`gates.preRollout[1].name: "a": duplicate hook name`,
		`gates.preRollout[1].onFail: "explode": want rollback or pause`,
		"gates.onRollback[0].onFail: an onRollback hook cannot stop the rollback",
		`stages[0].approval: "yes": want required`,
		"stages[1].approval: the trailing 100% stage has nothing to advance to",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

func TestServiceGatesMerged(t *testing.T) {
	svc := testService()
	svc.Gates = Gates{ConfirmPromotion: []Webhook{{Name: "qa", URL: "http://svc/qa", SecretFile: "s"}, {Name: "sre", URL: "http://svc/sre", SecretFile: "s"}}}
	spec := gateSpec("")
	r, _, err := New(t0, "r1", spec, svc)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Plan.Gates.ConfirmPromotion
	if len(got) != 2 || got[0].URL != "http://127.0.0.1:1/qa" || got[1].Name != "sre" {
		t.Fatalf("merged confirmPromotion hooks %+v", got)
	}
}
