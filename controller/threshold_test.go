package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/octoacme/octoroll/model"
)

// acked returns a minor rollout in its canary stage whose weights were ACKed at t0+30s.
func acked(t *testing.T, spec Spec) Rollout {
	t.Helper()
	r, _ := mustNew(t, t0, spec)
	r, _ = step(r, t0.Add(30*time.Second), goodObs(r.Generation))
	if r.Progress.AckedAt.IsZero() || r.State != StateProgressing {
		t.Fatalf("not acked: %+v", r.Progress)
	}
	return measured(r)
}

// rates returns an observation with n requests per version and the given error rates
// in percent and P99s.
func rates(gen uint64, n uint64, canaryPct, stablePct float64, canaryP99, stableP99 time.Duration) Observation {
	o := goodObs(gen)
	o.Canary = VersionStats{Requests: n, Errors: uint64(float64(n) * canaryPct / 100), P99: canaryP99}
	o.Stable = VersionStats{Requests: n, Errors: uint64(float64(n) * stablePct / 100), P99: stableP99}
	return o
}

// Each guide threshold just below and just above its bound, with samples large enough
// that the confidence bound sits within 0.001 pp of the point estimate.
func TestThresholdBounds(t *testing.T) {
	const big = 1_000_000_000
	ms := time.Millisecond
	tests := []struct {
		name      string
		obs       func(gen uint64) Observation
		wantState State
		wantIn    string // substring of the reason
	}{
		{"error rate +0.099 pp: continue", func(g uint64) Observation { return rates(g, big, 0.599, 0.5, 100*ms, 100*ms) }, StateProgressing, ""},
		{"error rate +0.102 pp: pause", func(g uint64) Observation { return rates(g, big, 0.602, 0.5, 100*ms, 100*ms) }, StatePaused, "0.1 pp"},
		{"P99 only, ×1.10: continue", func(g uint64) Observation { return rates(g, big, 0.5, 0.5, 110*ms, 100*ms) }, StateProgressing, ""},
		{"P99 only, ×1.101: pause", func(g uint64) Observation { return rates(g, big, 0.5, 0.5, 110100*time.Microsecond, 100*ms) }, StatePaused, "×1.1"},
		{"P99 only, ×2: pause, never rollback", func(g uint64) Observation { return rates(g, big, 0.5, 0.5, 200*ms, 100*ms) }, StatePaused, "no histogram"},
		{"error rate +1.5 pp once: pause, not rollback", func(g uint64) Observation { return rates(g, big, 2.0, 0.5, 100*ms, 100*ms) }, StatePaused, "0.1 pp"},
		{"error rate +4.9 pp: marginal, pause", func(g uint64) Observation { return rates(g, big, 5.4, 0.5, 100*ms, 100*ms) }, StatePaused, "0.1 pp"},
		{"error rate +5.1 pp: gross, paused until the next check confirms it", func(g uint64) Observation { return rates(g, big, 5.6, 0.5, 100*ms, 100*ms) }, StatePaused, "0.1 pp"},
		{"99 canary requests: hold", func(g uint64) Observation {
			o := goodObs(g)
			o.Canary = VersionStats{Requests: 99, Errors: 50, P99: time.Second}
			return o
		}, StateProgressing, "99 requests < minRequests 100"},
		{"100 canary requests, half failing: judged (gross)", func(g uint64) Observation {
			o := goodObs(g)
			o.Canary = VersionStats{Requests: 100, Errors: 50, P99: 100 * ms}
			return o
		}, StatePaused, "0.1 pp"},
		{"1 % canary, 1 error in 150: below the traffic's resolution, continue", func(g uint64) Observation {
			o := goodObs(g)
			o.Canary = VersionStats{Requests: 150, Errors: 1, P99: 100 * ms}
			o.Stable = VersionStats{Requests: 15000, Errors: 30, P99: 100 * ms}
			return o
		}, StateProgressing, ""},
		{"+0.15 pp at 10,000 req/s, not yet significant: hold for data", func(g uint64) Observation {
			return rates(g, 150000, 0.65, 0.5, 100*ms, 100*ms)
		}, StateProgressing, "not significantly"},
		{"metrics source down: hold", func(g uint64) Observation {
			o := goodObs(g)
			o.Canary.Err = errors.New("connection refused")
			return o
		}, StateProgressing, "unavailable"},
		{"stable P99 unknown: hold", func(g uint64) Observation { return rates(g, 1000, 0, 0, 100*ms, 0) }, StateProgressing, "P99 latency unknown"},
		{"one canary endpoint unhealthy: pause", func(g uint64) Observation {
			o := goodObs(g)
			o.Health.Canary = EndpointHealth{Total: 2, Unhealthy: []string{"10.0.1.2:8080"}}
			return o
		}, StatePaused, "1 of 2 canary endpoints"},
		{"all canary endpoints unhealthy: rollback", func(g uint64) Observation {
			o := goodObs(g)
			o.Health.Canary = EndpointHealth{Total: 2, Unhealthy: []string{"10.0.1.2:8080", "10.0.1.1:8080"}}
			return o
		}, StateRolledBack, "all 2 canary endpoints"},
		{"critical alert: pause", func(g uint64) Observation {
			o := goodObs(g)
			o.Alerts = []string{"CheckoutDown"}
			return o
		}, StatePaused, "CheckoutDown"},
		{"smoke check fails: rollback", func(g uint64) Observation {
			o := goodObs(g)
			o.Checks = []CheckResult{{Name: "smoke", Passed: false, Detail: "POST /cart 500"}}
			return o
		}, StateRolledBack, "POST /cart 500"},
		{"smoke check missing: hold", func(g uint64) Observation {
			o := goodObs(g)
			o.Checks = nil
			return o
		}, StateProgressing, "no result"},
		{"NACK of current weights: pause", func(g uint64) Observation {
			o := goodObs(g)
			o.Convergence.NACK = "invalid weight"
			return o
		}, StatePaused, "rejected"},
		{"NACK of an older generation: ignored", func(g uint64) Observation {
			o := goodObs(g)
			o.Convergence = Convergence{Generation: g - 1, NACK: "old"}
			return o
		}, StateProgressing, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := acked(t, testSpec(Minor))
			now := t0.Add(time.Minute)
			r2, evs := step(r, now, tt.obs(r.Generation))
			if r2.State != tt.wantState {
				t.Fatalf("state %s (reason %q), want %s", r2.State, r2.Reason, tt.wantState)
			}
			if !strings.Contains(r2.Reason+r2.Progress.LastReason, tt.wantIn) {
				t.Errorf("reason %q / %q, want it to contain %q", r2.Reason, r2.Progress.LastReason, tt.wantIn)
			}
			if tt.wantState == StateRolledBack {
				if r2.Weights()["v2"] != 0 || r2.Weights()["v1"] != 10000 {
					t.Errorf("rollback weights %v", r2.Weights())
				}
				if e := kinds(evs, EventRolledBack); len(e) != 1 || e[0].Reason == "" {
					t.Errorf("rollback event %+v", evs)
				}
			}
			if tt.wantState == StatePaused && r2.CanaryWeight() != r.CanaryWeight() {
				t.Errorf("pause moved the weight")
			}
		})
	}
}

