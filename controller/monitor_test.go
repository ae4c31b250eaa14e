package controller

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/octoacme/octoroll/model"
)

func TestShareDecoding(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    Share
		wantErr string
	}{
		{"1%", 100, ""}, {"0.5%", 50, ""}, {" 10 %", 1000, ""}, {"100", 100, ""}, {"0", 0, ""},
		{"0.001%", 0, "resolution"}, {"-1%", 0, "0-100"}, {"abc", 0, "want a percent"}, {"1.5", 0, "basis points"},
		{"10001", 0, "at most"}, {"NaN%", 0, "want a percent"},
	} {
		got, err := ParseShare(tc.in)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	var s struct {
		Holdback Share `json:"holdback" yaml:"holdback"`
	}
	for _, doc := range []string{`holdback: 1%`, `holdback: "1%"`, `holdback: 100`} {
		s.Holdback = 0
		if err := yaml.Unmarshal([]byte(doc), &s); err != nil || s.Holdback != 100 {
			t.Errorf("yaml %q: %d, %v", doc, s.Holdback, err)
		}
	}
	for _, doc := range []string{`{"holdback":"1%"}`, `{"holdback":100}`} {
		s.Holdback = 0
		if err := json.Unmarshal([]byte(doc), &s); err != nil || s.Holdback != 100 {
			t.Errorf("json %q: %d, %v", doc, s.Holdback, err)
		}
	}
	for _, doc := range []string{`{"holdback":true}`, `{"holdback":"x"}`, `{"holdback":-3}`} {
		if err := json.Unmarshal([]byte(doc), &s); err == nil {
			t.Errorf("json %q: no error", doc)
		}
	}
	if b, _ := json.Marshal(Share(150)); string(b) != `"1.5%"` {
		t.Errorf("marshal: %s", b)
	}
}

func TestHoldbackValidation(t *testing.T) {
	t.Parallel()
	spec := testSpec(Minor)
	spec.Holdback = MaxHoldback + 1
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "holdback: 10.01%") {
		t.Fatalf("holdback over 10%%: %v", err)
	}
	for _, ok := range []Share{0, 1, 100, MaxHoldback} {
		spec.Holdback = ok
		if err := spec.Validate(); err != nil {
			t.Errorf("holdback %s: %v", ok, err)
		}
	}
}

// holdbackSpec is a minor release with one short stage, a two-phase window and a 2 %
// holdback.
func holdbackSpec(holdback Share) Spec {
	spec := testSpec(Minor)
	spec.Stages = []StageSpec{{Percent: 50, MinWindow: Duration(5 * time.Minute)}}
	spec.Monitoring = []Phase{{Name: "Immediate", Until: Duration(30 * time.Minute)}, {Name: "Rest", Until: Duration(time.Hour)}}
	spec.Holdback = holdback
	return spec
}

// split is an observation of total requests split by the rollout's weights, with the
// given error rates (percent) and P99s, over the check window and the analysis window
// the rollout asks for at now (at the same rate).
func split(r Rollout, now time.Time, perSec float64, canaryPct, stablePct float64, canaryP99, stableP99 time.Duration) Observation {
	o := goodObs(r.Generation)
	w := 30 * time.Second
	stats := func(d time.Duration) (VersionStats, VersionStats) {
		n := perSec * d.Seconds()
		c := n * float64(r.CanaryWeight()) / model.TotalWeight
		s := n - c
		return VersionStats{Requests: uint64(c), Errors: uint64(c * canaryPct / 100), P99: canaryP99, Latency: lognormHist(uint64(c), canaryP99)},
			VersionStats{Requests: uint64(s), Errors: uint64(s * stablePct / 100), P99: stableP99, Latency: lognormHist(uint64(s), stableP99)}
	}
	o.Window = w
	o.Canary, o.Stable = stats(w)
	if aw := r.AnalysisWindow(now); aw > 0 {
		o.Analysis.Window = aw
		o.Analysis.Canary, o.Analysis.Stable = stats(aw)
		if sw := r.SustainWindow(now); sw < aw {
			o.Sustain.Window = sw
			o.Sustain.Canary, o.Sustain.Stable = stats(sw)
		}
	}
	return o
}

