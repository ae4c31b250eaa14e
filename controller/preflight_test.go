package controller

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestPreflightListsEveryMissingItem(t *testing.T) {
	spec := testSpec(Minor)
	spec.Release.Summary = ""
	spec.Release.RollbackPlan = " "
	spec.SmokeChecks = nil
	_, _, err := New(t0, "r1", spec, testService())
	var pe *PreflightError
	if !errors.Is(err, ErrPreflight) || !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Join(pe.Missing, ","); got != "rollbackPlan,summary,smokeTests" {
		t.Errorf("missing %s", got)
	}
	for _, want := range []string{"release.rollbackPlan", "release.summary", "smokeChecks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	// Waiving two of three still refuses, naming the third only.
	spec.Waivers = []Waiver{
		{Item: ItemSummary, Reason: "notes follow", By: "ana"},
		{Item: ItemSmokeTests, Reason: "no HTTP surface", By: "ana"},
	}
	_, _, err = New(t0, "r1", spec, testService())
	if !errors.As(err, &pe) || strings.Join(pe.Missing, ",") != "rollbackPlan" {
		t.Fatalf("err = %v", err)
	}
	spec.Waivers = append(spec.Waivers, Waiver{Item: ItemRollbackPlan, Reason: "stateless", By: "bo"})
	r, evs, err := New(t0, "r1", spec, testService())
	if err != nil {
		t.Fatal(err)
	}
	w := kinds(evs, EventWaiver)
	if len(w) != 3 || w[2].Waiver.Item != ItemRollbackPlan || w[2].Actor != "bo" {
		t.Errorf("waiver events %+v", w)
	}
	if r.State != StateProgressing {
		t.Errorf("state %s", r.State)
	}
}

func TestValidateNamesFields(t *testing.T) {
	spec := Spec{
		Release:  Release{Type: "huge", Date: "03/03/2025"},
		Critical: true,
		Canary:   Canary{Endpoints: []string{"nohost"}},
		Stages: []StageSpec{
			{Weight: 2500, MinWindow: Duration(time.Minute)},
			{Percent: 5},
			{Weight: 0, MinWindow: Duration(time.Minute)},
			{Weight: 10000},
			{Weight: 20000},
		},
		Thresholds:  Thresholds{PauseLatencyRatio: 0.9, Confidence: 1.5},
		SmokeChecks: []string{"smoke", "smoke"},
		CustomChecks: []Check{{Name: "x", OnFail: "explode"}, {Name: "q1", Query: "up{job=\"{{.Job}}\"}", Max: ptr(1.0)},
			{Name: "q2", Query: "queue_depth", Min: ptr(5.0), Max: ptr(1.0)}, {Name: "q3", Query: "{{.Service"},
			{Name: "q4", Min: ptr(math.NaN())}},
		AnalysisWindow:     -1,
		SourceFailureLimit: -2,
		Monitoring:         []Phase{{Name: "a", Until: Duration(time.Hour)}, {Name: "b", Until: Duration(time.Minute)}},
		Window:             &DeploymentWindow{Days: []string{"funday"}, Start: "9:00", End: "25:00", TimeZone: "Mars/Olympus"},
		Waivers:            []Waiver{{Item: "tests"}},
	}
	err := spec.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, field := range []string{"service:", "release.type:", "release.date:", "critical:", "canary.version:",
		"canary.endpoints[0]:", "stages[1].weight:", "stages[1].minWindow:", "stages[2]: a 0 weight", "stages[3]: only the last",
		"stages[4].weight:", "thresholds.pauseLatencyRatio:", "thresholds.confidence:", "smokeChecks[1]:",
		"customChecks[0].onFail:", "customChecks[1].query: template: query:1:", "customChecks[2].max: 1 is less than min 5",
		"customChecks[3].query: template: query:1: unclosed action", "customChecks[3]: a query check needs min, max or both",
		"customChecks[4].min: NaN: must be a finite number", "customChecks[4].query: required with min or max",
		"analysisWindow:", "sourceFailureLimit:", "monitoring[1].until:", "window.days[0]:", "window.start:", "window.end:",
		"window.timeZone:", "waivers[0].item:", "waivers[0].reason:", "waivers[0].by:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	if err := testSpec(Breaking).Validate(); err != nil {
		t.Errorf("valid spec: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestNewChecksCatalog(t *testing.T) {
	spec := testSpec(Minor)
	spec.Canary = Canary{Version: "v3"}
	if _, _, err := New(t0, "r1", spec, testService()); !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "canary.endpoints") {
		t.Errorf("new version without endpoints: %v", err)
	}
	spec.Canary = Canary{Version: "v3", Endpoints: []string{"10.0.3.1:8080"}, Zone: "b"}
	r, _, err := New(t0, "r1", spec, testService())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := r.WithCanary(testService())
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := svc.Version("v3"); !ok || v.Endpoints[0].String() != "10.0.3.1:8080" || len(testService().Versions) != 2 {
		t.Errorf("WithCanary: %+v", svc.Versions)
	}
	spec.Canary = Canary{Version: "v1"}
	if _, _, err := New(t0, "r1", spec, testService()); err == nil {
		t.Error("canary == stable accepted")
	}
}

func TestPlanOverrides(t *testing.T) {
	spec := testSpec(Minor)
	spec.Stages = []StageSpec{
		{Name: "one", Percent: 1, MinWindow: Duration(20 * time.Minute),
			Thresholds: Thresholds{MinRequests: 20}},
		{Weight: 3300, MinWindow: Duration(time.Hour), MaxWindow: Duration(90 * time.Minute)},
		{Percent: 100},
	}
	spec.Thresholds = Thresholds{PauseErrorRatePP: 0.2}
	p, err := Resolve(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Stages) != 2 || p.Stages[0].Weight != 100 || p.Stages[0].MaxWindow != Duration(40*time.Minute) ||
		p.Stages[1].Name != "33%" || p.Stages[1].MaxWindow != Duration(90*time.Minute) {
		t.Errorf("stages %+v", p.Stages)
	}
	if th := p.Stages[0].Thresholds; th.MinRequests != 20 || th.PauseErrorRatePP != 0.2 || th.RollbackErrorRatePP != 1 {
		t.Errorf("thresholds %+v", th)
	}
	if p.String() != "1% 20m0s → 33% 1h0m0s → 100%" {
		t.Errorf("plan %s", p)
	}
}
