package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// t0 is a Monday 10:00 UTC.
var t0 = time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)

const interval = time.Minute

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
			Name: "2025.3 | spring", Type: controller.Minor, Date: "2025-03-03",
			Summary:        "Faster checkout with a new payment client",
			NotableChanges: []string{"Payment client v5", "Cart totals cached for 30 s"},
			MigrationSteps: []string{"None for clients"},
			KnownIssues:    []string{"Receipts may show the old logo"},
			RollbackPlan:   "Weights back to v1; no schema change to undo",
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
		Waivers:       []controller.Waiver{{Item: controller.ItemSummary, Reason: "summary in the change ticket", By: "alice"}},
	}
}

// perInterval is the service's traffic in one check interval, split between the
// versions by the canary's weight as the proxies split it.
const perInterval = 200000

// traffic is what each version serves in one check interval: its error rate (percent)
// and P99, with lognormal latency counted in octoroll's ×1.1 buckets.
type traffic struct {
	canaryPct, stablePct float64
	canaryP99, stableP99 time.Duration
}

// steady is a healthy canary: both versions at 0.5 % errors, P99 120 and 118 ms.
var steady = traffic{canaryPct: 0.5, stablePct: 0.5, canaryP99: 120 * time.Millisecond, stableP99: 118 * time.Millisecond}

// errorsAt is steady with the canary's error rate at pct.
func errorsAt(pct float64) traffic {
	t := steady
	t.canaryPct = pct
	return t
}

// version is one version's numbers over one check interval.
func version(n uint64, errPct float64, p99 time.Duration) controller.VersionStats {
	if n == 0 {
		return controller.VersionStats{}
	}
	return controller.VersionStats{Requests: n, Errors: uint64(float64(n) * errPct / 100), P99: p99, Latency: lognormal(n, p99)}
}

// lognormal is the histogram of n requests with lognormal latency (σ 0.6) whose P99 is
// p99, on the bucket ladder octoroll ships.
func lognormal(n uint64, p99 time.Duration) controller.Histogram {
	const sigma, z99 = 0.6, 2.3263478740408408
	median := float64(p99) / math.Exp(z99*sigma)
	var h controller.Histogram
	for _, ms := range metrics.LatencyBucketsMS() {
		b := time.Duration(ms * float64(time.Millisecond))
		c := 0.5 * math.Erfc(-math.Log(float64(b)/median)/(sigma*math.Sqrt2))
		h.Bounds = append(h.Bounds, b)
		h.Counts = append(h.Counts, uint64(math.Round(c*float64(n))))
	}
	h.Bounds = append(h.Bounds, controller.Inf)
	h.Counts = append(h.Counts, n)
	return h
}

// sum adds up versions' numbers over consecutive check intervals: the counts and the
// histograms; the P99 is the last one's (the engine reads it from the histogram).
func sum(a, b controller.VersionStats) controller.VersionStats {
	if a.Requests == 0 {
		return b
	}
	if b.Requests == 0 {
		return a
	}
	out := controller.VersionStats{Requests: a.Requests + b.Requests, Errors: a.Errors + b.Errors, P99: b.P99,
		Latency: controller.Histogram{Bounds: a.Latency.Bounds, Counts: slices.Clone(a.Latency.Counts)}}
	for i := range out.Latency.Counts {
		out.Latency.Counts[i] += b.Latency.Counts[i]
	}
	return out
}

// run drives a rollout from t0 through the real engine, one check per interval, with
// the windows the runner's loop gathers: the check interval's numbers, the analysis
// window since the ACK and the sustain window (the last RollbackSustain of it), each
// the sum of the check intervals it spans.
type run struct {
	t   *testing.T
	r   controller.Rollout
	now time.Time
	evs []controller.Event
	// intervals are the check intervals served so far, in order.
	intervals []served
}

// served is both versions' numbers over the check interval ending at.
type served struct {
	at             time.Time
	canary, stable controller.VersionStats
}

func start(t *testing.T) *run {
	t.Helper()
	r, evs, err := controller.New(t0, "r-2025-03-03-1", spec(), service())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &run{t: t, r: r, now: t0, evs: evs}
}

