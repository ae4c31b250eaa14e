package runner

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

// BenchmarkPublishOneChange is the runner's cost of one publish among n services whose
// only change is one service's known-good version (a rollout ending, an abort): the
// desired state gathered from the runner's state, resolved, translated and handed to
// the real xds server. The publisher's own share is publish.BenchmarkPublishOneChange.
//
//	go test ./runner -run '^$' -bench BenchmarkPublishOneChange -benchmem
func BenchmarkPublishOneChange(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			cat := &catalog.Catalog{}
			for i := range n {
				ep := func(host int) catalog.Endpoint {
					return catalog.Endpoint{Host: netip.AddrFrom4([4]byte{10, byte(host), byte(i / 250), byte(i%250 + 1)}).String(), Port: 8080}
				}
				cat.Services = append(cat.Services, catalog.Service{
					Name: fmt.Sprintf("svc-%04d", i), Port: uint32(10000 + i), Stable: "v1",
					Versions: []catalog.Version{
						{Name: "v1", Zone: "zone-a", Endpoints: []catalog.Endpoint{ep(1), ep(2)}},
						{Name: "v2", Zone: "zone-a", Endpoints: []catalog.Endpoint{ep(3), ep(4)}},
					},
				})
			}
			st, err := store.Open(b.TempDir(), store.Options{LockTimeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			r, err := New(context.Background(), cat, Options{Store: st, XDS: xds.NewServer(zap.NewNop(), xds.Options{})})
			if err != nil {
				b.Fatal(err)
			}
			name := cat.Services[0].Name
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				r.mu.Lock()
				r.setStableForBench(name, []string{"v1", "v2"}[(i+1)%2])
				r.publishLocked()
				r.mu.Unlock()
			}
			b.StopTimer()
			if st, ok := r.pub.Status(name); !ok || !st.OK {
				b.Fatalf("%s not published: %+v", name, st)
			}
		})
	}
}
