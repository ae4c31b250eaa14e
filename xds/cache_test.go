package xds

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"

	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/translate"
)

func cacheDesired(svc string, w1, w2 uint32) translate.Desired {
	return translate.Desired{
		Service: model.Service{Name: svc, Port: 10001, Stable: "v1", Versions: []model.Version{
			{Name: "v1", Endpoints: []model.Endpoint{{Host: "127.0.0.1", Port: 8001}}},
			{Name: "v2", Endpoints: []model.Endpoint{{Host: "127.0.0.1", Port: 8002}}},
		}},
		Weights: map[string]uint32{"v1": w1, "v2": w2},
	}
}

func setDesired(t testing.TB, c *Cache, d ...translate.Desired) ([]string, translate.Resources) {
	t.Helper()
	r, err := translate.Translate(d)
	if err != nil {
		t.Fatal(err)
	}
	changed, err := c.Set(r.ByType())
	if err != nil {
		t.Fatal(err)
	}
	return changed, r
}

func TestCacheVersionsFromContent(t *testing.T) {
	c := NewCache()
	changed, r := setDesired(t, c, cacheDesired("a", 10000, 0))
	if len(changed) != 4 {
		t.Errorf("first publish changed %v, want all four types", changed)
	}
	if got, want := c.Version(resource.RouteType, translate.RouteName("a")), r.RouteVersion("a"); got != want {
		t.Errorf("cache route version %s, translate.Resources.RouteVersion %s", got, want)
	}
	if changed, _ := setDesired(t, c, cacheDesired("a", 10000, 0)); len(changed) != 0 {
		t.Errorf("same content changed %v", changed)
	}
	changed, r = setDesired(t, c, cacheDesired("a", 9000, 1000))
	if len(changed) != 1 || changed[0] != resource.RouteType {
		t.Errorf("weight change changed %v, want the route type only", changed)
	}
	if got, want := c.Version(resource.RouteType, translate.RouteName("a")), r.RouteVersion("a"); got != want {
		t.Errorf("cache route version %s, translate.Resources.RouteVersion %s", got, want)
	}
}

// watch opens a SotW watch and returns the response channel and the subscription.
func sotwWatchFor(t testing.TB, c *Cache, node, typ, nonce string, sub *stream.Subscription, names ...string) chan cachev3.Response {
	t.Helper()
	ch := make(chan cachev3.Response, 1)
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node}, TypeUrl: typ, ResourceNames: names, ResponseNonce: nonce}
	if _, err := c.CreateWatch(req, *sub, ch); err != nil {
		t.Fatal(err)
	}
	return ch
}

func recvNow(t testing.TB, ch chan cachev3.Response) cachev3.Response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	default:
		t.Fatal("no response")
		return nil
	}
}

func noResponse(t testing.TB, ch chan cachev3.Response) {
	t.Helper()
	select {
	case r := <-ch:
		out, _ := r.GetDiscoveryResponse()
		t.Fatalf("unexpected response %v", out)
	default:
	}
}

func TestCacheAnswersPartialClusterRequestAndHoldsNACK(t *testing.T) {
	c := NewCache()
	setDesired(t, c, cacheDesired("a", 10000, 0))

	// A CDS request naming one of two clusters is answered with that cluster.
	sub := stream.NewSotwSubscription([]string{translate.ClusterName("a", "v1")}, true)
	ch := sotwWatchFor(t, c, "n1", resource.ClusterType, "", &sub, translate.ClusterName("a", "v1"))
	resp := recvNow(t, ch)
	out, _ := resp.GetDiscoveryResponse()
	if len(out.GetResources()) != 1 {
		t.Fatalf("partial CDS request answered with %d clusters", len(out.GetResources()))
	}

	// Route: first response, then a NACK of it finds nothing to send.
	rsub := stream.NewSotwSubscription([]string{"a"}, false)
	ch = sotwWatchFor(t, c, "n1", resource.RouteType, "", &rsub, "a")
	resp = recvNow(t, ch)
	rsub.SetReturnedResources(resp.GetReturnedResources())
	ch = sotwWatchFor(t, c, "n1", resource.RouteType, "1", &rsub, "a") // NACK or ACK alike
	noResponse(t, ch)

	// A cluster change does not wake the route watch; a route change does.
	d := cacheDesired("a", 10000, 0)
	d.Service.Versions[0].Endpoints[0].Port = 9001
	setDesired(t, c, d)
	noResponse(t, ch)
	setDesired(t, c, cacheDesired("a", 5000, 5000))
	resp = recvNow(t, ch)
	if resp.GetResponseVersion() != c.TypeVersion(resource.RouteType) {
		t.Errorf("response version %s, served %s", resp.GetResponseVersion(), c.TypeVersion(resource.RouteType))
	}
}

func TestCacheRouteChangeWakesOnlyItsWatchers(t *testing.T) {
	c := NewCache()
	setDesired(t, c, cacheDesired("a", 10000, 0), func() translate.Desired { d := cacheDesired("b", 10000, 0); d.Service.Port = 10002; return d }())
	watch := func(route string) chan cachev3.Response {
		sub := stream.NewSotwSubscription([]string{route}, false)
		resp := recvNow(t, sotwWatchFor(t, c, "n-"+route, resource.RouteType, "", &sub, route))
		sub.SetReturnedResources(resp.GetReturnedResources())
		return sotwWatchFor(t, c, "n-"+route, resource.RouteType, "1", &sub, route)
	}
	wa, wb := watch("a"), watch("b")
	b := cacheDesired("b", 0, 10000)
	b.Service.Port = 10002
	setDesired(t, c, cacheDesired("a", 10000, 0), b)
	noResponse(t, wa)
	if out, _ := recvNow(t, wb).GetDiscoveryResponse(); len(out.GetResources()) != 1 {
		t.Errorf("route b response has %d resources", len(out.GetResources()))
	}
}