// step serves one check interval of tr at the weights in force and steps the rollout
// with what the loop would gather at its end; every proxy ACKs the current weights.
func (x *run) step(tr traffic) {
	x.now = x.now.Add(interval)
	c := uint64(perInterval) * uint64(x.r.CanaryWeight()) / uint64(model.TotalWeight)
	s := served{at: x.now, canary: version(c, tr.canaryPct, tr.canaryP99), stable: version(perInterval-c, tr.stablePct, tr.stableP99)}
	x.intervals = append(x.intervals, s)
	o := controller.Observation{
		Window: interval, Canary: s.canary, Stable: s.stable,
		Health: controller.HealthStats{
			Canary: controller.EndpointHealth{Total: 1}, Stable: controller.EndpointHealth{Total: 1}},
		Checks:      []controller.CheckResult{{Name: "smoke", Passed: true}},
		Convergence: controller.Convergence{Generation: x.r.Generation, Version: "route-1", Acked: true},
	}
	if aw := x.r.AnalysisWindow(x.now); aw > 0 {
		o.Analysis = x.window(aw)
		if sw := x.r.SustainWindow(x.now); sw < aw {
			o.Sustain = x.window(sw)
		}
	}
	var evs []controller.Event
	x.r, evs = x.r.Step(x.now, o)
	x.evs = append(x.evs, evs...)
}

// window sums the check intervals of the last w.
func (x *run) window(w time.Duration) controller.Sample {
	out := controller.Sample{Window: w}
	for _, s := range x.intervals {
		if s.at.After(x.now.Add(-w)) {
			out.Canary, out.Stable = sum(out.Canary, s.canary), sum(out.Stable, s.stable)
		}
	}
	return out
}

func completed(t *testing.T) (controller.Rollout, []controller.Event) {
	x := start(t)
	for i := 0; i < 100 && !x.r.State.Terminal(); i++ {
		x.step(steady)
	}
	if x.r.State != controller.StateCompleted {
		t.Fatalf("state %s, want completed", x.r.State)
	}
	return x.r, x.evs
}

// rolledBack drives the rollout to the 50 % stage, where the canary's error rate
// rises 1.3 pp above the stable one: a pause at the first check that sees it, a
// rollback once the sustain window (3 minutes) holds nothing but the breach (the
// analysis window since the ACK, diluted by a clean minute, stays below 1 pp); one
// interval later every proxy ACKs the known-good weights. It returns when the bad
// traffic began (the start of the first breaching check's window).
func rolledBack(t *testing.T, ackRestore bool) (controller.Rollout, []controller.Event, time.Time) {
	x := start(t)
	for i := 0; i < 100 && x.r.Stage < 1; i++ {
		x.step(steady)
	}
	x.step(steady) // ACK of the 50 % weights
	for i := 0; i < 10 && x.r.WarmingUp(x.now); i++ {
		x.step(steady) // the warm-up after the ACK
	}
	x.step(steady) // a clean check
	breach := x.now
	for i := 0; i < 10 && x.r.State != controller.StateRolledBack; i++ {
		x.step(errorsAt(1.8))
	}
	if x.r.State != controller.StateRolledBack {
		t.Fatalf("state %s, want rolled_back", x.r.State)
	}
	if ackRestore {
		x.step(errorsAt(0))
	}
	return x.r, x.evs, breach
}

