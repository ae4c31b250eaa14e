package publish_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/publish/dnstest"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

func addrPorts(t *testing.T, ss ...string) []netip.AddrPort {
	t.Helper()
	var out []netip.AddrPort
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

// TestDNSClient asks a real DNS server (UDP, TCP on truncation) for A/AAAA and SRV
// records: every address is returned with the smallest TTL; the search list applies to
// short names; NXDOMAIN, SERVFAIL and a server that does not answer are errors.
func TestDNSClient(t *testing.T) {
	s := dnstest.Start(t)
	c := &publish.DNSClient{Servers: []string{s.Addr}, Search: []string{"ns.svc.test"}, Ndots: 1, Timeout: 200 * time.Millisecond}
	s.SetA("v2.ns.svc.test", 30, "10.0.0.2", "10.0.0.1", "fd00::1")
	s.SetA("pod-a.test", 7, "10.0.1.1")
	s.SetA("pod-b.test", 20, "10.0.1.2")
	s.SetSRV("_grpc._tcp.v2.test", 60, dnstest.Target{Host: "pod-a.test", Port: 9001}, dnstest.Target{Host: "pod-b.test", Port: 9002},
		dnstest.Target{Host: "backup.test", Port: 9003, Priority: 10})

	rec, err := c.LookupAddrs(t.Context(), "v2.ns.svc.test")
	if err != nil || !slices.Equal(rec.Addrs, addrPorts(t, "10.0.0.1:0", "10.0.0.2:0", "[fd00::1]:0")) || rec.TTL != 30*time.Second {
		t.Fatalf("LookupAddrs = %v, %v", rec, err)
	}
	if rec, err = c.LookupAddrs(t.Context(), "v2"); err != nil || len(rec.Addrs) != 3 {
		t.Fatalf("LookupAddrs of a short name through the search list = %v, %v", rec, err)
	}
	rec, err = c.LookupSRV(t.Context(), "_grpc._tcp.v2.test")
	if err != nil || !slices.Equal(rec.Addrs, addrPorts(t, "10.0.1.1:9001", "10.0.1.2:9002")) || rec.TTL != 7*time.Second {
		t.Fatalf("LookupSRV = %v, %v; want the lowest priority's targets with the smallest TTL", rec, err)
	}

	// An answer larger than a UDP message comes over TCP.
	var many []string
	for i := range 200 {
		many = append(many, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))
	}
	s.SetA("big.test", 30, many...)
	if rec, err = c.LookupAddrs(t.Context(), "big.test"); err != nil || len(rec.Addrs) != 200 {
		t.Fatalf("LookupAddrs of 200 addresses = %d, %v", len(rec.Addrs), err)
	}

	if _, err = c.LookupAddrs(t.Context(), "gone.test"); err == nil || !strings.Contains(err.Error(), "NXDOMAIN") {
		t.Errorf("NXDOMAIN: %v", err)
	}
	s.Fail(dns.RcodeServerFailure)
	if _, err = c.LookupAddrs(t.Context(), "pod-a.test"); err == nil || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("SERVFAIL: %v", err)
	}
	s.Fail(dns.RcodeSuccess)
	s.Drop(true)
	if _, err = c.LookupAddrs(t.Context(), "pod-a.test"); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("no answer: %v", err)
	}
}

