package metrics

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
)

// Default query templates of the app convention (catalog.ConventionApp), in the units
// catalog.MetricQueries documents: a request rate per second, an error fraction, a P99
// in seconds. rate(x[W]) is increase(x[W])/W in PromQL, so the counts VersionStats
// derives from them are the increases over W.
const (
	selector = `service="{{.Service}}",version="{{.Version}}"`

	DefaultRequestsQuery = `sum(rate(` + RequestsMetric + `{` + selector + `}[{{.Window}}]))`
	// DefaultErrorRateQuery falls back to vector(0) for the numerator because a version
	// that never failed has no error series at all; the denominator keeps the result
	// empty (no data) when the version has no series either.
	DefaultErrorRateQuery = `(sum(rate(` + RequestsMetric + `{` + selector + `,code=~"` + ErrorCodes + `"}[{{.Window}}])) or vector(0))` +
		` / sum(rate(` + RequestsMetric + `{` + selector + `}[{{.Window}}]))`
	DefaultLatencyP99Query = `histogram_quantile(0.99, sum by (le) (rate(` + LatencyMetric + `_bucket{` + selector + `}[{{.Window}}])))`
	// DefaultLatencyBucketsQuery is the latency histogram over the window: the classic
	// histogram's bucket increases by le, or, where Prometheus stores the histogram as a
	// native one, that histogram's increase (the other side of the or is then empty).
	DefaultLatencyBucketsQuery = `sum by (le) (increase(` + LatencyMetric + `_bucket{` + selector + `}[{{.Window}}]))` +
		` or sum(increase(` + LatencyMetric + `{` + selector + `}[{{.Window}}]))`
)

// Default query templates of the envoy convention (catalog.ConventionEnvoy): Envoy's
// own stats of the version's cluster. Envoy's latency histogram is in milliseconds.
const (
	envoyCluster = EnvoyClusterLabel + `="{{.Cluster}}"`

	DefaultEnvoyRequestsQuery = `sum(rate(` + EnvoyRequestsMetric + `{` + envoyCluster + `}[{{.Window}}]))`
	// DefaultEnvoyErrorRateQuery: 5xx over all responses, vector(0) standing for a
	// cluster that never answered 5xx (Envoy exports only the classes it has seen).
	DefaultEnvoyErrorRateQuery = `(sum(rate(` + EnvoyRequestsMetric + `{` + envoyCluster + `,` + EnvoyCodeClassLabel + `="5"}[{{.Window}}])) or vector(0))` +
		` / sum(rate(` + EnvoyRequestsMetric + `{` + envoyCluster + `}[{{.Window}}]))`
	DefaultEnvoyLatencyP99Query = `histogram_quantile(0.99, sum by (le) (rate(` + EnvoyLatencyMetric + `_bucket{` + envoyCluster + `}[{{.Window}}]))) / 1000`
	// DefaultEnvoyLatencyBucketsQuery is DefaultLatencyBucketsQuery over Envoy's
	// histogram, whose bounds are milliseconds (PromQL cannot scale a label: the source
	// does, see Queries.BucketUnit).
	DefaultEnvoyLatencyBucketsQuery = `sum by (le) (increase(` + EnvoyLatencyMetric + `_bucket{` + envoyCluster + `}[{{.Window}}]))` +
		` or sum(increase(` + EnvoyLatencyMetric + `{` + envoyCluster + `}[{{.Window}}]))`
)

// Queries are the query templates of a version's traffic.
type Queries struct {
	Requests   string // request rate, per second
	ErrorRate  string // fraction of failed requests, 0..1
	LatencyP99 string // seconds
	// LatencyBuckets is the latency histogram over the window (see
	// catalog.MetricQueries.LatencyBuckets); empty means none.
	LatencyBuckets string
	// BucketUnit is the unit of LatencyBuckets' bounds in seconds: 0.001 for the envoy
	// convention (milliseconds, as Envoy's histograms are), 1 for app.
	BucketUnit float64
}

// BucketUnit returns the unit, in seconds, of the latency histogram bounds of a
// convention (catalog.ConventionEnvoy when empty or unknown): 0.001 for Envoy's
// milliseconds, 1 for the app convention's seconds.
func BucketUnit(convention string) float64 {
	if convention == catalog.ConventionApp {
		return 1
	}
	return 0.001
}

