package runner_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/publish/dnstest"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// TestDNSChangeReachesEveryProxy drives the real runner on an injected clock with a
// real DNS server and three real gRPC xDS clients: a name's answer is kept for its TTL
// (a refresh before it passes changes nothing), and after it each change of the
// records (a pod in, a pod out, alternately) reaches every client as a new EDS
// resource of the version, ACKed, with no new route or cluster and no failed RPC. It
// logs the time from the refresh that sees the change to the last client's ACK.
func TestDNSChangeReachesEveryProxy(t *testing.T) {
	pods := []*xdstest.Backend{xdstest.StartBackendAt(t, "v1", "127.0.0.2:0")}
	_, port, _ := net.SplitHostPort(pods[0].Addr)
	pods = append(pods, xdstest.StartBackendAt(t, "v1", "127.0.0.3:"+port))
	v2 := xdstest.StartBackend(t, "v2")
	dns := dnstest.Start(t)
	dns.SetA("v1.octoroll.test", 30, "127.0.0.2")
	cat := testCatalog(t, "127.0.0.1:1", v2)
	cat.Services[0].Versions[0] = version(t, "v1", "v1.octoroll.test:"+port)
	h := newHarnessWith(t, cat, true, func(h *harness) {
		h.resolver = &publish.DNSClient{Servers: []string{dns.Addr}}
	})
	var clients []*xdstest.Client
	for i := range 3 {
		clients = append(clients, xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: h.addr, NodeID: fmt.Sprintf("c%d", i), Target: "xds:///" + svcName}))
	}
	for _, c := range clients {
		waitOnlyVersion(t, c, "v1", 50, waitTimeout)
	}
	cluster := translate.ClusterName(svcName, "v1")
	types := func() []string {
		var out []string
		for _, typ := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType} {
			out = append(out, h.xs.Cache().TypeVersion(typ))
		}
		return out
	}
	others := types()
	for _, c := range clients {
		if err := c.Reset(waitTimeout); err != nil {
			t.Fatal(err)
		}
	}

	var took []time.Duration
	const changes = 10
	for i := range changes {
		ips := []string{"127.0.0.2", "127.0.0.3"}[:2-i%2]
		dns.SetA("v1.octoroll.test", 30, ips...)
		before := h.xs.Cache().Version(resource.EndpointType, cluster)
		h.clock.Advance(29 * time.Second)
		h.run.Evaluate(context.Background())
		if v := h.xs.Cache().Version(resource.EndpointType, cluster); v != before {
			t.Fatalf("change %d: EDS changed before the answer's TTL passed", i)
		}
		h.clock.Advance(time.Second)
		start := time.Now()
		h.run.Evaluate(context.Background())
		want := h.xs.Cache().Version(resource.EndpointType, cluster)
		if want == before {
			t.Fatalf("change %d: EDS unchanged after the TTL", i)
		}
		deadline := time.Now().Add(waitTimeout)
		for {
			acked := 0
			for _, px := range h.xs.Proxies() {
				if px.Types[resource.EndpointType].Acked[cluster] == want {
					acked++
				}
			}
			if acked == len(clients) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("change %d: %d of %d clients ACKed the new EDS", i, acked, len(clients))
			}
			time.Sleep(time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	if got := types(); !slices.Equal(got, others) {
		t.Errorf("listener, route, cluster versions %v → %v: want EDS alone to change", others, got)
	}
	for _, c := range clients {
		r, err := c.WaitTotal(100, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed != 0 || r.OK["v1"] != r.Total() {
			t.Fatalf("RPCs across %d DNS changes: %v, failed %d %v", changes, r.OK, r.Failed, r.Errors)
		}
	}
	if pods[1].Hits() == 0 {
		t.Error("the pod added by DNS got no RPC")
	}
	slices.Sort(took)
	t.Logf("refresh seeing a DNS change → new EDS ACKed by all %d clients, over %d changes: p50 %s, max %s (add the TTL within the floor and ceiling, and up to a 1s refresh tick)",
		len(clients), changes, took[len(took)/2].Round(10*time.Microsecond), took[len(took)-1].Round(10*time.Microsecond))
}
