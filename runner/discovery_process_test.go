package runner_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/publish/dnstest"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// TestDiscoveryProcess runs the real binary against a DNS server of the test (the DNS
// protocol over UDP and TCP) as a Kubernetes headless Service per version: v1 is a name
// with an A record per pod (pods on 127.0.0.2, .3, .4, one port), v2 an SRV name. Two
// real gRPC xDS clients send RPCs all along. Both pods of v1 get traffic, are probed
// and are scraped, each on its own; a pod added to the records gets traffic, a pod
// removed is drained, with no failed RPC; the time from each DNS change to the new EDS
// ACKed by both clients is logged. A rollout to the SRV version then splits the
// traffic.
func TestDiscoveryProcess(t *testing.T) {
	bin := buildOctoroll(t)
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	pod2 := xdstest.StartBackendAt(t, "v1", "127.0.0.2:0")
	pod3 := xdstest.StartBackendAt(t, "v1", "127.0.0.3:"+port(pod2.Addr))
	pod4 := xdstest.StartBackendAt(t, "v1", "127.0.0.4:"+port(pod2.Addr))
	v2 := xdstest.StartBackend(t, "v2")
	// The pods' metrics expositions, on one port too; each counts its scrapes.
	var scraped [2]atomic.Int64
	var metricsPort string
	for i, host := range []string{"127.0.0.2", "127.0.0.3"} {
		lis, err := net.Listen("tcp", net.JoinHostPort(host, metricsPort))
		if err != nil {
			t.Fatal(err)
		}
		metricsPort = port(lis.Addr().String())
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { scraped[i].Add(1) })}
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(func() { _ = srv.Close() })
	}

	dns := dnstest.Start(t)
	dns.SetA("v1.octoroll.test", 1, "127.0.0.2", "127.0.0.3")
	dns.SetA("v2pod.octoroll.test", 1, "127.0.0.1")
	v2port, _ := net.LookupPort("tcp", port(v2))
	dns.SetSRV("_grpc._tcp.v2.octoroll.test", 1, dnstest.Target{Host: "v2pod.octoroll.test", Port: uint16(v2port)})

	dir := t.TempDir()
	catalogFile := filepath.Join(dir, "catalog.yaml")
	cat := fmt.Sprintf(`services:
  - name: %s
    port: 10001
    stable: v1
    healthCheck: {interval: 200ms, timeout: 100ms, unhealthyThreshold: 2}
    versions:
      - name: v1
        endpoints: [v1.octoroll.test:%s]
        metrics: [v1.octoroll.test:%s]
      - name: v2
        endpoints: [srv:_grpc._tcp.v2.octoroll.test]
`, svcName, port(pod2.Addr), metricsPort)
	if err := os.WriteFile(catalogFile, []byte(cat), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startOctoroll(t, bin, catalogFile, filepath.Join(dir, "state"), "-dns-server", dns.Addr,
		"-dns-min-ttl", "1s", "-dns-max-ttl", "1s", "-scrape-interval", "200ms")
	var clients []*xdstest.Client
	for i := range 2 {
		clients = append(clients, xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: fmt.Sprintf("client-%d", i), Target: "xds:///" + svcName}))
	}
	for _, c := range clients {
		waitOnlyVersion(t, c, "v1", 100, waitTimeout)
	}
	waitService(t, p, svcName, "both pods of v1 healthy", func(d api.ServiceDetail) bool { return d.Health["v1"].Healthy == 2 })
	hits := func() [3]int64 { return [3]int64{pod2.Hits(), pod3.Hits(), pod4.Hits()} }
	waitFor(t, "both pods of v1 serving and scraped", func() bool {
		h := hits()
		return h[0] > 0 && h[1] > 0 && h[2] == 0 && scraped[0].Load() >= 3 && scraped[1].Load() >= 3
	})
	t.Logf("v1 pods: RPCs %v, scrapes %d and %d", hits(), scraped[0].Load(), scraped[1].Load())

	// A pod added, a pod removed: EDS alone changes; no RPC fails.
	v1Cluster := translate.ClusterName(svcName, "v1")
	for _, step := range []struct {
		what  string
		ips   []string
		serve [3]bool // which pods get RPCs after the change
	}{
		{"pod .4 added", []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}, [3]bool{true, true, true}},
		{"pod .3 removed", []string{"127.0.0.2", "127.0.0.4"}, [3]bool{true, false, true}},
	} {
		for _, c := range clients {
			if err := c.Reset(waitTimeout); err != nil {
				t.Fatal(err)
			}
		}
		before := edsAcked(t, p, v1Cluster)
		routes := p.service(t, svcName).Proxies.RouteVersion
		start := time.Now()
		dns.SetA("v1.octoroll.test", 1, step.ips...)
		waitFor(t, step.what+": new EDS ACKed by every client", func() bool {
			now := edsAcked(t, p, v1Cluster)
			if len(now) != len(clients) {
				return false
			}
			for id, v := range now {
				if v == before[id] || v != now["client-0"] {
					return false
				}
			}
			return true
		})
		took := time.Since(start)
		at := hits()
		for _, c := range clients {
			r, err := c.WaitTotal(300, waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if r.Failed != 0 || r.OK["v1"] != r.Total() {
				t.Fatalf("%s: %v, failed %d %v", step.what, r.OK, r.Failed, r.Errors)
			}
		}
		if step.serve[1] { // a new pod gets traffic
			waitFor(t, step.what+": traffic on every pod", func() bool { return hits()[2] > at[2] })
		} else if got := hits()[1]; got != at[1] {
			t.Fatalf("%s: the removed pod served %d RPCs after the clients ACKed its removal", step.what, got-at[1])
		}
		if d := p.service(t, svcName); d.Proxies.RouteVersion != routes {
			t.Errorf("%s: route version %s, was %s: want no new route", step.what, d.Proxies.RouteVersion, routes)
		}
		t.Logf("%s: DNS change → EDS ACKed by both clients in %s (TTL 1s, floor 1s, 1s refresh tick); RPCs per pod %v, none failed",
			step.what, took.Round(time.Millisecond), hits())
	}

	// The SRV version: a rollout to it splits the traffic, none failing.
	spec := halfSpec(svcName)
	spec.Canary.Version = "v2"
	for i := range spec.Stages {
		spec.Stages[i].MinWindow = controller.Duration(time.Hour)
	}
	spec.CheckInterval = 0
	spec.SourceFailureLimit = 1000
	if ro := p.call(t, http.MethodPost, "/rollouts", spec); ro.CanaryWeight() != 5000 {
		t.Fatalf("rollout started at %d, want 5000", ro.CanaryWeight())
	}
	for _, c := range clients {
		r := waitSplit(t, c, 5000, 1000)
		if r.Failed != 0 {
			t.Fatalf("rollout to the SRV version: %d failed RPCs: %v", r.Failed, r.Errors)
		}
	}
}

// edsAcked returns, per connected proxy, the version of cluster's EDS resource it ACKed.
func edsAcked(t *testing.T, p *octorollProc, cluster string) map[string]string {
	t.Helper()
	resp, err := http.Get(p.admin + "/api/v1/proxies")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out api.ProxiesResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, px := range out.Proxies {
		got[px.NodeID] = px.Types[resource.EndpointType].Acked[cluster]
	}
	return got
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
