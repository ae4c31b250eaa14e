package pagebench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
)

// Catalog is a catalog of services services, svc-0000 up, each with a stable v1 and a
// canary v2 on 127.0.0.1.
func Catalog(services int) *catalog.Catalog {
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
	return cat
}

// Spec is a minor release of service to v2 with its smoke tests waived, summed up by
// summary.
func Spec(service, summary string) controller.Spec {
	return controller.Spec{
		Service: service,
		Release: controller.Release{Type: controller.Minor, Name: "bench", Summary: summary,
			RollbackPlan: "shift all traffic back to v1"},
		Canary:  controller.Canary{Version: "v2"},
		Waivers: []controller.Waiver{{Item: controller.ItemSmokeTests, Reason: "benchmark", By: "bench"}},
	}
}

// CleanSource answers at once with the same clean traffic for every version: 10,000
// requests, Errors of them failed, a p99 of 20 ms. It measures the engine, the loop and
// the store, not a metrics backend.
type CleanSource struct{ Errors float64 }

// VersionStats implements metrics.Source.
func (s CleanSource) VersionStats(context.Context, catalog.Service, string, time.Duration, time.Time) (metrics.Stats, error) {
	return metrics.Stats{Requests: 10000, Errors: s.Errors, P99: 20 * time.Millisecond}, nil
}

// Clock is a clock the benchmark moves by hand.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock is a clock that reads t until it is moved.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