// DefaultQueries returns the default templates of a convention (catalog.ConventionEnvoy
// when empty or unknown).
func DefaultQueries(convention string) Queries {
	if convention == catalog.ConventionApp {
		return Queries{DefaultRequestsQuery, DefaultErrorRateQuery, DefaultLatencyP99Query, DefaultLatencyBucketsQuery, BucketUnit(convention)}
	}
	return Queries{DefaultEnvoyRequestsQuery, DefaultEnvoyErrorRateQuery, DefaultEnvoyLatencyP99Query, DefaultEnvoyLatencyBucketsQuery, BucketUnit(convention)}
}

// ServiceQueries returns the templates the Prometheus source runs for svc: its own
// where it has them, the defaults of its convention otherwise. A service with its own
// latencyP99 and no latencyBuckets has no histogram query: its latency comes from
// elsewhere than the convention's histogram, which would then answer for another
// series.
func ServiceQueries(svc catalog.Service) Queries {
	q := DefaultQueries(svc.Metrics.EffectiveConvention())
	if m := svc.Metrics.Requests; m != "" {
		q.Requests = m
	}
	if m := svc.Metrics.ErrorRate; m != "" {
		q.ErrorRate = m
	}
	if m := svc.Metrics.LatencyP99; m != "" {
		q.LatencyP99 = m
		q.LatencyBuckets = ""
	}
	if m := svc.Metrics.LatencyBuckets; m != "" {
		q.LatencyBuckets = m
	}
	return q
}

// QueryData is what a query template sees.
type QueryData struct {
	Service string
	Version string
	Cluster string // the Envoy cluster name of the version, "service|version"
	Window  string // a PromQL duration such as 5m
}

// NewQueryData returns what the templates of version of svc see over window.
func NewQueryData(svc catalog.Service, version string, window time.Duration) (QueryData, error) {
	w, err := PromDuration(window)
	if err != nil {
		return QueryData{}, err
	}
	return QueryData{Service: svc.Name, Version: version, Cluster: ClusterName(svc.Name, version), Window: w}, nil
}