// TestDNSCacheFollowsRecords drives the DNS cache on an injected clock against a real
// DNS server: an answer is kept for its TTL within the floor and the ceiling, records
// added and removed show on the refresh after it; NXDOMAIN, SERVFAIL and a timeout keep
// the last good answer, reported stale, until the server answers again; every address
// of a name, and every SRV target with its port, is an endpoint.
func TestDNSCacheFollowsRecords(t *testing.T) {
	s := dnstest.Start(t)
	c := &publish.DNSClient{Servers: []string{s.Addr}, Timeout: 100 * time.Millisecond}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := publish.NewDNSCache(c, publish.DNSOptions{Now: func() time.Time { return now }, MinTTL: 5 * time.Second, MaxTTL: time.Minute})
	s.SetA("v1.test", 30, "10.0.0.1", "10.0.0.2")
	s.SetA("v2.test", 1, "10.0.2.1")
	s.SetA("pod.test", 3600, "10.0.3.1")
	s.SetSRV("_http._tcp.v3.test", 30, dnstest.Target{Host: "pod.test", Port: 9000})
	want := func(name string, addrs ...string) {
		t.Helper()
		got, err := d.Cached(name)
		var ws []netip.Addr
		for _, a := range addrs {
			ws = append(ws, netip.MustParseAddr(a))
		}
		if err != nil || !slices.Equal(got, ws) {
			t.Fatalf("%s at %s: %v, %v; want %v", name, now.Format(time.TimeOnly), got, err, ws)
		}
	}
	if !d.Prime(t.Context(), []string{"v1.test", "v2.test", "srv:_http._tcp.v3.test", "pod.test"}) {
		t.Fatal("Prime reported no change")
	}
	want("v1.test", "10.0.0.1", "10.0.0.2")

	desired := translate.Desired{Service: model.Service{Name: "shop", Port: 10001, Stable: "v1", Versions: []model.Version{
		{Name: "v1", Endpoints: []model.Endpoint{{Host: "v1.test", Port: 8080}}},
		{Name: "v3", Endpoints: []model.Endpoint{{Host: "_http._tcp.v3.test", SRV: true}, {Host: "10.0.9.9", Port: 80}}},
	}}}
	rd, stale, err := d.Resolve(desired)
	if err != nil || len(stale) != 0 {
		t.Fatal(stale, err)
	}
	if got := fmt.Sprint(rd.Service.Versions[0].Endpoints, rd.Service.Versions[1].Endpoints); got != "[10.0.0.1:8080 10.0.0.2:8080] [10.0.3.1:9000 10.0.9.9:80]" {
		t.Fatalf("resolved endpoints %s", got)
	}

	// A pod added and one removed: unseen until the TTL (30s) passes.
	s.SetA("v1.test", 30, "10.0.0.2", "10.0.0.3")
	s.SetA("v2.test", 1, "10.0.2.2") // TTL 1s: kept for the 5s floor
	now = now.Add(4 * time.Second)
	if d.Refresh(t.Context()) {
		t.Fatal("a refresh within every TTL (and the floor) changed an answer")
	}
	want("v2.test", "10.0.2.1")
	now = now.Add(time.Second)
	if !d.Refresh(t.Context()) {
		t.Fatal("the floor passed: want v2.test's new answer")
	}
	want("v2.test", "10.0.2.2")
	want("v1.test", "10.0.0.1", "10.0.0.2")
	now = now.Add(25 * time.Second)
	if !d.Refresh(t.Context()) {
		t.Fatal("v1.test's TTL passed: want its new answer")
	}
	want("v1.test", "10.0.0.2", "10.0.0.3")
	// pod.test's TTL is an hour: the ceiling (1m) refreshes it.
	s.SetA("pod.test", 3600, "10.0.3.2")
	now = now.Add(30 * time.Second)
	d.Refresh(t.Context())
	want("pod.test", "10.0.3.2")

	// NXDOMAIN, SERVFAIL, no answer: the last good answer stays, reported stale.
	for _, fail := range []struct {
		name  string
		apply func()
		undo  func()
	}{
		{"NXDOMAIN", func() { s.Remove("v1.test") }, func() { s.SetA("v1.test", 30, "10.0.0.2", "10.0.0.3") }},
		{"SERVFAIL", func() { s.Fail(dns.RcodeServerFailure) }, func() { s.Fail(dns.RcodeSuccess) }},
		{"timeout", func() { s.Drop(true) }, func() { s.Drop(false) }},
	} {
		fail.apply()
		now = now.Add(time.Minute)
		if !d.Refresh(t.Context()) {
			t.Fatalf("%s: the failure changed nothing", fail.name)
		}
		want("v1.test", "10.0.0.2", "10.0.0.3")
		_, stale, err := d.Resolve(desired)
		if err != nil || len(stale) == 0 || !strings.HasPrefix(stale[0], "srv:_http._tcp.v3.test: lookup failed") && !strings.HasPrefix(stale[0], "v1.test: lookup failed") {
			t.Fatalf("%s: stale %q, %v", fail.name, stale, err)
		}
		t.Logf("%s: %s", fail.name, stale[0])
		fail.undo()
		now = now.Add(time.Second) // a failed name is looked up on every refresh
		d.Refresh(t.Context())
		if _, stale, _ := d.Resolve(desired); len(stale) != 0 {
			t.Fatalf("%s over: still stale %q", fail.name, stale)
		}
	}

	// A name that never resolved fails the service that uses it.
	desired.Service.Versions[0].Endpoints[0].Host = "new.test"
	if _, _, err := d.Resolve(desired); err == nil || !strings.Contains(err.Error(), `resolve "new.test"`) {
		t.Fatalf("an unknown name: %v", err)
	}
}

