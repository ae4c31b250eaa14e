package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
)

// Default query templates, in the units catalog.MetricQueries documents: a request
// rate per second, an error fraction, a P99 in seconds. rate(x[W]) is increase(x[W])/W
// in PromQL, so the counts VersionStats derives from them are the increases over W.
const (
	selector = `service="{{.Service}}",version="{{.Version}}"`

	DefaultRequestsQuery = `sum(rate(` + RequestsMetric + `{` + selector + `}[{{.Window}}]))`
	// DefaultErrorRateQuery falls back to vector(0) for the numerator because a version
	// that never failed has no error series at all; the denominator keeps the result
	// empty (no data) when the version has no series either.
	DefaultErrorRateQuery = `(sum(rate(` + RequestsMetric + `{` + selector + `,code=~"` + ErrorCodes + `"}[{{.Window}}])) or vector(0))` +
		` / sum(rate(` + RequestsMetric + `{` + selector + `}[{{.Window}}]))`
	DefaultLatencyP99Query = `histogram_quantile(0.99, sum by (le) (rate(` + LatencyMetric + `_bucket{` + selector + `}[{{.Window}}])))`
)

// QueryData is what a query template sees.
type QueryData struct {
	Service string
	Version string
	Cluster string // the Envoy cluster name of the version, "service|version"
	Window  string // a PromQL duration such as 5m
}

// RenderQuery executes the query template tmpl with the given data.
func RenderQuery(tmpl string, data QueryData) (string, error) {
	t, err := template.New("query").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("parse template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("execute template: %w", err)
	}
	return b.String(), nil
}

// PrometheusConfig configures a Prometheus source.
type PrometheusConfig struct {
	// Address is the base URL of the Prometheus server, e.g. http://127.0.0.1:9090.
	Address string
	// RoundTripper is the HTTP transport; nil means api.DefaultRoundTripper.
	RoundTripper http.RoundTripper
}

// Prometheus is a Source backed by a Prometheus server's HTTP API. It is safe for
// concurrent use. It sets no timeout of its own: a query ends when its ctx does.
type Prometheus struct {
	log *zap.Logger
	api promv1.API
}

var _ Source = (*Prometheus)(nil)

// NewPrometheus returns a source that queries the server at cfg.Address.
func NewPrometheus(log *zap.Logger, cfg PrometheusConfig) (*Prometheus, error) {
	if cfg.Address == "" {
		return nil, errors.New("prometheus address is empty")
	}
	client, err := api.NewClient(api.Config{Address: cfg.Address, RoundTripper: cfg.RoundTripper})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %q: %w", cfg.Address, err)
	}
	return &Prometheus{log: log.Named("prometheus"), api: promv1.NewAPI(client)}, nil
}

// Query evaluates an instant query at `at` and returns its single value. An empty
// result or a NaN is ErrNoData; more than one series, a range vector or a string is an
// error. Warnings are logged and do not fail the query.
func (p *Prometheus) Query(ctx context.Context, query string, at time.Time) (float64, error) {
	val, warnings, infos, err := p.api.Query(ctx, query, at)
	if err != nil {
		return 0, fmt.Errorf("query %q: %w", query, err)
	}
	if len(warnings) > 0 {
		p.log.Warn("query warnings", zap.String("query", query), zap.Strings("warnings", warnings))
	}
	if len(infos) > 0 {
		p.log.Debug("query infos", zap.String("query", query), zap.Strings("infos", infos))
	}
	var v float64
	switch val := val.(type) {
	case model.Vector:
		switch len(val) {
		case 0:
			return 0, fmt.Errorf("query %q: empty result: %w", query, ErrNoData)
		case 1:
			v = float64(val[0].Value)
		default:
			return 0, fmt.Errorf("query %q: %d series, want one (aggregate with sum)", query, len(val))
		}
	case *model.Scalar:
		v = float64(val.Value)
	default:
		return 0, fmt.Errorf("query %q: result type %s, want vector or scalar", query, val.Type())
	}
	if math.IsNaN(v) {
		return 0, fmt.Errorf("query %q: NaN: %w", query, ErrNoData)
	}
	return v, nil
}