func TestCustomChecks(t *testing.T) {
	spec := testSpec(Minor)
	spec.CustomChecks = []Check{{Name: "ledger", OnFail: OnFailRollback}, {Name: "signup"}}
	for _, tt := range []struct {
		failing string
		want    State
	}{{"ledger", StateRolledBack}, {"signup", StatePaused}, {"", StateProgressing}} {
		r := acked(t, spec)
		o := goodObs(r.Generation)
		o.Checks = append(o.Checks, CheckResult{Name: "ledger", Passed: tt.failing != "ledger"},
			CheckResult{Name: "signup", Passed: tt.failing != "signup"})
		r, _ = step(r, t0.Add(time.Minute), o)
		if r.State != tt.want {
			t.Errorf("%q failing: state %s, want %s", tt.failing, r.State, tt.want)
		}
	}
}

// The sustained rule: an error rate more than 1 pp above the stable one measured over a
// whole sustain window (5 min) rolls back; less than 5 minutes of data pauses; a late
// excursion is judged on the last 5 minutes, however clean the stage was before.
func TestSustainWindow(t *testing.T) {
	const big = 100_000_000
	ms := 100 * time.Millisecond
	breach := func(g uint64) Observation { return rates(g, big, 1.6, 0.5, ms, ms) }

	r := acked(t, testSpec(Minor)) // ACKed at t0+30s
	var backAt time.Duration
	for now := t0.Add(time.Minute); !r.State.Terminal() && now.Before(t0.Add(10*time.Minute)); now = now.Add(30 * time.Second) {
		r, _ = step(r, now, breach(r.Generation))
		if r.State == StateRolledBack {
			backAt = now.Sub(r.Progress.Since)
			backAt = now.Sub(t0.Add(30 * time.Second))
		} else if r.State != StatePaused {
			t.Fatalf("at %s: %s, want paused until 5 minutes of data", now.Sub(t0), r.State)
		}
	}
	if backAt != 5*time.Minute || !strings.Contains(r.Reason, "for 5m0s") {
		t.Errorf("rolled back %s after the ACK (%q), want after 5m of breach", backAt, r.Reason)
	}

	// 25 clean minutes, then 5 bad ones: the analysis window is diluted below the bound,
	// the sustain window is not.
	r = acked(t, testSpec(Minor))
	now := t0.Add(30*time.Second + 30*time.Minute)
	o := goodObs(r.Generation)
	o.Analysis = Sample{Window: 30 * time.Minute,
		Canary: VersionStats{Requests: 60000, Errors: 60 + 1500, P99: ms},
		Stable: VersionStats{Requests: 1140000, Errors: 5700, P99: ms}}
	o.Sustain = Sample{Window: 5 * time.Minute,
		Canary: VersionStats{Requests: 10000, Errors: 300, P99: ms},
		Stable: VersionStats{Requests: 190000, Errors: 950, P99: ms}}
	r, _ = r.Step(now, o)
	if r.State != StateRolledBack || !strings.Contains(r.Reason, "for 5m0s") {
		t.Errorf("late excursion: state %s reason %q", r.State, r.Reason)
	}
}