// RenderQuery executes the query template tmpl with the given data.
func RenderQuery(tmpl string, data any) (string, error) {
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

// DefaultQueryTimeout bounds one Prometheus API call when PrometheusConfig.Timeout is 0.
const DefaultQueryTimeout = 10 * time.Second

// PrometheusConfig configures a Prometheus source. The HTTP settings (auth, headers,
// TLS) are turned into a transport by github.com/prometheus/common/config, the library
// Prometheus itself uses for its scrapes; secrets in files are re-read on every request,
// so a rotated token or password takes effect without a restart.
type PrometheusConfig struct {
	// Address is the base URL of the Prometheus server, e.g. http://127.0.0.1:9090.
	Address string
	// Timeout bounds each API call (and is sent as the query's evaluation timeout).
	// Default DefaultQueryTimeout.
	Timeout time.Duration

	// Username and Password (or PasswordFile) authenticate with HTTP basic auth.
	Username     string
	Password     string
	PasswordFile string
	// BearerToken (or BearerTokenFile) is sent as "Authorization: Bearer <token>".
	// Basic auth and a bearer token exclude each other.
	BearerToken     string
	BearerTokenFile string
	// Headers are extra request headers (not Authorization and the other headers the
	// client sets itself).
	Headers map[string]string
	// TLS configures https addresses.
	TLS TLSConfig

	// RoundTripper replaces the transport built from the settings above; it must not be
	// combined with them. Tests use it.
	RoundTripper http.RoundTripper
}

// TLSConfig is the TLS of the connection to the Prometheus server.
type TLSConfig struct {
	CAFile             string // PEM CA bundle verifying the server; default the system pool
	CertFile, KeyFile  string // PEM client certificate and key, for mutual TLS
	ServerName         string // expected server name, when it differs from the address's host
	InsecureSkipVerify bool   // do not verify the server's certificate
}

func (c PrometheusConfig) httpSettings() bool {
	return c.Username != "" || c.Password != "" || c.PasswordFile != "" || c.BearerToken != "" ||
		c.BearerTokenFile != "" || len(c.Headers) > 0 || c.TLS != (TLSConfig{})
}

// HTTPClientConfig returns the HTTP settings as Prometheus's client configuration.
func (c PrometheusConfig) HTTPClientConfig() promconfig.HTTPClientConfig {
	hc := promconfig.DefaultHTTPClientConfig
	if c.Username != "" || c.Password != "" || c.PasswordFile != "" {
		hc.BasicAuth = &promconfig.BasicAuth{Username: c.Username, Password: promconfig.Secret(c.Password), PasswordFile: c.PasswordFile}
	}
	hc.BearerToken = promconfig.Secret(c.BearerToken)
	hc.BearerTokenFile = c.BearerTokenFile
	if len(c.Headers) > 0 {
		hc.HTTPHeaders = &promconfig.Headers{Headers: map[string]promconfig.Header{}}
		for k, v := range c.Headers {
			hc.HTTPHeaders.Headers[k] = promconfig.Header{Values: []string{v}}
		}
	}
	hc.TLSConfig = promconfig.TLSConfig{
		CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile,
		ServerName: c.TLS.ServerName, InsecureSkipVerify: c.TLS.InsecureSkipVerify,
	}
	return hc
}

// Validate reports every invalid setting without touching the files it names.
func (c PrometheusConfig) Validate() error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, errors.New("prometheus address is empty"))
	} else if u, err := url.Parse(c.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, errors.New("prometheus address is not an http(s) URL"))
	} else {
		if u.User != nil {
			// Credentials in the URL would be repeated in every error, event and log line.
			errs = append(errs, fmt.Errorf("prometheus address %s: put credentials in the username and password settings, not the URL", u.Redacted()))
		}
		if c.TLS != (TLSConfig{}) && u.Scheme != "https" {
			errs = append(errs, fmt.Errorf("prometheus address %s: TLS settings need an https URL", u.Redacted()))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("prometheus timeout %s must not be negative", c.Timeout))
	}
	if c.Username == "" && (c.Password != "" || c.PasswordFile != "") {
		errs = append(errs, errors.New("prometheus password needs a username"))
	}
	if c.Username != "" && c.Password == "" && c.PasswordFile == "" {
		errs = append(errs, errors.New("prometheus username needs a password or a password file"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("prometheus TLS client certificate and key must be set together"))
	}
	for k, v := range c.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			errs = append(errs, fmt.Errorf("prometheus header name %q is not a valid header name", k))
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			errs = append(errs, fmt.Errorf("prometheus header %s: the value has a control character", k))
		}
	}
	hc := c.HTTPClientConfig()
	if err := hc.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("prometheus HTTP settings: %w", err))
	}
	if c.RoundTripper != nil && c.httpSettings() {
		errs = append(errs, errors.New("prometheus: a RoundTripper replaces the auth, header and TLS settings; set one or the other"))
	}
	return errors.Join(errs...)
}

// Prometheus is a Source backed by a Prometheus server's HTTP API. It is safe for
// concurrent use. Every API call ends after the configured Timeout or when its ctx
// does, whichever comes first.
type Prometheus struct {
	log     *zap.Logger
	api     promv1.API
	addr    string
	timeout time.Duration
}

var (
	_ Source  = (*Prometheus)(nil)
	_ Querier = (*Prometheus)(nil)
)

// Querier runs the query template of a custom check (business metrics, queue depth,
// data integrity) for one version. *Prometheus implements it; the embedded scrape
// source does not, as it evaluates no PromQL.
type Querier interface {
	// QueryValue renders tmpl with the version's QueryData and returns the single value
	// of the instant query at `at`. An empty result or NaN is ErrNoData.
	QueryValue(ctx context.Context, svc catalog.Service, version, tmpl string, window time.Duration, at time.Time) (float64, error)
}