func TestHoldbackWeights(t *testing.T) {
	t.Parallel()
	r, _ := mustNew(t, t0, holdbackSpec(200))
	if !strings.Contains(r.Plan.String(), "98% (2% held back") {
		t.Errorf("plan %s", r.Plan)
	}
	ms := time.Millisecond
	r, now, _ := drive(r, t0, t0.Add(time.Hour), 30*time.Second, func(r Rollout, now time.Time) Observation {
		return split(r, now, 1000, 0.5, 0.5, 100*ms, 100*ms)
	})
	_ = now
	if r.State != StateMonitoring {
		t.Fatalf("state %s (%s), want monitoring", r.State, r.Reason)
	}
	if w := r.Weights(); w["v1"] != 200 || w["v2"] != 9800 || !r.HoldbackActive() {
		t.Fatalf("monitoring weights %v", w)
	}
	checkWeights(t, r)
	p, _, err := r.Apply(now.Add(time.Second), Command{Kind: CmdPause, Actor: "ann"})
	if err != nil || p.Weights()["v1"] != 200 || !p.HoldbackActive() {
		t.Fatalf("paused in the window: %v %v", p.Weights(), err)
	}
	gen := r.Generation
	done, _, _ := drive(r, now, now.Add(2*time.Hour), 30*time.Second, func(r Rollout, now time.Time) Observation {
		return split(r, now, 1000, 0.5, 0.5, 100*ms, 100*ms)
	})
	if done.State != StateCompleted || done.Weights()["v2"] != model.TotalWeight || done.HoldbackActive() {
		t.Fatalf("closed window: state %s weights %v", done.State, done.Weights())
	}
	if done.Generation != gen+1 {
		t.Errorf("generation %d after the holdback ended, want %d", done.Generation, gen+1)
	}
	checkWeights(t, done)
	// Without a holdback the window's close changes no weight and keeps the generation.
	r0, _ := mustNew(t, t0, holdbackSpec(0))
	r0, now, _ = drive(r0, t0, t0.Add(time.Hour), 30*time.Second, good)
	if r0.State != StateMonitoring || r0.Weights()["v2"] != model.TotalWeight {
		t.Fatalf("no holdback: %s %v", r0.State, r0.Weights())
	}
	gen = r0.Generation
	r0, _, _ = r0.Apply(now.Add(time.Second), Command{Kind: CmdFinish, Actor: "ann"})
	if r0.State != StateCompleted || r0.Generation != gen {
		t.Errorf("finish without holdback: %s gen %d want %d", r0.State, r0.Generation, gen)
	}
}

// In the window a regression is judged against the live holdback over the same time
// and rolls back as in a stage; without a holdback the same regression, judged against
// the last stage's baseline, pauses; a gross one rolls back either way.
func TestMonitoringBaseline(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, tc := range []struct {
		name       string
		holdback   Share
		canaryPct  float64
		canaryP99  time.Duration
		want       State
		wantReason string
	}{
		{"holdback, +2 pp", 500, 2.5, 100 * ms, StateRolledBack, "for 5m0s"},
		{"holdback, P99 ×1.4", 500, 0.5, 140 * ms, StateRolledBack, "P99 latency"},
		{"holdback, healthy", 500, 0.5, 100 * ms, StateMonitoring, ""},
		{"no holdback, +2 pp", 0, 2.5, 100 * ms, StatePaused, "0.1 pp above baseline"},
		{"no holdback, P99 ×1.4", 0, 0.5, 140 * ms, StatePaused, "P99 latency"},
		{"no holdback, +12 pp", 0, 12.5, 100 * ms, StateRolledBack, "grossly"},
		{"no holdback, healthy", 0, 0.5, 100 * ms, StateMonitoring, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, _ := mustNew(t, t0, holdbackSpec(tc.holdback))
			now := t0
			for r.State != StateMonitoring && now.Before(t0.Add(time.Hour)) {
				now = now.Add(30 * time.Second)
				r, _ = step(r, now, split(r, now, 2000, 0.5, 0.5, 100*ms, 100*ms))
			}
			if r.State != StateMonitoring || r.Baseline == nil {
				t.Fatalf("state %s baseline %+v", r.State, r.Baseline)
			}
			// The baseline is the stable version over the whole stage after its ACK.
			if b := r.Baseline; b.Window < Duration(4*time.Minute) || b.Requests < 4*60*1000 || b.P99 != Duration(100*ms) {
				t.Errorf("baseline %+v, want the stage's analysis window", b)
			}
			r, _, _ = drive(r, now, now.Add(20*time.Minute), 30*time.Second, func(r Rollout, at time.Time) Observation {
				cp, cl := 0.5, 100*ms
				if at.Sub(now) > 2*time.Minute {
					cp, cl = tc.canaryPct, tc.canaryP99
				}
				o := split(r, at, 2000, cp, 0.5, cl, 100*ms)
				if r.CanaryWeight() == model.TotalWeight {
					o.Stable, o.Analysis.Stable = VersionStats{}, VersionStats{} // the stable version is idle
				}
				return o
			})
			if r.State != tc.want || !strings.Contains(r.Reason, tc.wantReason) {
				t.Fatalf("state %s reason %q, want %s with %q", r.State, r.Reason, tc.want, tc.wantReason)
			}
			if tc.holdback == 0 && r.State == StatePaused && (r.Progress.Last == nil || !r.Progress.Last.Baseline) {
				t.Errorf("numbers not marked as judged against the baseline: %+v", r.Progress.Last)
			}
		})
	}
}

// A rollout persisted before holdbacks and baseline windows existed decodes and goes on.
func TestOldRolloutDecodes(t *testing.T) {
	t.Parallel()
	r, _ := mustNew(t, t0, holdbackSpec(0))
	r, now, _ := drive(r, t0, t0.Add(time.Hour), 30*time.Second, good)
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, r), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"holdback", "stableWindow", "stableAnalysis"} {
		delete(m["plan"].(map[string]any), k)
		delete(m["progress"].(map[string]any), k)
	}
	if b, ok := m["baseline"].(map[string]any); ok {
		delete(b, "window")
	}
	var old Rollout
	if err := json.Unmarshal(mustJSON(t, m), &old); err != nil {
		t.Fatal(err)
	}
	if old.Plan.Holdback != 0 || old.Weights()["v2"] != model.TotalWeight || old.Baseline == nil {
		t.Fatalf("decoded %+v %+v", old.Plan, old.Baseline)
	}
	old, _, _ = drive(old, now, now.Add(2*time.Hour), 30*time.Second, good)
	if old.State != StateCompleted {
		t.Fatalf("state %s", old.State)
	}
}