func TestAckTimeout(t *testing.T) {
	r, _ := mustNew(t, t0, testSpec(Minor))
	notAcked := func(r Rollout) Observation {
		o := goodObs(r.Generation)
		o.Convergence = Convergence{Generation: r.Generation, Stragglers: []string{"sidecar-b", "sidecar-a"}}
		return o
	}
	r, _ = step(r, t0.Add(time.Minute), notAcked(r))
	r, _ = step(r, t0.Add(2*time.Minute-time.Second), notAcked(r))
	if r.State != StateProgressing || r.Progress.LastDecision != DecisionHold {
		t.Fatalf("1m59s: %s %s", r.State, r.Progress.LastDecision)
	}
	r, evs := step(r, t0.Add(2*time.Minute), notAcked(r))
	if r.State != StatePaused {
		t.Fatalf("2m: state %s", r.State)
	}
	p := kinds(evs, EventPaused)
	if len(p) != 1 || strings.Join(p[0].Stragglers, ",") != "sidecar-a,sidecar-b" || !strings.Contains(p[0].Reason, "sidecar-a") {
		t.Errorf("pause event %+v", p)
	}
	// The monitor clock never started: no monitored time.
	if r.Progress.Monitored != 0 || !r.Progress.AckedAt.IsZero() {
		t.Errorf("progress %+v", r.Progress)
	}
}

// A stage whose checks stay inconclusive pauses after InconclusiveLimit (10m), and one
// that never gets a full clean window pauses at MaxWindow (30m for a 15m canary).
func TestInconclusiveAndMaxWindow(t *testing.T) {
	low := func(g uint64) Observation {
		o := goodObs(g)
		o.Canary.Requests = 20
		return o
	}
	r := acked(t, testSpec(Minor))
	for now := t0.Add(time.Minute); !now.After(t0.Add(10*time.Minute + 30*time.Second)); now = now.Add(30 * time.Second) {
		r, _ = step(r, now, low(r.Generation))
		if r.State != StateProgressing || r.Progress.Monitored != 0 {
			t.Fatalf("%s: state %s monitored %s", now.Sub(t0), r.State, r.Progress.Monitored)
		}
	}
	r, evs := step(r, t0.Add(11*time.Minute), low(r.Generation))
	if r.State != StatePaused || !strings.Contains(r.Reason, "inconclusive for 10m0s") {
		t.Fatalf("state %s reason %q", r.State, r.Reason)
	}
	if len(kinds(evs, EventPaused)) != 1 {
		t.Errorf("events %+v", evs)
	}

	r = acked(t, testSpec(Minor))
	i := 0
	var now time.Time
	for now = t0.Add(time.Minute); r.State == StateProgressing; now = now.Add(30 * time.Second) {
		o := low(r.Generation)
		if i%3 == 2 {
			o = goodObs(r.Generation)
		}
		i++
		r, _ = step(r, now, o)
	}
	now = now.Add(-30 * time.Second)
	if r.State != StatePaused || !strings.Contains(r.Reason, "maxWindow 30m0s") || !now.Equal(t0.Add(30*time.Minute+30*time.Second)) {
		t.Fatalf("at %s: state %s reason %q", now.Sub(t0), r.State, r.Reason)
	}
}