func TestCompleted(t *testing.T) {
	r, evs := completed(t)
	rep := Build(r, evs)

	wantNotes := ReleaseNotes{
		Name: "2025.3 | spring", Type: "minor", Date: "2025-03-03",
		Summary:        "Faster checkout with a new payment client",
		NotableChanges: []string{"Payment client v5", "Cart totals cached for 30 s"},
		MigrationSteps: []string{"None for clients"},
		KnownIssues:    []string{"Receipts may show the old logo"},
		RollbackPlan:   "Weights back to v1; no schema change to undo",
	}
	if d := cmp.Diff(wantNotes, rep.Notes); d != "" {
		t.Errorf("notes (-want +got):\n%s", d)
	}
	if rep.RolloutID != "r-2025-03-03-1" || rep.Service != "checkout" || rep.Stable != "v1" || rep.Canary != "v2" {
		t.Errorf("identity: %s %s %s→%s", rep.RolloutID, rep.Service, rep.Stable, rep.Canary)
	}
	o := rep.Outcome
	if o.Result != ResultCompleted || o.State != controller.StateCompleted || o.CanaryPercent != 100 || o.StageName != "100%" {
		t.Errorf("outcome: %+v", o)
	}
	if !o.CreatedAt.Equal(t0) || !o.StartedAt.Equal(t0) || !o.FullAt.Equal(r.FullAt) || !o.EndedAt.Equal(r.EndedAt) {
		t.Errorf("outcome times: %+v", o)
	}
	if o.ToFull.D() != r.FullAt.Sub(t0) || o.Total.D() != r.EndedAt.Sub(t0) || o.ToFull <= 0 || o.Total <= o.ToFull {
		t.Errorf("durations: toFull %s total %s", o.ToFull, o.Total)
	}
	if o.Plan != r.Plan.String() {
		t.Errorf("plan %q, want %q", o.Plan, r.Plan.String())
	}
	if rep.Incident != nil {
		t.Errorf("incident on a completed rollout: %+v", rep.Incident)
	}
	if d := cmp.Diff([]controller.Waiver{{Item: "summary", Reason: "summary in the change ticket", By: "alice"}}, rep.Waivers); d != "" {
		t.Errorf("waivers (-want +got):\n%s", d)
	}
	if len(rep.Timeline) != len(evs) {
		t.Fatalf("timeline has %d rows for %d events", len(rep.Timeline), len(evs))
	}
	// Every event is a row, in order; the lifecycle ones carry the stage and weight.
	var lifecycle []string
	for i, row := range rep.Timeline {
		if row.Kind != evs[i].Kind || !row.Time.Equal(evs[i].Time) || row.Weight != evs[i].Weight || row.Percent != model.Percent(evs[i].Weight) {
			t.Errorf("row %d: %+v for event %+v", i, row, evs[i])
		}
		if catalog.IsEventName(row.Kind) {
			lifecycle = append(lifecycle, row.Kind+"@"+row.StageName)
		}
	}
	want := []string{"started@canary", "stage_advanced@half", "stage_advanced@100%", "monitoring_closed@100%", "completed@100%"}
	if d := cmp.Diff(want, lifecycle); d != "" {
		t.Errorf("lifecycle rows (-want +got):\n%s", d)
	}
	adv := rowsOf(rep, controller.EventStageAdvanced)[0]
	// The Go judged the 5 % stage's analysis window: two minutes at 10,000 canary
	// requests a minute.
	if adv.Decision != controller.DecisionGo || adv.Numbers == nil || adv.Numbers.CanaryRequests != 20000 ||
		adv.Numbers.Window.D() != 2*time.Minute || adv.Percent != 50 {
		t.Errorf("first advance row: %+v", adv)
	}
	golden(t, "completed", rep)
}

