package publish_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

func clusterNames(srv *xds.Server) (cds, eds []string) {
	res := srv.Resources()
	for _, c := range res.Clusters {
		cds = append(cds, c.GetName())
	}
	for _, e := range res.Endpoints {
		eds = append(eds, e.GetClusterName())
	}
	return cds, eds
}

// TestDroppedClusterRetires: a publish that drops a version (or a whole service) keeps
// its cluster and endpoints served until Retire finds every proxy of the route on a
// route published since, or the timeout passed (reported late, with the stragglers); a
// version served again stops retiring.
func TestDroppedClusterRetires(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := xds.NewServer(zap.NewNop(), xds.Options{})
	p := publish.New(srv, publish.NewDNS(dnsTable{}, nil, time.Minute), clock)
	// acked is the route version every proxy of a service ACKed; "" for a proxy that
	// never ACKs.
	acked := map[string]string{}
	asked := map[string][]string{}
	stragglers := func(service string, versions []string) []string {
		asked[service] = versions
		if v := acked[service]; v == "" || !slices.Contains(versions, v) {
			return []string{"proxy-" + service}
		}
		return nil
	}

	two := []translate.Desired{desired("a", 10001, "10.0.0.1", "v2"), desired("b", 10002, "10.0.0.2", "")}
	if _, err := p.Publish(two); err != nil {
		t.Fatal(err)
	}
	oneA := desired("a", 10001, "10.0.0.1", "")
	if _, err := p.Publish([]translate.Desired{oneA, two[1]}); err != nil {
		t.Fatal(err)
	}
	cds, eds := clusterNames(srv)
	if !slices.Contains(cds, "a|v2") || !slices.Contains(eds, "a|v2") {
		t.Fatalf("a|v2 removed with the route that stopped naming it: CDS %v EDS %v", cds, eds)
	}
	done, err := p.Retire(stragglers, time.Minute)
	if err != nil || len(done) != 0 {
		t.Fatalf("Retire before any ACK: %v %v", done, err)
	}
	if want := []string{srv.RouteVersion("a")}; !slices.Equal(asked["a"], want) {
		t.Fatalf("asked about route versions %v, want the one served now %v", asked["a"], want)
	}
	acked["a"] = srv.RouteVersion("a")
	done, err = p.Retire(stragglers, time.Minute)
	if err != nil || len(done) != 1 || done[0].Service != "a" || done[0].Late || !slices.Equal(done[0].Versions, []string{"v2"}) {
		t.Fatalf("Retire once the route is ACKed: %+v %v", done, err)
	}
	if cds, eds := clusterNames(srv); slices.Contains(cds, "a|v2") || slices.Contains(eds, "a|v2") {
		t.Fatalf("a|v2 still served after retiring: CDS %v EDS %v", cds, eds)
	}

	// A service removed: its clusters retire; its proxies never ACK, so the timeout
	// removes them, reported late.
	if _, err := p.Publish([]translate.Desired{oneA}); err != nil {
		t.Fatal(err)
	}
	if cds, _ := clusterNames(srv); !slices.Contains(cds, "b|v1") || srv.RouteVersion("b") != "" {
		t.Fatalf("service b removed: CDS %v route %q, want its cluster kept, its route gone", cds, srv.RouteVersion("b"))
	}
	mu.Lock()
	now = now.Add(59 * time.Second)
	mu.Unlock()
	if done, err := p.Retire(stragglers, time.Minute); err != nil || len(done) != 0 {
		t.Fatalf("Retire before the timeout: %v %v", done, err)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	done, err = p.Retire(stragglers, time.Minute)
	if err != nil || len(done) != 1 || !done[0].Late || done[0].Service != "b" || !slices.Equal(done[0].Stragglers, []string{"proxy-b"}) {
		t.Fatalf("Retire after the timeout: %+v %v", done, err)
	}
	if cds, _ := clusterNames(srv); slices.Contains(cds, "b|v1") {
		t.Fatalf("b|v1 still served after the timeout: %v", cds)
	}

	// Dropped and served again before it retired: it stays.
	if _, err := p.Publish([]translate.Desired{desired("a", 10001, "10.0.0.1", "v3")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish([]translate.Desired{oneA}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish([]translate.Desired{desired("a", 10001, "10.0.0.1", "v3")}); err != nil {
		t.Fatal(err)
	}
	acked["a"] = srv.RouteVersion("a")
	if done, err := p.Retire(stragglers, 0); err != nil || len(done) != 0 {
		t.Fatalf("Retire of a version served again: %+v %v", done, err)
	}
	if cds, _ := clusterNames(srv); !slices.Contains(cds, "a|v3") {
		t.Fatalf("a|v3 removed although served again: %v", cds)
	}
}
