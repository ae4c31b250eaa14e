package publish_test

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// BenchmarkPublishOneChange is the cost of one publish among n services whose only
// change is one service's weights (a rollout stage), through the real xds server: what
// the runner pays on every stage and every rollback, whatever the other services are.
//
//	go test ./publish -run '^$' -bench BenchmarkPublishOneChange -benchmem
func BenchmarkPublishOneChange(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			srv := xds.NewServer(zap.NewNop(), xds.Options{})
			p := publish.New(srv, publish.NewDNS(dnsTable{}, nil, time.Minute), nil)
			all := make([]translate.Desired, n)
			for i := range all {
				all[i] = desired(fmt.Sprintf("svc-%04d", i), uint32(10000+i), fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), "v2")
			}
			if _, err := p.Publish(all); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// The runner hands over freshly built desired states every time.
				next := make([]translate.Desired, n)
				copy(next, all)
				next[0].Weights = map[string]uint32{"v1": model.TotalWeight - uint32(i%2)*2500, "v2": uint32(i%2) * 2500}
				if _, err := p.Publish(next); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
