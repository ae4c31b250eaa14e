package translate

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/octoacme/octoroll/model"
)

// validator is implemented by every generated Envoy message (protoc-gen-validate).
type validator interface{ ValidateAll() error }

// Check reports every problem in r that Envoy or gRPC-Go would reject, or that would leave
// a reference dangling, joined with errors.Join; each error names the resource and field.
// The server runs it before publishing anything.
//
// It runs each resource's ValidateAll() and then octoroll's own checks, because
// ValidateAll accepts configurations gRPC-Go rejects (all weights 0, no router filter),
// does not look inside an api_listener, and cachev3.Snapshot.Consistent does not follow
// api_listener references:
//   - every HTTP connection manager, including the one packed in an api_listener, passes
//     ValidateAll, uses RDS over ADS (or self) with a route name that exists, and ends
//     with the router filter, with no other router before it and unique filter names;
//     an api_listener's one has no xff_num_trusted_hops or original IP detection;
//   - every route has a path match and routes to a cluster or weighted clusters;
//     weighted_clusters is non-empty, has a weight above 0 and sums to
//     model.TotalWeight; every cluster a route names exists; header regexes compile;
//   - every cluster is EDS over ADS (or self) with a load-balancing policy gRPC-Go
//     supports, and has a ClusterLoadAssignment; outlier percentages are at most 100;
//   - every locality has an ID and a weight above 0, endpoints are IP socket addresses
//     with a port, with no duplicate address in a ClusterLoadAssignment;
//   - no two resources of a type share a name, no two TCP listeners share an address,
//     every route configuration and ClusterLoadAssignment is referenced.
//
// These reference rules are stricter than go-control-plane's Snapshot.Consistent (the
// package's tests assert both on every translation); Check does not build a snapshot
// itself, so that translation does not depend on go-control-plane's server-side cache
// (gRPC, net/http).
func Check(r Resources) error {
	c := checker{
		routes:    map[string]bool{},
		clusters:  map[string]bool{},
		endpoints: map[string]bool{},
		routeRefs: map[string]bool{},
		edsRefs:   map[string]bool{},
	}
	for _, rc := range r.Routes {
		if c.routes[rc.GetName()] {
			c.bad("route %q: duplicate name", rc.GetName())
		}
		c.routes[rc.GetName()] = true
	}
	for _, cl := range r.Clusters {
		if c.clusters[cl.GetName()] {
			c.bad("cluster %q: duplicate name", cl.GetName())
		}
		c.clusters[cl.GetName()] = true
	}
	for _, e := range r.Endpoints {
		if c.endpoints[e.GetClusterName()] {
			c.bad("endpoints %q: duplicate cluster_name", e.GetClusterName())
		}
		c.endpoints[e.GetClusterName()] = true
	}

	listeners := map[string]bool{}
	addresses := map[string]string{}
	for _, l := range r.Listeners {
		where := fmt.Sprintf("listener %q", l.GetName())
		if listeners[l.GetName()] {
			c.bad("%s: duplicate name", where)
		}
		listeners[l.GetName()] = true
		c.validate(where, l)
		if sa := l.GetAddress().GetSocketAddress(); sa != nil {
			addr := sa.GetAddress() + ":" + strconv.FormatUint(uint64(sa.GetPortValue()), 10)
			if other, ok := addresses[addr]; ok {
				c.bad("%s: address %s already used by listener %q", where, addr, other)
			}
			addresses[addr] = l.GetName()
		}
		c.listener(where, l)
	}
	for _, rc := range r.Routes {
		c.route(rc)
	}
	for _, cl := range r.Clusters {
		c.cluster(cl)
	}
	for _, e := range r.Endpoints {
		where := fmt.Sprintf("endpoints %q", e.GetClusterName())
		c.validate(where, e)
		if !c.edsRefs[e.GetClusterName()] {
			c.bad("%s: not referenced by any EDS cluster", where)
		}
		seenLoc := map[string]bool{}
		seenAddr := map[string]bool{}
		for i, loc := range e.GetEndpoints() {
			lwhere := fmt.Sprintf("%s: endpoints[%d]", where, i)
			if loc.GetLocality() == nil {
				c.bad("%s: no locality (gRPC-Go rejects it)", lwhere)
			}
			if loc.GetLoadBalancingWeight().GetValue() == 0 {
				c.bad("%s: load_balancing_weight is 0 or unset (gRPC-Go ignores the locality)", lwhere)
			}
			key := fmt.Sprintf("%d/%s/%s/%s", loc.GetPriority(), loc.GetLocality().GetRegion(), loc.GetLocality().GetZone(), loc.GetLocality().GetSubZone())
			if seenLoc[key] {
				c.bad("%s: duplicate locality at priority %d", lwhere, loc.GetPriority())
			}
			seenLoc[key] = true
			for j, lbe := range loc.GetLbEndpoints() {
				ewhere := fmt.Sprintf("%s.lb_endpoints[%d]", lwhere, j)
				if w := lbe.GetLoadBalancingWeight(); w != nil && w.GetValue() == 0 {
					c.bad("%s: load_balancing_weight is 0 (gRPC-Go rejects it)", ewhere)
				}
				sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
				if sa == nil {
					c.bad("%s: no socket address", ewhere)
					continue
				}
				if _, err := netip.ParseAddr(sa.GetAddress()); err != nil {
					c.bad("%s: address %q is not an IP address", ewhere, sa.GetAddress())
				}
				if sa.GetPortValue() == 0 {
					c.bad("%s: no port", ewhere)
				}
				addr := sa.GetAddress() + ":" + strconv.FormatUint(uint64(sa.GetPortValue()), 10)
				if seenAddr[addr] {
					c.bad("%s: duplicate address %s (gRPC-Go rejects it)", ewhere, addr)
				}
				seenAddr[addr] = true
			}
		}
	}
	for _, rc := range r.Routes {
		if !c.routeRefs[rc.GetName()] {
			c.bad("route %q: not referenced by any listener", rc.GetName())
		}
	}
	return errors.Join(c.errs...)
}

