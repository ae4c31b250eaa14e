package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/gate"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/report"
	"github.com/octoacme/octoroll/runner"
)

// hookReceiver is a real webhook receiver: it checks every request's signature with
// its own copy of the secret (refusing a bad one with 401, as a receiver should) and
// answers as told: go, no-go, wait, hang (until the client gives up), 500.
type hookReceiver struct {
	secret []byte
	mu     sync.Mutex
	answer string
	reqs   []gate.Request
	ids    []string // the X-Octoroll-Gate-Id of each request
	bad    []string // why signatures were refused
	// retryAfter goes with a wait answer; hanging counts the requests held now.
	retryAfter string
	hanging    int
}

func (h *hookReceiver) set(answer string) {
	h.mu.Lock()
	h.answer = answer
	h.mu.Unlock()
}

func (h *hookReceiver) requests() []gate.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reqs)
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := gate.Verify(h.secret, r.Header.Get(gate.HeaderTimestamp), r.Header.Get(gate.HeaderSignature), body, time.Now(), 0); err != nil {
		h.mu.Lock()
		h.bad = append(h.bad, err.Error())
		h.mu.Unlock()
		http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
		return
	}
	var req gate.Request
	_ = json.Unmarshal(body, &req)
	h.mu.Lock()
	h.reqs = append(h.reqs, req)
	h.ids = append(h.ids, r.Header.Get(gate.HeaderID))
	answer, retry := h.answer, h.retryAfter
	if answer == "hang" {
		h.hanging++
	}
	h.mu.Unlock()
	switch answer {
	case "hang":
		<-r.Context().Done()
		h.mu.Lock()
		h.hanging--
		h.mu.Unlock()
	case "500":
		http.Error(w, "receiver broken", http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"answer":%q,"reason":"receiver says %s at %s","retryAfter":%q}`, answer, answer, req.Point, retry)
	}
}

// secretFile writes secret to a file in the test's directory and returns its path.
func secretFile(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// gateHarness is a harness whose gate client backs off 10 ms between attempts.
func gateHarness(t *testing.T, cat *catalog.Catalog) *harness {
	return newHarnessWith(t, cat, false, func(h *harness) {
		h.gates = gate.New(gate.Options{BackoffBase: 10 * time.Millisecond})
	})
}

// gatedSpec is minorSpec with hook (its URL on addr) at every point given.
func gatedSpec(addr, secret string, timeout time.Duration, points ...string) controller.Spec {
	spec := minorSpec()
	hook := []model.Webhook{{Name: "ci", URL: "http://" + addr + "/gate", SecretFile: secret, Timeout: model.Duration(timeout)}}
	for _, p := range points {
		switch p {
		case model.GatePreRollout:
			spec.Gates.PreRollout = hook
		case model.GateConfirmPromotion:
			spec.Gates.ConfirmPromotion = hook
		case model.GatePostRollout:
			spec.Gates.PostRollout = hook
		case model.GateOnRollback:
			spec.Gates.OnRollback = hook
		}
	}
	return spec
}

func gateEvents(evs []controller.Event) []model.GateAnswer {
	var out []model.GateAnswer
	for _, e := range evs {
		if e.Kind == controller.EventGate && e.Gate != nil {
			out = append(out, *e.Gate)
		}
	}
	return out
}

// TestGatesGoWithRealReceiver: a signature-checking receiver answers go at every gate:
// the rollout starts at once, advances through its three stages asking before each
// advance, completes after the postRollout go, and the answers are in the events and
// the release report.
func TestGatesGoWithRealReceiver(t *testing.T) {
	recv := &hookReceiver{secret: []byte("s3cret"), answer: model.AnswerGo}
	addr := serveApp(t, recv)
	h := gateHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"))
	ctx := context.Background()
	spec := gatedSpec(addr, secretFile(t, "s3cret"), 2*time.Second, model.GatePreRollout, model.GateConfirmPromotion, model.GatePostRollout)
	ro, err := h.run.Start(ctx, spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if ro.State != controller.StatePending {
		t.Fatalf("started %s (%s)", ro.State, ro.Reason)
	}
	if err := h.run.ReportCheck(ctx, svcName, controller.CheckResult{Name: "checkout-flow", Passed: true}); err != nil {
		t.Fatal(err)
	}
	h.run.Evaluate(ctx) // due at once: starts asking preRollout in the background
	if got := h.persisted(ro.ID); got.State != controller.StatePending || got.Reason != `waiting for gate preRollout: asking hook "ci"` {
		t.Fatalf("while the hook is asked: %s (%s)", got.State, got.Reason)
	}
	h.run.WaitGates()
	h.step() // the go is handed to this check
	if got := h.persisted(ro.ID); got.State != controller.StateProgressing || got.CanaryWeight() != 500 {
		t.Fatalf("after the preRollout go: %s at %d (%s)", got.State, got.CanaryWeight(), got.Reason)
	}
	stepUntil(t, h, ro.ID, 200, func(r controller.Rollout) bool { return r.State == controller.StateCompleted })
	var points []string
	for _, q := range recv.requests() {
		points = append(points, q.Point+"→"+q.NextStage)
		if q.RolloutID != ro.ID || q.Service != svcName || q.Canary != "v2" || q.Attempt != 1 {
			t.Errorf("request %+v", q)
		}
	}
	want := []string{"preRollout→5%", "confirmPromotion→25%", "confirmPromotion→50%", "confirmPromotion→100%", "postRollout→"}
	if !slices.Equal(points, want) {
		t.Fatalf("receiver saw %v, want %v", points, want)
	}
	evs := h.events(ro.ID)
	answers := gateEvents(evs)
	if len(answers) != 5 || answers[0].Status != 200 || answers[0].Reason != "receiver says go at preRollout" ||
		!strings.Contains(answers[0].Body, `"answer":"go"`) {
		t.Fatalf("gate events %+v", answers)
	}
	rep := report.Build(h.persisted(ro.ID), evs)
	md := string(rep.Markdown())
	if len(rep.Gates) != 5 || !strings.Contains(md, "## Gates") || !strings.Contains(md, "receiver says go at postRollout") {
		t.Fatalf("report gates %+v\n%s", rep.Gates, md)
	}
}

// TestGateWithoutGoHolds: wait, a hang past the hook's timeout, a 500 and a refused
// signature all hold the pending rollout at 0 % (never pass), each recorded with what
// the receiver did; errors are retried within the question, a 401 is not. A go then
// starts the rollout at the check after it was asked.
func TestGateWithoutGoHolds(t *testing.T) {
	for _, tc := range []struct {
		name, answer, secret string
		wantAnswer, wantErr  string
		status, attempts     int
	}{
		{name: "wait", answer: model.AnswerWait, secret: "s3cret", wantAnswer: model.AnswerWait, status: 200, attempts: 1},
		{name: "hang", answer: "hang", secret: "s3cret", wantAnswer: model.AnswerError, wantErr: "timeout after 200ms", attempts: 3},
		{name: "500", answer: "500", secret: "s3cret", wantAnswer: model.AnswerError, wantErr: "HTTP 500", status: 500, attempts: 3},
		{name: "bad signature", answer: model.AnswerGo, secret: "not-the-secret", wantAnswer: model.AnswerError, wantErr: "HTTP 401", status: 401, attempts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recv := &hookReceiver{secret: []byte("s3cret"), answer: tc.answer}
			addr := serveApp(t, recv)
			h := gateHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"))
			ctx := context.Background()
			secret := secretFile(t, tc.secret)
			ro, err := h.run.Start(ctx, gatedSpec(addr, secret, 200*time.Millisecond, model.GatePreRollout), "alice")
			if err != nil {
				t.Fatal(err)
			}
			h.run.Evaluate(ctx)
			h.run.WaitGates()
			for range 3 {
				h.step()
			}
			got := h.persisted(ro.ID)
			if got.State != controller.StatePending || got.CanaryWeight() != 0 || !strings.Contains(got.Reason, "waiting for gate preRollout") {
				t.Fatalf("%s at %d (%s)", got.State, got.CanaryWeight(), got.Reason)
			}
			if w := served(t, h.xs); w["v2"] != 0 {
				t.Fatalf("served %v while the gate holds", w)
			}
			answers := gateEvents(h.events(ro.ID))
			if len(answers) != 1 {
				t.Fatalf("%d gate events for one unchanging answer: %+v", len(answers), answers)
			}
			a := answers[0]
			if a.Answer != tc.wantAnswer || a.Status != tc.status || a.Attempts != tc.attempts || !strings.Contains(a.Error, tc.wantErr) {
				t.Fatalf("recorded %+v", a)
			}
			if tc.name == "bad signature" {
				recv.mu.Lock()
				bad := slices.Clone(recv.bad)
				recv.mu.Unlock()
				if len(bad) == 0 || !strings.Contains(bad[0], "does not match") || !strings.Contains(a.Body, "bad signature") {
					t.Fatalf("receiver refusals %v, body %q", bad, a.Body)
				}
				if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil { // rotated: read at every request
					t.Fatal(err)
				}
			}
			recv.set(model.AnswerGo)
			h.step() // hands the answer asked before the change, and asks again
			h.step()
			if got := h.persisted(ro.ID); got.State != controller.StateProgressing || got.CanaryWeight() != 500 {
				t.Fatalf("after a go: %s at %d (%s)", got.State, got.CanaryWeight(), got.Reason)
			}
		})
	}
}

// TestGateNoGoRollsBackAndTellsOnRollback: the receiver answers no-go before the
// second stage: the rollout rolls back to v1, and the onRollback hook is told (with
// the rollback's reason) and its answer recorded.
func TestGateNoGoRollsBackAndTellsOnRollback(t *testing.T) {
	recv := &hookReceiver{secret: []byte("s3cret"), answer: model.AnswerNoGo}
	addr := serveApp(t, recv)
	h := gateHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"))
	ctx := context.Background()
	ro, err := h.run.Start(ctx, gatedSpec(addr, secretFile(t, "s3cret"), time.Second, model.GateConfirmPromotion, model.GateOnRollback), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.run.ReportCheck(ctx, svcName, controller.CheckResult{Name: "checkout-flow", Passed: true}); err != nil {
		t.Fatal(err)
	}
	var got controller.Rollout
	for range 20 {
		h.step()
		if got = h.persisted(ro.ID); got.State.Terminal() {
			break
		}
	}
	if got.State != controller.StateRolledBack || got.Stage != 0 || !strings.Contains(got.Reason, `hook "ci" (confirmPromotion) answered no-go: receiver says no-go`) {
		t.Fatalf("%s stage %d (%s)", got.State, got.Stage, got.Reason)
	}
	if w := served(t, h.xs); w["v1"] != 10000 {
		t.Fatalf("served %v after the rollback", w)
	}
	h.run.WaitHooks()
	reqs := recv.requests()
	last := reqs[len(reqs)-1]
	if last.Point != model.GateOnRollback || !strings.Contains(last.Reason, "answered no-go") {
		t.Fatalf("onRollback request %+v", last)
	}
	answers := gateEvents(h.events(ro.ID))
	if n := len(answers); n < 2 || answers[n-1].Point != model.GateOnRollback {
		t.Fatalf("gate events %+v", answers)
	}
}

// TestApprovalStep: a stage with approval: required holds, "waiting for approval",
// until a person approves; the approval is recorded with the actor and the stage then
// advances.
func TestApprovalStep(t *testing.T) {
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	ctx := context.Background()
	spec := minorSpec()
	spec.Stages[0].Approval = controller.ApprovalRequired
	ro, err := h.run.Start(ctx, spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.run.ReportCheck(ctx, svcName, controller.CheckResult{Name: "checkout-flow", Passed: true}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		h.step()
	}
	got := h.persisted(ro.ID)
	if got.Stage != 0 || !got.AwaitingApproval() || got.Reason != "waiting for approval of stage 5% (octoroll approve svc)" {
		t.Fatalf("stage %d (%s), awaiting %v", got.Stage, got.Reason, got.AwaitingApproval())
	}
	if _, err := h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdApprove, Actor: "carol", Reason: "dashboards clean"}); err != nil {
		t.Fatal(err)
	}
	h.step()
	got = h.persisted(ro.ID)
	if got.Stage != 1 {
		t.Fatalf("after the approval: stage %d (%s)", got.Stage, got.Reason)
	}
	evs := h.events(ro.ID)
	i := slices.IndexFunc(evs, func(e controller.Event) bool { return e.Kind == controller.EventApproved })
	if i < 0 || evs[i].Actor != "carol" || !strings.Contains(evs[i].Reason, "dashboards clean") {
		t.Fatalf("approval event missing: %v", kinds(evs))
	}
}

// TestFreezeSurvivesRestart: a freeze refuses starts and holds an active rollout's
// advance; it is in the store, so a restarted process is still frozen; an override
// promotes one stage, recorded; unfreeze lets the rollout advance again.
func TestFreezeSurvivesRestart(t *testing.T) {
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"), false)
	ctx := context.Background()
	ro, err := h.run.Start(ctx, minorSpec(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.run.ReportCheck(ctx, svcName, controller.CheckResult{Name: "checkout-flow", Passed: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.run.Freeze(ctx, " ", "bob"); !errors.Is(err, runner.ErrReasonRequired) {
		t.Fatalf("freeze without a reason: %v", err)
	}
	st, err := h.run.Freeze(ctx, "incident 42", "bob")
	if err != nil || !st.Frozen() || st.Manual.By != "bob" {
		t.Fatalf("freeze: %+v, %v", st, err)
	}
	h.restart()
	if st := h.run.FreezeStatus(); !st.Frozen() || st.Manual.Reason != "incident 42" || !st.Manual.Since.Equal(t0) {
		t.Fatalf("after a restart: %+v", st)
	}
	for range 12 {
		h.step()
	}
	if got := h.persisted(ro.ID); got.Stage != 0 || !strings.HasPrefix(got.Reason, "frozen by bob") {
		t.Fatalf("frozen rollout: stage %d (%s)", got.Stage, got.Reason)
	}
	if _, err := h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdPromote, Actor: "carol"}); !errors.Is(err, controller.ErrFrozen) {
		t.Fatalf("promote during the freeze: %v", err)
	}
	got, err := h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdPromote, Actor: "carol", OverrideFreeze: "CVE-2026-1 fix"})
	if err != nil || got.Stage != 1 {
		t.Fatalf("promote with an override: stage %d, %v", got.Stage, err)
	}
	if _, err := h.run.Unfreeze(ctx, "incident over", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.run.Unfreeze(ctx, "", "bob"); !errors.Is(err, runner.ErrNotFrozen) {
		t.Fatalf("unfreeze twice: %v", err)
	}
	stepUntil(t, h, ro.ID, 20, func(r controller.Rollout) bool { return r.Stage == 2 })
	h.restart()
	if st := h.run.FreezeStatus(); st.Frozen() {
		t.Fatalf("unfreeze did not persist: %+v", st)
	}
	evs, _, err := h.run.Events(runner.EventQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range evs {
		switch e.Kind {
		case runner.EventFrozen, runner.EventUnfrozen, controller.EventFreezeOverride:
			seen = append(seen, e.Kind+" by "+e.Actor)
		}
	}
	if want := []string{"frozen by bob", "freeze_override by carol", "unfrozen by bob"}; !slices.Equal(seen, want) {
		t.Fatalf("freeze events %v, want %v", seen, want)
	}
}

// TestCatalogFreezeWindow: a catalog freeze window refuses starts while it runs (an
// override starts anyway, recorded) and lets them through once it ended.
func TestCatalogFreezeWindow(t *testing.T) {
	cat := testCatalog(t, "127.0.0.1:1", "127.0.0.1:2")
	cat.Freezes = []catalog.FreezeWindow{{Name: "launch", Start: t0.Add(-time.Hour), End: t0.Add(time.Hour), Reason: "product launch"}}
	h := newHarness(t, cat, false)
	ctx := context.Background()
	if _, err := h.run.Start(ctx, minorSpec(), "alice"); !errors.Is(err, controller.ErrFrozen) || !strings.Contains(err.Error(), "freeze window launch") {
		t.Fatalf("start in the window: %v", err)
	}
	if _, err := h.run.Unfreeze(ctx, "", "bob"); !errors.Is(err, runner.ErrNotFrozen) || !strings.Contains(err.Error(), "launch ends at") {
		t.Fatalf("unfreeze of a window: %v", err)
	}
	spec := minorSpec()
	spec.OverrideFreeze = "hotfix for the launch"
	ro, err := h.run.Start(ctx, spec, "alice")
	if err != nil || ro.State != controller.StateProgressing || ro.FreezeOverrides != 1 {
		t.Fatalf("start with an override: %+v, %v", ro.State, err)
	}
	if _, err := h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdAbort, Actor: "alice", Reason: "test done"}); err != nil {
		t.Fatalf("abort in the window: %v", err)
	}
	h.clock.Advance(time.Hour)
	if _, err := h.run.Start(ctx, minorSpec(), "alice"); err != nil {
		t.Fatalf("start after the window: %v", err)
	}
}

// TestPreRolloutNoGoActsAtOnce: a preRollout hook's no-go is acted on as soon as it
// arrives, not at the rollout's next check interval: a second later (a tenth of the
// interval) the next round finds the rollout due and rolls it back.
func TestPreRolloutNoGoActsAtOnce(t *testing.T) {
	recv := &hookReceiver{secret: []byte("s3cret"), answer: model.AnswerNoGo}
	addr := serveApp(t, recv)
	h := gateHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"))
	ctx := context.Background()
	ro, err := h.run.Start(ctx, gatedSpec(addr, secretFile(t, "s3cret"), time.Second, model.GatePreRollout), "alice")
	if err != nil {
		t.Fatal(err)
	}
	h.step() // asks the hook; its answer has come when step returns
	h.clock.Advance(checkEvery / 10)
	h.run.Evaluate(ctx)
	if got := h.persisted(ro.ID); got.State != controller.StateRolledBack || !strings.Contains(got.Reason, "answered no-go") {
		t.Fatalf("%s after the no-go: %s (%s), want rolled back", checkEvery/10, got.State, got.Reason)
	}
}
