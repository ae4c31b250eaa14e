package controller

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/octoacme/octoroll/metrics"
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
		// The engine's tests judge the first check after the ACK; the warm-up has its
		// own tests (warmup_test.go), and the verdict simulation runs the default.
		Warmup: new(model.ZeroableDuration),
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
		r, evs = step(r, now, obs(r, now))
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

// step steps r with o as the loop would gather it: the check window's numbers stand
// for every window the rollout asks for (uniform traffic), unless o sets them.
func step(r Rollout, now time.Time, o Observation) (Rollout, []Event) {
	return r.Step(now, windowed(r, now, o))
}

func windowed(r Rollout, now time.Time, o Observation) Observation {
	if o.Analysis.Window > 0 {
		return o
	}
	aw := r.AnalysisWindow(now)
	if aw <= 0 {
		return o
	}
	stable := o.Stable
	if w := r.CanaryWeight(); w > 0 && w < model.TotalWeight && o.Canary.Requests > 0 && len(r.Matches()) == 0 {
		// The stable side at the weights' ratio (same error rate), as real traffic
		// split by the proxies would be: the sample-ratio guard holds otherwise.
		n := o.Canary.Requests * uint64(model.TotalWeight-w) / uint64(w)
		if stable.Requests > 0 {
			stable.Errors = uint64(float64(stable.Errors) * float64(n) / float64(stable.Requests))
		}
		stable.Requests = n
	}
	o.Analysis = Sample{Window: aw, Canary: o.Canary, Stable: stable}
	if sw := r.SustainWindow(now); sw < aw {
		o.Sustain = Sample{Window: sw, Canary: o.Canary, Stable: stable}
	}
	return o
}

// measured returns r with the error dispersion measured (independent requests), as
// after a few checks of a service.
func measured(r Rollout) Rollout {
	r.Progress.Intervals = steadyIntervals(20000, 20)
	return r
}

// steadyIntervals are minIntervals check windows of n requests and e errors each.
func steadyIntervals(n, e uint64) []Interval {
	var out []Interval
	for range minIntervals {
		out = append(out, Interval{Requests: n, Errors: e})
	}
	return out
}

// lognormHist is the expected histogram of n requests with lognormal latency (σ 0.6)
// whose P99 is p99, on the bucket ladder deploy/envoy ships; empty when p99 is 0.
func lognormHist(n uint64, p99 time.Duration) Histogram {
	return lognormHistOn(metrics.LatencyBucketsMS(), n, p99)
}

// lognormHistOn is lognormHist on the given bounds (ms).
func lognormHistOn(boundsMS []float64, n uint64, p99 time.Duration) Histogram {
	if p99 <= 0 || n == 0 {
		return Histogram{}
	}
	const sigma = 0.6
	median := float64(p99) / math.Exp(z(0.99)*sigma)
	var h Histogram
	for _, ms := range boundsMS {
		b := time.Duration(ms * float64(time.Millisecond))
		c := 0.5 * math.Erfc(-math.Log(float64(b)/median)/(sigma*math.Sqrt2))
		h.Bounds = append(h.Bounds, b)
		h.Counts = append(h.Counts, uint64(math.Round(c*float64(n))))
	}
	h.Bounds = append(h.Bounds, Inf)
	h.Counts = append(h.Counts, n)
	return h
}

// poisson draws a Poisson variate: Knuth's product method for small means, the
// normal approximation (continuity-corrected) above 30.
func poisson(rng *rand.Rand, mean float64) uint64 {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		v := math.Round(mean + math.Sqrt(mean)*rng.NormFloat64())
		return uint64(max(0, v))
	}
	l, k, p := math.Exp(-mean), uint64(0), 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// ladder is a histogram's bucket bounds, in milliseconds: Envoy's default ones and the
// ×1.1 ladder octoroll ships.
type ladder struct {
	name string
	ms   []float64
}

var (
	envoyLadder   = ladder{"Envoy default", metrics.EnvoyDefaultBucketsMS()}
	shippedLadder = ladder{"octoroll ×1.1", metrics.LatencyBucketsMS()}
)
