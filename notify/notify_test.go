package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)

const interval = time.Minute

// fast are options for tests: retries without real waiting.
var fast = Options{BackoffBase: time.Millisecond, BackoffMax: 4 * time.Millisecond, Timeout: 5 * time.Second}

func service() catalog.Service {
	return catalog.Service{
		Name: "checkout", Port: 8080, Stable: "v1",
		Versions: []catalog.Version{
			{Name: "v1", Endpoints: []catalog.Endpoint{{Host: "10.0.0.1", Port: 8080}}},
			{Name: "v2", Endpoints: []catalog.Endpoint{{Host: "10.0.1.1", Port: 8080}}},
		},
	}
}

func spec() controller.Spec {
	return controller.Spec{
		Service: "checkout",
		Release: controller.Release{
			Name: "2025.3", Type: controller.Minor, Date: "2025-03-03",
			Summary:        "Faster checkout",
			NotableChanges: []string{"Payment client v5"},
			KnownIssues:    []string{"Receipts may show the old logo"},
			RollbackPlan:   "Weights back to v1",
		},
		Canary: controller.Canary{Version: "v2"},
		Stages: []controller.StageSpec{
			{Name: "canary", Percent: 5, MinWindow: controller.Duration(2 * time.Minute)},
			{Name: "half", Percent: 50, MinWindow: controller.Duration(2 * time.Minute)},
		},
		Thresholds:    controller.Thresholds{RollbackSustain: controller.Duration(3 * time.Minute)},
		CheckInterval: controller.Duration(interval),
		SmokeChecks:   []string{"smoke"},
		Monitoring:    []controller.Phase{{Name: "Immediate", Until: controller.Duration(5 * time.Minute)}},
	}
}

func obs(gen uint64, canaryPct float64) controller.Observation {
	const n = 100000
	return controller.Observation{
		Canary: controller.VersionStats{Requests: n, Errors: uint64(n * canaryPct / 100), P99: 120 * time.Millisecond},
		Stable: controller.VersionStats{Requests: n, Errors: n / 200, P99: 118 * time.Millisecond},
		Health: controller.HealthStats{
			Canary: controller.EndpointHealth{Total: 1}, Stable: controller.EndpointHealth{Total: 1}},
		Checks:      []controller.CheckResult{{Name: "smoke", Passed: true}},
		Convergence: controller.Convergence{Generation: gen, Version: "route-1", Acked: true},
	}
}

// loop steps a rollout as the runner's loop gathers for it: each version's requests
// split by the weights in force (o's counts are per version at an even split), and the
// analysis and sustain windows summed from the check intervals served so far.
type loop struct {
	at             []time.Time
	canary, stable []controller.VersionStats
}

func (l *loop) step(r controller.Rollout, now time.Time, o controller.Observation) (controller.Rollout, []controller.Event) {
	w := float64(r.CanaryWeight()) / float64(model.TotalWeight)
	scale := func(v controller.VersionStats, f float64) controller.VersionStats {
		v.Errors = uint64(float64(v.Errors) * 2 * f)
		v.Requests = uint64(float64(v.Requests) * 2 * f)
		return v
	}
	o.Window = interval
	o.Canary, o.Stable = scale(o.Canary, w), scale(o.Stable, 1-w)
	l.at, l.canary, l.stable = append(l.at, now), append(l.canary, o.Canary), append(l.stable, o.Stable)
	window := func(d time.Duration) controller.Sample {
		out := controller.Sample{Window: d}
		for i, at := range l.at {
			if at.After(now.Add(-d)) {
				out.Canary.Requests += l.canary[i].Requests
				out.Canary.Errors += l.canary[i].Errors
				out.Stable.Requests += l.stable[i].Requests
				out.Stable.Errors += l.stable[i].Errors
			}
		}
		out.Canary.P99, out.Stable.P99 = o.Canary.P99, o.Stable.P99
		return out
	}
	if aw := r.AnalysisWindow(now); aw > 0 {
		o.Analysis = window(aw)
		if sw := r.SustainWindow(now); sw < aw {
			o.Sustain = window(sw)
		}
	}
	return r.Step(now, o)
}

