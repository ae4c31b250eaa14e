package publish_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

func desired(name string, port uint32, host string, canary string) translate.Desired {
	svc := model.Service{Name: name, Port: port, Stable: "v1", Versions: []model.Version{
		{Name: "v1", Endpoints: []model.Endpoint{{Host: host, Port: 8080}}},
	}}
	w := map[string]uint32{"v1": model.TotalWeight}
	if canary != "" {
		svc.Versions = append(svc.Versions, model.Version{Name: canary, Endpoints: []model.Endpoint{{Host: "10.0.0.9", Port: 8080}}})
		w = map[string]uint32{"v1": 5000, canary: 5000}
	}
	return translate.Desired{Service: svc, Weights: w}
}

type dnsTable map[string]string

func (d dnsTable) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := d[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, errors.New("no such host")
}

// TestFailingServiceKeepsLastGood: a service whose desired state does not translate
// keeps its last good resources, the others publish; the failure is reported once per
// distinct error, its recovery once.
func TestFailingServiceKeepsLastGood(t *testing.T) {
	srv := xds.NewServer(zap.NewNop(), xds.Options{})
	dns := publish.NewDNS(dnsTable{}, nil, time.Minute)
	p := publish.New(srv, dns, nil)

	good := []translate.Desired{desired("a", 10001, "10.0.0.1", ""), desired("b", 10002, "10.0.0.2", "")}
	changes, err := p.Publish(good)
	if err != nil || len(changes) != 0 {
		t.Fatalf("first publish: %v %v", changes, err)
	}
	routeA := srv.RouteVersion("a")

	bad := []translate.Desired{desired("a", 10001, "10.0.0.1", "v|2"), desired("b", 10002, "10.0.0.2", "v2")}
	for i := range 3 {
		changes, err = p.Publish(bad)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[i == 0]; len(changes) != want {
			t.Fatalf("publish %d: changes %v, want %d", i, changes, want)
		}
	}
	if changes, _ := p.Publish(bad); len(changes) != 0 {
		t.Fatalf("a retry of the same failure reported again: %v", changes)
	}
	st, _ := p.Status("a")
	if st.OK || !st.Serving || !strings.Contains(st.Error, "not a valid name") {
		t.Errorf("status of a %+v", st)
	}
	if srv.RouteVersion("a") != routeA {
		t.Error("a's route changed while its desired state failed")
	}
	if d, _ := p.Served("a"); d.Weights["v1"] != model.TotalWeight {
		t.Errorf("a serves %v, want its last good weights", d.Weights)
	}
	if d, _ := p.Served("b"); d.Weights["v2"] != 5000 {
		t.Errorf("b serves %v, want its new weights", d.Weights)
	}
	if f := p.Failing(); len(f) != 1 || f[0] != "a" {
		t.Errorf("failing %v", f)
	}
	if err := p.Check(bad[0]); err == nil {
		t.Error("Check of a bad desired state passed")
	}

	changes, err = p.Publish(good)
	if err != nil || len(changes) != 1 || changes[0].Service != "a" || changes[0].Err != "" {
		t.Fatalf("recovery: %v %v", changes, err)
	}
	if st, _ := p.Status("a"); !st.OK {
		t.Errorf("a after recovery %+v", st)
	}
}

// TestPortConflict: the second service on a port fails alone.
func TestPortConflict(t *testing.T) {
	srv := xds.NewServer(zap.NewNop(), xds.Options{})
	p := publish.New(srv, publish.NewDNS(dnsTable{}, nil, 0), nil)
	changes, err := p.Publish([]translate.Desired{desired("a", 10001, "10.0.0.1", ""), desired("b", 10001, "10.0.0.2", "")})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Service != "b" || !strings.Contains(changes[0].Err, "port 10001") {
		t.Errorf("changes %v", changes)
	}
	if srv.RouteVersion("a") == "" || srv.RouteVersion("b") != "" {
		t.Errorf("served routes a=%q b=%q", srv.RouteVersion("a"), srv.RouteVersion("b"))
	}
}