// VersionStats runs the service's three queries (or the defaults) at `at` with the
// window rendered as a PromQL duration. Requests = request rate × window, Errors =
// error fraction × Requests. No request data is ErrNoData; no latency data leaves P99
// at 0. A failed query of any of the three is returned as an error.
func (p *Prometheus) VersionStats(ctx context.Context, svc catalog.Service, version string, window time.Duration, at time.Time) (Stats, error) {
	w, err := PromDuration(window)
	if err != nil {
		return Stats{}, err
	}
	data := QueryData{Service: svc.Name, Version: version, Cluster: svc.Name + "|" + version, Window: w}
	tmpls := [3]string{svc.Metrics.Requests, svc.Metrics.ErrorRate, svc.Metrics.LatencyP99}
	defaults := [3]string{DefaultRequestsQuery, DefaultErrorRateQuery, DefaultLatencyP99Query}
	names := [3]string{"requests", "errorRate", "latencyP99"}
	var queries [3]string
	for i := range tmpls {
		if tmpls[i] == "" {
			tmpls[i] = defaults[i]
		}
		if queries[i], err = RenderQuery(tmpls[i], data); err != nil {
			return Stats{}, fmt.Errorf("%s query of %s: %w", names[i], svc.Name, err)
		}
	}

	var (
		vals [3]float64
		errs [3]error
		wg   sync.WaitGroup
	)
	for i := range queries {
		wg.Go(func() { vals[i], errs[i] = p.Query(ctx, queries[i], at) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, ErrNoData) {
			return Stats{}, fmt.Errorf("%s of %s/%s: %w", names[i], svc.Name, version, err)
		}
	}
	if errs[0] != nil {
		return Stats{}, fmt.Errorf("requests of %s/%s: %w", svc.Name, version, errs[0])
	}
	rate := vals[0]
	if math.IsInf(rate, 0) || rate < 0 {
		return Stats{}, fmt.Errorf("requests of %s/%s: rate %v is not a count", svc.Name, version, rate)
	}
	st := Stats{Requests: rate * window.Round(time.Millisecond).Seconds()}
	if st.Requests == 0 {
		// 0/0 error fraction and an empty histogram are expected here.
		return st, nil
	}
	if errs[1] != nil {
		return Stats{}, fmt.Errorf("error rate of %s/%s: %w", svc.Name, version, errs[1])
	}
	if f := vals[1]; math.IsInf(f, 0) || f < 0 || f > 1 {
		return Stats{}, fmt.Errorf("error rate of %s/%s: %v is not a fraction", svc.Name, version, f)
	}
	st.Errors = vals[1] * st.Requests
	if errs[2] == nil && !math.IsInf(vals[2], 0) && vals[2] >= 0 {
		st.P99 = time.Duration(vals[2] * float64(time.Second))
	}
	return st, nil
}

// AlertsQuery selects the critical alerts of one service that are firing, by
// Prometheus's ALERTS series: an alerting rule takes part in a rollout's checks when it
// carries the labels severity="critical" and service="<service name>".
const AlertsQuery = `ALERTS{alertstate="firing",severity="critical",service=%q}`

// FiringAlerts returns the names (alertname) of the critical alerts firing for service
// at `at`, sorted and without duplicates. None firing is an empty result, not an error.
func (p *Prometheus) FiringAlerts(ctx context.Context, service string, at time.Time) ([]string, error) {
	query := fmt.Sprintf(AlertsQuery, service)
	val, warnings, _, err := p.api.Query(ctx, query, at)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	if len(warnings) > 0 {
		p.log.Warn("query warnings", zap.String("query", query), zap.Strings("warnings", warnings))
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %q: result type %s, want vector", query, val.Type())
	}
	seen := map[string]bool{}
	var names []string
	for _, s := range vec {
		n := string(s.Metric["alertname"])
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}