// drive runs a rollout through the real engine, handing every event to notify as the
// rollout loop does. With breachAtHalf the canary's error rate jumps 1.5 pp in the 50 %
// stage (pause, then rollback once sustained); otherwise the rollout completes.
func drive(t *testing.T, breachAtHalf bool, notify func(controller.Event, controller.Rollout)) controller.Rollout {
	t.Helper()
	r, evs, err := controller.New(t0, "r1", spec(), service())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, e := range evs {
		notify(e, r)
	}
	now := t0
	var l loop
	for i := 0; i < 100 && !r.State.Terminal(); i++ {
		now = now.Add(interval)
		pct := 0.5
		if breachAtHalf && r.Stage == 1 && r.Progress.Checks >= 2 {
			pct = 2.0
		}
		r, evs = l.step(r, now, obs(r.Generation, pct))
		for _, e := range evs {
			notify(e, r)
		}
	}
	return r
}

// receiver is a webhook endpoint recording the payloads it accepted.
type receiver struct {
	*httptest.Server
	got   chan Payload
	calls atomic.Int32
}

// newReceiver starts a receiver; handle, when set, decides each answer (return 0 to
// accept with 200).
func newReceiver(t *testing.T, handle func(n int32, p Payload, w http.ResponseWriter, r *http.Request) int) *receiver {
	rc := &receiver{got: make(chan Payload, 100)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := rc.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("receiver: bad JSON %q: %v", body, err)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" || r.Method != http.MethodPost {
			t.Errorf("receiver: %s with Content-Type %q", r.Method, ct)
		}
		if handle != nil {
			if code := handle(n, p, w, r); code != 0 {
				w.WriteHeader(code)
				return
			}
		}
		rc.got <- p
	}))
	t.Cleanup(rc.Close)
	return rc
}

// next waits for the receiver's next accepted payload.
func (rc *receiver) next(t *testing.T) Payload {
	t.Helper()
	select {
	case p := <-rc.got:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return Payload{}
	}
}

// run starts n's workers until the test ends.
func run(t *testing.T, n *Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond with a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestEachEventOnceInOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breach bool
		want   []string
	}{
		{"completed", false, []string{"started", "stage_advanced", "stage_advanced", "monitoring_closed", "completed"}},
		{"rolled back", true, []string{"started", "stage_advanced", "paused", "rolled_back"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "hook", URL: rc.URL}}, fast)
			run(t, n)
			drive(t, tc.breach, n.Notify)
			var got []string
			for range tc.want {
				got = append(got, rc.next(t).Event)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Fatalf("events (-want +got):\n%s", d)
			}
			waitFor(t, "stats", func() bool { return n.Stats()["hook"].Delivered == uint64(len(tc.want)) })
			if st := n.Stats()["hook"]; st.Failed != 0 || st.Dropped != 0 || st.Retries != 0 || rc.calls.Load() != int32(len(tc.want)) {
				t.Errorf("stats %+v, %d calls", st, rc.calls.Load())
			}
		})
	}
}

func TestRetriesAfterFailures(t *testing.T) {
	rc := newReceiver(t, func(n int32, _ Payload, _ http.ResponseWriter, _ *http.Request) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return 0
	})
	var outcomes []Delivery
	var mu sync.Mutex
	opts := fast
	opts.OnEvent = func(d Delivery) { mu.Lock(); outcomes = append(outcomes, d); mu.Unlock() }
	opts.OnFailure = func(string, error) { t.Error("OnFailure called for a message delivered on retry") }
	n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "hook", URL: rc.URL}}, opts)
	run(t, n)
	r := started(t)
	n.Notify(eventOf(r, controller.EventStarted), r)
	if p := rc.next(t); p.Event != "started" {
		t.Fatalf("got %q", p.Event)
	}
	waitFor(t, "delivered", func() bool { return n.Stats()["hook"].Delivered == 1 })
	st := n.Stats()["hook"]
	if st.Retries != 2 || st.Failed != 0 || rc.calls.Load() != 3 || st.LastError == "" {
		t.Errorf("stats %+v after %d calls", st, rc.calls.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(outcomes) != 1 || outcomes[0].Outcome != Delivered || outcomes[0].Attempts != 3 {
		t.Errorf("outcomes %+v", outcomes)
	}
}

func TestGivesUpAndKeepsOrder(t *testing.T) {
	// The first message always fails; the next one must still be delivered after it.
	rc := newReceiver(t, func(_ int32, p Payload, _ http.ResponseWriter, _ *http.Request) int {
		if p.Event == "started" {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	failures := make(chan error, 10)
	opts := fast
	opts.MaxAttempts = 3
	opts.OnFailure = func(sink string, err error) {
		if sink != "hook" {
			t.Errorf("failure for sink %q", sink)
		}
		failures <- err
	}
	n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "hook", URL: rc.URL}}, opts)
	run(t, n)
	r := started(t)
	n.Notify(eventOf(r, controller.EventStarted), r)
	n.Notify(eventOf(r, controller.EventPaused), r)
	if p := rc.next(t); p.Event != "paused" {
		t.Fatalf("got %q", p.Event)
	}
	select {
	case err := <-failures:
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("failure error %v", err)
		}
	default:
		t.Fatal("OnFailure not called before the next message was delivered")
	}
	if st := n.Stats()["hook"]; st.Failed != 1 || st.Retries != 2 || rc.calls.Load() != 4 {
		t.Errorf("stats %+v after %d calls", st, rc.calls.Load())
	}
}

