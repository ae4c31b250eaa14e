// Package catalog owns the service catalog: the services octoroll routes, their
// versions and endpoints, health-check settings and metric queries, as declared by an
// operator in a YAML file. It is plain data plus strict validation; it must not import
// xds, controller or any I/O-performing package of octoroll.
package catalog

import "time"

// TotalWeight is the denominator of every traffic weight: weights are integers out of
// 10000, so 1 %, 0.5 % and 0.1 % are exact (100, 50 and 10).
const TotalWeight = 10000

// Catalog is the whole declared configuration.
type Catalog struct {
	Services      []Service `yaml:"services"`
	Notifications []Sink    `yaml:"notifications,omitempty"`
}

// Service is one routed service and its versions.
type Service struct {
	// Name is the service name; proxyless gRPC clients dial xds:///Name.
	Name string `yaml:"name"`
	// Domains are the HTTP authorities an Envoy sidecar routes to this service.
	// Defaults to [Name].
	Domains []string `yaml:"domains,omitempty"`
	// Port is the port an Envoy sidecar listens on for this service (1-65535).
	Port uint32 `yaml:"port"`
	// Stable names the known-good version (one of Versions).
	Stable string `yaml:"stable"`
	// Versions are the deployable versions; each becomes one Envoy cluster.
	Versions []Version `yaml:"versions"`
	// HealthCheck configures active health checks (Envoy's and octoroll's prober).
	HealthCheck HealthCheck `yaml:"healthCheck,omitempty"`
	// Outlier configures Envoy outlier detection on every version's cluster.
	Outlier Outlier `yaml:"outlierDetection,omitempty"`
	// Metrics overrides the default metric queries for this service.
	Metrics MetricQueries `yaml:"metrics,omitempty"`
}

// Version is one deployable version of a service.
type Version struct {
	Name      string     `yaml:"name"`
	Endpoints []Endpoint `yaml:"endpoints"`
	// Zone is the locality zone of the endpoints (optional).
	Zone string `yaml:"zone,omitempty"`
	// Metrics are host:port addresses serving this version's Prometheus exposition
	// (path MetricQueries.ScrapePath), read by the embedded scrape source when no
	// Prometheus server is configured. Optional.
	Metrics []Endpoint `yaml:"metrics,omitempty"`
}

// Endpoint is a host:port address (IP or DNS name).
type Endpoint struct {
	Host string
	Port uint32
}

// HealthCheck configures active health checking of every endpoint.
type HealthCheck struct {
	// Protocol is http, grpc or tcp. Defaults to tcp.
	Protocol string `yaml:"protocol,omitempty"`
	// Path is the HTTP path probed when Protocol is http. Defaults to /healthz.
	Path string `yaml:"path,omitempty"`
	// Interval between probes. Defaults to 5s.
	Interval Duration `yaml:"interval,omitempty"`
	// Timeout of one probe. Defaults to 1s.
	Timeout Duration `yaml:"timeout,omitempty"`
	// HealthyThreshold is the number of successes that mark an endpoint healthy. Default 1.
	HealthyThreshold uint32 `yaml:"healthyThreshold,omitempty"`
	// UnhealthyThreshold is the number of failures that mark it unhealthy. Default 2.
	UnhealthyThreshold uint32 `yaml:"unhealthyThreshold,omitempty"`
}

// Outlier configures Envoy outlier detection.
type Outlier struct {
	// Consecutive5xx ejects an endpoint after this many consecutive 5xx. Default 5.
	Consecutive5xx uint32 `yaml:"consecutive5xx,omitempty"`
	// Interval between ejection sweeps. Default 10s.
	Interval Duration `yaml:"interval,omitempty"`
	// BaseEjectionTime. Default 30s.
	BaseEjectionTime Duration `yaml:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent. Default 10.
	MaxEjectionPercent uint32 `yaml:"maxEjectionPercent,omitempty"`
}

// MetricQueries are PromQL templates. In each, {{.Service}}, {{.Version}}, {{.Cluster}}
// and {{.Window}} (a PromQL duration such as 5m) are substituted. Empty means the default.
//
// The default queries follow octoroll's application metrics convention, which the
// example app and the embedded scrape source share: a counter
// requests_total{service,version,code} (code is the HTTP status or the gRPC code name;
// 5xx and the gRPC codes Unknown, DeadlineExceeded, Unimplemented, Internal,
// Unavailable and DataLoss are errors) and a histogram
// request_duration_seconds{service,version}.
type MetricQueries struct {
	// ScrapePath is the HTTP path of the exposition on Version.Metrics. Default /metrics.
	ScrapePath string `yaml:"scrapePath,omitempty"`
	// Requests is the request rate (per second) of one version.
	Requests string `yaml:"requests,omitempty"`
	// ErrorRate is the fraction of failed requests (0..1) of one version.
	ErrorRate string `yaml:"errorRate,omitempty"`
	// LatencyP99 is the 99th percentile latency of one version, in seconds.
	LatencyP99 string `yaml:"latencyP99,omitempty"`
}

// Sink is a notification webhook.
type Sink struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Format is json (default) or slack.
	Format string `yaml:"format,omitempty"`
	// Events filters which events are delivered; empty means all.
	Events []string `yaml:"events,omitempty"`
}

// Duration is a time.Duration written in YAML as a Go duration string ("30s", "5m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
