package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Parse (and ApplyDefaults) to fields left empty.
const (
	DefaultHealthCheckProtocol = "tcp"
	DefaultHealthCheckPath     = "/healthz"
	DefaultHealthCheckInterval = 5 * time.Second
	DefaultHealthCheckTimeout  = 1 * time.Second
	DefaultHealthyThreshold    = 1
	DefaultUnhealthyThreshold  = 2
	// DefaultExpectedStatuses is the HTTP status range an HTTP health check accepts when
	// HealthCheck.ExpectedStatuses is empty.
	DefaultExpectedStatuses StatusRange = "200-299"

	DefaultConsecutive5xx     = 5
	DefaultOutlierInterval    = 10 * time.Second
	DefaultBaseEjectionTime   = 30 * time.Second
	DefaultMaxEjectionPercent = 10

	// DefaultScrapePath is the exposition path of the app convention.
	DefaultScrapePath = "/metrics"
	// DefaultEnvoyScrapePath is the exposition path of the envoy convention: Envoy's
	// admin endpoint serving its stats in the Prometheus text format.
	DefaultEnvoyScrapePath = "/stats/prometheus"
	DefaultConvention      = ConventionEnvoy
	// DefaultAlerts selects the alerts labelled with the service's name.
	DefaultAlerts = `service="{{.Service}}"`
)

// Metric conventions (MetricQueries.Convention): which series carry a version's traffic.
const (
	// ConventionEnvoy reads Envoy's own per-cluster stats, so applications change no
	// code: envoy_cluster_upstream_rq_xx{envoy_cluster_name,envoy_response_code_class}
	// (class 5 counts as failed) and the histogram envoy_cluster_upstream_rq_time
	// (milliseconds), where envoy_cluster_name is the version's cluster,
	// "service|version".
	ConventionEnvoy = "envoy"
	// ConventionApp reads octoroll's application metrics convention: a counter
	// requests_total{service,version,code} (code is the HTTP status or the gRPC code
	// name; 5xx and the gRPC codes Unknown, DeadlineExceeded, Unimplemented, Internal,
	// Unavailable and DataLoss are errors) and a histogram
	// request_duration_seconds{service,version}, as the example app exports them.
	ConventionApp = "app"
)

// Health-check protocols.
const (
	ProtocolTCP  = "tcp"
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
)

// Service is one routed service and its versions.
type Service struct {
	// Name is the service name; proxyless gRPC clients dial xds:///Name. A DNS label
	// (a-z, 0-9, '-', at most 63 characters), unique in the catalog.
	Name string `yaml:"name" json:"name"`
	// Domains are the HTTP authorities an Envoy sidecar routes to this service, without
	// port. Defaults to [Name]. No domain (nor service name) may belong to two services.
	Domains []string `yaml:"domains,omitempty" json:"domains,omitempty"`
	// Port is the port an Envoy sidecar listens on for this service (1-65535), unique
	// in the catalog: each service has its own sidecar listener.
	Port uint32 `yaml:"port" json:"port"`
	// Stable names the known-good version (one of Versions).
	Stable string `yaml:"stable" json:"stable"`
	// Versions are the deployable versions; each becomes one Envoy cluster.
	Versions []Version `yaml:"versions" json:"versions"`
	// HealthCheck configures active health checks (Envoy's and octoroll's prober).
	HealthCheck HealthCheck `yaml:"healthCheck,omitempty" json:"healthCheck,omitempty"`
	// Outlier configures Envoy outlier detection on every version's cluster.
	Outlier Outlier `yaml:"outlierDetection,omitempty" json:"outlierDetection,omitempty"`
	// Metrics says where the service's traffic figures come from (convention,
	// exposition targets, query templates, alert selector).
	Metrics MetricQueries `yaml:"metrics,omitempty" json:"metrics,omitempty"`
	// ProxiesOptional lets a rollout proceed when no proxy subscribes to the service's
	// route (its weights are then served to nobody). Without it a rollout holds, "no
	// proxy subscribed", until one does: zero proxies is not every proxy ACKed.
	ProxiesOptional bool `yaml:"proxiesOptional,omitempty" json:"proxiesOptional,omitempty"`
	// Gates are blocking webhooks every rollout of the service asks, after the
	// rollout's own (a rollout hook of the same name at the same point replaces the
	// service's).
	Gates Gates `yaml:"gates,omitempty" json:"gates,omitzero"`
}

// Version is one deployable version of a service.
type Version struct {
	// Name is a DNS label, like Service.Name, unique within the service.
	Name string `yaml:"name" json:"name"`
	// Endpoints are the addresses of the version's instances (at least one). No
	// endpoint may belong to two versions of a service.
	Endpoints []Endpoint `yaml:"endpoints" json:"endpoints"`
	// Zone is the locality zone of the endpoints (optional).
	Zone string `yaml:"zone,omitempty" json:"zone,omitempty"`
	// Metrics are host:port addresses serving this version's Prometheus exposition
	// (path MetricQueries.ScrapePath), read by the embedded scrape source when no
	// Prometheus server is configured, with the service's MetricQueries.Targets.
	// Optional.
	Metrics []Endpoint `yaml:"metrics,omitempty" json:"metrics,omitempty"`
}