// A 4xx answer is not retried.
func TestClientErrorNotRetried(t *testing.T) {
	rc := newReceiver(t, func(int32, Payload, http.ResponseWriter, *http.Request) int { return http.StatusBadRequest })
	failed := make(chan Delivery, 1)
	opts := fast
	opts.OnEvent = func(d Delivery) { failed <- d }
	n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "hook", URL: rc.URL}}, opts)
	run(t, n)
	r := started(t)
	n.Notify(eventOf(r, controller.EventStarted), r)
	d := <-failed
	if d.Outcome != Failed || d.Attempts != 1 || rc.calls.Load() != 1 {
		t.Errorf("delivery %+v, %d calls", d, rc.calls.Load())
	}
}

// stuckReceiver blocks every request until released; arrived receives once per request.
func stuckReceiver(t *testing.T) (url string, arrived chan string, release func()) {
	arrived = make(chan string, 100)
	unblock := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.Header.Get("X-Octoroll-Event")
		select {
		case <-unblock:
		case <-r.Context().Done():
		}
	}))
	var once sync.Once
	release = func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(srv.Close)
	t.Cleanup(release) // before Close: Close waits for the handlers
	return srv.URL, arrived, release
}

// A stuck receiver does not block Notify, even with its queue full: the oldest waiting
// messages are dropped and counted as failures; the newest are delivered once it
// recovers.
func TestStuckReceiverDoesNotBlockNotify(t *testing.T) {
	url, arrived, release := stuckReceiver(t)
	failures := make(chan string, 100)
	opts := fast
	opts.QueueSize = 2
	opts.OnFailure = func(sink string, err error) {
		if !errors.Is(err, ErrQueueFull) {
			t.Errorf("failure %v, want ErrQueueFull", err)
		}
		failures <- sink
	}
	n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "stuck", URL: url}}, opts)
	run(t, n)
	r := started(t)
	n.Notify(eventOf(r, controller.EventStarted), r)
	if ev := <-arrived; ev != "started" { // handshake: the worker is now stuck in a request
		t.Fatalf("first request %q", ev)
	}
	// Ten more events with a queue of two: every call returns at once (a blocking call
	// would hang the test), eight are dropped.
	kinds := []string{"stage_advanced", "paused", "resumed", "stage_advanced", "paused", "resumed", "stage_advanced", "paused", "resumed", "rolled_back"}
	for _, k := range kinds {
		n.Notify(eventOf(r, k), r)
	}
	st := n.Stats()["stuck"]
	if st.Dropped != 8 || st.Queued != 2 || st.Delivered != 0 {
		t.Fatalf("stats %+v", st)
	}
	if len(failures) != 8 {
		t.Fatalf("%d failures reported, want 8", len(failures))
	}
	release()
	// The queue kept the newest two, delivered in order.
	for _, want := range []string{"resumed", "rolled_back"} {
		if ev := <-arrived; ev != want {
			t.Fatalf("request %q, want %q", ev, want)
		}
	}
	waitFor(t, "deliveries", func() bool { return n.Stats()["stuck"].Delivered == 3 })
}

