package xds_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap/zaptest"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
	"github.com/octoacme/octoroll/xds/xdstest"
)

const (
	svcName    = "echo"
	ackTimeout = 20 * time.Second
	rpcTimeout = 60 * time.Second
)

// startServer serves a fresh xds.Server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T) (*xds.Server, string) {
	t.Helper()
	srv := xds.NewServer(zaptest.NewLogger(t), xds.Options{AllowRawPublish: true})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, lis.Addr().String()
}

// service declares svcName with one version per backend address (v1, v2, ...).
func service(t *testing.T, addrs ...string) catalog.Service {
	t.Helper()
	svc := catalog.Service{Name: svcName, Port: 10001, Stable: "v1"}
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		svc.Versions = append(svc.Versions, catalog.Version{
			Name:      "v" + strconv.Itoa(i+1),
			Endpoints: []catalog.Endpoint{{Host: host, Port: uint32(p)}},
			Zone:      "zone-a",
		})
	}
	return svc
}

// setWeights publishes the split and waits until every subscribed proxy ACKed it.
func setWeights(t *testing.T, srv *xds.Server, svc catalog.Service, w1, w2 uint32) string {
	t.Helper()
	err := srv.Update([]translate.Desired{{Service: svc, Weights: map[string]uint32{"v1": w1, "v2": w2}}})
	if err != nil {
		t.Fatalf("Update %d/%d: %v", w1, w2, err)
	}
	rv := srv.RouteVersion(svcName)
	if err := srv.WaitAcked(context.Background(), svcName, rv, ackTimeout); err != nil {
		t.Fatalf("WaitAcked %d/%d: %v", w1, w2, err)
	}
	return rv
}

// waitSubscribed waits until n proxies watch the service's route and ACKed it.
func waitSubscribed(t *testing.T, srv *xds.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(ackTimeout)
	for {
		c := srv.Convergence(svcName)
		if c.Subscribed >= n && c.Done() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d proxies subscribed and ACKed not reached: %+v", n, c)
		}
		// A proxy connecting or ACKing wakes WaitAcked; poll Convergence with it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Until(deadline))
		_ = srv.WaitAcked(ctx, svcName, "no-such-version", 50*time.Millisecond)
		cancel()
	}
}

// checkSplit asserts that v2's share of r is w2/10000 within 5 binomial sigmas (and
// exactly 0 or all at the ends), with no failed RPC.
func checkSplit(t *testing.T, r xdstest.Report, w2 uint32) {
	t.Helper()
	if r.Failed != 0 {
		t.Errorf("split %d: %d failed RPCs: %v", w2, r.Failed, r.Errors)
	}
	n := float64(r.Succeeded())
	p := float64(w2) / catalog.TotalWeight
	got := float64(r.OK["v2"])
	sigma := math.Sqrt(n * p * (1 - p))
	tol := 5 * sigma
	if math.Abs(got-n*p) > tol {
		t.Errorf("split v2=%.2f%%: v2 got %.0f of %.0f RPCs, want %.1f ± %.1f (5σ); counts %v", 100*p, got, n, n*p, tol, r.OK)
	}
	t.Logf("split v2=%5.2f%%: %v of %.0f RPCs (want v2 %.1f ± %.1f), failed %d", 100*p, r.OK, n, n*p, tol, r.Failed)
}