func TestRolledBack(t *testing.T) {
	r, evs, breach := rolledBack(t, true)
	rep := Build(r, evs)
	o := rep.Outcome
	if o.Result != ResultRolledBack || o.State != controller.StateRolledBack || o.CanaryPercent != 0 || !o.FullAt.IsZero() || o.ToFull != 0 {
		t.Errorf("outcome: %+v", o)
	}
	inc := rep.Incident
	if inc == nil {
		t.Fatal("no incident")
	}
	rolledAt := breach.Add(3 * time.Minute)
	if !inc.RolledBackAt.Equal(rolledAt) || !r.EndedAt.Equal(rolledAt) {
		t.Errorf("rolled back at %s (rollout %s), want %s", inc.RolledBackAt, r.EndedAt, rolledAt)
	}
	if inc.DetectedFrom != DetectFirstBreach || !inc.DetectedSince.Equal(breach) || inc.TimeToDetect.D() != 3*time.Minute {
		t.Errorf("detect: from %q at %s, %s; want the breach's start at %s, 3m", inc.DetectedFrom, inc.DetectedSince, inc.TimeToDetect, breach)
	}
	if !inc.Restored || !inc.RestoredAt.Equal(rolledAt.Add(interval)) || inc.TimeToRestore.D() != interval {
		t.Errorf("restore: %v at %s, %s", inc.Restored, inc.RestoredAt, inc.TimeToRestore)
	}
	if inc.KnownGood != "v1" || inc.StageName != "half" || inc.Percent != 50 || inc.Aborted || inc.Actor != "" {
		t.Errorf("incident: %+v", inc)
	}
	if inc.Trigger == "" || inc.Trigger != r.Reason {
		t.Errorf("trigger %q, want the rollout's reason %q", inc.Trigger, r.Reason)
	}
	// The numbers of the analysis window since the ACK (a clean minute and three bad
	// ones), with the sustain window's that decided attached.
	if n := inc.Numbers; n == nil || n.Window.D() != 4*time.Minute || n.CanaryErrors != 500+3*1800 || n.StableErrors != 4*500 ||
		n.Sustain == nil || n.Sustain.Window.D() != 3*time.Minute || n.Sustain.CanaryErrors != 3*1800 || n.Sustain.StableErrors != 3*500 {
		t.Errorf("numbers: %+v", inc.Numbers)
	}
	if inc.RollbackPlan != "Weights back to v1; no schema change to undo" {
		t.Errorf("rollback plan %q", inc.RollbackPlan)
	}
	if len(inc.ActionItems) < 5 || inc.ActionItems[0].Done {
		t.Errorf("action items: %+v", inc.ActionItems)
	}
	golden(t, "rolled-back", rep)
}

func TestRolledBackNotRestored(t *testing.T) {
	r, evs, _ := rolledBack(t, false)
	inc := Build(r, evs).Incident
	if inc == nil || inc.Restored || !inc.RestoredAt.IsZero() || inc.TimeToRestore != 0 {
		t.Fatalf("incident: %+v", inc)
	}
	if !bytes.Contains(Build(r, evs).Markdown(), []byte("**Time to restore:** not confirmed")) {
		t.Error("Markdown does not say the restore is not confirmed")
	}
	if inc.ActionItems[0].Text != "Confirm every proxy routes 100% to v1 (restore not confirmed)" {
		t.Errorf("first action item %q", inc.ActionItems[0].Text)
	}
}

func TestAborted(t *testing.T) {
	x := start(t)
	x.step(steady) // ACK of the 5 % weights
	x.now = x.now.Add(30 * time.Second)
	r, evs, err := x.r.Apply(x.now, controller.Command{Kind: controller.CmdAbort, Actor: "bob", Reason: "data integrity issue in orders"})
	if err != nil {
		t.Fatalf("abort: %v", err)
	}
	inc := Build(r, append(x.evs, evs...)).Incident
	if inc == nil || !inc.Aborted || inc.Actor != "bob" || inc.Trigger != "aborted by bob: data integrity issue in orders" {
		t.Fatalf("incident: %+v", inc)
	}
	// No breaching check: detection runs from the ACK of the stage's weights.
	if inc.DetectedFrom != DetectStageAcked || !inc.DetectedSince.Equal(t0.Add(interval)) || inc.TimeToDetect.D() != 30*time.Second {
		t.Errorf("detect: from %q at %s, %s", inc.DetectedFrom, inc.DetectedSince, inc.TimeToDetect)
	}
	if inc.StageName != "canary" || inc.Percent != 5 {
		t.Errorf("stage %q at %v%%", inc.StageName, inc.Percent)
	}
}

// A rollout rolled back at the moment of the rollback, without its history (what a
// notification sees after a restart), still names the trigger and a detection start.
func TestIncidentWithoutEvents(t *testing.T) {
	r, _, _ := rolledBack(t, false)
	inc := BuildIncident(r, nil)
	if inc.Trigger != r.Reason || !inc.RolledBackAt.Equal(r.EndedAt) || inc.DetectedFrom != DetectRollout || !inc.DetectedSince.Equal(t0) {
		t.Errorf("incident: %+v", inc)
	}
	if inc.TimeToDetect.D() != r.EndedAt.Sub(t0) {
		t.Errorf("time to detect %s", inc.TimeToDetect)
	}
}

