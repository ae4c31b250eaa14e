// Package translate turns the desired routing state of services (Desired, its IR)
// into Envoy v3 resources (Resources) and checks them against what Envoy and gRPC-Go
// accept (Check). It owns the naming scheme of every generated resource (ClusterName,
// RouteName, ...).
//
// Translation is pure: no I/O, no clock, no logging, no goroutines. Endpoint hosts must
// already be IP addresses: DNS resolution is I/O and happens before translation, in the
// publication path. Each IR type has a Validate method built from model's rules, the
// same functions the engine's spec validation (controller) and the catalog call, so
// that what is accepted at the door translates.
//
// It is a top-level package rather than part of xds because serving (xds: cache, ADS,
// tracker) and translating change for different reasons and have different
// dependencies: publication and validation need translation without a gRPC server.
//
// Import rule (asserted by internal/deps): translate imports model, the standard
// library's pure packages and go-control-plane's message types (and its resource type
// names) only: not controller, catalog, xds, store or runner, and nothing that does
// I/O (zap, fsnotify, yaml, net/http, os/exec, gRPC, bbolt, database/sql). Package net
// comes in only through the generated Envoy messages' validation rules, which use it
// to parse IP addresses.
package translate

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/octoacme/octoroll/model"
)

// ConnectTimeout is the upstream connect timeout of every generated cluster. Fields the
// catalog leaves empty take model.Default* (the defaults Parse applies), so a Service
// built in code translates like a loaded one.
const ConnectTimeout = 5 * time.Second

// Resources are the Envoy resources of one or more services, each slice sorted by name.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
}

// ByType returns r keyed by go-control-plane resource type URL, the shape
// cachev3.NewSnapshot takes.
func (r Resources) ByType() map[resource.Type][]types.Resource {
	out := map[resource.Type][]types.Resource{
		resource.ListenerType: make([]types.Resource, 0, len(r.Listeners)),
		resource.RouteType:    make([]types.Resource, 0, len(r.Routes)),
		resource.ClusterType:  make([]types.Resource, 0, len(r.Clusters)),
		resource.EndpointType: make([]types.Resource, 0, len(r.Endpoints)),
	}
	for _, l := range r.Listeners {
		out[resource.ListenerType] = append(out[resource.ListenerType], l)
	}
	for _, rc := range r.Routes {
		out[resource.RouteType] = append(out[resource.RouteType], rc)
	}
	for _, c := range r.Clusters {
		out[resource.ClusterType] = append(out[resource.ClusterType], c)
	}
	for _, e := range r.Endpoints {
		out[resource.EndpointType] = append(out[resource.EndpointType], e)
	}
	return out
}