func TestGRPCClientSplits(t *testing.T) {
	srv, addr := startServer(t)
	svc := service(t, xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2"))
	setWeights(t, srv, svc, 10000, 0) // the client starts at 100/0

	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: addr, NodeID: "client-splits", Zone: "zone-a", Target: "xds:///" + svcName})
	r, err := c.WaitTotal(500, rpcTimeout)
	if err != nil {
		t.Fatalf("client at 100/0: %v", err)
	}
	checkSplit(t, r, 0)
	waitSubscribed(t, srv, 1)

	proxies := srv.Proxies()
	if len(proxies) != 1 || proxies[0].NodeID != "client-splits" || proxies[0].Zone != "zone-a" {
		t.Fatalf("Proxies() = %+v", proxies)
	}
	before := proxies[0]
	opened := srv.Stats().StreamsOpened

	for _, w2 := range []uint32{100, 500, 5000, 10000} {
		setWeights(t, srv, svc, catalog.TotalWeight-w2, w2)
		if err := c.Reset(ackTimeout); err != nil {
			t.Fatal(err)
		}
		r, err := c.WaitTotal(2000, rpcTimeout)
		if err != nil {
			t.Fatal(err)
		}
		checkSplit(t, r, w2)
	}

	// Weight changes travel on the same stream and re-send only the route.
	after := srv.Proxies()
	if len(after) != 1 || !after[0].ConnectedSince.Equal(before.ConnectedSince) || after[0].Streams != 1 {
		t.Errorf("proxy reconnected: before %+v after %+v", before, after)
	}
	if got := srv.Stats().StreamsOpened; got != opened {
		t.Errorf("streams opened %d -> %d: the client reconnected", opened, got)
	}
	for _, typ := range []string{resource.ListenerType, resource.ClusterType, resource.EndpointType} {
		if b, a := before.Types[typ], after[0].Types[typ]; !a.AckedAt.Equal(b.AckedAt) || a.AckedVersion != b.AckedVersion {
			t.Errorf("%s re-sent on a weight change: %+v -> %+v", typ, b, a)
		}
	}
	rt := after[0].Types[resource.RouteType]
	if rt.Acked[translate.RouteName(svcName)] != srv.RouteVersion(svcName) {
		t.Errorf("route ACKed %q, served %q", rt.Acked[translate.RouteName(svcName)], srv.RouteVersion(svcName))
	}
}

func TestGRPCClientFlipsFailNothing(t *testing.T) {
	srv, addr := startServer(t)
	svc := service(t, xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2"))
	setWeights(t, srv, svc, 10000, 0)
	// Two proxyless clients: convergence waits for both before each flip.
	var clients []*xdstest.Client
	for _, id := range []string{"client-flips-1", "client-flips-2"} {
		c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: addr, NodeID: id, Target: "xds:///" + svcName, Concurrency: 4})
		if _, err := c.WaitFor(rpcTimeout, func(r xdstest.Report) bool { return r.OK["v1"] > 100 }); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	waitSubscribed(t, srv, 2)
	for _, c := range clients {
		if err := c.Reset(ackTimeout); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		w2 := uint32(10000)
		if i%2 == 1 {
			w2 = 0
		}
		setWeights(t, srv, svc, catalog.TotalWeight-w2, w2)
		if conv := srv.Convergence(svcName); conv.Subscribed != 2 || conv.Acked != 2 {
			t.Fatalf("flip %d: convergence %+v, want 2 of 2", i, conv)
		}
		// Let the new split carry traffic before flipping back.
		want := "v2"
		if w2 == 0 {
			want = "v1"
		}
		for _, c := range clients {
			start := c.Report().OK[want]
			if _, err := c.WaitFor(rpcTimeout, func(r xdstest.Report) bool { return r.OK[want] >= start+50 }); err != nil {
				t.Fatalf("flip %d: %v", i, err)
			}
		}
	}
	for i, c := range clients {
		r := c.Report()
		t.Logf("client %d, 10 flips under load: %v, failed %d", i+1, r.OK, r.Failed)
		if r.Failed != 0 {
			t.Errorf("client %d: %d RPCs failed across 10 flips: %v", i+1, r.Failed, r.Errors)
		}
	}
}

// zeroWeights returns the served route of svc with every weight 0: Validate() accepts
// it, gRPC rejects it.
func zeroWeights(t *testing.T, srv *xds.Server) *routev3.RouteConfiguration {
	t.Helper()
	for _, rc := range srv.Resources().Routes {
		if rc.GetName() != translate.RouteName(svcName) {
			continue
		}
		bad := proto.Clone(rc).(*routev3.RouteConfiguration)
		for _, vh := range bad.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				for _, cw := range r.GetRoute().GetWeightedClusters().GetClusters() {
					cw.Weight = wrapperspb.UInt32(0)
				}
			}
		}
		if err := bad.Validate(); err != nil {
			t.Fatalf("bad route does not pass Validate(): %v", err)
		}
		return bad
	}
	t.Fatalf("no route %q served", svcName)
	return nil
}

