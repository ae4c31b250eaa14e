package xds

import (
	"context"
	"fmt"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/octoacme/octoroll/translate"
)

// The cache benchmarks compare octoroll's Cache with go-control-plane's snapshot cache
// and with LinearCaches behind a MuxCache (the way Contour serves EDS), on the changes a
// rollout makes: one service's weights (a route) and one service's endpoints (a load
// assignment), among 1, 100 or 1,000 services, pushed to the clients watching them.
// Each change is published the way the cache is meant to be fed, and every response a
// client receives is turned into the DiscoveryResponse the server would send
// (go-control-plane marshals there). Client shapes: "single" clients watch one
// service's resource each, by name (a proxyless gRPC client of one target), spread over
// the services; "wildcard" clients watch every resource of the type (no names);
// "sidecar" clients name every service's resource (an Envoy sidecar routing to every
// service).
//
//	go test ./xds -run '^$' -bench BenchmarkCache -benchmem
//
// octoroll's columns: "octoroll-set" is the whole set handed over on every publish (how
// Server.SetResources feeds the cache), "octoroll-apply" the changed resources only
// (Cache.Apply, how package publish feeds it).

// benchWorld is the resources of its services, two versions each.
type benchWorld struct {
	services                    int
	routes, clusters, endpoints []types.Resource
	// routeAlt and claAlt are the changed route and load assignment of service 0.
	routeAlt, claAlt types.Resource
}

func benchService(i int) string { return fmt.Sprintf("svc-%04d", i) }

func benchRoute(svc string, canary uint32) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: svc, VirtualHosts: []*routev3.VirtualHost{{
		Name: svc, Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
				WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
					{Name: translate.ClusterName(svc, "stable"), Weight: wrapperspb.UInt32(10000 - canary)},
					{Name: translate.ClusterName(svc, "canary"), Weight: wrapperspb.UInt32(canary)},
				}},
			}}},
		}},
	}}}
}

func benchCLA(name string, hosts int, base int) *endpointv3.ClusterLoadAssignment {
	loc := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Zone: "zone-a"}, LoadBalancingWeight: wrapperspb.UInt32(1)}
	for h := range hosts {
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: fmt.Sprintf("10.%d.%d.%d", base/250%250, base%250, h+1), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080},
			}}}},
		}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{loc}}
}

func newBenchWorld(services int) *benchWorld {
	w := &benchWorld{services: services}
	for i := range services {
		svc := benchService(i)
		w.routes = append(w.routes, benchRoute(svc, 500))
		for _, v := range []string{"stable", "canary"} {
			name := translate.ClusterName(svc, v)
			w.clusters = append(w.clusters, &clusterv3.Cluster{
				Name:                 name,
				ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
				EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
					ResourceApiVersion:    corev3.ApiVersion_V3,
					ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
				}},
				ConnectTimeout: durationpb.New(time.Second),
			})
			w.endpoints = append(w.endpoints, benchCLA(name, 3, i))
		}
	}
	w.routeAlt = benchRoute(benchService(0), 2500)
	// One endpoint of service 0's stable version goes away (a health change).
	w.claAlt = benchCLA(translate.ClusterName(benchService(0), "stable"), 2, 0)
	return w
}

// benchCache is one cache under test: publish installs the world with service 0's
// route and load assignment as given.
type benchCache interface {
	cachev3.ConfigWatcher
	publish(b *testing.B, w *benchWorld, route, cla types.Resource)
}

// ownCache feeds octoroll's Cache as Server.SetResources does: every type, unchanged
// resources as the very values already served.
type ownCache struct{ *Cache }

func (c ownCache) publish(b *testing.B, w *benchWorld, route, cla types.Resource) {
	routes := append([]types.Resource{route}, w.routes[1:]...)
	endpoints := append([]types.Resource{cla}, w.endpoints[1:]...)
	if _, err := c.setImmutable(map[string][]types.Resource{
		resource.ClusterType: w.clusters, resource.EndpointType: endpoints,
		resource.ListenerType: nil, resource.RouteType: routes,
	}); err != nil {
		b.Fatal(err)
	}
}

// ownApplyCache feeds octoroll's Cache with the changed resources only (Cache.Apply), as
// LinearCache.UpdateResource is fed.
type ownApplyCache struct {
	*Cache
	route, cla types.Resource
}

func (c *ownApplyCache) publish(b *testing.B, w *benchWorld, route, cla types.Resource) {
	if c.route == nil {
		c.route, c.cla = route, cla
		ownCache{c.Cache}.publish(b, w, route, cla)
		return
	}
	byType := map[string]Change{}
	if route != c.route {
		c.route = route
		byType[resource.RouteType] = Change{Upsert: []types.Resource{route}}
	}
	if cla != c.cla {
		c.cla = cla
		byType[resource.EndpointType] = Change{Upsert: []types.Resource{cla}}
	}
	if _, err := c.Apply(byType); err != nil {
		b.Fatal(err)
	}
}

// snapCache is go-control-plane's snapshot cache with one snapshot for every node,
// each type versioned on its own so that a change re-sends only its type.
type snapCache struct {
	cachev3.SnapshotCache
	snap  *cachev3.Snapshot
	seq   int
	first bool
}

