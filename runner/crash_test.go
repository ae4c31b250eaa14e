package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/model"
)

// crashSpec is minorSpec without smoke checks: reported check results live in memory
// and a restart forgets them (the next check is inconclusive until the reporter
// reports again), which a resume-exactly comparison must leave out.
func crashSpec() controller.Spec {
	spec := minorSpec()
	spec.SmokeChecks = nil
	spec.Waivers = []controller.Waiver{{Item: controller.ItemSmokeTests, Reason: "covered by the contract suite", By: "alice"}}
	return spec
}

// crashScript is a list of actions: "start", "step" (one check interval, then
// Evaluate), a command kind, or "breach" (the canary starts failing a third of its
// requests). After the list, "step" repeats until the rollout ends.
type crashScript struct {
	name    string
	actions []string
	want    controller.State
}

func (s crashScript) action(i int) string {
	if i < len(s.actions) {
		return s.actions[i]
	}
	return "step"
}

func repeat(n int, a string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = a
	}
	return out
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// snapshot is what one action left behind: the persisted rollout (its id blanked, ids
// are random) and the weights the xds server serves.
type snapshot struct {
	Action  string
	Rollout string
	Served  map[string]uint32
}

// do performs one action and returns the rollout id (set by start).
func (h *harness) do(a, id string) (string, error) {
	ctx := context.Background()
	switch a {
	case "start":
		ro, err := h.run.Start(ctx, crashSpec(), "alice")
		return ro.ID, err
	case "step":
		h.step()
	case "breach":
		h.metrics.Set("v2", metrics.Stats{Requests: 1200, Errors: 400, P99: 50 * time.Millisecond})
	default:
		cmd := controller.Command{Kind: controller.CommandKind(a), Actor: "bob", Reason: "crash test"}
		_, err := h.run.Command(ctx, svcName, cmd)
		return id, err
	}
	return id, nil
}