// A stuck receiver does not delay a rollback: the rollout loop (the real engine, every
// event handed to Notify) reaches rolled_back while one sink hangs, and the on-call
// sink receives the incident.
func TestStuckReceiverDoesNotDelayRollback(t *testing.T) {
	url, arrived, _ := stuckReceiver(t)
	oncall := newReceiver(t, nil)
	opts := fast
	opts.QueueSize = 1
	n := New(zaptest.NewLogger(t), []catalog.Sink{
		{Name: "stuck", URL: url},
		{Name: "oncall", URL: oncall.URL, Events: []string{catalog.EventRolledBack}},
	}, opts)
	run(t, n)
	final := drive(t, true, func(e controller.Event, r controller.Rollout) {
		n.Notify(e, r)
		if e.Kind == controller.EventStarted {
			// Handshake: from here on the stuck sink's worker hangs in a request.
			if ev := <-arrived; ev != "started" {
				t.Errorf("stuck sink's first request %q", ev)
			}
		}
	})
	if final.State != controller.StateRolledBack {
		t.Fatalf("state %s", final.State)
	}
	p := oncall.next(t)
	if p.Event != "rolled_back" || p.Incident == nil {
		t.Fatalf("on-call got %+v", p)
	}
	inc := p.Incident
	if inc.DetectedFrom != "start of the breach" || inc.TimeToDetect.D() != 3*time.Minute || inc.KnownGood != "v1" ||
		inc.RollbackPlan != "Weights back to v1" || inc.Trigger != final.Reason || inc.Restored {
		t.Errorf("incident %+v", inc)
	}
	// The stuck sink still holds its first request; nothing else reached it.
	if len(arrived) != 0 {
		t.Errorf("stuck sink saw %d more requests", len(arrived))
	}
	if st := n.Stats()["stuck"]; st.Delivered != 0 || st.Dropped == 0 {
		t.Errorf("stuck stats %+v", st)
	}
}

func TestFilter(t *testing.T) {
	all := newReceiver(t, nil)
	some := newReceiver(t, nil)
	n := New(zaptest.NewLogger(t), []catalog.Sink{
		{Name: "all", URL: all.URL},
		{Name: "some", URL: some.URL, Events: []string{catalog.EventCompleted, catalog.EventStarted}},
	}, fast)
	run(t, n)
	drive(t, false, n.Notify)
	if got := []string{some.next(t).Event, some.next(t).Event}; !cmp.Equal(got, []string{"started", "completed"}) {
		t.Errorf("filtered sink got %v", got)
	}
	waitFor(t, "all delivered", func() bool { return n.Stats()["all"].Delivered == 5 })
	if len(some.got) != 0 || some.calls.Load() != 2 {
		t.Errorf("filtered sink got %d more", len(some.got))
	}
}

func TestUpdate(t *testing.T) {
	a := newReceiver(t, nil)
	b := newReceiver(t, nil)
	n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "a", URL: a.URL}}, fast)
	run(t, n)
	r := started(t)
	n.Notify(eventOf(r, controller.EventStarted), r)
	a.next(t)
	n.Update([]catalog.Sink{{Name: "b", URL: b.URL, Format: catalog.FormatJSON}})
	n.Notify(eventOf(r, controller.EventPaused), r)
	if p := b.next(t); p.Event != "paused" {
		t.Errorf("new sink got %q", p.Event)
	}
	if _, ok := n.Stats()["a"]; ok || a.calls.Load() != 1 {
		t.Errorf("removed sink still there: %v, %d calls", n.Stats(), a.calls.Load())
	}
	// Changing a kept sink's URL moves its deliveries.
	n.Update([]catalog.Sink{{Name: "b", URL: a.URL}})
	n.Notify(eventOf(r, controller.EventResumed), r)
	if p := a.next(t); p.Event != "resumed" {
		t.Errorf("moved sink got %q", p.Event)
	}
}

func TestRequestTimeout(t *testing.T) {
	url, arrived, _ := stuckReceiver(t)
	got := make(chan Delivery, 1)
	opts := fast
	opts.MaxAttempts = 1
	opts.Timeout = 20 * time.Millisecond
	opts.OnEvent = func(d Delivery) { got <- d }
	n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "stuck", URL: url}}, opts)
	run(t, n)
	r := started(t)
	n.Notify(eventOf(r, controller.EventStarted), r)
	<-arrived
	d := <-got
	if d.Outcome != Failed || !errors.Is(d.Err, context.DeadlineExceeded) {
		t.Errorf("delivery %+v", d)
	}
}