type oneNode struct{}

func (oneNode) ID(*corev3.Node) string { return "all" }

func (c *snapCache) publish(b *testing.B, w *benchWorld, route, cla types.Resource) {
	c.seq++
	v := fmt.Sprint(c.seq)
	if c.snap == nil {
		c.snap = &cachev3.Snapshot{}
		c.snap.Resources[types.Cluster] = cachev3.NewResources(v, w.clusters)
		c.snap.Resources[types.Listener] = cachev3.NewResources(v, nil)
	}
	// A new snapshot shares the unchanged types; only a changed type gets a version.
	next := &cachev3.Snapshot{Resources: c.snap.Resources}
	if cur := c.snap.Resources[types.Route].Items[route.(*routev3.RouteConfiguration).GetName()]; cur.Resource != route {
		next.Resources[types.Route] = cachev3.NewResources(v, append([]types.Resource{route}, w.routes[1:]...))
	}
	if cur := c.snap.Resources[types.Endpoint].Items[cla.(*endpointv3.ClusterLoadAssignment).GetClusterName()]; cur.Resource != cla {
		next.Resources[types.Endpoint] = cachev3.NewResources(v, append([]types.Resource{cla}, w.endpoints[1:]...))
	}
	c.snap = next
	if err := c.SetSnapshot(context.Background(), "all", next); err != nil {
		b.Fatal(err)
	}
}

// linearCache is one LinearCache per type behind a MuxCache: a change updates the one
// resource.
type linearCache struct {
	*cachev3.MuxCache
	byType      map[string]*cachev3.LinearCache
	route, cla  types.Resource
	initialized bool
}

func newLinearCache() *linearCache {
	c := &linearCache{MuxCache: &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return r.GetTypeUrl() },
		Caches:        map[string]cachev3.Cache{},
	}, byType: map[string]*cachev3.LinearCache{}}
	for _, t := range servedTypes {
		lc := cachev3.NewLinearCache(t)
		c.byType[t], c.Caches[t] = lc, lc
	}
	return c
}

func (c *linearCache) publish(b *testing.B, w *benchWorld, route, cla types.Resource) {
	if !c.initialized {
		c.initialized = true
		set := func(t string, rs []types.Resource) {
			m := make(map[string]types.Resource, len(rs))
			for _, r := range rs {
				m[cachev3.GetResourceName(r)] = r
			}
			c.byType[t].SetResources(m)
		}
		set(resource.ClusterType, w.clusters)
		set(resource.RouteType, w.routes)
		set(resource.EndpointType, w.endpoints)
		c.route, c.cla = w.routes[0], w.endpoints[0]
	}
	if route != c.route {
		c.route = route
		if err := c.byType[resource.RouteType].UpdateResource(cachev3.GetResourceName(route), route); err != nil {
			b.Fatal(err)
		}
	}
	if cla != c.cla {
		c.cla = cla
		if err := c.byType[resource.EndpointType].UpdateResource(cachev3.GetResourceName(cla), cla); err != nil {
			b.Fatal(err)
		}
	}
}

// benchClient is one client's SotW watch on one type, as the go-control-plane server
// keeps it: the subscription with what was returned, and the last request.
type benchClient struct {
	sub streamv3.Subscription
	req *discoveryv3.DiscoveryRequest
}

// benchClients are the clients of one benchmark. Every watch answers on one channel
// (each client has at most one watch open, so it never fills): waiting for the clients a
// change reaches costs what they are, not what every client is.
type benchClients struct {
	byNode map[string]*benchClient
	ch     chan cachev3.Response
}

func (cs *benchClients) watch(b *testing.B, c cachev3.ConfigWatcher, cl *benchClient) {
	if _, err := c.CreateWatch(cl.req, cl.sub, cs.ch); err != nil {
		b.Fatal(err)
	}
}

// consume turns a response into the DiscoveryResponse the server would send, records
// what it returned and opens the next watch, as the server does on the ACK. It returns
// the number of resources sent.
func (cs *benchClients) consume(b *testing.B, c cachev3.ConfigWatcher, r cachev3.Response) int {
	cl := cs.byNode[r.GetRequest().GetNode().GetId()]
	dr, err := r.GetDiscoveryResponse()
	if err != nil {
		b.Fatal(err)
	}
	var returned map[string]string
	if sr, ok := r.(*sotwResponse); ok {
		returned = sr.settled().returned // what octoroll's ADS handler keeps, without the copy
	} else {
		returned = r.GetReturnedResources()
	}
	cl.sub.SetReturnedResources(returned)
	cl.req = &discoveryv3.DiscoveryRequest{
		Node: cl.req.GetNode(), TypeUrl: cl.req.GetTypeUrl(), ResourceNames: cl.req.GetResourceNames(),
		VersionInfo: dr.GetVersionInfo(), ResponseNonce: "n",
	}
	cs.watch(b, c, cl)
	return len(dr.GetResources())
}