func TestGRPCClientNACK(t *testing.T) {
	srv, addr := startServer(t)
	svc := service(t, xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2"))
	good := setWeights(t, srv, svc, 8000, 2000)
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: addr, NodeID: "client-nack", Target: "xds:///" + svcName})
	if _, err := c.WaitTotal(200, rpcTimeout); err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, srv, 1)

	if err := srv.PublishRaw(resource.RouteType, zeroWeights(t, srv)); err != nil {
		t.Fatal(err)
	}
	bad := srv.RouteVersion(svcName)
	err := srv.WaitAcked(context.Background(), svcName, bad, ackTimeout)
	if !errors.Is(err, xds.ErrNACKed) {
		t.Fatalf("WaitAcked(bad route) = %v, want ErrNACKed", err)
	}
	t.Logf("WaitAcked: %v", err)
	conv := srv.Convergence(svcName)
	if conv.NACK == nil || conv.NACK.NodeID != "client-nack" || conv.Acked != 0 || len(conv.Stragglers) != 1 {
		t.Errorf("Convergence after NACK = %+v", conv)
	}
	p := srv.Proxies()[0]
	if p.LastNACK == nil || p.LastNACK.TypeURL != resource.RouteType || p.LastNACK.Resources[svcName] != bad || p.LastNACK.Message == "" {
		t.Errorf("Proxies()[0].LastNACK = %+v", p.LastNACK)
	}
	if got := p.Types[resource.RouteType].Acked[svcName]; got != good {
		t.Errorf("proxy ACKed route %s, want the last good %s", got, good)
	}
	nacks := srv.Stats().NACKs

	// The client keeps its last good split while the bad version stays published, and
	// the bad version is not sent again.
	if err := c.Reset(ackTimeout); err != nil {
		t.Fatal(err)
	}
	r, err := c.WaitTotal(2000, rpcTimeout)
	if err != nil {
		t.Fatal(err)
	}
	checkSplit(t, r, 2000)
	if got := srv.Stats().NACKs; got != nacks || got > 2 {
		t.Errorf("NACKs %d -> %d over %d RPCs: the rejected version was re-sent", nacks, got, r.Total())
	}
	t.Logf("NACKs after %d more RPCs: %d", r.Total(), srv.Stats().NACKs)

	// A new good version is sent and ACKed.
	setWeights(t, srv, svc, 0, 10000)
	if conv := srv.Convergence(svcName); conv.NACK != nil || !conv.Done() {
		t.Errorf("Convergence after recovery = %+v", conv)
	}
}

// adsStream is a raw SotW ADS stream, to act as a proxy that misbehaves on purpose.
type adsStream struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
}

