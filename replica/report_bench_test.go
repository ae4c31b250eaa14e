package replica

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// The record benchmark: one replica's xDS server with 1,000 services (two versions
// each) and 1,000 proxies on real gRPC ADS streams, each watching one service's route,
// clusters and endpoints by name as a proxyless gRPC client does, and ACKing every
// response.
//
//	go test ./replica -run '^$' -bench BenchmarkRecord -benchtime 200x
//
// "one-service-acked" is what the record costs after one service's weights changed and
// its proxy ACKed them (the change watch names that service); "every-service" is a
// record recomputed for every service, as after a catalog change, and as every 50 ms
// round did before the record followed the change watch.

const (
	benchServices = 1000
	benchProxies  = 1000
)

func benchDesired(i int, canary uint32) translate.Desired {
	name := fmt.Sprintf("svc-%04d", i)
	return translate.Desired{
		Service: catalog.Service{Name: name, Port: uint32(10001 + i), Stable: "v1", Versions: []catalog.Version{
			{Name: "v1", Endpoints: []catalog.Endpoint{{Host: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), Port: 8001}}},
			{Name: "v2", Endpoints: []catalog.Endpoint{{Host: fmt.Sprintf("10.2.%d.%d", i/250, i%250+1), Port: 8002}}},
		}},
		Weights: map[string]uint32{"v1": catalog.TotalWeight - canary, "v2": canary},
	}
}

// benchWorld is the served world: acks counts the route ACKs of each proxy.
type benchWorld struct {
	xs      *xds.Server
	desired []translate.Desired
	cat     *catalog.Catalog
	acks    []atomic.Int64
}

func startBenchWorld(b *testing.B) *benchWorld {
	b.Helper()
	w := &benchWorld{xs: xds.NewServer(zap.NewNop(), xds.Options{}), acks: make([]atomic.Int64, benchProxies)}
	w.cat = &catalog.Catalog{}
	for i := range benchServices {
		d := benchDesired(i, 0)
		w.desired = append(w.desired, d)
		w.cat.Services = append(w.cat.Services, d.Service)
	}
	if err := w.xs.Update(w.desired); err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { _ = w.xs.Serve(ctx, lis) })
	var conns []*grpc.ClientConn
	for range 8 {
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cc.Close() })
		conns = append(conns, cc)
	}
	var ready sync.WaitGroup
	for p := range benchProxies {
		ready.Add(1)
		wg.Go(func() { w.proxy(ctx, conns[p%len(conns)], p, ready.Done) })
	}
	ready.Wait()
	return w
}

// proxy runs proxy p, watching service p % benchServices; full is called once it holds
// every type.
func (w *benchWorld) proxy(ctx context.Context, cc *grpc.ClientConn, p int, full func()) {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		full()
		return
	}
	svc := w.desired[p%benchServices].Service.Name
	clusters := []string{translate.ClusterName(svc, "v1"), translate.ClusterName(svc, "v2")}
	names := map[string][]string{resource.RouteType: {translate.RouteName(svc)}, resource.ClusterType: clusters, resource.EndpointType: clusters}
	node := &corev3.Node{Id: fmt.Sprintf("proxy-%04d", p)}
	for _, t := range []string{resource.RouteType, resource.ClusterType, resource.EndpointType} {
		if st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: t, ResourceNames: names[t]}) != nil {
			full()
			return
		}
	}
	got := map[string]bool{}
	for {
		resp, err := st.Recv()
		if err != nil {
			if len(got) < 3 {
				full()
			}
			return
		}
		t := resp.GetTypeUrl()
		if st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: t, ResourceNames: names[t],
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}) != nil {
			return
		}
		if t == resource.RouteType {
			w.acks[p].Add(1)
		}
		if !got[t] {
			if got[t] = true; len(got) == 3 {
				full()
			}
		}
	}
}

// change publishes service i's weights anew and waits until its proxy ACKed them (and
// the tracker saw the ACK).
func (w *benchWorld) change(b *testing.B, i int, canary uint32) {
	before := w.acks[i].Load()
	w.desired[i] = benchDesired(i, canary)
	if err := w.xs.Update(w.desired); err != nil {
		b.Fatal(err)
	}
	svc := w.desired[i].Service.Name
	deadline := time.Now().Add(10 * time.Second)
	for w.acks[i].Load() == before || !w.xs.Convergence(svc).Done() {
		if time.Now().After(deadline) {
			b.Fatalf("%s: not ACKed", svc)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func BenchmarkRecord(b *testing.B) {
	w := startBenchWorld(b)
	cat := w.cat
	rep := NewReport(w.xs, func() *catalog.Catalog { return cat })
	rep.Update()
	self := Info{ID: "r1", Admin: "http://127.0.0.1:9090"}
	var size int
	b.Run("one-service-acked", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			w.change(b, i%benchServices, uint32(i%9000+1))
			b.StartTimer()
			rep.Update()
			size = len(rep.encode(self))
		}
		b.ReportMetric(float64(size), "record-bytes")
	})
	b.Run("every-service", func(b *testing.B) {
		for b.Loop() {
			cat = &catalog.Catalog{Services: w.cat.Services} // a new catalog: every service again
			rep.Update()
			size = len(rep.encode(self))
		}
		b.ReportMetric(float64(size), "record-bytes")
	})
}