// BenchmarkPublishFanOut measures one weight change reaching 10,000 parked route watches.
func BenchmarkPublishFanOut(b *testing.B) {
	const proxies = 10000
	c := NewCache()
	setDesired(b, c, cacheDesired("a", 10000, 0))
	chans := make([]chan cachev3.Response, proxies)
	subs := make([]stream.Subscription, proxies)
	for i := range proxies {
		subs[i] = stream.NewSotwSubscription([]string{"a"}, false)
		resp := recvNow(b, sotwWatchFor(b, c, fmt.Sprint("n", i), resource.RouteType, "", &subs[i], "a"))
		subs[i].SetReturnedResources(resp.GetReturnedResources())
	}
	b.ResetTimer()
	for n := range b.N {
		for i := range proxies {
			chans[i] = sotwWatchFor(b, c, fmt.Sprint("n", i), resource.RouteType, "1", &subs[i], "a")
		}
		w := uint32((n+1)%2) * 10000
		r, _ := translate.Translate([]translate.Desired{cacheDesired("a", 10000-w, w)})
		if _, err := c.Set(map[string][]types.Resource{resource.RouteType: r.ByType()[resource.RouteType]}); err != nil {
			b.Fatal(err)
		}
		for i := range proxies {
			subs[i].SetReturnedResources(recvNow(b, chans[i]).GetReturnedResources())
		}
	}
}

// TestCacheApplyMatchesSet checks that a publish of the changed resources only serves
// what a publish of everything would: the same resources and versions (type versions
// included), waking only the watchers of the changed names, removing what is removed.
func TestCacheApplyMatchesSet(t *testing.T) {
	b := func(w1, w2 uint32) translate.Desired {
		d := cacheDesired("b", w1, w2)
		d.Service.Port = 10002
		return d
	}
	inc, full := NewCache(), NewCache()
	_, r := setDesired(t, inc, cacheDesired("a", 10000, 0), b(10000, 0))
	setDesired(t, full, cacheDesired("a", 10000, 0), b(10000, 0))
	watch := func(route string) chan cachev3.Response {
		sub := stream.NewSotwSubscription([]string{route}, false)
		resp := recvNow(t, sotwWatchFor(t, inc, "n-"+route, resource.RouteType, "", &sub, route))
		sub.SetReturnedResources(resp.GetReturnedResources())
		return sotwWatchFor(t, inc, "n-"+route, resource.RouteType, "1", &sub, route)
	}
	wa, wb := watch("a"), watch("b")
	same := func(when string) {
		t.Helper()
		for _, typ := range servedTypes {
			if got, want := inc.TypeVersion(typ), full.TypeVersion(typ); got != want {
				t.Errorf("%s: %s version %s after Apply, %s after Set", when, typ, got, want)
			}
			a, f := inc.types[typ].snap.Load(), full.types[typ].snap.Load()
			if !slices.Equal(a.names, f.names) {
				t.Errorf("%s: %s names %v after Apply, %v after Set", when, typ, a.names, f.names)
			}
			if a.byName.len() != f.byName.len() {
				t.Errorf("%s: %s has %d resources after Apply, %d after Set", when, typ, a.byName.len(), f.byName.len())
			}
			for _, n := range f.names {
				if e := a.byName.get(n); e == nil || e.version != f.byName.get(n).version {
					t.Errorf("%s: %s %q differs", when, typ, n)
				}
			}
		}
	}
	same("start")

	// A weight change of b: its route only, to b's watcher only.
	_, r2 := setDesired(t, full, cacheDesired("a", 10000, 0), b(2000, 8000))
	changed, err := inc.Apply(map[string]Change{resource.RouteType: {Upsert: []types.Resource{r2.Routes[1]}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0] != resource.RouteType {
		t.Errorf("Apply of a route changed %v", changed)
	}
	same("weight change")
	noResponse(t, wa)
	if out, _ := recvNow(t, wb).GetDiscoveryResponse(); len(out.GetResources()) != 1 || out.GetVersionInfo() != inc.TypeVersion(resource.RouteType) {
		t.Errorf("route b response: %d resources, version %s", len(out.GetResources()), out.GetVersionInfo())
	}

	// The same value again changes nothing; a duplicate fails and publishes nothing.
	if changed, err := inc.Apply(map[string]Change{resource.RouteType: {Upsert: []types.Resource{r2.Routes[1]}}}); err != nil || len(changed) != 0 {
		t.Errorf("Apply of the served route: changed %v, error %v", changed, err)
	}
	before := inc.TypeVersion(resource.ClusterType)
	if _, err := inc.Apply(map[string]Change{
		resource.ClusterType: {Upsert: []types.Resource{r.Clusters[0], r.Clusters[0]}, Remove: []string{r.Clusters[1].GetName()}},
	}); err == nil {
		t.Error("Apply of a duplicate cluster succeeded")
	}
	if got := inc.TypeVersion(resource.ClusterType); got != before {
		t.Errorf("failed Apply changed the cluster version %s -> %s", before, got)
	}

	// Service b goes away.
	setDesired(t, full, cacheDesired("a", 10000, 0))
	remove := map[string]Change{}
	for typ, res := range r2.ByType() {
		var names []string
		for _, x := range res {
			if n := cachev3.GetResourceName(x); strings.Contains(n, "b") {
				names = append(names, n)
			}
		}
		remove[typ] = Change{Remove: names}
	}
	if _, err := inc.Apply(remove); err != nil {
		t.Fatal(err)
	}
	same("removal")
}