// An inconclusive check never counts as monitored time; Go needs MinWindow of clean
// checks.
func TestHoldNeverCountsAsPass(t *testing.T) {
	spec := testSpec(Minor)
	spec.SourceFailureLimit = 100 // this test is about holds, not the failure limit
	r := acked(t, spec)
	now := t0.Add(30 * time.Second)
	for i := 0; i < 8; i++ {
		now = now.Add(30 * time.Second)
		o := goodObs(r.Generation)
		o.Stable.Err = errors.New("prometheus: 503")
		r, _ = step(r, now, o)
	}
	if r.Progress.Monitored != 0 || r.Progress.Inconclusive != 8 {
		t.Fatalf("progress %+v", r.Progress)
	}
}

// A failing source holds each check and pauses at the consecutive limit; one answered
// check resets the count. Alert-source failures count too.
func TestSourceFailureLimit(t *testing.T) {
	spec := testSpec(Minor)
	spec.SourceFailureLimit = 3
	r := acked(t, spec)
	now := t0.Add(30 * time.Second)
	step := func(o Observation) []Event {
		t.Helper()
		now = now.Add(30 * time.Second)
		var evs []Event
		r, evs = step(r, now, o)
		return evs
	}
	failing := func() Observation {
		o := goodObs(r.Generation)
		o.Canary = VersionStats{Err: errors.New("prometheus: connection refused")}
		return o
	}
	step(failing())
	step(failing())
	if r.State != StateProgressing || r.Progress.SourceFailures != 2 || r.Progress.LastDecision != DecisionHold {
		t.Fatalf("after 2 failures: state %s progress %+v", r.State, r.Progress)
	}
	step(goodObs(r.Generation)) // the source answered: the run resets
	if r.Progress.SourceFailures != 0 {
		t.Fatalf("after an answer: %d failures", r.Progress.SourceFailures)
	}
	step(failing())
	o := goodObs(r.Generation)
	o.AlertsErr = "prometheus: 503"
	step(o)
	if r.State != StateProgressing {
		t.Fatalf("state %s after 2 failures", r.State)
	}
	evs := step(failing())
	if r.State != StatePaused || !strings.Contains(r.Reason, "metrics source failing on 3 consecutive checks") ||
		!strings.Contains(r.Reason, "connection refused") || len(kinds(evs, EventPaused)) != 1 {
		t.Fatalf("state %s reason %q events %+v", r.State, r.Reason, evs)
	}
}

// The analysis window reaches back to the ACK of the current weights (or the last
// resume), capped by the plan; nothing before the ACK.
func TestAnalysisWindow(t *testing.T) {
	spec := testSpec(Minor)
	spec.AnalysisWindow = Duration(20 * time.Minute)
	r, _ := mustNew(t, t0, spec)
	if w := r.AnalysisWindow(t0.Add(time.Minute)); w != 0 {
		t.Fatalf("before the ACK: %s", w)
	}
	r = acked(t, spec) // ACKed at t0+30s
	for _, tc := range []struct {
		at   time.Duration
		want time.Duration
	}{{30 * time.Second, 0}, {90 * time.Second, time.Minute}, {20*time.Minute + 30*time.Second, 20 * time.Minute}, {time.Hour, 20 * time.Minute}} {
		if w := r.AnalysisWindow(t0.Add(tc.at)); w != tc.want {
			t.Errorf("at %s: %s, want %s", tc.at, w, tc.want)
		}
	}
}