// Versions returns a content hash per resource type: equal resources give equal
// versions, so a weight-only change changes the route version and nothing else.
func (r Resources) Versions() (listeners, routes, clusters, endpoints string) {
	return hashAll(r.Listeners, (*listenerv3.Listener).GetName),
		hashAll(r.Routes, (*routev3.RouteConfiguration).GetName),
		hashAll(r.Clusters, (*clusterv3.Cluster).GetName),
		hashAll(r.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
}

// RouteVersion returns the content hash of the RouteConfiguration of service, the unit a
// rollout waits on being ACKed, or "" when r has no route for service.
func (r Resources) RouteVersion(service string) string {
	name := RouteName(service)
	for _, rc := range r.Routes {
		if rc.GetName() == name {
			return hashAll([]*routev3.RouteConfiguration{rc}, (*routev3.RouteConfiguration).GetName)
		}
	}
	return ""
}

// hashAll hashes the deterministic encodings of msgs in name order.
func hashAll[M proto.Message](msgs []M, name func(M) string) string {
	sorted := slices.Clone(msgs)
	slices.SortFunc(sorted, func(a, b M) int { return cmp.Compare(name(a), name(b)) })
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, m := range sorted {
		b, err := opts.Marshal(m)
		if err != nil {
			// Only a message that is not valid UTF-8 or exceeds 2 GiB fails to marshal;
			// hash its text form so that the version still reflects the content.
			b = []byte(fmt.Sprint(m))
		}
		fmt.Fprintf(h, "%d:%s:%d:", len(name(m)), name(m), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Translate builds the resources of every service in desired. It is pure: the same input
// gives the same, sorted output. Every returned resource passes Validate() and Check.
func Translate(desired []Desired) (Resources, error) {
	out, err := translateEach(desired, build)
	if err != nil {
		return Resources{}, err
	}
	if err := Check(out); err != nil {
		return Resources{}, fmt.Errorf("check resources: %w", err)
	}
	return out, nil
}

// Memo records the translation of each service of one successful call so that the next
// call reuses it for the services whose Desired did not change. The zero value is an
// empty record.
type Memo struct{ byService map[string]translated }

// Translate is the package's Translate for a caller that translates the same services
// again and again: it returns the same resources, without building or checking again
// the services whose Desired equals the one m recorded, and the record for the next
// call. On error it returns m's zero value: nothing is recorded.
func (m Memo) Translate(desired []Desired) (Resources, Memo, error) {
	res, next, err := translateReusing(desired, m.byService)
	if err != nil {
		return Resources{}, Memo{}, err
	}
	return res, Memo{byService: next}, nil
}

// translated is the translation of one service, kept to be reused while its Desired does
// not change.
type translated struct {
	key string
	res Resources
}

// desiredKey identifies the content of d: Go syntax of plain data, with map keys sorted.
func desiredKey(d Desired) string { return fmt.Sprintf("%#v", d) }

// translateReusing is Translate for a caller that translates the same services again and
// again: a service whose Desired equals the one recorded in prev (by service name) keeps
// its resources, the same values, without being built or checked again. It returns the
// record for the next call. The result equals Translate's: a service's resources
// reference only that service's resources, so checking each service's resources (as
// TranslateService does) checks them all, and unique service names and ports make the
// generated names and listener addresses unique.
func translateReusing(desired []Desired, prev map[string]translated) (Resources, map[string]translated, error) {
	next := make(map[string]translated, len(desired))
	var errs []error
	out, err := translateEach(desired, func(d Desired) Resources {
		key := desiredKey(d)
		if t, ok := prev[d.Service.Name]; ok && t.key == key {
			next[d.Service.Name] = t
			return t.res
		}
		r := build(d)
		r.sort()
		if err := Check(r); err != nil {
			errs = append(errs, fmt.Errorf("service %q: check resources: %w", d.Service.Name, err))
		}
		next[d.Service.Name] = translated{key: key, res: r}
		return r
	})
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		return Resources{}, nil, err
	}
	return out, next, nil
}

// translateEach validates desired and gathers the resources build returns for each
// service, sorted by name.
func translateEach(desired []Desired, build func(Desired) Resources) (Resources, error) {
	var errs []error
	names := map[string]bool{}
	ports := map[uint32]string{}
	var out Resources
	for i, d := range desired {
		name := d.Service.Name
		if err := d.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("service %q (desired[%d]): %w", name, i, err))
			continue
		}
		if names[name] {
			errs = append(errs, fmt.Errorf("service %q (desired[%d]): duplicate service name", name, i))
			continue
		}
		names[name] = true
		if other, ok := ports[d.Service.Port]; ok {
			errs = append(errs, fmt.Errorf("service %q (desired[%d]): port %d already used by service %q", name, i, d.Service.Port, other))
			continue
		}
		ports[d.Service.Port] = name
		r := build(d)
		out.Listeners = append(out.Listeners, r.Listeners...)
		out.Routes = append(out.Routes, r.Routes...)
		out.Clusters = append(out.Clusters, r.Clusters...)
		out.Endpoints = append(out.Endpoints, r.Endpoints...)
	}
	if len(errs) > 0 {
		return Resources{}, errors.Join(errs...)
	}
	out.sort()
	return out, nil
}

// TranslateService builds the resources of one service; see Translate.
func TranslateService(d Desired) (Resources, error) {
	if err := d.Validate(); err != nil {
		return Resources{}, fmt.Errorf("service %q: %w", d.Service.Name, err)
	}
	r := build(d)
	r.sort()
	if err := Check(r); err != nil {
		return Resources{}, fmt.Errorf("service %q: check resources: %w", d.Service.Name, err)
	}
	return r, nil
}

func (r *Resources) sort() {
	slices.SortFunc(r.Listeners, func(a, b *listenerv3.Listener) int { return cmp.Compare(a.GetName(), b.GetName()) })
	slices.SortFunc(r.Routes, func(a, b *routev3.RouteConfiguration) int { return cmp.Compare(a.GetName(), b.GetName()) })
	slices.SortFunc(r.Clusters, func(a, b *clusterv3.Cluster) int { return cmp.Compare(a.GetName(), b.GetName()) })
	slices.SortFunc(r.Endpoints, func(a, b *endpointv3.ClusterLoadAssignment) int {
		return cmp.Compare(a.GetClusterName(), b.GetClusterName())
	})
}

// build translates a valid d.
func build(d Desired) Resources {
	svc := d.Service
	versions := versionNames(svc)
	r := Resources{
		Listeners: []*listenerv3.Listener{sidecarListener(svc), apiListener(svc)},
		Routes:    []*routev3.RouteConfiguration{routeConfig(d, versions)},
	}
	for _, v := range svc.Versions {
		r.Clusters = append(r.Clusters, edsCluster(svc, v.Name))
		r.Endpoints = append(r.Endpoints, loadAssignment(svc, v, d.Unhealthy[v.Name]))
	}
	return r
}

// versionNames returns the version names of svc, sorted.
func versionNames(svc model.Service) []string {
	names := make([]string, 0, len(svc.Versions))
	for _, v := range svc.Versions {
		names = append(names, v.Name)
	}
	slices.Sort(names)
	return names
}

// adsSource is the config source of every RDS and EDS reference: the same ADS stream the
// proxy fetched the referencing resource on. gRPC-Go accepts only ads or self here.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// mustAny packs m deterministically. Packing a generated message cannot fail.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(fmt.Sprintf("xds: pack %T: %v", m, err))
	}
	return a
}