// Notify before Run queues; Run delivers.
func TestNotifyBeforeRun(t *testing.T) {
	rc := newReceiver(t, nil)
	n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "hook", URL: rc.URL}}, fast)
	r := started(t)
	n.Notify(eventOf(r, controller.EventStarted), r)
	if st := n.Stats()["hook"]; st.Queued != 1 {
		t.Fatalf("stats %+v", st)
	}
	run(t, n)
	if p := rc.next(t); p.Event != "started" {
		t.Errorf("got %q", p.Event)
	}
}

func TestSlackShape(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("decode: %v", err)
		}
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "slack", URL: srv.URL, Format: catalog.FormatSlack}}, fast)
	run(t, n)
	drive(t, true, n.Notify)
	waitFor(t, "four messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 4 })
	mu.Lock()
	defer mu.Unlock()
	for i, m := range bodies {
		if len(m) != 2 {
			t.Errorf("message %d has keys %v, want text and blocks", i, keys(m))
		}
		text, _ := m["text"].(string)
		blocks, _ := m["blocks"].([]any)
		if text == "" || len(blocks) < 3 {
			t.Fatalf("message %d: text %q, %d blocks", i, text, len(blocks))
		}
		for j, b := range blocks {
			bm, _ := b.(map[string]any)
			switch bm["type"] {
			case "header":
				tx, _ := bm["text"].(map[string]any)
				if tx["type"] != "plain_text" || tx["text"] == "" {
					t.Errorf("message %d block %d: header %v", i, j, bm)
				}
			case "section", "context":
			default:
				t.Errorf("message %d block %d: type %v", i, j, bm["type"])
			}
		}
	}
	last, _ := json.Marshal(bodies[3])
	for _, want := range []string{"ROLLED BACK", "Time to detect:* 3m0s", "Rollback plan:* Weights back to v1", "Trigger:*"} {
		if !strings.Contains(string(last), want) {
			t.Errorf("rollback message lacks %q: %s", want, last)
		}
	}
}

// The payloads of a rollback and a completion, in both formats, match the golden files.
func TestPayloadGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breach bool
		kind   string
	}{
		{"rolled_back", true, controller.EventRolledBack},
		{"completed", false, controller.EventCompleted},
		{"paused", true, controller.EventPaused},
	} {
		var hist []controller.Event
		var p *Payload
		drive(t, tc.breach, func(e controller.Event, r controller.Rollout) {
			if e.Kind == tc.kind && p == nil {
				b := Build(e, r, hist)
				p = &b
			}
			hist = append(hist, e)
		})
		if p == nil {
			t.Fatalf("%s: no %s event", tc.name, tc.kind)
		}
		for _, format := range []string{catalog.FormatJSON, catalog.FormatSlack} {
			b, err := Encode(format, *p)
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, b, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden(t, filepath.Join("testdata", tc.name+"."+format+".json"), pretty.Bytes())
		}
	}
	if _, err := Encode("xml", Payload{}); err == nil {
		t.Error("unknown format encoded")
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, d)
	}
}