func TestInProgress(t *testing.T) {
	x := start(t)
	x.step(steady)
	rep := Build(x.r, x.evs)
	if rep.Outcome.Result != ResultInProgress || rep.Outcome.StageName != "canary" || rep.Outcome.CanaryPercent != 5 || rep.Incident != nil {
		t.Errorf("outcome: %+v", rep.Outcome)
	}
	md := string(rep.Markdown())
	for _, want := range []string{"**Result:** in progress (progressing, stage canary, canary at 5%)", "**Reached 100 %:** —"} {
		if !bytes.Contains([]byte(md), []byte(want)) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

// The JSON form round-trips.
func TestJSONRoundTrip(t *testing.T) {
	r, evs, _ := rolledBack(t, true)
	rep := Build(r, evs)
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(rep, back); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

func rowsOf(rep Report, kind string) []Row {
	var out []Row
	for _, r := range rep.Timeline {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// golden compares the report's Markdown and JSON with testdata/name.md and .json.
func golden(t *testing.T, name string, rep Report) {
	t.Helper()
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	for ext, got := range map[string][]byte{".md": rep.Markdown(), ".json": append(js, '\n')} {
		path := filepath.Join("testdata", name+ext)
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if d := cmp.Diff(string(want), string(got)); d != "" {
			t.Errorf("%s differs (-want +got):\n%s", path, d)
		}
	}
}

// TestDetectFromDecidingRule: a latency pause at 50 %, not resumed, then an error-rate
// breach sustained while paused rolls back. The time to detect starts at the first
// error-rate breach (when the rule that decided began breaching), not at the earlier
// latency pause, a different rule's breach.
func TestDetectFromDecidingRule(t *testing.T) {
	x := start(t)
	for i := 0; i < 100 && x.r.Stage < 1; i++ {
		x.step(steady)
	}
	x.step(steady) // ACK of the 50 % weights
	slow := steady
	// ×1.27 the stable P99: more than 1 % of the canary's requests are slower than the
	// pause threshold (×1.1 the stable P99, read inside its bucket), 0.8 % than the
	// rollback bound (×1.25, rounded up to a bucket bound): a pause, not a rollback.
	slow.canaryP99 = 150 * time.Millisecond
	// Judged once the warm-up after the ACK is over (only gross breaches before).
	for i := 0; i < 10 && x.r.State != controller.StatePaused; i++ {
		x.step(slow)
	}
	if x.r.State != controller.StatePaused || !strings.Contains(x.r.Reason, "P99 latency more than ×1.1 baseline") {
		t.Fatalf("state %s (%s) after the latency breach, want paused on P99", x.r.State, x.r.Reason)
	}
	latencyPause := x.now
	x.step(steady)
	x.step(steady)
	errorsFrom := x.now // the first bad check's window begins
	for i := 0; i < 10 && x.r.State != controller.StateRolledBack; i++ {
		x.step(errorsAt(2.0))
	}
	if x.r.State != controller.StateRolledBack {
		t.Fatalf("state %s, want rolled_back", x.r.State)
	}
	inc := BuildIncident(x.r, x.evs)
	if inc.DetectedFrom != DetectFirstBreach || !inc.DetectedSince.Equal(errorsFrom) || inc.TimeToDetect.D() != 3*time.Minute {
		t.Errorf("detect from %q at %s (%s); want the first error-rate breach at %s (3m), not the latency pause at %s",
			inc.DetectedFrom, inc.DetectedSince, inc.TimeToDetect, errorsFrom, latencyPause)
	}
}

// TestDetectFromDecidingRuleEvents replays an event history: an early latency pause,
// resumed, then a run of error-rate breaches (a pause, then the rollback once
// sustained) interleaved with a latency pause decision of its own. Detection starts at
// the error-rate run's first breach.
func TestDetectFromDecidingRuleEvents(t *testing.T) {
	r, _, err := controller.New(t0, "r-1", spec(), service())
	if err != nil {
		t.Fatal(err)
	}
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	ev := func(min int, kind string, d controller.Decision, reason string) controller.Event {
		return controller.Event{Time: at(min), Kind: kind, RolloutID: r.ID, Service: "checkout", Decision: d, Reason: reason}
	}
	const (
		latency = "P99 latency more than ×1.1 baseline: 1.27% of canary requests (1270/100000) slower than 142ms " +
			"(≥ ×1.1 stable P99 121ms) over 1m0s, lower bound 1.14% vs 1% (z 3.73); canary P99 150ms"
		errorRate = "error rate more than 0.1 pp above baseline: canary 2.000% (2000/100000) vs stable 0.500% (500/100000) " +
			"over 1m0s, difference +1.500 pp, interval [+1.380, +1.622] pp (z 3.73)"
		sustained = "error rate more than 1 pp above baseline for 3m0s: canary 2.000% (6000/300000) vs stable 0.500% (1500/300000) " +
			"over 3m0s, difference +1.500 pp, interval [+1.412, +1.589] pp (z 3.09)"
	)
	evs := []controller.Event{
		ev(0, controller.EventStarted, "", ""),
		ev(1, controller.EventAcked, "", ""),
		ev(3, controller.EventPaused, controller.DecisionPause, latency),
		ev(5, controller.EventCommand, "", "looked fine"),
		ev(5, controller.EventResumed, "", "resumed by bob"),
		ev(6, controller.EventDecision, controller.DecisionContinue, "checks passing"),
		ev(8, controller.EventPaused, controller.DecisionPause, errorRate),
		ev(9, controller.EventDecision, controller.DecisionPause, latency+"; "+errorRate),
		ev(11, controller.EventRolledBack, controller.DecisionRollback, sustained),
	}
	evs[3].Command, evs[3].Actor = controller.CmdResume, "bob"
	inc := BuildIncident(r, evs)
	if inc.DetectedFrom != DetectFirstBreach || !inc.DetectedSince.Equal(at(8)) || inc.TimeToDetect.D() != 3*time.Minute {
		t.Errorf("detect from %q at %s (%s); want the error-rate run's first breach at %s", inc.DetectedFrom, inc.DetectedSince, inc.TimeToDetect, at(8))
	}

	// Without the resume and the clean check, the latency pause still does not count:
	// it is another rule's breach.
	evs = append(evs[:3:3], evs[6:]...)
	if inc := BuildIncident(r, evs); !inc.DetectedSince.Equal(at(8)) {
		t.Errorf("without the resume: detect from %q at %s; want %s", inc.DetectedFrom, inc.DetectedSince, at(8))
	}
	// The rollback names where its sustained run began: that counts even with no event.
	evs[len(evs)-1].BreachSince = at(7)
	if inc := BuildIncident(r, evs); !inc.DetectedSince.Equal(at(7)) || inc.TimeToDetect.D() != 4*time.Minute {
		t.Errorf("with the rollback's breach start: detect from %q at %s (%s); want %s", inc.DetectedFrom, inc.DetectedSince, inc.TimeToDetect, at(7))
	}
}

// TestDurationsRounded: measured durations print rounded in the report, never with
// nanoseconds.
func TestDurationsRounded(t *testing.T) {
	r, evs, _ := rolledBack(t, true)
	for i := range evs {
		if evs[i].Kind == controller.EventRolledBack {
			evs[i].Time = evs[i].Time.Add(1188759) // 3m0.001188759s after the first breach
		}
		if evs[i].Kind == controller.EventAcked && i > 0 && evs[i-1].Kind == controller.EventRolledBack {
			evs[i].Time = evs[i-1].Time.Add(37933333)
		}
	}
	md := string(Build(r, evs).Markdown())
	for _, want := range []string{"**Time to detect:** 3m0s", "**Time to restore:** 37.9ms"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "759") || strings.Contains(md, "333") {
		t.Errorf("report prints unrounded durations:\n%s", md)
	}
}