// httpConnectionManager routes through RDS over ADS with the router as the only (and so
// last, as gRPC-Go requires) HTTP filter.
func httpConnectionManager(svc model.Service) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: svc.Name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: RouteName(svc.Name),
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       wellknown.Router,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
}

// sidecarListener is the TCP listener an Envoy sidecar opens for svc on 0.0.0.0:Port.
func sidecarListener(svc model.Service) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: SidecarListenerName(svc.Name),
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       "0.0.0.0",
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: svc.Port},
		}}},
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(httpConnectionManager(svc))},
			}},
		}},
	}
}

// apiListener is the Listener a proxyless gRPC client dialing xds:///NAME asks for.
func apiListener(svc model.Service) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:        APIListenerName(svc.Name),
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(httpConnectionManager(svc))},
	}
}

// domains are the authorities the virtual host of svc matches: every declared domain and
// the service name, each bare (gRPC matches the target xds:///NAME against "NAME") and
// with the sidecar port (Envoy matches the Host header, which carries the port when the
// client dialed NAME:PORT). Envoy rejects duplicates, so they are removed.
func domains(svc model.Service) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	bases := append([]string{svc.Name}, svc.Domains...)
	for _, b := range bases {
		add(b)
		add(b + ":" + strconv.FormatUint(uint64(svc.Port), 10))
	}
	return out
}

// CookieRegex returns the RE2 regex, matched against the whole "cookie" request header,
// that selects requests carrying the cookie name=value. The header is a list of
// name=value pairs separated by "; " (RFC 6265); a proxy that joins several cookie
// headers uses "; " (Envoy, HTTP/2 reassembly) or "," (gRPC metadata), so both
// separators are accepted:
//
//	(?:.*[;,]\s*)?NAME=VALUE(?:\s*[;,].*)?
//
// with NAME and VALUE quoted. Envoy and gRPC both require the regex to match the whole
// value, so "xname=VALUE" or "NAME=VALUEx" do not match.
func CookieRegex(name, value string) string {
	return `(?:.*[;,]\s*)?` + regexp.QuoteMeta(name) + "=" + regexp.QuoteMeta(value) + `(?:\s*[;,].*)?`
}