// HealthCheck configures active health checking of every endpoint.
type HealthCheck struct {
	// Protocol is http, grpc or tcp. Defaults to tcp.
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	// Path is the HTTP path probed when Protocol is http. Defaults to /healthz.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Interval between probes. Defaults to 5s.
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Timeout of one probe. Defaults to 1s. Must be shorter than Interval.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// HealthyThreshold is the number of successes that mark an endpoint healthy. Default 1.
	HealthyThreshold uint32 `yaml:"healthyThreshold,omitempty" json:"healthyThreshold,omitempty"`
	// UnhealthyThreshold is the number of failures that mark it unhealthy. Default 2.
	UnhealthyThreshold uint32 `yaml:"unhealthyThreshold,omitempty" json:"unhealthyThreshold,omitempty"`
	// ExpectedStatuses are the HTTP response statuses that pass when Protocol is http:
	// single codes ("204") or inclusive ranges ("200-299"), each within 100-599. Empty
	// means DefaultExpectedStatuses (200-299); ApplyDefaults leaves it empty. Only for
	// protocol http.
	ExpectedStatuses []StatusRange `yaml:"expectedStatuses,omitempty" json:"expectedStatuses,omitempty"`
	// GRPCService is the service name sent in the grpc.health.v1 HealthCheckRequest when
	// Protocol is grpc. Empty (the default) asks for the health of the whole server.
	// Only for protocol grpc.
	GRPCService string `yaml:"grpcService,omitempty" json:"grpcService,omitempty"`
}

// StatusRange is an HTTP status code ("200") or an inclusive range of codes
// ("200-299"). In YAML a bare number (200) is accepted too.
type StatusRange string

// Bounds returns the inclusive range of codes r covers. Both are within 100-599 and
// lo <= hi, or an error says what is wrong with r.
func (r StatusRange) Bounds() (lo, hi int, err error) {
	s := strings.TrimSpace(string(r))
	a, b, isRange := strings.Cut(s, "-")
	if !isRange {
		b = a
	}
	lo, err1 := statusCode(strings.TrimSpace(a))
	hi, err2 := statusCode(strings.TrimSpace(b))
	switch {
	case s == "":
		return 0, 0, fmt.Errorf("empty status: want a code such as 200 or a range such as 200-299")
	case err1 != nil || err2 != nil:
		return 0, 0, fmt.Errorf("%q: want a status code (100-599) such as 200 or an inclusive range such as 200-299", string(r))
	case lo > hi:
		return 0, 0, fmt.Errorf("%q: the range ends before it starts", string(r))
	}
	return lo, hi, nil
}

func statusCode(s string) (int, error) {
	if len(s) != 3 || !isDigits(s) {
		return 0, fmt.Errorf("not a status code")
	}
	n, _ := strconv.Atoi(s)
	if n < 100 || n > 599 {
		return 0, fmt.Errorf("out of range")
	}
	return n, nil
}

// Contains reports whether code is in r (false when r is malformed).
func (r StatusRange) Contains(code int) bool {
	lo, hi, err := r.Bounds()
	return err == nil && code >= lo && code <= hi
}