// TestDNSChangePublishesEDSOnly: a name's new answer changes the EDS resource of the
// version behind it and nothing else (listeners, routes and clusters keep their
// versions); the health prober's and scraper's view (Expand) lists every address.
func TestDNSChangePublishesEDSOnly(t *testing.T) {
	s := dnstest.Start(t)
	c := &publish.DNSClient{Servers: []string{s.Addr}}
	now := time.Now()
	d := publish.NewDNSCache(c, publish.DNSOptions{Now: func() time.Time { return now }})
	srv := xds.NewServer(zap.NewNop(), xds.Options{})
	p := publish.New(srv, d, nil)
	s.SetA("v1.test", 5, "10.0.0.1", "10.0.0.2")
	desired := []translate.Desired{{Service: model.Service{Name: "shop", Port: 10001, Stable: "v1", Versions: []model.Version{
		{Name: "v1", Endpoints: []model.Endpoint{{Host: "v1.test", Port: 8080}}, Metrics: []model.Endpoint{{Host: "v1.test", Port: 9090}}},
	}}, Weights: map[string]uint32{"v1": model.TotalWeight}}}
	d.Prime(t.Context(), publish.Hosts(desired...))
	if _, err := p.Publish(desired); err != nil {
		t.Fatal(err)
	}
	versions := func() map[string]string {
		out := map[string]string{}
		for _, typ := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType} {
			out[typ] = srv.Cache().TypeVersion(typ)
		}
		return out
	}
	before := versions()
	s.SetA("v1.test", 5, "10.0.0.2", "10.0.0.3")
	now = now.Add(5 * time.Second)
	if !d.Refresh(t.Context()) {
		t.Fatal("no change seen")
	}
	if _, err := p.Publish(desired); err != nil {
		t.Fatal(err)
	}
	after := versions()
	for typ, v := range before {
		if changed := after[typ] != v; changed != (typ == resource.EndpointType) {
			t.Errorf("%s: version %s → %s", typ, v, after[typ])
		}
	}
	eps := srv.Resources().Endpoints[0].GetEndpoints()[0].GetLbEndpoints()
	var got []string
	for _, e := range eps {
		a := e.GetEndpoint().GetAddress().GetSocketAddress()
		got = append(got, fmt.Sprintf("%s:%d", a.GetAddress(), a.GetPortValue()))
	}
	if fmt.Sprint(got) != "[10.0.0.2:8080 10.0.0.3:8080]" {
		t.Errorf("EDS endpoints %v", got)
	}
	x := d.Expand(desired[0].Service).Versions[0]
	if fmt.Sprint(x.Endpoints, x.Metrics) != "[10.0.0.2:8080 10.0.0.3:8080] [10.0.0.2:9090 10.0.0.3:9090]" {
		t.Errorf("Expand: %v %v", x.Endpoints, x.Metrics)
	}
}