func normalize(t *testing.T, ro controller.Rollout) string {
	t.Helper()
	ro.ID = ""
	b, err := json.Marshal(ro)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func normalizeEvents(evs []controller.Event) []controller.Event {
	out := make([]controller.Event, len(evs))
	for i, e := range evs {
		e.RolloutID = ""
		out[i] = e
	}
	return out
}

// runScript runs s on a fresh harness, restarting the process after every action when
// crash is set, and returns what each action left behind and the rollout's events.
func runScript(t *testing.T, s crashScript, crash bool) ([]snapshot, []controller.Event) {
	t.Helper()
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	var (
		id    string
		snaps []snapshot
		err   error
	)
	restarts := 0
	for i := 0; ; i++ {
		if i > 200 {
			t.Fatalf("%s: not finished after %d actions", s.name, i)
		}
		a := s.action(i)
		if id, err = h.do(a, id); err != nil {
			t.Fatalf("%s: action %d %s: %v", s.name, i, a, err)
		}
		ro := h.persisted(id)
		snap := snapshot{Action: a, Rollout: normalize(t, ro), Served: served(t, h.xs)}
		snaps = append(snaps, snap)
		want := ro.Weights()
		if ro.State.Terminal() {
			want = map[string]uint32{ro.Stable: 0, ro.Canary: 0}
			want[ro.KnownGood()] = catalog.TotalWeight
		}
		if !maps.Equal(snap.Served, want) {
			t.Fatalf("%s: action %d %s: served %v, persisted rollout (%s stage %d) wants %v", s.name, i, a, snap.Served, ro.State, ro.Stage, want)
		}
		if crash {
			h.restart()
			restarts++
			// The restarted process holds exactly the persisted rollout and serves
			// exactly its weights: no jump forward, no return to 0 %.
			if got := served(t, h.xs); !maps.Equal(got, snap.Served) {
				t.Fatalf("%s: restart after action %d %s: serves %v, served %v before (%s stage %d)", s.name, i, a, got, snap.Served, ro.State, ro.Stage)
			}
			v, _ := h.run.Service(svcName)
			switch {
			case ro.State.Terminal() && v.Active != nil:
				t.Fatalf("%s: restart after action %d: rollout %s is active again (%s)", s.name, i, id, v.Active.State)
			case !ro.State.Terminal() && v.Active == nil:
				t.Fatalf("%s: restart after action %d: rollout %s (%s) not resumed", s.name, i, id, ro.State)
			case !ro.State.Terminal() && normalize(t, *v.Active) != snap.Rollout:
				t.Fatalf("%s: restart after action %d: resumed rollout differs:\n%s", s.name, i, cmp.Diff(snap.Rollout, normalize(t, *v.Active)))
			}
			if !maps.Equal(nonzero(v.Weights), nonzero(snap.Served)) {
				t.Fatalf("%s: restart after action %d: runner reports weights %v, serves %v", s.name, i, v.Weights, snap.Served)
			}
		}
		if ro.State.Terminal() {
			if ro.State != s.want {
				t.Fatalf("%s: ended %s (%s), want %s", s.name, ro.State, ro.Reason, s.want)
			}
			break
		}
	}
	if crash {
		t.Logf("%s: %d actions, %d restarts", s.name, len(snaps), restarts)
	}
	return snaps, normalizeEvents(h.events(id))
}

// TestCrashResume stops the process after every action of full rollouts (every
// transition, every command and every check in between) and restarts it on the same
// state directory with a fresh store, xds server and runner: the resumed rollout
// equals the persisted one, the new xds server serves exactly its weights, and the
// whole run gives the same states, weights and events as an uninterrupted one.
func TestCrashResume(t *testing.T) {
	scripts := []crashScript{
		{
			name: "minor with pause and resume",
			actions: concat([]string{"start"}, repeat(10, "step"), []string{string(controller.CmdPause)},
				repeat(2, "step"), []string{string(controller.CmdResume)}),
			want: controller.StateCompleted,
		},
		{
			name: "promote, promote to 100%, no-go in the monitoring window",
			actions: concat([]string{"start"}, repeat(3, "step"), []string{string(controller.CmdPromote)},
				repeat(3, "step"), []string{string(controller.CmdPromoteFull)}, repeat(4, "step"), []string{"breach"}),
			want: controller.StateRolledBack,
		},
		{
			name:    "abort",
			actions: concat([]string{"start"}, repeat(9, "step"), []string{string(controller.CmdAbort)}),
			want:    controller.StateRolledBack,
		},
	}
	for _, s := range scripts {
		t.Run(strings.ReplaceAll(s.name, " ", "_"), func(t *testing.T) {
			ref, refEvents := runScript(t, s, false)
			got, gotEvents := runScript(t, s, true)
			if len(ref) != len(got) {
				t.Fatalf("%d actions with restarts, %d without", len(got), len(ref))
			}
			for i := range ref {
				if diff := cmp.Diff(ref[i], got[i]); diff != "" {
					t.Fatalf("action %d %s differs with restarts (-without +with):\n%s", i, ref[i].Action, diff)
				}
			}
			if diff := cmp.Diff(refEvents, gotEvents); diff != "" {
				t.Errorf("events differ with restarts (-without +with):\n%s", diff)
			}
			var last controller.Rollout
			if err := json.Unmarshal([]byte(got[len(got)-1].Rollout), &last); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d actions, %d events, ended %s: %s", len(got), len(gotEvents), last.State, summary(gotEvents))
		})
	}
}

// nonzero drops the versions at weight 0 (kept defined, not in the split).
func nonzero(w map[string]uint32) map[string]uint32 {
	out := map[string]uint32{}
	for k, v := range w {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// summary lists the transitions of a timeline.
func summary(evs []controller.Event) string {
	var parts []string
	for _, e := range evs {
		switch e.Kind {
		case controller.EventDecision, controller.EventHold, controller.EventAcked:
			continue
		}
		parts = append(parts, fmt.Sprintf("%s@%d", e.Kind, e.Weight))
	}
	return strings.Join(parts, " ")
}

// TestRestartDowntimeIsNotMonitoring restarts the process after a downtime: the first
// check after it accrues one check interval, not the time nobody observed, and the
// weights stay those persisted.
func TestRestartDowntimeIsNotMonitoring(t *testing.T) {
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	spec := crashSpec()
	spec.Warmup = new(model.ZeroableDuration) // the stage clock from the ACK on
	ro, err := h.run.Start(context.Background(), spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// No proxy and proxies optional: the stage clock starts when the weights were
	// published, at the start; each check accrues its interval.
	for range 3 {
		h.step()
	}
	before := h.persisted(ro.ID)
	if before.Progress.Monitored.D() != 3*checkEvery {
		t.Fatalf("monitored %s before the crash, want %s", before.Progress.Monitored, 3*checkEvery)
	}
	h.restart()
	h.clock.Advance(40 * time.Second) // down for four check intervals
	if got := served(t, h.xs); got["v2"] != 500 {
		t.Fatalf("after restart serves %v, want v2=500", got)
	}
	h.step()
	after := h.persisted(ro.ID)
	if after.State != controller.StateProgressing || after.Stage != 0 || after.Progress.Monitored.D() != 4*checkEvery {
		t.Errorf("after the downtime: %s stage %d monitored %s, want progressing in stage 0 with %s monitored",
			after.State, after.Stage, after.Progress.Monitored, 4*checkEvery)
	}
	if got := served(t, h.xs); got["v2"] != 500 {
		t.Errorf("after the first check serves %v, want v2=500", got)
	}
}
