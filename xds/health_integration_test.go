package xds_test

import (
	"context"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// TestGRPCClientAvoidsUnhealthyEndpoints runs a real proxyless gRPC client against one
// version with two endpoints: marking one unhealthy in EDS sends every RPC to the
// other, marking it healthy again brings both back, and only EDS changes meanwhile.
func TestGRPCClientAvoidsUnhealthyEndpoints(t *testing.T) {
	srv, addr := startServer(t)
	a := xdstest.StartBackendServer(t, "a")
	b := xdstest.StartBackendServer(t, "b")
	svc := service(t, a.Addr)
	svc.Versions[0].Endpoints = append(svc.Versions[0].Endpoints, service(t, b.Addr).Versions[0].Endpoints[0])
	cluster := translate.ClusterName(svcName, "v1")
	bAddr := svc.Versions[0].Endpoints[1].String()

	publish := func(unhealthy ...string) {
		t.Helper()
		d := translate.Desired{Service: svc, Weights: map[string]uint32{"v1": catalog.TotalWeight}}
		if unhealthy != nil {
			d.Unhealthy = map[string][]string{"v1": unhealthy}
		}
		if err := srv.Update([]translate.Desired{d}); err != nil {
			t.Fatalf("Update (unhealthy %v): %v", unhealthy, err)
		}
	}
	publish()
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: addr, NodeID: "client-health", Target: "xds:///" + svcName})
	if _, err := c.WaitFor(rpcTimeout, func(r xdstest.Report) bool { return r.OK["a"] > 50 && r.OK["b"] > 50 }); err != nil {
		t.Fatalf("both endpoints serving: %v", err)
	}
	waitSubscribed(t, srv, 1)
	before := srv.Proxies()[0]
	route := srv.RouteVersion(svcName)

	// waitEDS waits until the client ACKed an endpoint version of the cluster other
	// than prev, and returns it.
	waitEDS := func(prev string) string {
		t.Helper()
		deadline := time.Now().Add(ackTimeout)
		for {
			ps := srv.Proxies()
			if len(ps) == 1 {
				if v := ps[0].Types[resource.EndpointType].Acked[cluster]; v != "" && v != prev {
					return v
				}
				if ps[0].LastNACK != nil {
					t.Fatalf("client NACKed: %+v", ps[0].LastNACK)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the client did not ACK a new EDS version of %s within %s: %+v", cluster, ackTimeout, ps)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			_ = srv.WaitAcked(ctx, svcName, "no-such-version", 50*time.Millisecond)
			cancel()
		}
	}
	// settle resets the client's window until a window of n RPCs satisfies ok: the
	// balancer applies an ACKed update a moment after the ACK.
	settle := func(what string, n int64, ok func(xdstest.Report) bool) xdstest.Report {
		t.Helper()
		deadline := time.Now().Add(rpcTimeout)
		for {
			if err := c.Reset(ackTimeout); err != nil {
				t.Fatal(err)
			}
			r, err := c.WaitTotal(n, rpcTimeout)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if ok(r) {
				t.Logf("%s: %v, failed %d", what, r.OK, r.Failed)
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s; last window %v, failed %d %v", what, rpcTimeout, r.OK, r.Failed, r.Errors)
			}
		}
	}

	eds0 := before.Types[resource.EndpointType].Acked[cluster]
	publish(bAddr)
	eds1 := waitEDS(eds0)
	settle("b unhealthy: every RPC on a", 500, func(r xdstest.Report) bool {
		return r.OK["b"] == 0 && r.Failed == 0 && r.OK["a"] >= 500
	})

	publish()
	eds2 := waitEDS(eds1)
	if eds2 != eds0 {
		t.Errorf("healthy again: EDS version %s, want the original %s", eds2, eds0)
	}
	settle("b healthy again: both serve", 1000, func(r xdstest.Report) bool {
		return r.OK["a"] > 100 && r.OK["b"] > 100 && r.Failed == 0
	})

	// Every endpoint unhealthy: the resources still translate and the client accepts
	// them (no NACK); recovery brings both back.
	publish(svc.Versions[0].Endpoints[0].String(), bAddr)
	eds3 := waitEDS(eds2)
	if err := c.Reset(ackTimeout); err != nil {
		t.Fatal(err)
	}
	r, err := c.WaitTotal(20, rpcTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("every endpoint unhealthy: %v, failed %d %v", r.OK, r.Failed, r.Errors)
	publish()
	waitEDS(eds3)
	settle("all healthy again: both serve", 1000, func(r xdstest.Report) bool {
		return r.OK["a"] > 100 && r.OK["b"] > 100 && r.Failed == 0
	})

	// Only EDS changed: same stream, same listener, route and cluster ACKs, and no NACK.
	after := srv.Proxies()[0]
	if after.Streams != 1 || !after.ConnectedSince.Equal(before.ConnectedSince) || after.NACKs != 0 {
		t.Errorf("proxy reconnected or NACKed: before %+v after %+v", before, after)
	}
	for _, typ := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType} {
		if b, a := before.Types[typ], after.Types[typ]; !a.AckedAt.Equal(b.AckedAt) || a.AckedVersion != b.AckedVersion {
			t.Errorf("%s re-sent on a health change: %+v -> %+v", typ, b, a)
		}
	}
	if got := srv.RouteVersion(svcName); got != route {
		t.Errorf("route version %s after health changes, want %s", got, route)
	}
}
