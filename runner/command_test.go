package runner_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/runner"
)

func TestCommands(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	cmd := func(kind controller.CommandKind, force bool, reason string) controller.Command {
		return controller.Command{Kind: kind, Actor: "bob", Reason: reason, Force: force}
	}

	// apply runs one command and checks its outcome: the error, and on success the
	// rollout persisted as returned, its weights served and the command recorded.
	apply := func(c controller.Command, wantErr error, wantState controller.State, wantWeight uint32) {
		t.Helper()
		h.clock.Advance(time.Second)
		ro, err := h.run.Command(ctx, svcName, c)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("%s: error %v, want %v", c.Kind, err, wantErr)
			}
			t.Logf("%s refused: %v", c.Kind, err)
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Kind, err)
		}
		if ro.State != wantState || ro.CanaryWeight() != wantWeight {
			t.Fatalf("%s: %s at %d (%s), want %s at %d", c.Kind, ro.State, ro.CanaryWeight(), ro.Reason, wantState, wantWeight)
		}
		if got, want := normalize(t, h.persisted(ro.ID)), normalize(t, ro); got != want {
			t.Errorf("%s: persisted rollout differs from the returned one", c.Kind)
		}
		want := ro.Weights()
		if ro.State.Terminal() {
			want = map[string]uint32{ro.KnownGood(): 10000}
		}
		if got := served(t, h.xs); !maps.Equal(nonzero(got), nonzero(want)) {
			t.Errorf("%s: serves %v, want %v", c.Kind, got, want)
		}
		evs := h.events(ro.ID)
		var rec *controller.Event
		for i := range evs {
			if evs[i].Kind == controller.EventCommand && evs[i].Time.Equal(h.clock.Now()) {
				rec = &evs[i]
			}
		}
		if rec == nil || rec.Command != c.Kind || rec.Actor != "bob" || rec.Reason != c.Reason || rec.Force != c.Force {
			t.Errorf("%s: command event %+v", c.Kind, rec)
		}
	}

	// No rollout yet.
	if _, err := h.run.Command(ctx, svcName, cmd(controller.CmdPause, false, "")); !errors.Is(err, runner.ErrNoActiveRollout) {
		t.Errorf("pause with no rollout: %v, want ErrNoActiveRollout", err)
	}
	if _, err := h.run.Command(ctx, "nope", cmd(controller.CmdPause, false, "")); !errors.Is(err, runner.ErrUnknownService) {
		t.Errorf("pause of an unknown service: %v, want ErrUnknownService", err)
	}

	first, err := h.run.Start(ctx, crashSpec(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.run.Start(ctx, crashSpec(), "alice"); !errors.Is(err, runner.ErrActiveRollout) {
		t.Errorf("second Start: %v, want ErrActiveRollout", err)
	}
	// A few clean checks at 5 % (less than the stage's minute): the engine measures how
	// clustered the service's errors are before it pauses on an error rate.
	for range 4 {
		h.step()
	}
	apply(cmd(controller.CmdFinish, false, ""), controller.ErrInvalidState, "", 0)
	apply(cmd(controller.CmdResume, false, ""), controller.ErrInvalidState, "", 0)
	apply(cmd(controller.CommandKind("reboot"), false, ""), controller.ErrUnknownCommand, "", 0)
	apply(cmd(controller.CmdPause, false, "looking at dashboards"), nil, controller.StatePaused, 500)
	apply(cmd(controller.CmdPause, false, ""), controller.ErrInvalidState, "", 0)
	apply(cmd(controller.CmdResume, false, "dashboards fine"), nil, controller.StateProgressing, 500)
	apply(cmd(controller.CmdPromote, false, "enough data"), nil, controller.StateProgressing, 2500)

	// A soft breach pauses at the first check that judges the new stage's analysis
	// window (the check that sees the ACK judges none, nor do those of the warm-up);
	// promote is refused while a check fails, unless forced.
	h.metrics.Set("v2", metrics.Stats{Requests: 1000, Errors: 20, P99: 50 * time.Millisecond})
	h.step()
	if ro := h.persisted(first.ID); ro.State != controller.StateProgressing || ro.Progress.AckedAt.IsZero() {
		t.Fatalf("at the ACK of 25 %%: %s (%s), want progressing with the weights ACKed", ro.State, ro.Reason)
	}
	for i := 0; i < 10 && h.persisted(first.ID).WarmingUp(h.clock.Now()); i++ {
		h.step()
	}
	h.step()
	if ro := h.persisted(first.ID); ro.State != controller.StatePaused || ro.PausedBy != "" ||
		!strings.Contains(ro.Reason, "error rate more than 0.1 pp above baseline") {
		t.Fatalf("after a soft breach: %s (%s), want paused by the check", ro.State, ro.Reason)
	}
	apply(cmd(controller.CmdPromote, false, ""), controller.ErrCheckFailing, "", 0)
	apply(cmd(controller.CmdPromote, true, "false positive"), nil, controller.StateProgressing, 5000)
	h.metrics.Set("v2", metrics.Stats{Requests: 1000, Errors: 1, P99: 50 * time.Millisecond})
	apply(cmd(controller.CmdPromoteFull, false, "ship it"), nil, controller.StateMonitoring, 10000)
	apply(cmd(controller.CmdPromote, false, ""), controller.ErrInvalidState, "", 0)
	apply(cmd(controller.CmdFinish, false, "window long enough"), nil, controller.StateCompleted, 10000)
	if _, err := h.run.Command(ctx, svcName, cmd(controller.CmdAbort, false, "too late")); !errors.Is(err, runner.ErrNoActiveRollout) {
		t.Errorf("abort after completion: %v, want ErrNoActiveRollout", err)
	}
	if v, _ := h.run.Service(svcName); v.Active != nil || v.KnownGood != "v2" || v.Weights["v2"] != 10000 {
		t.Errorf("after finish: active %v, knownGood %s, weights %v", v.Active, v.KnownGood, v.Weights)
	}

	// A second rollout, of a version not in the catalog, aborted: back to v2, v3 kept
	// defined at 0.
	spec := crashSpec()
	spec.Canary = controller.Canary{Version: "v3", Endpoints: []string{"127.0.0.1:3"}}
	second, err := h.run.Start(ctx, spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if second.Stable != "v2" {
		t.Errorf("second rollout starts from %s, want the new stable v2", second.Stable)
	}
	if got := served(t, h.xs); got["v3"] != 500 || got["v2"] != 9500 || got["v1"] != 0 {
		t.Errorf("second rollout serves %v", got)
	}
	apply(cmd(controller.CmdAbort, false, ""), controller.ErrReasonRequired, "", 0)
	apply(cmd(controller.CmdAbort, false, "security issue in v3"), nil, controller.StateRolledBack, 0)
	if ro := h.persisted(second.ID); !ro.Aborted {
		t.Error("aborted rollout not marked Aborted")
	}
	if got := served(t, h.xs); got["v2"] != 10000 || got["v3"] != 0 {
		t.Errorf("after abort serves %v, want v2=10000 with v3 kept at 0", got)
	}
	h.run.Evaluate(ctx)
	evs := h.events(second.ID)
	if last := evs[len(evs)-1]; last.Kind != controller.EventAcked {
		t.Errorf("last event after the abort %s, want the restore confirmation", last.Kind)
	}
	if _, err := h.run.Command(ctx, svcName, cmd(controller.CmdResume, false, "")); !errors.Is(err, runner.ErrNoActiveRollout) {
		t.Errorf("resume after abort: %v, want ErrNoActiveRollout", err)
	}
	if rs, err := h.run.Rollouts(runner.RolloutFilter{Service: svcName}); err != nil || len(rs) != 2 ||
		rs[0].State != controller.StateRolledBack || rs[1].State != controller.StateCompleted {
		t.Errorf("Rollouts() = %d rollouts, %v", len(rs), err)
	}
	// After a restart the idle service still serves the known-good version and keeps
	// v3's cluster.
	h.restart()
	if got := served(t, h.xs); got["v2"] != 10000 || len(got) != 3 {
		t.Errorf("after restart serves %v, want v2=10000 with v1 and v3 at 0", got)
	}
}