// With an analysis window, a breach of the pause bound in one short window alone does
// not pause (the analysis window is clean); a gross breach in it rolls back once the
// next check confirms it.
func TestCheckWindowJudgedForGrossOnly(t *testing.T) {
	r := acked(t, testSpec(Minor))
	now := t0.Add(2 * time.Minute)
	o := rates(r.Generation, 300, 1.67, 0.5, 100*time.Millisecond, 100*time.Millisecond)
	o.Analysis = Sample{Window: 90 * time.Second,
		Canary: VersionStats{Requests: 3000, Errors: 15, P99: 100 * time.Millisecond},
		Stable: VersionStats{Requests: 57000, Errors: 285, P99: 100 * time.Millisecond}}
	r2, _ := step(r, now, o)
	if r2.State != StateProgressing || r2.Progress.Last == nil || r2.Progress.Last.Verdict != VerdictClean ||
		r2.Progress.Last.Recent == nil || r2.Progress.Last.Window != Duration(90*time.Second) {
		t.Fatalf("noisy short window: state %s last %+v", r2.State, r2.Progress.Last)
	}
	r.Progress.Intervals = steadyIntervals(2000, 10) // the stable version's 0.5 %
	o = rates(r.Generation, 2000, 12, 0.5, 100*time.Millisecond, 100*time.Millisecond)
	o.Analysis = Sample{Window: 90 * time.Second,
		Canary: VersionStats{Requests: 6000, Errors: 250, P99: 100 * time.Millisecond},
		Stable: VersionStats{Requests: 114000, Errors: 570, P99: 100 * time.Millisecond}}
	r2, _ = step(r, now, o)
	if r2.State == StateRolledBack || r2.Progress.GrossSince.IsZero() {
		t.Fatalf("one gross check: state %s reason %q, want it held for confirmation", r2.State, r2.Reason)
	}
	r2, evs := step(r2, now.Add(30*time.Second), o)
	if r2.State != StateRolledBack || !strings.Contains(r2.Reason, "grossly") || !strings.Contains(r2.Reason, "confirmed") {
		t.Fatalf("gross breach on two checks: state %s reason %q", r2.State, r2.Reason)
	}
	if e := kinds(evs, EventRolledBack); len(e) != 1 || !e[0].BreachSince.Equal(now) {
		t.Errorf("rollback event %+v, want the breach dated from the first gross check", e)
	}
}

// Every judged check records its numbers, thresholds, interval and verdict.
func TestEvaluationRecorded(t *testing.T) {
	r := acked(t, testSpec(Minor))
	o := rates(r.Generation, 10000, 1.0, 0.5, 100*time.Millisecond, 100*time.Millisecond)
	o.Window = 30 * time.Second
	r, _ = step(r, t0.Add(time.Minute), o)
	n := r.Progress.Last
	if n == nil || n.Thresholds == nil || n.Thresholds.PauseErrorRatePP != DefaultPauseErrorRatePP ||
		n.Verdict != VerdictPause || !strings.Contains(n.Reason, "0.1 pp above baseline") ||
		n.DeltaLowPP <= 0.1 || n.DeltaHighPP <= n.DeltaLowPP || n.Window != Duration(30*time.Second) {
		t.Fatalf("numbers %+v", n)
	}
}

// A query check that could not be evaluated holds, counts as a source failure, and is
// never a pass; its failure acts by onFail.
func TestQueryCheckResults(t *testing.T) {
	spec := testSpec(Minor)
	spec.SourceFailureLimit = 2
	spec.CustomChecks = []Check{{Name: "orders", Query: "sum(rate(orders_total[{{.Window}}]))", Min: ptr(1.0), OnFail: OnFailRollback}}
	r := acked(t, spec)
	obs := func(res CheckResult) Observation {
		o := goodObs(r.Generation)
		o.Checks = append(o.Checks, res)
		return o
	}
	r1, _ := step(r, t0.Add(time.Minute), obs(CheckResult{Name: "orders", Inconclusive: "prometheus: empty result"}))
	if r1.State != StateProgressing || r1.Progress.LastDecision != DecisionHold || r1.Progress.SourceFailures != 1 ||
		!strings.Contains(r1.Progress.LastReason, `check "orders" inconclusive: prometheus: empty result`) {
		t.Fatalf("inconclusive query: state %s progress %+v", r1.State, r1.Progress)
	}
	r2, _ := step(r1, t0.Add(90*time.Second), obs(CheckResult{Name: "orders", Inconclusive: "prometheus: empty result"}))
	if r2.State != StatePaused || !strings.Contains(r2.Reason, "metrics source failing on 2 consecutive checks") {
		t.Fatalf("second inconclusive query: state %s reason %q", r2.State, r2.Reason)
	}
	r3, _ := step(r1, t0.Add(90*time.Second), obs(CheckResult{Name: "orders", Detail: "value 0 is below min 1"}))
	if r3.State != StateRolledBack || !strings.Contains(r3.Reason, "below min 1") {
		t.Fatalf("failed query check: state %s reason %q", r3.State, r3.Reason)
	}
}

