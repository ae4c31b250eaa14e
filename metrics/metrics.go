// Package metrics owns the traffic figures the rollout checks compare: request and
// error counts and the P99 latency of one version of a service over a window. It holds
// the Source seam and two implementations, a Prometheus server queried through its HTTP
// API (Prometheus) and an embedded scraper of exposition endpoints for setups without a
// Prometheus server (Scrape). Both read, per service, one of two conventions (see
// catalog.MetricQueries.Convention): Envoy's per-cluster stats (the default, so
// applications change no code) or octoroll's application metrics. Prometheus also
// answers the critical alerts of a service and the custom queries of checks (Querier).
//
// It depends on catalog only; it must not import controller, xds or the store.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/common/model"

	"github.com/octoacme/octoroll/catalog"
)

// Stats are one version's traffic over a window ending at a given time.
type Stats struct {
	Requests float64       // count of requests in the window (sample size)
	Errors   float64       // count of failed requests in the window
	P99      time.Duration // 99th percentile latency over the window; 0 if unknown
	// Latency is the window's latency histogram, in the form Histogram returns:
	// cumulative buckets (Count requests took at most UpperBound seconds), bounds
	// ascending, the last +Inf, whole counts that never decrease. It is read from the
	// same histogram as P99, a native histogram where the source has one (see
	// Prometheus.VersionStats and Scrape.VersionStats). Its +Inf count is the
	// histogram's own total, not forced to Requests: the two are different series (a
	// proxy need not record a request time for every response it counts, and the
	// Prometheus source extrapolates each series on its own). The bounds are the source's: two
	// versions' histograms need not share them. nil when the source has no histogram
	// for the version (a service with only a custom latencyP99 query, no series, no
	// requests in the window).
	Latency []Bucket
}

// ErrorRate returns Errors/Requests, or 0 when there were no requests.
func (s Stats) ErrorRate() float64 {
	if s.Requests <= 0 {
		return 0
	}
	return s.Errors / s.Requests
}

// ErrNoData means the source has nothing to say about the version in the window: no
// series, too few samples, NaN. It is inconclusive, never a pass, and distinct from a
// failed query, which is returned as a wrapped error of another kind.
var ErrNoData = errors.New("metrics: no data")

// Source reports a version's traffic. Implementations are safe for concurrent use and
// put no deadline of their own on ctx.
type Source interface {
	// VersionStats returns the traffic of version of svc over (at-window, at].
	VersionStats(ctx context.Context, svc catalog.Service, version string, window time.Duration, at time.Time) (Stats, error)
}

// Names of the application metrics convention (see catalog.MetricQueries).
const (
	RequestsMetric = "requests_total"
	LatencyMetric  = "request_duration_seconds"
	// ErrorCodes matches the values of the code label that count as failed requests:
	// HTTP 5xx and the gRPC codes that indicate a server-side failure.
	ErrorCodes = "5..|Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss"
)

// Names of Envoy's per-cluster stats read by the envoy convention, as Envoy's
// /stats/prometheus exposes them.
const (
	// EnvoyRequestsMetric counts the responses of a cluster by class (label
	// EnvoyCodeClassLabel: "2", "3", "4", "5"); class 5 counts as failed.
	EnvoyRequestsMetric = "envoy_cluster_upstream_rq_xx"
	// EnvoyLatencyMetric is the histogram of a cluster's request times, in milliseconds.
	EnvoyLatencyMetric  = "envoy_cluster_upstream_rq_time"
	EnvoyClusterLabel   = "envoy_cluster_name"
	EnvoyCodeClassLabel = "envoy_response_code_class"
)

// ClusterName is the Envoy cluster name of a version, "service|version" (the value of
// EnvoyClusterLabel). It is the scheme of translate.ClusterName, which this package must not
// import; a test keeps the two in step.
func ClusterName(service, version string) string { return service + "|" + version }

var errorCodeRE = regexp.MustCompile("^(?:" + ErrorCodes + ")$")

// IsErrorCode reports whether a code label value counts as a failed request.
func IsErrorCode(code string) bool { return errorCodeRE.MatchString(code) }

// PromDuration renders d as a PromQL duration ("5m", "1m30s", "1500ms"). PromQL has
// millisecond resolution, so d is rounded to the millisecond; it must be at least 1ms.
func PromDuration(d time.Duration) (string, error) {
	r := d.Round(time.Millisecond)
	if r <= 0 {
		return "", fmt.Errorf("window %v: must be at least 1ms", d)
	}
	return model.Duration(r).String(), nil
}

func scrapePath(svc catalog.Service) string { return svc.Metrics.EffectiveScrapePath() }
