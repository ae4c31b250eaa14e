package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

// startSample rollouts of the capacity run go through Runner.Start.
const startSample = 5

type capacityResult struct {
	Services, Rounds  int
	Interval          time.Duration
	StartOne          time.Duration // one Start with every other service active
	CPUPerInterval    time.Duration
	WallPerInterval   time.Duration
	TransitionsPerSec float64
	HeapInuse         uint64
	RSS               int64
}

// cleanSource answers at once with the same clean traffic for every version: it
// measures the engine, the loop and the store, not a metrics backend.
type cleanSource struct{}

func (cleanSource) VersionStats(context.Context, catalog.Service, string, time.Duration, time.Time) (metrics.Stats, error) {
	return metrics.Stats{Requests: 10000, Errors: 0, P99: 20 * time.Millisecond}, nil
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func runCapacity(services, rounds int) (*capacityResult, error) {
	res := &capacityResult{Services: services, Rounds: rounds, Interval: controller.DefaultCheckInterval}
	cat := &catalog.Catalog{}
	for i := range services {
		cat.Services = append(cat.Services, catalog.Service{
			Name: fmt.Sprintf("svc-%04d", i), Port: uint32(10000 + i), Stable: "v1",
			Versions: []catalog.Version{
				{Name: "v1", Endpoints: []catalog.Endpoint{{Host: "127.0.0.1", Port: 8001}}},
				{Name: "v2", Endpoints: []catalog.Endpoint{{Host: "127.0.0.1", Port: 8002}}},
			},
		})
	}
	dir, err := os.MkdirTemp("", "octoroll-bench-capacity-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		return res, err
	}
	defer st.Close()
	clk := &clock{t: time.Now()}
	ctx := context.Background()
	spec := func(name string) controller.Spec {
		return controller.Spec{
			Service: name,
			Release: controller.Release{Type: controller.Minor, Name: "bench", Summary: "capacity",
				RollbackPlan: "shift all traffic back to v1"},
			Canary:  controller.Canary{Version: "v2"},
			Waivers: []controller.Waiver{{Item: controller.ItemSmokeTests, Reason: "benchmark", By: "bench"}},
		}
	}
	// Every start republishes every service, so starting 1,000 rollouts one by one is
	// quadratic. All but the last few are created by the engine and persisted as the
	// runner would, and the runner resumes them; the last few go through Start to
	// measure its cost with every other service active.
	seeded := services - startSample
	for _, svc := range cat.Services[:seeded] {
		now := clk.Now()
		ro, _, err := controller.New(now, store.NewID(now, svc.Name), spec(svc.Name), svc)
		if err != nil {
			return res, fmt.Errorf("rollout of %s: %w", svc.Name, err)
		}
		doc, err := json.Marshal(ro)
		if err != nil {
			return res, err
		}
		if _, err := st.PutRollout(ro.ID, svc.Name, true, doc, nil); err != nil {
			return res, err
		}
	}
	srv := xds.NewServer(zap.NewNop(), xds.Options{})
	r, err := runner.New(ctx, cat, runner.Options{Log: zap.NewNop(), Store: st, XDS: srv, Metrics: cleanSource{}, Now: clk.Now})
	if err != nil {
		return res, err
	}
	start := time.Now()
	for _, svc := range cat.Services[seeded:] {
		if _, err := r.Start(ctx, spec(svc.Name), "bench"); err != nil {
			return res, fmt.Errorf("start %s: %w", svc.Name, err)
		}
	}
	res.StartOne = time.Since(start) / startSample

	var cpu, wall time.Duration
	for range rounds {
		clk.Add(res.Interval)
		c0, w0 := cpuTime(), time.Now()
		r.Evaluate(ctx)
		cpu += cpuTime() - c0
		wall += time.Since(w0)
	}
	views := r.Services()
	checked := 0
	for _, v := range views {
		if v.Active != nil && v.Active.Progress.Checks >= rounds {
			checked++
		}
	}
	if checked != services {
		return res, fmt.Errorf("only %d of %d rollouts were checked every interval", checked, services)
	}
	res.CPUPerInterval = cpu / time.Duration(rounds)
	res.WallPerInterval = wall / time.Duration(rounds)
	res.TransitionsPerSec = float64(services*rounds) / wall.Seconds()
	res.HeapInuse = heapInuse()
	res.RSS = rss()
	return res, nil
}
