package xds_test

import (
	"context"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// TestServeEndsADSStreamsGracefully checks that stopping Serve ends open ADS streams
// (the proxy sees its stream cancelled and reconnects elsewhere) instead of waiting out
// the shutdown grace and then cutting the connections.
func TestServeEndsADSStreamsGracefully(t *testing.T) {
	srv := xds.NewServer(zaptest.NewLogger(t), xds.Options{ShutdownGrace: time.Hour})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	svc := service(t, "127.0.0.1:1", "127.0.0.1:2")
	if err := srv.Update([]translate.Desired{{Service: svc, Weights: map[string]uint32{"v1": 10000}}}); err != nil {
		t.Fatal(err)
	}

	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(dialADS(t, lis.Addr().String())).StreamAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "stopping"}, TypeUrl: resource.RouteType, ResourceNames: []string{svcName}}); err != nil {
		t.Fatal(err)
	}
	recvTimeout(t, stream.Recv)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(rpcTimeout):
		t.Fatal("Serve did not return: the open ADS stream kept the graceful stop waiting")
	}
	if _, err := stream.Recv(); err == nil || status.Code(err) == codes.Unavailable {
		t.Fatalf("Recv after stop = %v, want the stream ended by the server, not a cut connection", err)
	}
}

// TestADSOrdersTypes checks make-before-break on one ADS stream: a change that adds a
// version reaches the proxy as clusters, then endpoints, then the route that uses them.
func TestADSOrdersTypes(t *testing.T) {
	srv, addr := startServer(t)
	svc := service(t, "127.0.0.1:1", "127.0.0.1:2")
	setWeights(t, srv, svc, 10000, 0)

	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(dialADS(t, addr)).StreamAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	types := []string{resource.ClusterType, resource.EndpointType, resource.RouteType}
	names := map[string][]string{resource.RouteType: {svcName}} // clusters and endpoints: wildcard
	for i, typ := range types {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ]}
		if i == 0 {
			req.Node = &corev3.Node{Id: "ordered"}
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	for range types {
		resp := recvTimeout(t, stream.Recv)
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResourceNames: names[resp.GetTypeUrl()],
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		if err := stream.Send(ack); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the server has processed every ACK, so each type has a watch open.
	deadline := time.Now().Add(ackTimeout)
	for {
		p := srv.Proxies()
		acked := 0
		if len(p) == 1 {
			for _, typ := range types {
				if p[0].Types[typ].AckedVersion != "" {
					acked++
				}
			}
		}
		if acked == len(types) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ACKs not recorded: %+v", p)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_ = srv.WaitAcked(ctx, svcName, "no-such-version", 20*time.Millisecond)
		cancel()
	}

	svc3 := service(t, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
	if err := srv.Update([]translate.Desired{{Service: svc3, Weights: map[string]uint32{"v1": 5000, "v3": 5000}}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range types {
		resp := recvTimeout(t, stream.Recv)
		if resp.GetTypeUrl() != want {
			t.Fatalf("got a %s response, want %s next (make-before-break order %v)", resp.GetTypeUrl(), want, types)
		}
	}
}
