package controller

import (
	"testing"
	"time"

	"github.com/octoacme/octoroll/model"
)

// t0 is a Monday 10:00 UTC.
var t0 = time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)

func testService() model.Service {
	return model.Service{
		Name: "checkout", Port: 8080, Stable: "v1",
		Versions: []model.Version{
			{Name: "v1", Endpoints: []model.Endpoint{{Host: "10.0.0.1", Port: 8080}, {Host: "10.0.0.2", Port: 8080}}},
			{Name: "v2", Endpoints: []model.Endpoint{{Host: "10.0.1.1", Port: 8080}, {Host: "10.0.1.2", Port: 8080}}},
		},
	}
}

func testSpec(t ReleaseType) Spec {
	return Spec{
		Service: "checkout",
		Release: Release{Name: "2025.3", Type: t, Date: "2025-03-03", Summary: "faster checkout",
			RollbackPlan: "weights back to v1"},
		Canary:      Canary{Version: "v2"},
		SmokeChecks: []string{"smoke"},
	}
}

// goodObs is a clean observation with plenty of data, ACKing generation gen.
func goodObs(gen uint64) Observation {
	return Observation{
		Canary: VersionStats{Requests: 2000, Errors: 2, P99: 100 * time.Millisecond},
		Stable: VersionStats{Requests: 20000, Errors: 20, P99: 100 * time.Millisecond},
		Health: HealthStats{
			Canary: EndpointHealth{Total: 2}, Stable: EndpointHealth{Total: 2}},
		Checks:      []CheckResult{{Name: "smoke", Passed: true}},
		Convergence: Convergence{Generation: gen, Version: "v", Acked: true},
	}
}

func mustNew(t testing.TB, now time.Time, spec Spec) (Rollout, []Event) {
	t.Helper()
	r, evs, err := New(now, "r1", spec, testService())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, evs
}

// drive steps r every interval from `from` (exclusive) until `until` (inclusive) or
// until r is terminal, with obs built from r.
func drive(r Rollout, from, until time.Time, every time.Duration, obs func(Rollout, time.Time) Observation) (Rollout, time.Time, []Event) {
	var all []Event
	now := from
	for !r.State.Terminal() {
		now = now.Add(every)
		if now.After(until) {
			return r, now.Add(-every), all
		}
		var evs []Event
		r, evs = r.Step(now, obs(r, now))
		all = append(all, evs...)
	}
	return r, now, all
}

func good(r Rollout, _ time.Time) Observation { return goodObs(r.Generation) }

func kinds(evs []Event, kind string) []Event {
	var out []Event
	for _, e := range evs {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func checkWeights(t testing.TB, r Rollout) {
	t.Helper()
	w := r.Weights()
	var sum uint32
	for _, v := range w {
		sum += v
	}
	if sum != model.TotalWeight || len(w) != 2 {
		t.Fatalf("weights %v: want two versions summing to %d", w, model.TotalWeight)
	}
}