func dialADS(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func recvTimeout[T any](t *testing.T, recv func() (T, error)) T {
	t.Helper()
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() {
		v, err := recv()
		ch <- res{v, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("recv: %v", r.err)
		}
		return r.v
	case <-time.After(ackTimeout):
		t.Fatal("no response")
	}
	var zero T
	return zero
}

func TestWaitAckedTimeoutNamesStraggler(t *testing.T) {
	srv, addr := startServer(t)
	svc := service(t, "127.0.0.1:1", "127.0.0.1:2")
	setWeights(t, srv, svc, 10000, 0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(dialADS(t, addr)).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &discoveryv3.DiscoveryRequest{
		Node:          &corev3.Node{Id: "stuck-proxy"},
		TypeUrl:       resource.RouteType,
		ResourceNames: []string{translate.RouteName(svcName)},
	}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	resp := recvTimeout(t, stream.Recv)
	// ACK the first version, then stay silent.
	req.VersionInfo, req.ResponseNonce = resp.GetVersionInfo(), resp.GetNonce()
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, srv, 1)

	if err := srv.Update([]translate.Desired{{Service: svc, Weights: map[string]uint32{"v1": 5000, "v2": 5000}}}); err != nil {
		t.Fatal(err)
	}
	recvTimeout(t, stream.Recv) // received, never ACKed
	err = srv.WaitAcked(context.Background(), svcName, srv.RouteVersion(svcName), 300*time.Millisecond)
	var ae *xds.AckError
	if !errors.Is(err, xds.ErrNotAcked) || !errors.As(err, &ae) || len(ae.Stragglers) != 1 || ae.Stragglers[0] != "stuck-proxy" ||
		!strings.Contains(err.Error(), "stuck-proxy") {
		t.Fatalf("WaitAcked = %v, want ErrNotAcked naming stuck-proxy", err)
	}
	t.Logf("WaitAcked: %v", err)
}

func TestSotWNACKNotResent(t *testing.T) {
	srv, addr := startServer(t)
	svc := service(t, "127.0.0.1:1", "127.0.0.1:2")
	setWeights(t, srv, svc, 10000, 0)

	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(dialADS(t, addr)).StreamAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "raw-sotw"}, TypeUrl: resource.RouteType, ResourceNames: []string{svcName}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	first := recvTimeout(t, stream.Recv)
	// NACK the first response, several times over (as a proxy retrying would).
	for range 3 {
		nack := &discoveryv3.DiscoveryRequest{TypeUrl: resource.RouteType, ResourceNames: []string{svcName},
			ResponseNonce: first.GetNonce(), ErrorDetail: &rpcstatus.Status{Code: 3, Message: "rejected on purpose"}}
		if err := stream.Send(nack); err != nil {
			t.Fatal(err)
		}
	}
	// The next response must be the next version: the rejected one is never re-sent.
	if err := srv.Update([]translate.Desired{{Service: svc, Weights: map[string]uint32{"v1": 5000, "v2": 5000}}}); err != nil {
		t.Fatal(err)
	}
	next := recvTimeout(t, stream.Recv)
	if next.GetVersionInfo() == first.GetVersionInfo() {
		t.Fatalf("rejected version %s re-sent", first.GetVersionInfo())
	}
	if got := srv.Stats().NACKs; got != 1 {
		t.Errorf("NACKs = %d, want 1 (stale-nonce repeats are not NACKs of a new response)", got)
	}
	p := srv.Proxies()
	if len(p) != 1 || p[0].LastNACK == nil || p[0].LastNACK.Message != "rejected on purpose" || p[0].LastNACK.Version != first.GetVersionInfo() {
		t.Errorf("Proxies() = %+v", p)
	}
}