func headerExact(name, value string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name: name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value},
		}},
	}
}

func routeToCluster(name string, headers []*routev3.HeaderMatcher, cluster string) *routev3.Route {
	return &routev3.Route{
		Name: name,
		Match: &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers:       headers,
		},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
		}},
	}
}

// routeConfig has one virtual host whose routes are, in order: the flag matches of d,
// one pin route per version (see PinHeader), and the weighted split over every version.
func routeConfig(d Desired, versions []string) *routev3.RouteConfiguration {
	svc := d.Service
	var routes []*routev3.Route
	for i, m := range d.Matches {
		var h *routev3.HeaderMatcher
		if m.Cookie != "" {
			h = &routev3.HeaderMatcher{
				Name: "cookie",
				HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{
					Regex: CookieRegex(m.Cookie, m.Value),
				}},
			}
		} else {
			h = headerExact(strings.ToLower(m.Header), m.Value)
		}
		routes = append(routes, routeToCluster("match-"+strconv.Itoa(i), []*routev3.HeaderMatcher{h}, ClusterName(svc.Name, m.Version)))
	}
	for _, v := range versions {
		routes = append(routes, routeToCluster("pin-"+v, []*routev3.HeaderMatcher{headerExact(PinHeader, v)}, ClusterName(svc.Name, v)))
	}
	// Every version is listed, at weight 0 too, and the weights sum to TotalWeight. The
	// deprecated total_weight field is left unset: Envoy and gRPC use the sum.
	split := &routev3.WeightedCluster{}
	for _, v := range versions {
		split.Clusters = append(split.Clusters, &routev3.WeightedCluster_ClusterWeight{
			Name:   ClusterName(svc.Name, v),
			Weight: wrapperspb.UInt32(d.Weights[v]),
		})
	}
	routes = append(routes, &routev3.Route{
		Name:  "split",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: split},
		}},
	})
	return &routev3.RouteConfiguration{
		Name: RouteName(svc.Name),
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    svc.Name,
			Domains: domains(svc),
			Routes:  routes,
		}},
	}
}

func durationOr(d model.Duration, def time.Duration) *durationpb.Duration {
	if d <= 0 {
		return durationpb.New(def)
	}
	return durationpb.New(d.D())
}

func uint32Or(v, def uint32) *wrapperspb.UInt32Value {
	if v == 0 {
		return wrapperspb.UInt32(def)
	}
	return wrapperspb.UInt32(v)
}

// healthCheck is Envoy's active health check for svc. gRPC-Go ignores health_checks.
func healthCheck(svc model.Service) *corev3.HealthCheck {
	hc := svc.HealthCheck
	out := &corev3.HealthCheck{
		Timeout:            durationOr(hc.Timeout, model.DefaultHealthCheckTimeout),
		Interval:           durationOr(hc.Interval, model.DefaultHealthCheckInterval),
		HealthyThreshold:   uint32Or(hc.HealthyThreshold, model.DefaultHealthyThreshold),
		UnhealthyThreshold: uint32Or(hc.UnhealthyThreshold, model.DefaultUnhealthyThreshold),
	}
	switch cmp.Or(hc.Protocol, model.DefaultHealthCheckProtocol) {
	case "http":
		out.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
			Path:             cmp.Or(hc.Path, model.DefaultHealthCheckPath),
			ExpectedStatuses: expectedStatuses(hc.ExpectedStatuses),
		}}
	case "grpc":
		// An empty service name asks for the health of the whole server.
		out.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{
			ServiceName: hc.GRPCService,
		}}
	default:
		// No payload: the check passes when the connection is established.
		out.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}}
	}
	return out
}