type checker struct {
	errs []error
	// names of the resources present, by type
	routes, clusters, endpoints map[string]bool
	// references: route names from listeners, EDS names from clusters
	routeRefs, edsRefs map[string]bool
}

func (c *checker) bad(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

func (c *checker) validate(where string, m validator) {
	if err := m.ValidateAll(); err != nil {
		c.bad("%s: %w", where, err)
	}
}

func (c *checker) listener(where string, l *listenerv3.Listener) {
	if api := l.GetApiListener(); api != nil {
		hcm, err := unpackHCM(api.GetApiListener())
		if err != nil {
			c.bad("%s: api_listener: %v", where, err)
			return
		}
		c.hcm(where+": api_listener", hcm, true)
		return
	}
	if l.GetAddress().GetSocketAddress() == nil {
		c.bad("%s: no socket address", where)
	}
	found := false
	chains := l.GetFilterChains()
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains, l.GetDefaultFilterChain())
	}
	for i, fc := range chains {
		for j, f := range fc.GetFilters() {
			fwhere := fmt.Sprintf("%s: filter_chains[%d].filters[%d] %q", where, i, j, f.GetName())
			isHCM := f.GetTypedConfig().MessageIs(&hcmv3.HttpConnectionManager{})
			if !isHCM {
				if f.GetName() == wellknown.HTTPConnectionManager {
					c.bad("%s: typed_config is %q, not an HTTP connection manager", fwhere, f.GetTypedConfig().GetTypeUrl())
				}
				continue
			}
			found = true
			hcm, err := unpackHCM(f.GetTypedConfig())
			if err != nil {
				c.bad("%s: %v", fwhere, err)
				continue
			}
			c.hcm(fwhere, hcm, false)
		}
	}
	if !found {
		c.bad("%s: no HTTP connection manager", where)
	}
}

