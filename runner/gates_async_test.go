package runner_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/model"
)

// evaluateRound advances the clock one check interval and runs one round of checks,
// failing the test when the round does not end: a check waited on something.
func evaluateRound(t *testing.T, h *harness, why string) {
	t.Helper()
	h.clock.Advance(checkEvery)
	done := make(chan struct{})
	go func() {
		h.run.Evaluate(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("a round of checks did not end: %s", why)
	}
}

// TestHangingHookHoldsOnlyItsRollout: service a's (svcName's) preRollout hook hangs (its request
// is held by the receiver for as long as the hook's ten-minute timeout); service b's
// (otherName's) canary fails. Every round of checks ends while a's request is still held, b rolls
// back at the same check (on the injected clock) as it does with no hook anywhere, a
// holds "asking hook", and a's hook is asked once: one question in flight per rollout
// and point.
func TestHangingHookHoldsOnlyItsRollout(t *testing.T) {
	rollbackRound := func(hang bool) (int, time.Time) {
		recv := &hookReceiver{secret: []byte("s3cret"), answer: "hang"}
		addr := serveApp(t, recv)
		h := gateHarness(t, twoServiceCatalog(t, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"))
		ctx := context.Background()
		specA := minorSpec()
		if hang {
			specA = gatedSpec(addr, secretFile(t, "s3cret"), 10*time.Minute, model.GatePreRollout)
		}
		specA.Service = svcName
		roA, err := h.run.Start(ctx, specA, "alice")
		if err != nil {
			t.Fatal(err)
		}
		specB := minorSpec()
		specB.Service = otherName
		roB, err := h.run.Start(ctx, specB, "bob")
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range []string{svcName, otherName} {
			if err := h.run.ReportCheck(ctx, svc, controller.CheckResult{Name: "checkout-flow", Passed: true}); err != nil {
				t.Fatal(err)
			}
		}
		// v2 fails on b; a, waiting for its hook, is not judged.
		h.metrics.Set("v2", metrics.Stats{Requests: 1000, Errors: 400, P99: 50 * time.Millisecond})
		for round := 1; round <= 30; round++ {
			evaluateRound(t, h, "service a's hook hangs")
			if b := h.persisted(roB.ID); b.State == controller.StateRolledBack {
				if hang {
					a := h.persisted(roA.ID)
					recv.mu.Lock()
					held, asked := recv.hanging, len(recv.reqs)
					recv.mu.Unlock()
					if held != 1 || asked != 1 || h.run.GatesAsking() != 1 {
						t.Fatalf("a's hook: %d requests held, %d asked, %d asking (want 1, 1, 1)", held, asked, h.run.GatesAsking())
					}
					if a.State != controller.StatePending || a.Reason != `waiting for gate preRollout: asking hook "ci"` {
						t.Fatalf("a while its hook hangs: %s (%s)", a.State, a.Reason)
					}
				}
				return round, b.EndedAt
			}
		}
		t.Fatalf("b did not roll back: %s", h.persisted(roB.ID).Reason)
		return 0, time.Time{}
	}
	wantRound, wantAt := rollbackRound(false)
	gotRound, gotAt := rollbackRound(true)
	if gotRound != wantRound || !gotAt.Equal(wantAt) {
		t.Fatalf("b rolled back at round %d (%s) beside a hanging hook, at round %d (%s) without", gotRound, gotAt, wantRound, wantAt)
	}
	t.Logf("b rolled back at round %d, %s after start on the injected clock, beside a's hanging hook", gotRound, gotAt.Sub(t0))
}

// TestGateRetryAfter: a hook answering wait with retryAfter 1m is not asked again
// before a minute passed on the runner's clock; the hold says when it is; its go then
// starts the rollout.
func TestGateRetryAfter(t *testing.T) {
	recv := &hookReceiver{secret: []byte("s3cret"), answer: model.AnswerWait, retryAfter: "1m"}
	addr := serveApp(t, recv)
	h := gateHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"))
	ctx := context.Background()
	ro, err := h.run.Start(ctx, gatedSpec(addr, secretFile(t, "s3cret"), time.Second, model.GatePreRollout), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.run.ReportCheck(ctx, svcName, controller.CheckResult{Name: "checkout-flow", Passed: true}); err != nil {
		t.Fatal(err)
	}
	h.run.Evaluate(ctx) // asks at t0
	h.run.WaitGates()
	for i := 1; i < 6; i++ { // t0+10s … t0+50s
		h.step()
		if n := len(recv.requests()); n != 1 {
			t.Fatalf("asked %d times by t0+%ds, within the minute the hook asked for", n, 10*i)
		}
	}
	got := h.persisted(ro.ID)
	if want := "asked again at " + t0.Add(time.Minute).Format(time.RFC3339) + " (retryAfter)"; !strings.Contains(got.Reason, want) {
		t.Fatalf("hold %q, want it to say %q", got.Reason, want)
	}
	answers := gateEvents(h.events(ro.ID))
	if len(answers) != 1 || answers[0].RetryAfter.D() != time.Minute {
		t.Fatalf("recorded %+v", answers)
	}
	recv.set(model.AnswerGo)
	h.step() // t0+60s: asks again
	if n := len(recv.requests()); n != 2 {
		t.Fatalf("asked %d times at t0+60s, want 2", n)
	}
	h.step()
	if got := h.persisted(ro.ID); got.State != controller.StateProgressing {
		t.Fatalf("after the go: %s (%s)", got.State, got.Reason)
	}
}

// TestOnRollbackToldAfterRestart: an onRollback hook failing (HTTP 500) when octoroll
// stops is told after the restart, from the real bbolt store, with the same request id
// as before; once it answered, the notification leaves the store and a further
// restart tells nothing.
func TestOnRollbackToldAfterRestart(t *testing.T) {
	recv := &hookReceiver{secret: []byte("s3cret"), answer: "500"}
	addr := serveApp(t, recv)
	h := gateHarness(t, testCatalog(t, "127.0.0.1:1", "127.0.0.1:2"))
	ctx := context.Background()
	ro, err := h.run.Start(ctx, gatedSpec(addr, secretFile(t, "s3cret"), time.Second, model.GateOnRollback), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdAbort, Actor: "alice", Reason: "bad build"}); err != nil {
		t.Fatal(err)
	}
	// The first round (three attempts) fails and is recorded; octoroll then stops
	// while it waits for the next round.
	deadline := time.Now().Add(waitTimeout)
	for len(gateEvents(h.events(ro.ID))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the onRollback hook's first round was not recorded")
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	ids := h.run.PendingTells()
	if len(ids) != 1 {
		t.Fatalf("pending notifications %v", ids)
	}
	h.restart()
	var saved []struct {
		ID     string `json:"id"`
		Rounds int    `json:"rounds"`
	}
	doc, err := h.st.GetState("gates/onRollback")
	if err != nil || json.Unmarshal(doc, &saved) != nil || len(saved) != 1 || saved[0].ID != ids[0] || saved[0].Rounds != 1 {
		t.Fatalf("persisted notifications %s, %v", doc, err)
	}
	before := len(recv.requests())
	recv.set(model.AnswerGo)
	h.run.Evaluate(ctx)
	h.run.WaitHooks()
	reqs := recv.requests()
	recv.mu.Lock()
	seen := slices.Clone(recv.ids)
	recv.mu.Unlock()
	if len(reqs) != before+1 || reqs[len(reqs)-1].Point != model.GateOnRollback || reqs[len(reqs)-1].ID != ids[0] {
		t.Fatalf("after the restart: %d requests (before %d), last %+v", len(reqs), before, reqs[len(reqs)-1])
	}
	for i, id := range seen {
		if id != ids[0] {
			t.Fatalf("request %d has id %q, want %q for every request of the notification", i, id, ids[0])
		}
	}
	if p := h.run.PendingTells(); len(p) != 0 {
		t.Fatalf("still pending after the go: %v", p)
	}
	answers := gateEvents(h.events(ro.ID))
	if last := answers[len(answers)-1]; last.Point != model.GateOnRollback || last.Answer != model.AnswerGo {
		t.Fatalf("last answer %+v", last)
	}
	h.restart()
	h.run.Evaluate(ctx)
	h.run.WaitHooks()
	if n := len(recv.requests()); n != before+1 {
		t.Fatalf("told again after it answered: %d requests", n)
	}
}
