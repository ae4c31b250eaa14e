package admin

import (
	"encoding/json"
	"testing"

	"github.com/octoacme/octoroll/admin/api"
)

// Every weight on the wire in basis points has its percent beside it: a service's
// weights, a rollout's canary weight, its timeline steps and its events.
func TestAPIWeightsInPercent(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	get := func(path string) resp { return f.do(t, req{method: "GET", path: path}) }
	expect(t, "start", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: testSpecJSON}), 201, "")
	// The canary's first stage is 5 % (500): 9500 and 500 published.
	var svc struct {
		Weights        map[string]uint32  `json:"weights"`
		WeightsPercent map[string]float64 `json:"weightsPercent"`
		Active         struct {
			CanaryWeight  uint32  `json:"canaryWeight"`
			CanaryPercent float64 `json:"canaryPercent"`
		} `json:"active"`
	}
	if err := json.Unmarshal(get("/api/v1/services/checkout").body, &svc); err != nil {
		t.Fatal(err)
	}
	if svc.Weights["v1"] != 9500 || svc.WeightsPercent["v1"] != 95 || svc.Weights["v2"] != 500 || svc.WeightsPercent["v2"] != 5 ||
		svc.Active.CanaryWeight != 500 || svc.Active.CanaryPercent != 5 {
		t.Errorf("service weights %v, percent %v, canary %d = %g%%", svc.Weights, svc.WeightsPercent, svc.Active.CanaryWeight, svc.Active.CanaryPercent)
	}
	var all api.ServicesResponse
	if err := json.Unmarshal(get("/api/v1/services").body, &all); err != nil {
		t.Fatal(err)
	}
	for _, s := range all.Services {
		if len(s.WeightsPercent) != len(s.Weights) {
			t.Errorf("%s: weights %v, percent %v", s.Name, s.Weights, s.WeightsPercent)
		}
		for v, w := range s.Weights {
			if s.WeightsPercent[v] != float64(w)/100 {
				t.Errorf("%s %s: %d is not %g%%", s.Name, v, w, s.WeightsPercent[v])
			}
		}
	}
	var events struct {
		Events []struct {
			Kind          string  `json:"kind"`
			Weight        uint32  `json:"weight"`
			WeightPercent float64 `json:"weightPercent"`
		} `json:"events"`
	}
	if err := json.Unmarshal(get("/api/v1/events?service=checkout").body, &events); err != nil {
		t.Fatal(err)
	}
	started := false
	for _, e := range events.Events {
		if e.WeightPercent != float64(e.Weight)/100 {
			t.Errorf("%s event: weight %d, weightPercent %g", e.Kind, e.Weight, e.WeightPercent)
		}
		started = started || (e.Kind == "started" && e.WeightPercent == 5)
	}
	if !started {
		t.Errorf("no started event at 5%%: %+v", events.Events)
	}
}
