package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/translate"
)

// startFirstUp starts a TCP proxy on 127.0.0.1 that sends every new connection to the
// first of backends that accepts one, as a load balancer's health-checked pool does:
// an xDS client of a replica that dies reconnects to the next replica. It returns the
// proxy's address.
func startFirstUp(t *testing.T, backends ...string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				var up net.Conn
				for _, b := range backends {
					if up, err = net.DialTimeout("tcp", b, time.Second); err == nil {
						break
					}
				}
				if up == nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done // either side closed: close both
			})
		}
	})
	return l.Addr().String()
}

// getJSON decodes the answer to GET path from the process.
func (p *octorollProc) getJSON(t *testing.T, path string, out any) {
	t.Helper()
	resp, err := http.Get(p.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// waitService polls the process's view of svcName until cond holds.
func (p *octorollProc) waitService(t *testing.T, what string, cond func(api.ServiceDetail) bool) api.ServiceDetail {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		d := p.service(t, svcName)
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: proxies %+v, restore %+v", what, waitTimeout, d.Proxies, d.Restore)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stuckProxy subscribes to svcName's route on xdsAddr as node id, ACKs the first
// response and then reads nothing more: it stays subscribed and never ACKs another
// route version, a straggler. Closing the returned function ends its stream.
func stuckProxy(t *testing.T, xdsAddr, id string) func() {
	t.Helper()
	stream, stop := rawADS(t, xdsAddr, 0)
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: id}, TypeUrl: resource.RouteType,
		ResourceNames: []string{translate.RouteName(svcName)}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	req.VersionInfo, req.ResponseNonce = resp.GetVersionInfo(), resp.GetNonce()
	if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return stop
}

// rawADS opens an ADS stream to the xds server at addr, as a proxy would, for a test
// that drives the protocol itself; stop ends it (also when the test ends). A timeout
// above zero bounds the stream's life.
func rawADS(t *testing.T, addr string, timeout time.Duration) (discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, func()) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), timeout)
	}
	stop := func() { cancel(); _ = cc.Close() }
	t.Cleanup(stop)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream, stop
}

// commandOnlySpec is crashSpec with stages that move only by command (hour-long
// windows), no check interval of its own and metrics failures that never pause it.
func commandOnlySpec() controller.Spec {
	spec := crashSpec()
	for i := range spec.Stages {
		spec.Stages[i].MinWindow = controller.Duration(time.Hour)
	}
	spec.CheckInterval = 0
	spec.SourceFailureLimit = 1000
	return spec
}