func unpackHCM(a *anypb.Any) (*hcmv3.HttpConnectionManager, error) {
	if a == nil {
		return nil, errors.New("empty")
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if !a.MessageIs(hcm) {
		return nil, fmt.Errorf("type %q is not an HTTP connection manager", a.GetTypeUrl())
	}
	if err := a.UnmarshalTo(hcm); err != nil {
		return nil, fmt.Errorf("unpack HTTP connection manager: %w", err)
	}
	return hcm, nil
}

func (c *checker) hcm(where string, hcm *hcmv3.HttpConnectionManager, api bool) {
	c.validate(where, hcm)
	if api {
		if hcm.GetXffNumTrustedHops() != 0 {
			c.bad("%s: xff_num_trusted_hops must be 0 (gRPC-Go rejects it)", where)
		}
		if len(hcm.GetOriginalIpDetectionExtensions()) != 0 {
			c.bad("%s: original_ip_detection_extensions must be empty (gRPC-Go rejects it)", where)
		}
	}
	rds := hcm.GetRds()
	switch {
	case rds == nil:
		c.bad("%s: does not use RDS", where)
	case rds.GetConfigSource().GetAds() == nil && rds.GetConfigSource().GetSelf() == nil:
		c.bad("%s: rds.config_source is not ads or self (gRPC-Go rejects it)", where)
	case rds.GetRouteConfigName() == "":
		c.bad("%s: rds.route_config_name is empty", where)
	case !c.routes[rds.GetRouteConfigName()]:
		c.bad("%s: route %q does not exist", where, rds.GetRouteConfigName())
	}
	if rds != nil {
		c.routeRefs[rds.GetRouteConfigName()] = true
	}
	filters := hcm.GetHttpFilters()
	if len(filters) == 0 {
		c.bad("%s: no http_filters; the router filter must be last", where)
		return
	}
	seen := map[string]bool{}
	for i, f := range filters {
		if f.GetName() == "" {
			c.bad("%s: http_filters[%d]: no name", where, i)
		}
		if seen[f.GetName()] {
			c.bad("%s: http_filters[%d]: duplicate name %q", where, i, f.GetName())
		}
		seen[f.GetName()] = true
		if isRouter(f) && i != len(filters)-1 {
			c.bad("%s: http_filters[%d]: router filter is not last", where, i)
		}
	}
	last := filters[len(filters)-1]
	switch {
	case !isRouter(last):
		c.bad("%s: last http filter %q is not the router", where, last.GetName())
	case last.GetTypedConfig() == nil:
		c.bad("%s: router filter has no typed_config (gRPC-Go rejects it)", where)
	}
}

func isRouter(f *hcmv3.HttpFilter) bool {
	if tc := f.GetTypedConfig(); tc != nil {
		return tc.MessageIs(&routerv3.Router{})
	}
	return f.GetName() == wellknown.Router
}

func (c *checker) route(rc *routev3.RouteConfiguration) {
	where := fmt.Sprintf("route %q", rc.GetName())
	c.validate(where, rc)
	domains := map[string]bool{}
	for i, vh := range rc.GetVirtualHosts() {
		vwhere := fmt.Sprintf("%s: virtual_hosts[%d] %q", where, i, vh.GetName())
		for _, d := range vh.GetDomains() {
			if domains[d] {
				c.bad("%s: duplicate domain %q", vwhere, d)
			}
			domains[d] = true
		}
		if len(vh.GetRoutes()) == 0 {
			c.bad("%s: no routes", vwhere)
		}
		for j, rt := range vh.GetRoutes() {
			c.routeEntry(fmt.Sprintf("%s.routes[%d] %q", vwhere, j, rt.GetName()), rt)
		}
	}
}

func (c *checker) routeEntry(where string, rt *routev3.Route) {
	if rt.GetMatch().GetPathSpecifier() == nil {
		c.bad("%s: no path match (gRPC-Go rejects it)", where)
	}
	for k, h := range rt.GetMatch().GetHeaders() {
		if re := h.GetSafeRegexMatch().GetRegex(); re != "" {
			if _, err := regexp.Compile(re); err != nil {
				c.bad("%s: headers[%d]: regex %q: %v", where, k, re, err)
			}
		}
		if h.GetName() != strings.ToLower(h.GetName()) {
			c.bad("%s: headers[%d]: name %q is not lower case", where, k, h.GetName())
		}
	}
	action := rt.GetRoute()
	if action == nil {
		c.bad("%s: action is not a route", where)
		return
	}
	switch spec := action.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		c.clusterRef(where, spec.Cluster)
	case *routev3.RouteAction_WeightedClusters:
		wc := spec.WeightedClusters
		if len(wc.GetClusters()) == 0 {
			c.bad("%s: weighted_clusters is empty", where)
			return
		}
		var sum uint64
		for _, cw := range wc.GetClusters() {
			sum += uint64(cw.GetWeight().GetValue())
			c.clusterRef(where, cw.GetName())
		}
		switch {
		case sum == 0:
			c.bad("%s: weighted_clusters: every weight is 0 (gRPC-Go rejects it)", where)
		case sum != model.TotalWeight:
			c.bad("%s: weighted_clusters: weights sum to %d, want %d", where, sum, model.TotalWeight)
		}
		//nolint:staticcheck // total_weight is deprecated; a stale value must still match.
		if tw := wc.GetTotalWeight(); tw != nil && uint64(tw.GetValue()) != sum {
			c.bad("%s: weighted_clusters: total_weight %d differs from the sum %d", where, tw.GetValue(), sum)
		}
	default:
		c.bad("%s: cluster specifier %T is not supported", where, spec)
	}
}