// expectedStatuses converts inclusive status ranges to Envoy's half-open [start, end).
// The default range is always written out: Envoy's own default is 200 alone, octoroll's
// (and its prober's) 200-299. Desired.Validate has rejected malformed ranges.
func expectedStatuses(rs []model.StatusRange) []*typev3.Int64Range {
	if len(rs) == 0 {
		rs = []model.StatusRange{model.DefaultExpectedStatuses}
	}
	out := make([]*typev3.Int64Range, 0, len(rs))
	for _, r := range rs {
		lo, hi, err := r.Bounds()
		if err != nil {
			continue
		}
		out = append(out, &typev3.Int64Range{Start: int64(lo), End: int64(hi) + 1})
	}
	return out
}

// Envoy's documented defaults (envoy.config.cluster.v3.OutlierDetection) for the outlier
// detection fields the catalog does not configure. They are written out because not every
// xDS client applies the proto's defaults to an unset field: @grpc/grpc-js-xds 1.14 reads
// an unset success_rate_* field as undefined and its outlier detection crashes on its first
// sweep. Envoy and gRPC-Go behave the same with these values as with the fields unset.
const (
	envoyEnforcingConsecutive5xx                = 100
	envoyEnforcingSuccessRate                   = 100
	envoySuccessRateMinimumHosts                = 5
	envoySuccessRateRequestVolume               = 100
	envoySuccessRateStdevFactor                 = 1900 // thousandths: 1.9 standard deviations
	envoyConsecutiveGatewayFailure              = 5
	envoyEnforcingConsecutiveGatewayFailure     = 0
	envoyConsecutiveLocalOriginFailure          = 5
	envoyEnforcingConsecutiveLocalOriginFailure = 100
	envoyEnforcingLocalOriginSuccessRate        = 100
	envoyFailurePercentageThreshold             = 85
	envoyEnforcingFailurePercentage             = 0
	envoyEnforcingFailurePercentageLocalOrigin  = 0
	envoyFailurePercentageMinimumHosts          = 5
	envoyFailurePercentageRequestVolume         = 50
	// envoyMaxEjectionTime applies unless base_ejection_time is longer, in which case
	// Envoy uses base_ejection_time.
	envoyMaxEjectionTime = 300 * time.Second
)

// outlierDetection writes every field a client may read, the catalog's settings and
// Envoy's defaults for the rest (see envoyEnforcingSuccessRate and its neighbours).
func outlierDetection(svc model.Service) *clusterv3.OutlierDetection {
	o := svc.Outlier
	base := durationOr(o.BaseEjectionTime, model.DefaultBaseEjectionTime)
	maxEjection := envoyMaxEjectionTime
	if b := base.AsDuration(); b > maxEjection {
		maxEjection = b
	}
	return &clusterv3.OutlierDetection{
		Consecutive_5Xx:    uint32Or(o.Consecutive5xx, model.DefaultConsecutive5xx),
		Interval:           durationOr(o.Interval, model.DefaultOutlierInterval),
		BaseEjectionTime:   base,
		MaxEjectionPercent: uint32Or(o.MaxEjectionPercent, model.DefaultMaxEjectionPercent),

		EnforcingConsecutive_5Xx:               wrapperspb.UInt32(envoyEnforcingConsecutive5xx),
		EnforcingSuccessRate:                   wrapperspb.UInt32(envoyEnforcingSuccessRate),
		SuccessRateMinimumHosts:                wrapperspb.UInt32(envoySuccessRateMinimumHosts),
		SuccessRateRequestVolume:               wrapperspb.UInt32(envoySuccessRateRequestVolume),
		SuccessRateStdevFactor:                 wrapperspb.UInt32(envoySuccessRateStdevFactor),
		ConsecutiveGatewayFailure:              wrapperspb.UInt32(envoyConsecutiveGatewayFailure),
		EnforcingConsecutiveGatewayFailure:     wrapperspb.UInt32(envoyEnforcingConsecutiveGatewayFailure),
		SplitExternalLocalOriginErrors:         false,
		ConsecutiveLocalOriginFailure:          wrapperspb.UInt32(envoyConsecutiveLocalOriginFailure),
		EnforcingConsecutiveLocalOriginFailure: wrapperspb.UInt32(envoyEnforcingConsecutiveLocalOriginFailure),
		EnforcingLocalOriginSuccessRate:        wrapperspb.UInt32(envoyEnforcingLocalOriginSuccessRate),
		FailurePercentageThreshold:             wrapperspb.UInt32(envoyFailurePercentageThreshold),
		EnforcingFailurePercentage:             wrapperspb.UInt32(envoyEnforcingFailurePercentage),
		EnforcingFailurePercentageLocalOrigin:  wrapperspb.UInt32(envoyEnforcingFailurePercentageLocalOrigin),
		FailurePercentageMinimumHosts:          wrapperspb.UInt32(envoyFailurePercentageMinimumHosts),
		FailurePercentageRequestVolume:         wrapperspb.UInt32(envoyFailurePercentageRequestVolume),
		MaxEjectionTime:                        durationpb.New(maxEjection),
		MaxEjectionTimeJitter:                  durationpb.New(0),
		SuccessfulActiveHealthCheckUnejectHost: wrapperspb.Bool(true),
		AlwaysEjectOneHost:                     wrapperspb.Bool(false),
		DetectDegradedHosts:                    wrapperspb.Bool(false),
	}
}

