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
// assignment), among benchServices services, pushed to N clients. Each change is
// published the way the cache is meant to be fed, and every response a client receives
// is turned into the DiscoveryResponse the server would send (go-control-plane
// marshals there). Two client shapes: "sidecar" clients watch every service's routes or
// load assignments by name (an Envoy sidecar routing to every service), "proxyless"
// clients watch one service each (a gRPC client of one target).
//
//	go test ./xds -run '^$' -bench BenchmarkCache -benchmem
const benchServices = 1000

// benchWorld is the resources of benchServices services, two versions each.
type benchWorld struct {
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

func newBenchWorld() *benchWorld {
	w := &benchWorld{}
	for i := range benchServices {
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
	ch  chan cachev3.Response
}

func (cl *benchClient) watch(b *testing.B, c cachev3.ConfigWatcher) {
	if _, err := c.CreateWatch(cl.req, cl.sub, cl.ch); err != nil {
		b.Fatal(err)
	}
}

// consume turns a response into the DiscoveryResponse the server would send, records
// what it returned and opens the next watch, as the server does on the ACK. It returns
// the number of resources sent.
func (cl *benchClient) consume(b *testing.B, c cachev3.ConfigWatcher, r cachev3.Response) int {
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
	cl.watch(b, c)
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
		{"octoroll", func() benchCache { return ownCache{NewCache()} }},
		{"octoroll-apply", func() benchCache { return &ownApplyCache{Cache: NewCache()} }},
		{"snapshot", func() benchCache { return &snapCache{SnapshotCache: cachev3.NewSnapshotCache(false, oneNode{}, nil)} }},
		{"linear+mux", func() benchCache { return newLinearCache() }},
	}
}

// runCacheBench measures one change (toggled between two values) of the type typeURL
// pushed to clients watching names(i) of it. A change reaches the clients that watch
// service 0; each op waits for all of them.
func runCacheBench(b *testing.B, newCache func() benchCache, typeURL string, clients int, names func(i int) []string, alt func(w *benchWorld, on bool) (route, cla types.Resource)) {
	w := newBenchWorld()
	c := newCache()
	route, cla := alt(w, false)
	c.publish(b, w, route, cla)
	cls := make([]*benchClient, clients)
	affected := 0
	for i := range cls {
		n := names(i)
		cl := &benchClient{
			sub: streamv3.NewSotwSubscription(n, true),
			req: &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: fmt.Sprint("client-", i)}, TypeUrl: typeURL, ResourceNames: n},
			ch:  make(chan cachev3.Response, 1),
		}
		cl.watch(b, c)
		select {
		case r := <-cl.ch:
			cl.consume(b, c, r)
		case <-time.After(10 * time.Second):
			b.Fatalf("client %d: no initial response", i)
		}
		cls[i] = cl
		if names(i)[0] == nameOfService0(typeURL) || len(n) > 1 {
			affected++
		}
	}
	var pushes, sent int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		route, cla := alt(w, i%2 == 0)
		c.publish(b, w, route, cla)
		got := 0
		deadline := time.After(10 * time.Second)
		for got < affected {
			for _, cl := range cls {
				select {
				case r := <-cl.ch:
					sent += cl.consume(b, c, r)
					got++
					pushes++
				default:
				}
			}
			if got < affected {
				select {
				case <-deadline:
					b.Fatalf("op %d: %d of %d clients answered", i, got, affected)
				default:
				}
			}
		}
	}
	b.StopTimer()
	// Responses to clients that did not need one (the snapshot cache answers every
	// watcher of a type whose version changed) arrive too; count them.
	for _, cl := range cls {
		select {
		case r := <-cl.ch:
			sent += cl.consume(b, c, r)
			pushes++
		default:
		}
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

func benchNames(typeURL string, sidecar bool) func(i int) []string {
	return func(i int) []string {
		if sidecar {
			var out []string
			for s := range benchServices {
				if typeURL == resource.RouteType {
					out = append(out, benchService(s))
				} else {
					out = append(out, translate.ClusterName(benchService(s), "stable"), translate.ClusterName(benchService(s), "canary"))
				}
			}
			return out
		}
		svc := benchService(i % benchServices)
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

func benchShapes(b *testing.B, typeURL string, alt func(*benchWorld, bool) (types.Resource, types.Resource)) {
	for _, shape := range []struct {
		name    string
		sidecar bool
		clients []int
	}{
		{"sidecar", true, []int{10, 100}},
		{"proxyless", false, []int{100, 1000}},
	} {
		for _, n := range shape.clients {
			for _, c := range benchCaches() {
				b.Run(fmt.Sprintf("%s/clients=%d/%s", shape.name, n, c.name), func(b *testing.B) {
					runCacheBench(b, c.new, typeURL, n, benchNames(typeURL, shape.sidecar), alt)
				})
			}
		}
	}
}