func (c *checker) clusterRef(where, name string) {
	if !c.clusters[name] {
		c.bad("%s: cluster %q does not exist", where, name)
	}
}

func (c *checker) cluster(cl *clusterv3.Cluster) {
	where := fmt.Sprintf("cluster %q", cl.GetName())
	c.validate(where, cl)
	if cl.GetType() != clusterv3.Cluster_EDS {
		c.bad("%s: discovery type %v, want EDS", where, cl.GetType())
		return
	}
	eds := cl.GetEdsClusterConfig()
	if eds.GetEdsConfig().GetAds() == nil && eds.GetEdsConfig().GetSelf() == nil {
		c.bad("%s: eds_cluster_config.eds_config is not ads or self (gRPC-Go rejects it)", where)
	}
	name := eds.GetServiceName()
	if name == "" {
		name = cl.GetName()
	}
	c.edsRefs[name] = true
	if !c.endpoints[name] {
		c.bad("%s: no ClusterLoadAssignment %q", where, name)
	}
	switch cl.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_LEAST_REQUEST:
	case clusterv3.Cluster_RING_HASH:
		if cl.GetRingHashLbConfig().GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			c.bad("%s: ring hash function must be XX_HASH (gRPC-Go rejects others)", where)
		}
	default:
		c.bad("%s: lb_policy %v is not supported by gRPC-Go", where, cl.GetLbPolicy())
	}
	if len(cl.GetTransportSocketMatches()) != 0 {
		c.bad("%s: transport_socket_matches is not supported by gRPC-Go", where)
	}
	if od := cl.GetOutlierDetection(); od != nil {
		for _, p := range []struct {
			field string
			value uint32
		}{
			{"max_ejection_percent", od.GetMaxEjectionPercent().GetValue()},
			{"enforcing_success_rate", od.GetEnforcingSuccessRate().GetValue()},
			{"failure_percentage_threshold", od.GetFailurePercentageThreshold().GetValue()},
			{"enforcing_failure_percentage", od.GetEnforcingFailurePercentage().GetValue()},
		} {
			if p.value > 100 {
				c.bad("%s: outlier_detection.%s %d exceeds 100 (gRPC-Go rejects it)", where, p.field, p.value)
			}
		}
	}
	for i, hc := range cl.GetHealthChecks() {
		if hc.GetHealthChecker() == nil {
			c.bad("%s: health_checks[%d]: no health checker", where, i)
		}
	}
}