// upstreamProtocolOptions makes the sidecar speak to the upstream in the protocol the
// downstream used: HTTP/2 for gRPC, HTTP/1.1 for plain HTTP. It also enables HTTP/2 on
// the cluster, which Envoy's gRPC health checker requires.
func upstreamProtocolOptions() map[string]*anypb.Any {
	return map[string]*anypb.Any{
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
				UseDownstreamProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
					HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		}),
	}
}

// edsCluster is the cluster of one version. Its endpoints come over EDS on the ADS stream
// under the cluster's own name (no service_name).
func edsCluster(svc model.Service, version string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 ClusterName(svc.Name, version),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:       durationpb.New(ConnectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		HealthChecks:         []*corev3.HealthCheck{healthCheck(svc)},
		OutlierDetection:     outlierDetection(svc),

		TypedExtensionProtocolOptions: upstreamProtocolOptions(),
	}
}

// loadAssignment has one locality (zone Version.Zone) of weight 1: gRPC-Go ignores
// localities of weight 0, and a single locality needs no other weight. Endpoint hosts are
// IP addresses (Desired.Validate requires it): Envoy rejects DNS names in EDS socket
// addresses, so names are resolved before translation (see ResolveEndpoints). The
// endpoints in unhealthy are marked UNHEALTHY; the others keep an unset status (which
// Envoy and gRPC-Go treat as healthy, and which leaves Envoy's own health checks in
// charge of them).
func loadAssignment(svc model.Service, v model.Version, unhealthy []string) *endpointv3.ClusterLoadAssignment {
	down := make(map[string]bool, len(unhealthy))
	for _, a := range unhealthy {
		down[a] = true
	}
	loc := &endpointv3.LocalityLbEndpoints{
		Locality:            &corev3.Locality{Zone: v.Zone},
		LoadBalancingWeight: wrapperspb.UInt32(1),
	}
	for _, ep := range v.Endpoints {
		lbe := &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Protocol:      corev3.SocketAddress_TCP,
					Address:       ep.Host,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: ep.Port},
				}}},
			}},
		}
		if down[ep.String()] {
			lbe.HealthStatus = corev3.HealthStatus_UNHEALTHY
		}
		loc.LbEndpoints = append(loc.LbEndpoints, lbe)
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: ClusterName(svc.Name, v.Name),
		Endpoints:   []*endpointv3.LocalityLbEndpoints{loc},
	}
}