// NewPrometheus returns a source that queries the server at cfg.Address.
func NewPrometheus(log *zap.Logger, cfg PrometheusConfig) (*Prometheus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rt := cfg.RoundTripper
	if rt == nil {
		var err error
		if rt, err = promconfig.NewRoundTripperFromConfig(cfg.HTTPClientConfig(), "octoroll"); err != nil {
			return nil, fmt.Errorf("prometheus HTTP client for %q: %w", cfg.Address, err)
		}
	}
	client, err := api.NewClient(api.Config{Address: cfg.Address, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %q: %w", cfg.Address, err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	addr := cfg.Address
	if u, err := url.Parse(addr); err == nil {
		addr = u.Redacted()
	}
	return &Prometheus{log: log.Named("prometheus"), api: promv1.NewAPI(client), addr: addr, timeout: timeout}, nil
}

// query runs one instant query under the source's timeout.
func (p *Prometheus) query(ctx context.Context, query string, at time.Time) (model.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	val, warnings, infos, err := p.api.Query(ctx, query, at, promv1.WithTimeout(p.timeout))
	if err != nil {
		return nil, fmt.Errorf("query %q at %s: %w", query, p.addr, err)
	}
	if len(warnings) > 0 {
		p.log.Warn("query warnings", zap.String("query", query), zap.Strings("warnings", warnings))
	}
	if len(infos) > 0 {
		p.log.Debug("query infos", zap.String("query", query), zap.Strings("infos", infos))
	}
	return val, nil
}

// Query evaluates an instant query at `at` and returns its single value. An empty
// result or a NaN is ErrNoData; more than one series, a range vector or a string is an
// error. Warnings are logged and do not fail the query.
func (p *Prometheus) Query(ctx context.Context, query string, at time.Time) (float64, error) {
	val, err := p.query(ctx, query, at)
	if err != nil {
		return 0, err
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
	if math.IsNaN(v) || math.IsInf(v, 0) {
		// A division by zero is no measurement: a check with only a min must not pass
		// on +Inf.
		return 0, fmt.Errorf("query %q: %v: %w", query, v, ErrNoData)
	}
	return v, nil
}

// QueryValue implements Querier.
func (p *Prometheus) QueryValue(ctx context.Context, svc catalog.Service, version, tmpl string, window time.Duration, at time.Time) (float64, error) {
	data, err := NewQueryData(svc, version, window)
	if err != nil {
		return 0, err
	}
	query, err := RenderQuery(tmpl, data)
	if err != nil {
		return 0, fmt.Errorf("query of %s/%s: %w", svc.Name, version, err)
	}
	v, err := p.Query(ctx, query, at)
	if err != nil {
		return 0, fmt.Errorf("%s/%s: %w", svc.Name, version, err)
	}
	return v, nil
}

// VersionStats runs the service's queries (the defaults of its convention where it
// has none) at `at` with the window rendered as a PromQL duration. Requests = request
// rate × window, Errors = error fraction × Requests. No request data is ErrNoData; no
// latency data leaves P99 at 0 and Latency nil; when the P99 query has no data but the
// histogram query has (a native histogram), P99 interpolates in the histogram. A failed query of any of them is
// returned as an error, and so is a latency histogram of an unexpected shape (see
// LatencyHistogram).
//
// Latency is read by the latencyBuckets query. Its counts are increase()s, which
// Prometheus extrapolates to the window's edges series by series, so they are
// fractional and may decrease with the bound: they are rounded to whole requests and
// each raised to at least the one below it (see Histogram). Its +Inf count is the
// histogram's own, not Requests.
func (p *Prometheus) VersionStats(ctx context.Context, svc catalog.Service, version string, window time.Duration, at time.Time) (Stats, error) {
	data, err := NewQueryData(svc, version, window)
	if err != nil {
		return Stats{}, err
	}
	q := ServiceQueries(svc)
	tmpls := [4]string{q.Requests, q.ErrorRate, q.LatencyP99, q.LatencyBuckets}
	names := [4]string{"requests", "errorRate", "latencyP99", "latencyBuckets"}
	var queries [4]string
	for i := range tmpls {
		if tmpls[i] == "" {
			continue
		}
		if queries[i], err = RenderQuery(tmpls[i], data); err != nil {
			return Stats{}, fmt.Errorf("%s query of %s: %w", names[i], svc.Name, err)
		}
	}

	var (
		vals    [3]float64
		latency []Bucket
		errs    [4]error
		wg      sync.WaitGroup
	)
	for i := range vals {
		wg.Go(func() { vals[i], errs[i] = p.Query(ctx, queries[i], at) })
	}
	if queries[3] != "" {
		wg.Go(func() { latency, errs[3] = p.LatencyHistogram(ctx, queries[3], q.BucketUnit, at) })
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
	st.Latency = latency
	if errors.Is(errs[2], ErrNoData) && latency != nil {
		// The P99 query reads classic buckets; a native histogram answers through the
		// histogram query alone.
		if q := BucketQuantile(0.99, slices.Clone(latency)); !math.IsNaN(q) && !math.IsInf(q, 0) && q >= 0 {
			st.P99 = time.Duration(q * float64(time.Second))
		}
	}
	return st, nil
}

// LatencyHistogram evaluates query, a latency histogram (see
// catalog.MetricQueries.LatencyBuckets), at `at` and returns it as Histogram does,
// its bounds multiplied by unit (to seconds). The result is either samples labelled le
// (a classic histogram's cumulative buckets, one of them +Inf) or one native histogram
// sample, whose buckets are summed from the lowest up; when it holds both, the native
// histogram is read if it counted any request. An empty result is ErrNoData; other
// shapes (a sample with no le, an le that is not a number, no +Inf bucket, several
// native histograms, a scalar) are errors.
func (p *Prometheus) LatencyHistogram(ctx context.Context, query string, unit float64, at time.Time) ([]Bucket, error) {
	val, err := p.query(ctx, query, at)
	if err != nil {
		return nil, err
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %q: result type %s, want vector", query, val.Type())
	}
	if len(vec) == 0 {
		return nil, fmt.Errorf("query %q: empty result: %w", query, ErrNoData)
	}
	var (
		classic []Bucket
		native  []*model.SampleHistogram
	)
	for _, s := range vec {
		if s.Histogram != nil {
			native = append(native, s.Histogram)
			continue
		}
		le, ok := s.Metric[model.BucketLabel]
		if !ok {
			return nil, fmt.Errorf("query %q: series %s has no le label: want sum by (le) (...) of a classic histogram, or one native histogram", query, s.Metric)
		}
		ub, err := strconv.ParseFloat(string(le), 64)
		if err != nil || math.IsNaN(ub) {
			return nil, fmt.Errorf("query %q: le %q is not a number", query, le)
		}
		if !math.IsInf(ub, +1) {
			ub *= unit
		}
		classic = append(classic, Bucket{UpperBound: ub, Count: float64(s.Value)})
	}
	if len(native) > 1 {
		return nil, fmt.Errorf("query %q: %d native histograms, want one (aggregate with sum)", query, len(native))
	}
	if len(native) == 1 && (native[0].Count > 0 || len(classic) == 0) {
		return Histogram(SampleHistogramBuckets(native[0], unit)), nil
	}
	h := Histogram(classic)
	if h == nil {
		return nil, fmt.Errorf("query %q: the buckets have no le=\"+Inf\"", query)
	}
	return h, nil
}

// SampleHistogramBuckets returns the cumulative buckets of a native histogram of a
// query result, its bounds multiplied by unit: each bucket's count is added to those
// below it, bucket by upper bound (the zero bucket and any negative one count at their
// upper bound), and a +Inf bucket holds the histogram's count (at least the sum of the
// buckets).
func SampleHistogramBuckets(h *model.SampleHistogram, unit float64) []Bucket {
	bs := slices.DeleteFunc(slices.Clone(h.Buckets), func(b *model.HistogramBucket) bool { return b == nil })
	slices.SortFunc(bs, func(a, b *model.HistogramBucket) int { return cmp.Compare(a.Upper, b.Upper) })
	out := make([]Bucket, 0, len(bs)+1)
	var cum float64
	for _, b := range bs {
		cum += float64(b.Count)
		out = append(out, Bucket{UpperBound: float64(b.Upper) * unit, Count: cum})
	}
	return append(out, Bucket{UpperBound: math.Inf(+1), Count: max(float64(h.Count), cum)})
}

// AlertsQuery is the query of the critical alerts firing, with %s standing for the
// service's label matchers (catalog.MetricQueries.Alerts, default service="<name>"): an
// alerting rule takes part in a rollout's checks when it carries severity="critical"
// and the labels the service's selector matches.
const AlertsQuery = `ALERTS{alertstate="firing",severity="critical",%s}`

// AlertsQueryFor renders the alerts query of svc.
func AlertsQueryFor(svc catalog.Service) (string, error) {
	matchers, err := RenderQuery(svc.Metrics.EffectiveAlerts(), struct{ Service string }{svc.Name})
	if err != nil {
		return "", fmt.Errorf("alerts selector of %s: %w", svc.Name, err)
	}
	return fmt.Sprintf(AlertsQuery, strings.TrimSpace(matchers)), nil
}

// FiringAlerts returns the names (alertname) of the critical alerts firing for svc at
// `at`, as its alerts selector picks them, sorted and without duplicates. None firing
// is an empty result, not an error.
func (p *Prometheus) FiringAlerts(ctx context.Context, svc catalog.Service, at time.Time) ([]string, error) {
	query, err := AlertsQueryFor(svc)
	if err != nil {
		return nil, err
	}
	val, err := p.query(ctx, query, at)
	if err != nil {
		return nil, err
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