// Outlier configures Envoy outlier detection.
type Outlier struct {
	// Consecutive5xx ejects an endpoint after this many consecutive 5xx. Default 5.
	Consecutive5xx uint32 `yaml:"consecutive5xx,omitempty" json:"consecutive5xx,omitempty"`
	// Interval between ejection sweeps. Default 10s.
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// BaseEjectionTime is how long an endpoint stays ejected the first time. Default 30s.
	BaseEjectionTime Duration `yaml:"baseEjectionTime,omitempty" json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent caps the share of a cluster's endpoints ejected at once,
	// 1-100. Default 10.
	MaxEjectionPercent uint32 `yaml:"maxEjectionPercent,omitempty" json:"maxEjectionPercent,omitempty"`
}

// MetricQueries say where a service's traffic figures come from. The query fields are
// PromQL templates (Go text/template) for the Prometheus source: {{.Service}},
// {{.Version}}, {{.Cluster}} (the version's Envoy cluster, "service|version") and
// {{.Window}} (a PromQL duration such as 5m) are substituted. Empty means the default of
// the convention. The embedded scrape source reads the convention's series itself and
// does not use the templates.
type MetricQueries struct {
	// Convention is envoy (default) or app; see ConventionEnvoy and ConventionApp.
	Convention string `yaml:"convention,omitempty" json:"convention,omitempty"`
	// ScrapePath is the HTTP path of the exposition on Targets and Version.Metrics.
	// Default /stats/prometheus for the envoy convention, /metrics for app.
	ScrapePath string `yaml:"scrapePath,omitempty" json:"scrapePath,omitempty"`
	// Targets are host:port exposition endpoints (Envoy admin addresses, or any
	// exposition) that the embedded scrape source reads for every version of the
	// service, in addition to each version's Metrics endpoints. One exposition may
	// carry the series of many versions and services. Optional.
	Targets []Endpoint `yaml:"targets,omitempty" json:"targets,omitempty"`
	// Requests is the request rate (per second) of one version.
	Requests string `yaml:"requests,omitempty" json:"requests,omitempty"`
	// ErrorRate is the fraction of failed requests (0..1) of one version.
	ErrorRate string `yaml:"errorRate,omitempty" json:"errorRate,omitempty"`
	// LatencyP99 is the 99th percentile latency of one version, in seconds.
	LatencyP99 string `yaml:"latencyP99,omitempty" json:"latencyP99,omitempty"`
	// LatencyBuckets is the latency histogram of one version over the window: either
	// a classic histogram's bucket increases by le (sum by (le) (increase(x_bucket[W]))),
	// or one native histogram (sum(increase(x[W]))), with bounds in the convention's
	// unit (milliseconds for envoy, as Envoy's histograms are; seconds for app). The
	// default reads the convention's histogram; a service with its own LatencyP99 and
	// no LatencyBuckets has none.
	LatencyBuckets string `yaml:"latencyBuckets,omitempty" json:"latencyBuckets,omitempty"`
	// Alerts is a template of PromQL label matchers that selects the service's alerts
	// (only {{.Service}} is substituted), e.g. team="payments",app=~"checkout.*".
	// The critical alerts firing are ALERTS{alertstate="firing",severity="critical",
	// <matchers>}. Default service="{{.Service}}".
	Alerts string `yaml:"alerts,omitempty" json:"alerts,omitempty"`
	// Checks are query checks every rollout of the service evaluates on its canary
	// (business metrics, queue depth, data integrity). A rollout's own customChecks
	// entry of the same name replaces one. They need a Prometheus server.
	Checks []MetricCheck `yaml:"checks,omitempty" json:"checks,omitempty"`
}

// MetricCheck is a PromQL query evaluated on the canary every check and held to bounds.
type MetricCheck struct {
	// Name identifies the check in events and reports; unique within the service.
	Name string `yaml:"name" json:"name"`
	// Query is a PromQL template like the metric queries ({{.Service}}, {{.Version}} =
	// the canary, {{.Cluster}}, {{.Window}} = the check window); it must return one value.
	Query string `yaml:"query" json:"query"`
	// Min and Max bound the value (inclusive); at least one is required.
	Min *float64 `yaml:"min,omitempty" json:"min,omitempty"`
	Max *float64 `yaml:"max,omitempty" json:"max,omitempty"`
	// OnFail is pause (default) or rollback.
	OnFail string `yaml:"onFail,omitempty" json:"onFail,omitempty"`
}

// EffectiveConvention returns Convention, or DefaultConvention when it is empty.
func (m MetricQueries) EffectiveConvention() string {
	if m.Convention == "" {
		return DefaultConvention
	}
	return m.Convention
}

// EffectiveScrapePath returns ScrapePath, or the default path of the convention.
func (m MetricQueries) EffectiveScrapePath() string {
	switch {
	case m.ScrapePath != "":
		return m.ScrapePath
	case m.EffectiveConvention() == ConventionApp:
		return DefaultScrapePath
	default:
		return DefaultEnvoyScrapePath
	}
}

// EffectiveAlerts returns Alerts, or DefaultAlerts when it is empty.
func (m MetricQueries) EffectiveAlerts() string {
	if m.Alerts == "" {
		return DefaultAlerts
	}
	return m.Alerts
}

// Version returns the version named name.
func (s Service) Version(name string) (Version, bool) {
	for _, v := range s.Versions {
		if v.Name == name {
			return v, true
		}
	}
	return Version{}, false
}

// Validate checks v on its own with the rules every version follows, wherever it comes
// from (the catalog, a rollout's canary, a persisted state): its name (ValidateName),
// at least one endpoint, each valid and listed once (DuplicateEndpoint), and its zone
// (ValidateZone). Each error names its field within the version ("name",
// "endpoints[1]", "zone"); they are joined with errors.Join.
func (v Version) Validate() error {
	var errs []error
	if err := ValidateName(v.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	if len(v.Endpoints) == 0 {
		errs = append(errs, errors.New("endpoints: at least one endpoint (host:port) is required"))
	}
	for i, e := range v.Endpoints {
		if err := e.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("endpoints[%d]: %w", i, err))
		} else if j := DuplicateEndpoint(v.Endpoints, i); j >= 0 {
			errs = append(errs, fmt.Errorf("endpoints[%d]: %q: duplicate endpoint, also endpoints[%d]", i, e.String(), j))
		}
	}
	if err := ValidateZone(v.Zone); err != nil {
		errs = append(errs, fmt.Errorf("zone: %w", err))
	}
	return errors.Join(errs...)
}

// VersionNames returns the names of s's versions in declaration order.
func (s Service) VersionNames() []string {
	out := make([]string, len(s.Versions))
	for i, v := range s.Versions {
		out[i] = v.Name
	}
	return out
}

// UnmarshalJSON reads a status code or range as a string or a number.
func (r *StatusRange) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*r = StatusRange(s)
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("status: want a code such as 200 or a range such as \"200-299\": %w", err)
	}
	*r = StatusRange(strconv.Itoa(n))
	return nil
}