func benchCaches() []struct {
	name string
	new  func() benchCache
} {
	return []struct {
		name string
		new  func() benchCache
	}{
		{"octoroll-set", func() benchCache { return ownCache{NewCache()} }},
		{"octoroll-apply", func() benchCache { return &ownApplyCache{Cache: NewCache()} }},
		{"snapshot", func() benchCache { return &snapCache{SnapshotCache: cachev3.NewSnapshotCache(false, oneNode{}, nil)} }},
		{"linear+mux", func() benchCache { return newLinearCache() }},
	}
}

// runCacheBench measures one change (toggled between two values) of the type typeURL
// among services services, pushed to clients watching names(i) of it (nil: wildcard).
// A change reaches the clients that watch service 0; each op waits for all of them.
func runCacheBench(b *testing.B, newCache func() benchCache, services int, typeURL string, clients int, names func(i int) []string, alt func(w *benchWorld, on bool) (route, cla types.Resource)) {
	w := newBenchWorld(services)
	c := newCache()
	route, cla := alt(w, false)
	c.publish(b, w, route, cla)
	cs := &benchClients{byNode: map[string]*benchClient{}, ch: make(chan cachev3.Response, clients)}
	affected := 0
	for i := range clients {
		n := names(i)
		id := fmt.Sprint("client-", i)
		cl := &benchClient{
			sub: streamv3.NewSotwSubscription(n, true),
			req: &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: id}, TypeUrl: typeURL, ResourceNames: n},
		}
		cs.byNode[id] = cl
		cs.watch(b, c, cl)
		select {
		case r := <-cs.ch:
			cs.consume(b, c, r)
		case <-time.After(10 * time.Second):
			b.Fatalf("client %d: no initial response", i)
		}
		if len(n) != 1 || n[0] == nameOfService0(typeURL) {
			affected++
		}
	}
	var pushes, sent int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		route, cla := alt(w, i%2 == 0)
		c.publish(b, w, route, cla)
		for got := 0; got < affected; got++ {
			select {
			case r := <-cs.ch:
				sent += cs.consume(b, c, r)
				pushes++
			case <-time.After(10 * time.Second):
				b.Fatalf("op %d: %d of %d clients answered", i, got, affected)
			}
		}
	}
	b.StopTimer()
	// Responses to clients that did not need one (the snapshot cache answers every
	// watcher of a type whose version changed) arrive too; count them.
	for len(cs.ch) > 0 {
		sent += cs.consume(b, c, <-cs.ch)
		pushes++
	}
	b.ReportMetric(float64(pushes)/float64(b.N), "pushes/op")
	b.ReportMetric(float64(sent)/float64(b.N), "resources/op")
}

func nameOfService0(typeURL string) string {
	if typeURL == resource.RouteType {
		return benchService(0)
	}
	return translate.ClusterName(benchService(0), "stable")
}

// benchNames is what client i of a shape watches among services services.
func benchNames(typeURL, shape string, services int) func(i int) []string {
	return func(i int) []string {
		switch shape {
		case "wildcard":
			return nil
		case "sidecar":
			var out []string
			for s := range services {
				if typeURL == resource.RouteType {
					out = append(out, benchService(s))
				} else {
					out = append(out, translate.ClusterName(benchService(s), "stable"), translate.ClusterName(benchService(s), "canary"))
				}
			}
			return out
		}
		svc := benchService(i % services)
		if typeURL == resource.RouteType {
			return []string{svc}
		}
		return []string{translate.ClusterName(svc, "stable")}
	}
}

func BenchmarkCacheWeightChange(b *testing.B) {
	alt := func(w *benchWorld, on bool) (types.Resource, types.Resource) {
		if on {
			return w.routeAlt, w.endpoints[0]
		}
		return w.routes[0], w.endpoints[0]
	}
	benchShapes(b, resource.RouteType, alt)
}

func BenchmarkCacheEndpointChange(b *testing.B) {
	alt := func(w *benchWorld, on bool) (types.Resource, types.Resource) {
		if on {
			return w.routes[0], w.claAlt
		}
		return w.routes[0], w.endpoints[0]
	}
	benchShapes(b, resource.EndpointType, alt)
}

// benchShapes runs every cache on every shape: single-name and wildcard watches at 1,
// 100 and 1,000 services (100 single-name clients spread over the services, 10
// wildcard clients), and 100 sidecars at 1,000 services.
func benchShapes(b *testing.B, typeURL string, alt func(*benchWorld, bool) (types.Resource, types.Resource)) {
	type shape struct {
		name              string
		services, clients int
	}
	var shapes []shape
	for _, n := range []int{1, 100, 1000} {
		shapes = append(shapes, shape{"single", n, 100}, shape{"wildcard", n, 10})
	}
	shapes = append(shapes, shape{"sidecar", 1000, 100})
	for _, sh := range shapes {
		for _, c := range benchCaches() {
			b.Run(fmt.Sprintf("%s/services=%d/clients=%d/%s", sh.name, sh.services, sh.clients, c.name), func(b *testing.B) {
				runCacheBench(b, c.new, sh.services, typeURL, sh.clients, benchNames(typeURL, sh.name, sh.services), alt)
			})
		}
	}
}
