package admin_test

import (
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/octoacme/octoroll/internal/pagebench"
)

var (
	benchOnce    sync.Once
	benchFixture *pagebench.Fixture
	benchErr     error
)

// fixture is one real runner and store with 1,000 services, 200 of them rolling out,
// shared by the benchmarks of the package (building it persists 1,000 rollouts).
func fixture(b *testing.B) *pagebench.Fixture {
	benchOnce.Do(func() { benchFixture, benchErr = pagebench.New(1000, 200, 3) })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchFixture
}

func benchGet(b *testing.B, path string) {
	f := fixture(b)
	srv := httptest.NewServer(f.Handler)
	defer srv.Close()
	if _, err := pagebench.Load(srv.URL, path, 1, 1); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := pagebench.Load(srv.URL, path, 1, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkStatusPage is GET / with 1,000 services, 200 of them rolling out.
func BenchmarkStatusPage(b *testing.B) { benchGet(b, "/") }

// BenchmarkServicesAPI is GET /api/v1/services with 1,000 services, 200 rolling out.
func BenchmarkServicesAPI(b *testing.B) { benchGet(b, "/api/v1/services") }
