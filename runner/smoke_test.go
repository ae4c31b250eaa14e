package runner_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/translate"
)

// canaryApp is a real HTTP server standing in for a canary version: /health answers
// JSON, /cart answers 200 until broken, and every request is counted by path.
type canaryApp struct {
	version string
	broken  atomic.Bool
	mu      sync.Mutex
	hits    map[string]int
	pins    []string // pin header values seen
}

func (a *canaryApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	if a.hits == nil {
		a.hits = map[string]int{}
	}
	a.hits[r.URL.Path]++
	if p := r.Header.Get(translate.PinHeader); p != "" {
		a.pins = append(a.pins, p)
	}
	a.mu.Unlock()
	switch r.URL.Path {
	case "/health":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","version":%q}`, a.version)
	case "/cart":
		if a.broken.Load() {
			http.Error(w, "cart service unavailable", http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "cart ok")
	default:
		http.NotFound(w, r)
	}
}

func (a *canaryApp) count(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hits[path]
}

// serveApp serves h on 127.0.0.1:0 until the test ends and returns its address.
func serveApp(t *testing.T, h http.Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return lis.Addr().String()
}

// smokeSpec is minorSpec with HTTP smoke tests instead of a reported smoke check.
// proxy is the address of the "proxy" the second smoke test goes through.
func smokeSpec(proxy string) controller.Spec {
	spec := minorSpec()
	spec.SmokeChecks = nil
	spec.SmokeTests = []controller.HTTPCheck{
		{Name: "health", Path: "/health", Timeout: controller.Duration(2 * time.Second),
			Expect: controller.HTTPExpect{Status: []int{200}, JSON: []controller.JSONExpect{{Path: "status", Equals: "ok"}, {Path: "version", Equals: "v2"}}}},
		{Name: "health via proxy", URL: "http://" + proxy, Path: "/health",
			Expect: controller.HTTPExpect{BodyContains: `"version":"v2"`}},
	}
	return spec
}

// TestSmokeTestsStartAndPromote: a rollout with smoke tests waits pending for them, runs
// them at once, starts on their pass and runs them again before each promotion, against
// the canary's real endpoints and through a proxy URL with the pin header.
func TestSmokeTestsStartAndPromote(t *testing.T) {
	canary := &canaryApp{version: "v2"}
	addr := serveApp(t, canary)
	// The "proxy" is the canary itself: what matters here is the pin header it receives.
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", addr), false)
	ctx := context.Background()
	ro, err := h.run.Start(ctx, smokeSpec(addr), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if ro.State != controller.StatePending || ro.Reason != "waiting for smoke tests: health, health via proxy" || ro.CanaryWeight() != 0 {
		t.Fatalf("started %s (%s) at %d", ro.State, ro.Reason, ro.CanaryWeight())
	}
	if w := served(t, h.xs); w["v2"] != 0 {
		t.Fatalf("served %v before the smoke tests ran", w)
	}
	// Due at once: the check runs at the same clock time.
	h.run.Evaluate(ctx)
	got := h.persisted(ro.ID)
	if got.State != controller.StateProgressing || got.CanaryWeight() != 500 {
		t.Fatalf("after the smoke tests: %s (%s) at %d; events %v", got.State, got.Reason, got.CanaryWeight(), kinds(h.events(ro.ID)))
	}
	if w := served(t, h.xs); w["v2"] != 500 {
		t.Fatalf("served %v", w)
	}
	if n := canary.count("/health"); n != 2 {
		t.Fatalf("%d smoke requests at the start, want 2 (direct and via the proxy)", n)
	}
	canary.mu.Lock()
	pins := slices.Clone(canary.pins)
	canary.mu.Unlock()
	if !slices.Equal(pins, []string{"v2"}) {
		t.Fatalf("pin headers seen %v, want one %s: v2", pins, translate.PinHeader)
	}

	ro = stepUntil(t, h, ro.ID, 100, func(r controller.Rollout) bool { return r.State == controller.StateMonitoring })
	// Start plus three promotions, two requests each; none in between.
	if n := canary.count("/health"); n != 8 {
		t.Fatalf("%d smoke requests over the rollout, want 8", n)
	}
	var advanced int
	for _, ev := range h.events(ro.ID) {
		if ev.Kind == controller.EventStageAdvanced {
			advanced++
		}
	}
	if advanced != 3 {
		t.Fatalf("%d stage advances, want 3: %v", advanced, kinds(h.events(ro.ID)))
	}
}

// TestFailingSmokeTestRollsBackBeforeAnyWeightMoves: the canary answers 404 to the smoke
// test: the rollout rolls back from pending, and the canary never got a weight.
func TestFailingSmokeTestRollsBackBeforeAnyWeightMoves(t *testing.T) {
	canary := &canaryApp{version: "v2"}
	addr := serveApp(t, canary)
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", addr), false)
	ctx := context.Background()
	spec := minorSpec()
	spec.SmokeChecks = nil
	spec.SmokeTests = []controller.HTTPCheck{{Name: "login", Method: "POST", Path: "/login", Body: `{"user":"smoke"}`}}
	ro, err := h.run.Start(ctx, spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	h.run.Evaluate(ctx)
	got := h.persisted(ro.ID)
	if got.State != controller.StateRolledBack || !strings.Contains(got.Reason, `smoke test "login" failed: `+addr+": status 404") {
		t.Fatalf("%s (%s)", got.State, got.Reason)
	}
	if w := served(t, h.xs); w["v1"] != 10000 || w["v2"] != 0 {
		t.Fatalf("served %v after the rollback", w)
	}
	for _, ev := range h.events(ro.ID) {
		if ev.Weight != 0 || ev.Kind == controller.EventStarted {
			t.Fatalf("event %s at canary weight %d: %v", ev.Kind, ev.Weight, kinds(h.events(ro.ID)))
		}
	}
	if _, ok := h.run.Service(svcName); !ok {
		t.Fatal("service gone")
	}
}

// TestFailingSyntheticRollsBack: a synthetic key flow runs every check while the stage
// runs; when the canary's cart breaks the rollout rolls back to the stable version.
func TestFailingSyntheticRollsBack(t *testing.T) {
	canary := &canaryApp{version: "v2"}
	addr := serveApp(t, canary)
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", addr), false)
	ctx := context.Background()
	spec := smokeSpec(addr)
	spec.Synthetics = []controller.HTTPCheck{{Name: "cart", Path: "/cart", Expect: controller.HTTPExpect{BodyContains: "cart ok"}}}
	ro, err := h.run.Start(ctx, spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	h.run.Evaluate(ctx)
	ro = stepUntil(t, h, ro.ID, 20, func(r controller.Rollout) bool { return r.Stage == 1 })
	before := canary.count("/cart")
	if before < 6 {
		t.Fatalf("the synthetic ran %d times over a 1 min stage at 10 s checks", before)
	}
	canary.broken.Store(true)
	h.step()
	got := h.persisted(ro.ID)
	if got.State != controller.StateRolledBack || !strings.Contains(got.Reason, `check "cart" failed: `+addr+": status 502") {
		t.Fatalf("%s (%s)", got.State, got.Reason)
	}
	evs := h.events(ro.ID)
	i := slices.IndexFunc(evs, func(e controller.Event) bool { return e.Kind == controller.EventRolledBack })
	if i < 0 || !slices.Equal(evs[i].Checks, []string{"cart"}) || evs[i].Stage != 1 {
		t.Fatalf("rollback event missing or wrong: %v", kinds(evs))
	}
	if w := served(t, h.xs); w["v1"] != 10000 {
		t.Fatalf("served %v after the rollback", w)
	}
}

// TestOperatorPromoteRunsSmokeTests: an operator's promote runs the smoke tests against
// the canary first; a failing one rolls back, as on the loop's own promotions; force
// skips them.
func TestOperatorPromoteRunsSmokeTests(t *testing.T) {
	canary := &canaryApp{version: "v2"}
	addr := serveApp(t, canary)
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", addr), false)
	ctx := context.Background()
	spec := minorSpec()
	spec.SmokeChecks = nil
	spec.SmokeTests = []controller.HTTPCheck{{Name: "cart", Path: "/cart", Expect: controller.HTTPExpect{Status: []int{200}}}}
	for i := range spec.Stages {
		spec.Stages[i].MinWindow = controller.Duration(time.Hour) // only commands move it
	}
	ro, err := h.run.Start(ctx, spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	h.run.Evaluate(ctx)
	if got := h.persisted(ro.ID); got.State != controller.StateProgressing || got.Stage != 0 {
		t.Fatalf("after the start's smoke test: %s stage %d (%s)", got.State, got.Stage, got.Reason)
	}
	promote := func(force bool) (controller.Rollout, error) {
		return h.run.Command(ctx, svcName, controller.Command{Kind: controller.CmdPromote, Actor: "bob", Force: force})
	}
	before := canary.count("/cart")
	canary.broken.Store(true)
	got, err := promote(true)
	if err != nil || got.Stage != 1 || canary.count("/cart") != before {
		t.Fatalf("forced promote: stage %d, err %v, %d smoke requests (want none run)", got.Stage, err, canary.count("/cart")-before)
	}
	canary.broken.Store(false)
	got, err = promote(false)
	if err != nil || got.Stage != 2 || canary.count("/cart") != before+1 {
		t.Fatalf("promote with a passing smoke test: stage %d, err %v, %d smoke requests", got.Stage, err, canary.count("/cart")-before)
	}
	canary.broken.Store(true)
	got, err = promote(false)
	if err != nil || got.State != controller.StateRolledBack || !strings.Contains(got.Reason, `smoke test "cart" failed`) {
		t.Fatalf("promote with a failing smoke test: %s (%s), err %v; want rolled back", got.State, got.Reason, err)
	}
	if w := served(t, h.xs); w["v2"] != 0 {
		t.Fatalf("served %v after the rollback", w)
	}
}

// TestShutdownMidCheckIsNoVerdict: smoke requests cut short because octoroll is
// stopping are no verdict on the canary: the rollout stays where it was.
func TestShutdownMidCheckIsNoVerdict(t *testing.T) {
	var hits atomic.Int32
	addr := serveApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-r.Context().Done() // hangs until the client gives up
	}))
	h := newHarness(t, testCatalog(t, "127.0.0.1:1", addr), false)
	spec := minorSpec()
	spec.SmokeChecks = nil
	spec.SmokeTests = []controller.HTTPCheck{{Name: "health", Path: "/health"}}
	ro, err := h.run.Start(context.Background(), spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.run.Evaluate(ctx) }()
	deadline := time.Now().Add(waitTimeout)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for hits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the smoke test never reached the canary")
		}
		<-poll.C
	}
	cancel()
	<-done
	if got := h.persisted(ro.ID); got.State != controller.StatePending || got.CanaryWeight() != 0 {
		t.Fatalf("after a shutdown mid-check: %s (%s), want still pending", got.State, got.Reason)
	}
}