// started returns a rollout in its first stage.
func started(t *testing.T) controller.Rollout {
	r, _, err := controller.New(t0, "r1", spec(), service())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func eventOf(r controller.Rollout, kind string) controller.Event {
	return controller.Event{Time: t0, Kind: kind, RolloutID: r.ID, Service: r.Service, State: r.State,
		Stage: r.Stage, StageName: "canary", Weight: r.CanaryWeight(), Generation: r.Generation}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// probeState is a fixed health-check state (HealthSource).
type probeState map[string][]healthcheck.EndpointHealth // by version

func (s probeState) Status(_, version string) healthcheck.VersionHealth {
	return healthcheck.VersionHealth{Total: 2, Unhealthy: s[version]}
}

var failingSince = t0.Add(90 * time.Second)

// healthProbes has one of the canary's two endpoints failing its health check.
var healthProbes = probeState{"v2": {{Endpoint: "10.0.1.2:8080", LastError: "grpc health check: status NOT_SERVING", Since: failingSince}}}

// healthPause runs a rollout until the health checks find one of the two canary
// endpoints unhealthy in the first stage, and returns the pause event.
func healthPause(t *testing.T, notify func(controller.Event, controller.Rollout)) (controller.Event, controller.Rollout) {
	t.Helper()
	svc := service()
	svc.Versions[1].Endpoints = append(svc.Versions[1].Endpoints, catalog.Endpoint{Host: "10.0.1.2", Port: 8080})
	r, evs, err := controller.New(t0, "r1", spec(), svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		notify(e, r)
	}
	now := t0
	var l loop
	for i := range 10 {
		now = now.Add(interval)
		o := obs(r.Generation, 0.5)
		o.Health.Canary = controller.EndpointHealth{Total: 2}
		if i >= 1 {
			o.Health.Canary.Unhealthy = []string{"10.0.1.2:8080"}
		}
		r, evs = l.step(r, now, o)
		for _, e := range evs {
			notify(e, r)
			if e.Kind == controller.EventPaused {
				return e, r
			}
		}
	}
	t.Fatalf("no pause; state %s", r.State)
	return controller.Event{}, r
}

// A pause caused by an unhealthy canary endpoint is an incident for immediate
// investigation naming the endpoint and its last probe error, in both formats.
func TestHealthPauseInvestigation(t *testing.T) {
	ev, r := healthPause(t, func(controller.Event, controller.Rollout) {})
	p := Build(ev, r, nil)
	want := &Investigation{Severity: SeverityIncident, Action: investigationAction, Trigger: ev.Reason,
		Endpoints: []EndpointFailure{{Endpoint: "10.0.1.2:8080"}}}
	if diff := cmp.Diff(want, p.Investigation); diff != "" {
		t.Fatalf("investigation without health source (-want +got):\n%s", diff)
	}
	AddEndpointErrors(&p, r, healthProbes)
	want.Endpoints[0] = EndpointFailure{Endpoint: "10.0.1.2:8080", Version: "v2", LastError: "grpc health check: status NOT_SERVING", Since: failingSince}
	if diff := cmp.Diff(want, p.Investigation); diff != "" {
		t.Errorf("investigation (-want +got):\n%s", diff)
	}
	if !strings.Contains(p.Investigation.Trigger, "1 of 2 canary endpoints unhealthy") {
		t.Errorf("trigger %q", p.Investigation.Trigger)
	}
	for _, format := range []string{catalog.FormatJSON, catalog.FormatSlack} {
		b, err := Encode(format, p)
		if err != nil {
			t.Fatal(err)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, b, "", "  "); err != nil {
			t.Fatal(err)
		}
		pretty.WriteByte('\n')
		golden(t, filepath.Join("testdata", "paused_unhealthy."+format+".json"), pretty.Bytes())
	}
	// A v1 reader (no investigation field) still reads every field it knows.
	b, _ := Encode(catalog.FormatJSON, p)
	var v1 map[string]any
	if err := json.Unmarshal(b, &v1); err != nil {
		t.Fatal(err)
	}
	if v1["schema"] != Schema || v1["event"] != "paused" || v1["endpoints"] == nil {
		t.Errorf("payload lost v1 fields: %s", b)
	}

	// Pauses for other reasons carry no investigation.
	var other *Payload
	drive(t, true, func(e controller.Event, r controller.Rollout) {
		if e.Kind == controller.EventPaused && other == nil {
			b := Build(e, r, nil)
			other = &b
		}
	})
	if other == nil || other.Investigation != nil {
		t.Errorf("error-rate pause: investigation %+v, want none", other)
	}
}

// The notifier adds the prober's last errors to the investigation it delivers.
func TestNotifierHealthPause(t *testing.T) {
	rc := newReceiver(t, nil)
	opts := fast
	opts.Health = healthProbes
	n := New(zaptest.NewLogger(t), []catalog.Sink{{Name: "on-call", URL: rc.URL, Events: []string{catalog.EventPaused}}}, opts)
	run(t, n)

	healthPause(t, n.Notify)
	p := rc.next(t)
	if p.Event != catalog.EventPaused || p.Investigation == nil {
		t.Fatalf("payload %+v, want a paused event with an investigation", p)
	}
	got := p.Investigation.Endpoints
	if len(got) != 1 || got[0].LastError != "grpc health check: status NOT_SERVING" || got[0].Version != "v2" || !got[0].Since.Equal(failingSince) {
		t.Errorf("endpoints %+v, want 10.0.1.2:8080 of v2 with its last error", got)
	}
}

// A stable endpoint failing its health check pauses too, and is an incident naming the
// stable version's endpoint.
func TestStableHealthPauseInvestigation(t *testing.T) {
	r, _, err := controller.New(t0, "r1", spec(), service())
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	var pause *controller.Event
	var l loop
	for i := 0; i < 10 && pause == nil; i++ {
		now = now.Add(interval)
		o := obs(r.Generation, 0.5)
		o.Health.Stable = controller.EndpointHealth{Total: 1}
		if i >= 1 {
			o.Health.Stable.Unhealthy = []string{"10.0.0.1:8080"}
		}
		var evs []controller.Event
		r, evs = l.step(r, now, o)
		for _, e := range evs {
			if e.Kind == controller.EventPaused {
				pause = &e
			}
		}
	}
	if pause == nil {
		t.Fatalf("no pause; state %s", r.State)
	}
	p := Build(*pause, r, nil)
	AddEndpointErrors(&p, r, probeState{"v1": {{Endpoint: "10.0.0.1:8080", LastError: "dial tcp 10.0.0.1:8080: connection refused", Since: failingSince}}})
	want := &Investigation{Severity: SeverityIncident, Action: investigationAction, Trigger: pause.Reason,
		Endpoints: []EndpointFailure{{Endpoint: "10.0.0.1:8080", Version: "v1", LastError: "dial tcp 10.0.0.1:8080: connection refused", Since: failingSince}}}
	if diff := cmp.Diff(want, p.Investigation); diff != "" {
		t.Errorf("investigation (-want +got):\n%s", diff)
	}
	if !strings.Contains(pause.Reason, "stable endpoints unhealthy") {
		t.Errorf("trigger %q", pause.Reason)
	}
}

// TestPublishFailedNotification: a sink that asks for publish_failed gets the failure of
// a service without a rollout, with the error, and then its recovery only if it asks
// for published too; a sink filtered to rollout events gets neither.
func TestPublishFailedNotification(t *testing.T) {
	ops := newReceiver(t, nil)
	slack := newReceiver(t, nil)
	releases := newReceiver(t, nil)
	n := New(zaptest.NewLogger(t), []catalog.Sink{
		{Name: "ops", URL: ops.URL, Events: []string{catalog.EventPublishFailed, catalog.EventPublished}},
		{Name: "ops-slack", URL: slack.URL, Format: catalog.FormatSlack, Events: []string{catalog.EventPublishFailed}},
		{Name: "releases", URL: releases.URL, Events: []string{catalog.EventStarted, catalog.EventRolledBack}},
	}, fast)
	run(t, n)
	const why = `not published, the last good resources keep serving: resolve "search.internal": no such host`
	n.Notify(controller.Event{Time: t0, Kind: controller.EventPublishFailed, Service: "search", Reason: why}, controller.Rollout{})
	n.Notify(controller.Event{Time: t0.Add(time.Minute), Kind: controller.EventPublished, Service: "search",
		Reason: "the desired state is served"}, controller.Rollout{})

	p := ops.next(t)
	if p.Event != catalog.EventPublishFailed || p.Service != "search" || p.Reason != why || p.RolloutID != "" {
		t.Errorf("publish_failed payload %+v", p)
	}
	if p := ops.next(t); p.Event != catalog.EventPublished || p.Service != "search" {
		t.Errorf("published payload %+v", p)
	}
	waitFor(t, "the slack sink's delivery", func() bool { return n.Stats()["ops-slack"].Delivered == 1 })
	if got := slack.calls.Load(); got != 1 {
		t.Errorf("slack sink called %d times, want 1 (publish_failed only)", got)
	}
	var m SlackMessage
	b, err := Encode(catalog.FormatSlack, Build(controller.Event{Time: t0, Kind: controller.EventPublishFailed, Service: "search", Reason: why},
		controller.Rollout{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Text, "NOT PUBLISHED: search") || !strings.Contains(string(b), "search.internal") {
		t.Errorf("slack message %s", b)
	}
	if releases.calls.Load() != 0 {
		t.Errorf("a sink filtered to rollout events got %d publication notifications", releases.calls.Load())
	}
}