// TestDNSKeepsLastGoodAnswer: a refresh that fails keeps the answer and says so; a name
// never resolved fails the service until a refresh resolves it.
func TestDNSKeepsLastGoodAnswer(t *testing.T) {
	table := dnsTable{"db.internal": "10.1.1.1"}
	now := time.Unix(0, 0)
	dns := publish.NewDNS(table, func() time.Time { return now }, time.Minute)
	d := desired("a", 10001, "db.internal", "")
	if _, _, err := dns.Resolve(d); err == nil {
		t.Fatal("a name never looked up resolved")
	}
	if !dns.Refresh(context.Background()) {
		t.Fatal("first refresh changed nothing")
	}
	rd, stale, err := dns.Resolve(d)
	if err != nil || len(stale) != 0 || rd.Service.Versions[0].Endpoints[0].Host != "10.1.1.1" {
		t.Fatalf("resolve: %v %v %v", rd.Service.Versions[0].Endpoints, stale, err)
	}
	delete(table, "db.internal")
	if dns.Refresh(context.Background()) {
		t.Error("a refresh before the interval looked the name up again")
	}
	now = now.Add(time.Minute)
	if !dns.Refresh(context.Background()) {
		t.Error("a failing refresh reported no change")
	}
	rd, stale, err = dns.Resolve(d)
	if err != nil || len(stale) != 1 || rd.Service.Versions[0].Endpoints[0].Host != "10.1.1.1" {
		t.Fatalf("after a failed refresh: %v %v %v", rd.Service.Versions[0].Endpoints, stale, err)
	}
}

// TestFallbackWithoutLastGood: a service whose desired state fails from its first
// publish (a restart with a state that no longer translates) serves its fallback
// state, still reported failing; a fallback is not used while last good resources
// exist; the desired state replaces it as soon as it publishes.
func TestFallbackWithoutLastGood(t *testing.T) {
	srv := xds.NewServer(zap.NewNop(), xds.Options{})
	p := publish.New(srv, publish.NewDNS(dnsTable{}, nil, 0), nil)
	asked := map[string]int{}
	fallback := func(name string) (translate.Desired, bool) {
		asked[name]++
		return desired(name, 10001, "10.0.0.1", ""), true
	}
	bad := []translate.Desired{desired("a", 10001, "10.0.0.1", "v|2"), desired("b", 10002, "10.0.0.2", "")}
	for range 2 {
		changes, err := p.PublishWithFallback(bad, fallback)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) > 0 && (changes[0].Service != "a" || !strings.Contains(changes[0].Err, "not a valid name")) {
			t.Fatalf("changes %v", changes)
		}
	}
	st, _ := p.Status("a")
	if st.OK || !st.Serving || !st.Fallback || !strings.Contains(st.Error, "not a valid name") {
		t.Fatalf("status of a %+v, want failing, serving its fallback", st)
	}
	if d, _ := p.Served("a"); d.Weights["v1"] != model.TotalWeight || len(d.Service.Versions) != 1 {
		t.Errorf("a serves %v %v, want its fallback", d.Weights, d.Service.VersionNames())
	}
	if srv.RouteVersion("a") == "" || srv.RouteVersion("b") == "" {
		t.Fatalf("served routes a=%q b=%q", srv.RouteVersion("a"), srv.RouteVersion("b"))
	}
	if asked["a"] != 1 || asked["b"] != 0 {
		t.Errorf("fallback asked %v, want once for a only (it serves on afterwards)", asked)
	}

	good := []translate.Desired{desired("a", 10001, "10.0.0.1", "v2"), bad[1]}
	changes, err := p.PublishWithFallback(good, fallback)
	if err != nil || len(changes) != 1 || changes[0].Service != "a" || changes[0].Err != "" {
		t.Fatalf("recovery: %v %v", changes, err)
	}
	if st, _ := p.Status("a"); !st.OK || st.Fallback {
		t.Errorf("a after recovery %+v", st)
	}
	if d, _ := p.Served("a"); d.Weights["v2"] != 5000 {
		t.Errorf("a serves %v after recovery", d.Weights)
	}
	// Failing again, a keeps its last good resources, not the fallback.
	if _, err := p.PublishWithFallback(bad, fallback); err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Status("a"); st.OK || st.Fallback || asked["a"] != 1 {
		t.Errorf("a failing after a good publish: %+v, fallback asked %d times", st, asked["a"])
	}
	if d, _ := p.Served("a"); d.Weights["v2"] != 5000 {
		t.Errorf("a serves %v, want its last good weights", d.Weights)
	}
}