// Validate checks d before translation. It reports every problem, each naming its field,
// joined with errors.Join. The rules on names, zones, endpoints, domains and flag
// matches are model's, the ones the catalog and the engine's spec validation apply.
func (d Desired) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	svc := d.Service
	if err := model.ValidateName(svc.Name); err != nil {
		bad("service.name", "%v", err)
	}
	if svc.Port == 0 || svc.Port > 65535 {
		bad("service.port", "%d is out of range 1-65535", svc.Port)
	}
	for i, dom := range svc.Domains {
		if err := model.ValidateDomain(dom); err != nil {
			bad(fmt.Sprintf("service.domains[%d]", i), "%v", err)
		}
	}
	versions := map[string]bool{}
	if len(svc.Versions) == 0 {
		bad("service.versions", "no versions")
	}
	for i, v := range svc.Versions {
		field := fmt.Sprintf("service.versions[%d]", i)
		if err := v.Validate(); err != nil {
			for _, e := range model.Unjoin(err) {
				errs = append(errs, fmt.Errorf("%s.%w", field, e))
			}
		}
		if versions[v.Name] {
			bad(field+".name", "duplicate version %q", v.Name)
		}
		versions[v.Name] = true
		for j, ep := range v.Endpoints {
			if _, err := netip.ParseAddr(ep.Host); err != nil {
				bad(fmt.Sprintf("%s.endpoints[%d].host", field, j), "%q is not an IP address (resolve DNS names before translation: Envoy and gRPC need IPs in EDS)", ep.Host)
			}
		}
	}
	if svc.Stable == "" {
		bad("service.stable", "no stable version")
	} else if !versions[svc.Stable] {
		bad("service.stable", "%q is not one of service.versions", svc.Stable)
	}

	var sum uint64
	for _, name := range sortedKeys(d.Weights) {
		w := d.Weights[name]
		if !versions[name] {
			bad(fmt.Sprintf("weights[%q]", name), "not one of service.versions")
		}
		if w > model.TotalWeight {
			bad(fmt.Sprintf("weights[%q]", name), "%d exceeds %d", w, model.TotalWeight)
		}
		sum += uint64(w)
	}
	if sum != model.TotalWeight {
		bad("weights", "sum to %d, want %d", sum, model.TotalWeight)
	}

	for i, m := range d.Matches {
		field := fmt.Sprintf("matches[%d]", i)
		switch {
		case m.Header != "" && m.Cookie != "":
			bad(field, "both header and cookie set; set exactly one")
		case m.Header == "" && m.Cookie == "":
			bad(field, "neither header nor cookie set; set exactly one")
		case m.Header != "":
			if err := model.ValidateHeaderName(m.Header); err != nil {
				bad(field+".header", "%v", err)
			}
		default:
			if err := model.ValidateCookieName(m.Cookie); err != nil {
				bad(field+".cookie", "%v", err)
			}
		}
		if err := model.ValidateMatchValue(m.Value, m.Cookie != ""); err != nil {
			bad(field+".value", "%v", err)
		}
		if !versions[m.Version] {
			bad(field+".version", "%q is not one of service.versions", m.Version)
		}
	}

	hc := svc.HealthCheck
	switch hc.Protocol {
	case "", "http", "grpc", "tcp":
	default:
		bad("service.healthCheck.protocol", "%q is not one of http, grpc, tcp", hc.Protocol)
	}
	if hc.Path != "" && !strings.HasPrefix(hc.Path, "/") {
		bad("service.healthCheck.path", "%q does not start with /", hc.Path)
	}
	if hc.Interval < 0 {
		bad("service.healthCheck.interval", "negative")
	}
	for i, r := range hc.ExpectedStatuses {
		if _, _, err := r.Bounds(); err != nil {
			bad(fmt.Sprintf("service.healthCheck.expectedStatuses[%d]", i), "%v", err)
		}
	}
	if hc.Timeout < 0 {
		bad("service.healthCheck.timeout", "negative")
	}
	for _, name := range sortedKeys(d.Unhealthy) {
		if !versions[name] {
			bad(fmt.Sprintf("unhealthy[%q]", name), "not one of service.versions")
		}
		for i, a := range d.Unhealthy[name] {
			if _, err := model.ParseEndpoint(a); err != nil {
				bad(fmt.Sprintf("unhealthy[%q][%d]", name, i), "%v", err)
			}
		}
	}
	o := svc.Outlier
	if o.Interval < 0 {
		bad("service.outlierDetection.interval", "negative")
	}
	if o.BaseEjectionTime < 0 {
		bad("service.outlierDetection.baseEjectionTime", "negative")
	}
	if o.MaxEjectionPercent > 100 {
		bad("service.outlierDetection.maxEjectionPercent", "%d exceeds 100", o.MaxEjectionPercent)
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