func TestDeltaADS(t *testing.T) {
	srv, addr := startServer(t)
	svc := service(t, "127.0.0.1:1", "127.0.0.1:2")
	setWeights(t, srv, svc, 10000, 0)

	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(dialADS(t, addr)).DeltaAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "delta-proxy", Locality: &corev3.Locality{Zone: "zone-b"}}
	// Wildcard clusters and one named route.
	for _, r := range []*discoveryv3.DeltaDiscoveryRequest{
		{Node: node, TypeUrl: resource.ClusterType},
		{Node: node, TypeUrl: resource.RouteType, ResourceNamesSubscribe: []string{svcName}},
	} {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]*discoveryv3.DeltaDiscoveryResponse{}
	for range 2 {
		resp := recvTimeout(t, stream.Recv)
		got[resp.GetTypeUrl()] = resp
	}
	if n := len(got[resource.ClusterType].GetResources()); n != 2 {
		t.Fatalf("delta clusters: %d resources, want 2", n)
	}
	route := got[resource.RouteType]
	if len(route.GetResources()) != 1 || route.GetResources()[0].GetVersion() != srv.RouteVersion(svcName) {
		t.Fatalf("delta route response %v, want version %s", route, srv.RouteVersion(svcName))
	}
	for _, typ := range []string{resource.ClusterType, resource.RouteType} {
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typ, ResponseNonce: got[typ].GetNonce()}); err != nil {
			t.Fatal(err)
		}
	}
	waitSubscribed(t, srv, 1)

	// A weight change sends the route alone; a NACK of it is recorded and not answered
	// with the same version.
	if err := srv.Update([]translate.Desired{{Service: svc, Weights: map[string]uint32{"v1": 9000, "v2": 1000}}}); err != nil {
		t.Fatal(err)
	}
	resp := recvTimeout(t, stream.Recv)
	if resp.GetTypeUrl() != resource.RouteType || len(resp.GetResources()) != 1 {
		t.Fatalf("after weight change got %s with %d resources, want the route alone", resp.GetTypeUrl(), len(resp.GetResources()))
	}
	rejected := resp.GetResources()[0].GetVersion()
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.RouteType, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: "delta reject"}}); err != nil {
		t.Fatal(err)
	}
	err = srv.WaitAcked(context.Background(), svcName, rejected, ackTimeout)
	if !errors.Is(err, xds.ErrNACKed) {
		t.Fatalf("WaitAcked after delta NACK = %v", err)
	}
	if err := srv.Update([]translate.Desired{{Service: svc, Weights: map[string]uint32{"v1": 0, "v2": 10000}}}); err != nil {
		t.Fatal(err)
	}
	resp = recvTimeout(t, stream.Recv)
	if v := resp.GetResources()[0].GetVersion(); v == rejected || v != srv.RouteVersion(svcName) {
		t.Fatalf("after NACK got route version %s, want the new %s", v, srv.RouteVersion(svcName))
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.RouteType, ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitAcked(context.Background(), svcName, srv.RouteVersion(svcName), ackTimeout); err != nil {
		t.Fatal(err)
	}
	p := srv.Proxies()
	if len(p) != 1 || p[0].Zone != "zone-b" || p[0].NACKs != 1 || fmt.Sprint(p[0].Types[resource.ClusterType].Watched) != "[*]" {
		t.Errorf("Proxies() = %+v", p)
	}
	// The config dump of a delta stream holds what the stream was sent, with content.
	pc, ok := srv.ProxyConfig("delta-proxy")
	if !ok {
		t.Fatal("no config dump of delta-proxy")
	}
	rt := typeConfig(t, pc, resource.RouteType)
	if rt.Acked == nil || len(rt.Acked.Resources) != 1 || rt.Acked.Resources[0].Version != srv.RouteVersion(svcName) ||
		rt.LastNACK == nil || rt.LastNACK.Message != "delta reject" {
		t.Fatalf("delta route dump %+v", rt)
	}
	if w := weightsIn(t, rt.Acked); w[translate.ClusterName(svcName, "v2")] != 10000 {
		t.Errorf("delta ACKed route weights %v, want v2 10000", w)
	}
	if ct := typeConfig(t, pc, resource.ClusterType); ct.Acked == nil || len(ct.Acked.Resources) != 2 || ct.Acked.Resources[0].Resource == nil {
		t.Errorf("delta cluster dump %+v", ct.Acked)
	}
}

func TestUpdateInvalidKeepsServing(t *testing.T) {
	srv, _ := startServer(t)
	svc := service(t, "127.0.0.1:1", "127.0.0.1:2")
	rv := setWeights(t, srv, svc, 10000, 0)
	err := srv.Update([]translate.Desired{{Service: svc, Weights: map[string]uint32{"v1": 10, "v2": 10}}})
	if err == nil {
		t.Fatal("Update with weights not summing to 10000 succeeded")
	}
	if got := srv.RouteVersion(svcName); got != rv {
		t.Errorf("route version %s after a failed update, want %s", got, rv)
	}
	if s := srv.Stats(); s.UpdateErrors != 1 {
		t.Errorf("UpdateErrors = %d", s.UpdateErrors)
	}
}