// The catalog service's query checks join every rollout's plan; a rollout's own check
// of the same name replaces the catalog's, and the spec keeps what the operator wrote.
func TestServiceChecksJoinThePlan(t *testing.T) {
	svc := testService()
	svc.Metrics.Checks = []model.MetricCheck{
		{Name: "orders", Query: "sum(rate(orders_total[{{.Window}}]))", Min: ptr(1.0), OnFail: OnFailRollback},
		{Name: "queue", Query: "max(queue_depth)", Max: ptr(100.0)},
	}
	spec := testSpec(Minor)
	spec.CustomChecks = []Check{{Name: "queue", Query: "max(queue_depth)", Max: ptr(500.0), OnFail: OnFailPause}}
	r, _, err := New(t0, "r1", spec, svc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Check{
		{Name: "queue", Query: "max(queue_depth)", Max: ptr(500.0), OnFail: OnFailPause},
		{Name: "orders", Query: "sum(rate(orders_total[{{.Window}}]))", Min: ptr(1.0), OnFail: OnFailRollback},
	}
	if diff := cmp.Diff(want, r.Plan.Checks); diff != "" {
		t.Errorf("plan checks (-want +got):\n%s", diff)
	}
	if len(r.Spec.CustomChecks) != 1 {
		t.Errorf("spec custom checks %+v, want the operator's one", r.Spec.CustomChecks)
	}
}

// The engine sees publication: weights that are not published hold the rollout with
// the reason, however long (the ACK timeout counts from the publication); with no proxy
// subscribed it holds on that; the ACK instant reported starts the monitor clock.
func TestPublicationObserved(t *testing.T) {
	r, _ := mustNew(t, t0, testSpec(Minor))
	notPublished := func(r Rollout) Observation {
		o := goodObs(r.Generation)
		o.Convergence = Convergence{Generation: r.Generation, NotPublished: "resolve \"canary.internal\": no such host"}
		return o
	}
	var evs []Event
	for i := 1; i <= 10; i++ {
		r, _ = r.Step(t0.Add(time.Duration(i)*time.Minute), notPublished(r))
	}
	if r.State != StateProgressing || r.Reason != `not published: resolve "canary.internal": no such host` || !r.Progress.AckedAt.IsZero() {
		t.Fatalf("not published for 10m: %s %q acked %s", r.State, r.Reason, r.Progress.AckedAt)
	}
	noProxy := func(r Rollout) Observation {
		o := goodObs(r.Generation)
		o.Convergence = Convergence{Generation: r.Generation, Published: true, Version: "rv"}
		return o
	}
	r, _ = r.Step(t0.Add(10*time.Minute+30*time.Second), noProxy(r))
	if r.State != StateProgressing || !strings.HasPrefix(r.Reason, "no proxy subscribed to the route of checkout") {
		t.Fatalf("published, no proxy: %s %q", r.State, r.Reason)
	}
	ackAt := t0.Add(10*time.Minute + 40*time.Second)
	o := goodObs(r.Generation)
	o.Convergence = Convergence{Generation: r.Generation, Published: true, Version: "rv", Subscribed: 2, Acked: true, AckedAt: ackAt}
	r, evs = r.Step(t0.Add(11*time.Minute), o)
	if !r.Progress.AckedAt.Equal(ackAt) || r.Progress.Monitored.D() != 20*time.Second {
		t.Fatalf("acked at %s with %s monitored, want the reported instant %s and 20s", r.Progress.AckedAt, r.Progress.Monitored, ackAt)
	}
	if a := kinds(evs, EventAcked); len(a) != 1 || !a[0].Time.Equal(ackAt) {
		t.Errorf("acked events %+v, want one at %s", a, ackAt)
	}
}

// An ACK instant outside the weights' life (a clock step, a report without one) is
// bounded to it: never before the weights were set, never after the check.
func TestAckInstantBounded(t *testing.T) {
	r, _ := mustNew(t, t0, testSpec(Minor))
	for _, tc := range []struct {
		at, want time.Time
	}{
		{time.Time{}, t0.Add(time.Minute)},
		{t0.Add(-time.Hour), t0},
		{t0.Add(time.Hour), t0.Add(time.Minute)},
	} {
		o := goodObs(r.Generation)
		o.Convergence.AckedAt = tc.at
		got, _ := r.Step(t0.Add(time.Minute), o)
		if !got.Progress.AckedAt.Equal(tc.want) {
			t.Errorf("reported %s: acked at %s, want %s", tc.at, got.Progress.AckedAt, tc.want)
		}
	}
}
