package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/internal/pagebench"
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

func runCapacity(services, rounds int) (*capacityResult, error) {
	res := &capacityResult{Services: services, Rounds: rounds, Interval: controller.DefaultCheckInterval}
	cat := pagebench.Catalog(services)
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
	clk := pagebench.NewClock(time.Now())
	ctx := context.Background()
	// Every start republishes every service, so starting 1,000 rollouts one by one is
	// quadratic. All but the last few are created by the engine and persisted as the
	// runner would, and the runner resumes them; the last few go through Start to
	// measure its cost with every other service active.
	seeded := services - startSample
	for _, svc := range cat.Services[:seeded] {
		now := clk.Now()
		ro, _, err := controller.New(now, store.NewID(now, svc.Name), pagebench.Spec(svc.Name, "capacity"), svc)
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
	r, err := runner.New(ctx, cat, runner.Options{Log: zap.NewNop(), Store: st, XDS: srv, Metrics: pagebench.CleanSource{}, Now: clk.Now})
	if err != nil {
		return res, err
	}
	start := time.Now()
	for _, svc := range cat.Services[seeded:] {
		if _, err := r.Start(ctx, pagebench.Spec(svc.Name, "capacity"), "bench"); err != nil {
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
