package runner_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// dnsServer answers A queries for its names over UDP on 127.0.0.1, every other query
// with no records, or every query with SERVFAIL while failing is set.
type dnsServer struct {
	addr    string
	names   map[string][4]byte // fully qualified, lower case
	failing atomic.Bool
}

func startDNS(t *testing.T, names map[string][4]byte) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &dnsServer{addr: pc.LocalAddr().String(), names: names}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, err := s.answer(buf[:n]); err == nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return s
}

func (s *dnsServer) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	ip, known := s.names[strings.ToLower(q.Name.String())]
	switch {
	case s.failing.Load():
		rh.RCode = dnsmessage.RCodeServerFailure
	case !known:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if rh.RCode == dnsmessage.RCodeSuccess && q.Type == dnsmessage.TypeA {
		if err := b.StartAnswers(); err != nil {
			return nil, err
		}
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}, dnsmessage.AResource{A: ip}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// TestDNSOutageProcess runs the real binary resolving endpoint names through a DNS
// server of the test, with a real gRPC xDS client. While the server answers SERVFAIL
// the client keeps being served by the version given by name (the last good answer),
// the service's status names the name stale, and its endpoint stays healthy (the
// prober dials the cached address). A catalog reload then adding a version whose name
// does not resolve fails that service's publication alone: its client stays on the
// old version, the other service serves. Once the server answers again, a following
// tick publishes the new version, and a rollout to it puts the client on it with no
// failed RPC.
func TestDNSOutageProcess(t *testing.T) {
	bin := buildOctoroll(t)
	v1, v2, o1 := xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2"), xdstest.StartBackend(t, "o1")
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	dns := startDNS(t, map[string][4]byte{"v1.octoroll.test.": {127, 0, 0, 1}, "v2.octoroll.test.": {127, 0, 0, 1}})

	dir := t.TempDir()
	catalogFile := filepath.Join(dir, "catalog.yaml")
	writeCatalog := func(stable string, versions ...string) {
		t.Helper()
		var b strings.Builder
		fmt.Fprintf(&b, "services:\n  - name: %s\n    port: 10001\n    stable: %s\n", svcName, stable)
		b.WriteString("    healthCheck: {interval: 200ms, timeout: 100ms, unhealthyThreshold: 2}\n    versions:\n")
		for _, v := range versions {
			b.WriteString(v)
		}
		fmt.Fprintf(&b, "  - name: %s\n    port: 10002\n    stable: o1\n    versions:\n      - name: o1\n        endpoints: [%s]\n", otherName, o1)
		if err := os.WriteFile(catalogFile, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	version1 := fmt.Sprintf("      - name: v1\n        endpoints: [v1.octoroll.test:%s]\n", port(v1))
	version2 := fmt.Sprintf("      - name: v2\n        endpoints: [v2.octoroll.test:%s]\n", port(v2))
	writeCatalog("v1", version1)

	p := startOctoroll(t, bin, catalogFile, filepath.Join(dir, "state"), "-dns-server", dns.addr, "-dns-refresh", "1s")
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-svc", Target: "xds:///" + svcName})
	co := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-other", Target: "xds:///" + otherName})
	waitOnlyVersion(t, c, "v1", 100, waitTimeout)
	waitOnlyVersion(t, co, "o1", 100, waitTimeout)
	waitService(t, p, svcName, "v1 healthy", func(d api.ServiceDetail) bool { return d.Health["v1"].Healthy == 1 })

	// The outage: the name's refresh fails, its last good answer keeps serving.
	if err := c.Reset(waitTimeout); err != nil {
		t.Fatal(err)
	}
	dns.failing.Store(true)
	waitService(t, p, svcName, "v1.octoroll.test stale", func(d api.ServiceDetail) bool {
		return d.Publication != nil && d.Publication.OK && slices.ContainsFunc(d.Publication.Stale, func(s string) bool {
			return strings.HasPrefix(s, "v1.octoroll.test: lookup failed")
		})
	})
	// Over more than the health check's unhealthy threshold of probes: still healthy.
	r, err := c.WaitTotal(300, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.service(t, svcName); r.Failed != 0 || r.OK["v1"] != r.Total() || d.Health["v1"].Healthy != 1 || len(d.Health["v1"].Unhealthy) != 0 {
		t.Fatalf("during the outage: %v, failed %d %v; health %+v", r.OK, r.Failed, r.Errors, d.Health)
	}
	t.Logf("during the outage: %d RPCs on v1, none failed; status: %s", r.Total(), p.service(t, svcName).Publication.Stale)

	// A reload adding v2, whose name has no answer: that service fails to publish and
	// keeps serving v1; the other one serves.
	writeCatalog("v1", version1, version2)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d := waitService(t, p, svcName, "publication failing", func(d api.ServiceDetail) bool {
		return d.Publication != nil && !d.Publication.OK
	})
	if !strings.Contains(d.Publication.Error, "v2.octoroll.test") {
		t.Fatalf("publication error %q, want it to name v2.octoroll.test", d.Publication.Error)
	}
	t.Logf("%s publication: %s", svcName, d.Publication.Error)
	if d := p.service(t, otherName); d.Publication != nil {
		t.Fatalf("%s publication %+v while %s fails, want served", otherName, d.Publication, svcName)
	}
	waitOnlyVersion(t, c, "v1", 200, time.Second)
	waitOnlyVersion(t, co, "o1", 200, time.Second)

	// The server answers again: v2 is published on a following tick; a rollout to it
	// moves half of the client's RPCs there, none failing.
	if err := c.Reset(waitTimeout); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	dns.failing.Store(false)
	waitService(t, p, svcName, "published again", func(d api.ServiceDetail) bool { return d.Publication == nil })
	published := time.Since(start)
	if d := p.service(t, svcName); !slices.Contains(d.Versions, "v2") {
		t.Fatalf("versions %v after the republish, want v2", d.Versions)
	}
	spec := halfSpec(svcName)
	for i := range spec.Stages {
		spec.Stages[i].MinWindow = controller.Duration(time.Hour)
	}
	spec.CheckInterval = 0
	spec.SourceFailureLimit = 1000
	if ro := p.call(t, http.MethodPost, "/rollouts", spec); ro.CanaryWeight() != 5000 {
		t.Fatalf("rollout started at %d, want 5000", ro.CanaryWeight())
	}
	r, err = c.WaitFor(waitTimeout, func(r xdstest.Report) bool { return r.OK["v2"] >= 200 })
	if err != nil {
		t.Fatal(err)
	}
	reached := time.Since(start)
	if r.Failed != 0 {
		t.Fatalf("%d RPCs failed across the recovery: %v", r.Failed, r.Errors)
	}
	t.Logf("DNS back → v2 published %s, client's 200th RPC on v2 (rollout at 50%%) %s; %v, none failed",
		published.Round(time.Millisecond), reached.Round(time.Millisecond), r.OK)
	waitSplit(t, c, 5000, 1000)
	waitOnlyVersion(t, co, "o1", 100, time.Second)
}

// waitService polls a service's detail until cond holds, and returns it.
func waitService(t *testing.T, p *octorollProc, name, what string, cond func(api.ServiceDetail) bool) api.ServiceDetail {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		d := p.service(t, name)
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not within %s: publication %+v, health %+v", name, what, waitTimeout, d.Publication, d.Health)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
