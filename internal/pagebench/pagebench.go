// Package pagebench builds an octoroll admin server over a real runner and a real store
// holding many services, for the status page and services API benchmarks (make bench and
// go test -bench ./admin).
package pagebench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/admin"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

// Fixture is an admin handler over services services, active of them with an active
// rollout, every other one with a completed rollout in the store.
type Fixture struct {
	Handler http.Handler
	Runner  *runner.Runner
	Events  int // events in the store
	close   func()
}

// Close releases the store and its directory.
func (f *Fixture) Close() { f.close() }

// New builds the fixture: the rollouts are created by the engine and persisted with
// their events as the runner does, then the runner resumes the active ones and runs
// checks evaluations so that every active rollout has judged numbers; then the
// runner's loop runs until Close.
func New(services, active, checks int) (*Fixture, error) {
	cat := Catalog(services)
	dir, err := os.MkdirTemp("", "octoroll-pagebench-")
	if err != nil {
		return nil, err
	}
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	f := &Fixture{close: func() { st.Close(); os.RemoveAll(dir) }}
	clk := NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	put := func(ro controller.Rollout, evs []controller.Event) error {
		doc, err := json.Marshal(ro)
		if err != nil {
			return err
		}
		sevs := make([]store.Event, 0, len(evs))
		for _, ev := range evs {
			data, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			sevs = append(sevs, store.Event{Time: ev.Time, RolloutID: ev.RolloutID, Service: ev.Service, Kind: ev.Kind, Data: data})
		}
		f.Events += len(sevs)
		_, err = st.PutRollout(ro.ID, ro.Service, !ro.State.Terminal(), doc, sevs)
		return err
	}
	for i, svc := range cat.Services {
		now := clk.Now()
		ro, evs, err := controller.New(now, store.NewID(now, svc.Name), Spec(svc.Name, "status page"), svc)
		if err != nil {
			return nil, fmt.Errorf("rollout of %s: %w", svc.Name, err)
		}
		if i >= active {
			// A finished rollout: promoted to 100 %, then finished.
			for _, cmd := range []controller.Command{
				{Kind: controller.CmdPromoteFull, Actor: "bench"},
				{Kind: controller.CmdFinish, Actor: "bench"},
			} {
				next, more, err := ro.Apply(now.Add(time.Minute), cmd)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", cmd.Kind, svc.Name, err)
				}
				ro, evs = next, append(evs, more...)
			}
		}
		if err := put(ro, evs); err != nil {
			return nil, err
		}
	}
	srv := xds.NewServer(zap.NewNop(), xds.Options{})
	ctx := context.Background()
	r, err := runner.New(ctx, cat, runner.Options{Log: zap.NewNop(), Store: st, XDS: srv, Metrics: CleanSource{Errors: 3}, Now: clk.Now})
	if err != nil {
		f.close()
		return nil, err
	}
	for range checks {
		clk.Add(controller.DefaultCheckInterval)
		r.Evaluate(ctx)
	}
	// The loop runs while the pages are read: a check interval passes every 2 s, so
	// every active rollout is checked (and its transitions persisted) every 2 s.
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(runCtx) })
	wg.Go(func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				clk.Add(controller.DefaultCheckInterval)
			}
		}
	})
	closeStore := f.close
	f.close = func() { cancel(); wg.Wait(); closeStore() }
	f.Runner = r
	adm := admin.New(zap.NewNop(), admin.Options{Backend: r, XDSStats: srv.Stats, Proxies: srv.Proxies, Now: clk.Now, Version: "bench"})
	f.Handler = adm.Handler()
	return f, nil
}

// Result is the latency of GET requests to one path under concurrent clients.
type Result struct {
	Path          string
	Clients, N    int
	P50, P99, Max time.Duration
	Bytes         int
}

// Load sends n GET requests to path from clients concurrent clients against base (an
// http:// URL) and returns the latency percentiles. Any answer but 200 is an error.
func Load(base, path string, clients, n int) (Result, error) {
	res := Result{Path: path, Clients: clients, N: n}
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for range work {
				t := time.Now()
				resp, err := cl.Get(base + path)
				size := 0
				if err == nil {
					for {
						k, rerr := resp.Body.Read(buf)
						size += k
						if rerr != nil {
							break
						}
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET %s: %s", path, resp.Status)
					}
				}
				d := time.Since(t)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				lat = append(lat, d)
				res.Bytes = size
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	slices.Sort(lat)
	res.P50, res.P99, res.Max = pct(lat, 0.50), pct(lat, 0.99), lat[len(lat)-1]
	return res, nil
}

func pct(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
