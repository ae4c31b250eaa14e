package admin

import (
	"context"
	"github.com/octoacme/octoroll/admin/api"
	"net"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/octoacme/octoroll/xds"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// GET /api/v1/proxies/{id}/config through the real admin handler shows what the real
// xDS server sent a real gRPC xDS client and what it ACKed; an unknown id is a JSON 404.
func TestProxyConfigAPI(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.xds.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("xds Serve: %v", err)
		}
	})
	// The catalog's endpoints do not answer: the client's RPCs fail, its xDS works.
	xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: lis.Addr().String(), NodeID: "api-dump", Target: "xds:///checkout", RPS: 20})
	// Poll the API until the client ACKed all four types at the versions sent.
	acked := func(pc xds.ProxyConfig) bool {
		n := 0
		for _, tc := range pc.Types {
			if tc.Acked != nil && tc.Sent != nil && tc.Acked.Version == tc.Sent.Version {
				n++
			}
		}
		return n == 4
	}
	var pc xds.ProxyConfig
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := f.do(t, req{method: "GET", path: "/api/v1/proxies/api-dump/config"})
		if r.status == 200 {
			if pc = decode[xds.ProxyConfig](t, r); acked(pc) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("client never ACKed every type: %d %s", r.status, r.body)
		}
		// Any ACK wakes WaitAcked, so this waits for the next change (50 ms at most).
		wctx, wcancel := context.WithTimeout(context.Background(), time.Until(deadline))
		_ = f.xds.WaitAcked(wctx, "checkout", "no-such-version", 50*time.Millisecond)
		wcancel()
	}
	if pc.NodeID != "api-dump" || pc.Types[0].TypeURL != resource.ClusterType {
		t.Fatalf("config dump: %+v", pc)
	}
	for _, tc := range pc.Types {
		if tc.Acked == nil || len(tc.Acked.Resources) == 0 || tc.Acked.Resources[0].Resource == nil {
			t.Errorf("%s: ACKed %+v", tc.TypeURL, tc.Acked)
		}
		if tc.TypeURL == resource.RouteType && tc.Acked.Resources[0].Version != f.xds.RouteVersion("checkout") {
			t.Errorf("route ACKed %s, served %s", tc.Acked.Resources[0].Version, f.xds.RouteVersion("checkout"))
		}
	}
	expect(t, "unknown proxy", f.do(t, req{method: "GET", path: "/api/v1/proxies/nope/config"}), 404, api.CodeUnknownProxy)
	expect(t, "unknown proxy, escaped", f.do(t, req{method: "GET", path: "/api/v1/proxies/a%2Fb/config"}), 404, api.CodeUnknownProxy)
}
