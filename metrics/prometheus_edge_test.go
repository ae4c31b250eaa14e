package metrics_test

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/metrics"
)

// fakeAPI answers /api/v1/query by the query's kind: requests (sum(rate(...)) of all
// codes), errorRate, p99 or buckets. It stands in for a Prometheus server only for the
// answers a real one will not give on demand.
type fakeAPI struct {
	mu      sync.Mutex
	queries []string
}

func vector(v string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"` + v + `"]}]}}`
}

const emptyVector = `{"status":"success","data":{"resultType":"vector","result":[]}}`

func (f *fakeAPI) server(t *testing.T, answer func(kind string) (int, string)) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		q := r.Form.Get("query")
		f.mu.Lock()
		f.queries = append(f.queries, q)
		f.mu.Unlock()
		kind := "requests"
		switch {
		case strings.HasPrefix(q, "histogram_quantile"):
			kind = "p99"
		case strings.Contains(q, "_bucket"):
			kind = "buckets"
		case strings.Contains(q, "code=~"), strings.Contains(q, " / "):
			kind = "errorRate"
		}
		code, body := answer(kind)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPrometheusEdgeCases(t *testing.T) {
	ok := func(requests, errRate, p99 string) func(string) (int, string) {
		return func(kind string) (int, string) {
			switch kind {
			case "requests":
				return 200, requests
			case "errorRate":
				return 200, errRate
			case "buckets":
				return 200, emptyVector
			}
			return 200, p99
		}
	}
	tests := []struct {
		name       string
		answer     func(kind string) (int, string)
		want       metrics.Stats
		wantNoData bool
		wantErr    bool
		wantWarn   bool
	}{
		{name: "values", answer: ok(vector("2"), vector("0.05"), vector("0.3")),
			want: metrics.Stats{Requests: 600, Errors: 30, P99: 300 * time.Millisecond}},
		{name: "scalar result", answer: ok(`{"status":"success","data":{"resultType":"scalar","result":[1700000000,"2"]}}`, vector("0"), vector("0.3")),
			want: metrics.Stats{Requests: 600, P99: 300 * time.Millisecond}},
		{name: "no requests series", answer: ok(emptyVector, emptyVector, emptyVector), wantNoData: true},
		{name: "NaN requests", answer: ok(vector("NaN"), vector("NaN"), vector("NaN")), wantNoData: true},
		{name: "zero traffic is zero, not no data", answer: ok(vector("0"), vector("NaN"), vector("NaN")),
			want: metrics.Stats{}},
		{name: "no latency data leaves P99 unknown", answer: ok(vector("1"), vector("0"), vector("NaN")),
			want: metrics.Stats{Requests: 300}},
		{name: "error rate missing with traffic is no data", answer: ok(vector("1"), emptyVector, vector("0.1")), wantNoData: true},
		{name: "warnings are logged, result kept", wantWarn: true,
			answer: func(kind string) (int, string) {
				if kind == "buckets" {
					return 200, `{"status":"success","warnings":["partial response"],"data":{"resultType":"vector","result":[]}}`
				}
				return 200, `{"status":"success","warnings":["partial response"],"data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"1"]}]}}`
			},
			want: metrics.Stats{Requests: 300, Errors: 300, P99: time.Second}},
		{name: "server error", wantErr: true, answer: func(string) (int, string) {
			return 500, `{"status":"error","errorType":"internal","error":"boom"}`
		}},
		{name: "bad query on one of three", wantErr: true, answer: func(kind string) (int, string) {
			if kind == "p99" {
				return 400, `{"status":"error","errorType":"bad_data","error":"parse error"}`
			}
			return 200, vector("1")
		}},
		{name: "malformed body", wantErr: true, answer: func(string) (int, string) { return 200, `{"status":"success","data":` }},
		{name: "not JSON", wantErr: true, answer: func(string) (int, string) { return 502, `<html>bad gateway</html>` }},
		{name: "several series", wantErr: true, answer: ok(
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"1"]}]}}`,
			vector("0"), vector("0.1"))},
		{name: "error rate above 1", wantErr: true, answer: ok(vector("1"), vector("1.5"), vector("0.1"))},
		{name: "matrix result", wantErr: true, answer: ok(
			`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}`, vector("0"), vector("0.1"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			f := &fakeAPI{}
			src, err := metrics.NewPrometheus(zap.New(core), metrics.PrometheusConfig{Address: f.server(t, tt.answer)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := src.VersionStats(t.Context(), catalog.Service{Name: "checkout", Metrics: catalog.MetricQueries{Convention: catalog.ConventionApp}}, "v2", 5*time.Minute, time.Unix(1700000000, 0))
			switch {
			case tt.wantNoData:
				if !errors.Is(err, metrics.ErrNoData) {
					t.Fatalf("err = %v, want ErrNoData", err)
				}
			case tt.wantErr:
				if err == nil || errors.Is(err, metrics.ErrNoData) {
					t.Fatalf("err = %v, want a failure other than ErrNoData", err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if !within(got.Requests, tt.want.Requests, 1e-9) || !within(got.Errors, tt.want.Errors, 1e-9) ||
					(got.P99-tt.want.P99).Abs() > time.Microsecond {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
			}
			if gotWarn := logs.FilterMessage("query warnings").Len() > 0; gotWarn != tt.wantWarn {
				t.Errorf("warning logged = %v, want %v", gotWarn, tt.wantWarn)
			}
		})
	}
}

func TestPrometheusRendersTemplates(t *testing.T) {
	f := &fakeAPI{}
	url := f.server(t, func(string) (int, string) { return 200, vector("1") })
	src, err := metrics.NewPrometheus(zap.NewNop(), metrics.PrometheusConfig{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	svc := catalog.Service{Name: "checkout", Metrics: catalog.MetricQueries{
		Convention: catalog.ConventionApp,
		LatencyP99: `histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="{{.Cluster}}"}[{{.Window}}]))) / 1000`,
	}}
	if _, err := src.VersionStats(t.Context(), svc, "v2", 90*time.Second, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		`sum(rate(requests_total{service="checkout",version="v2"}[1m30s]))`:                                                                                                                                                                     true,
		`histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="checkout|v2"}[1m30s]))) / 1000`:                                                                                                   true,
		`(sum(rate(requests_total{service="checkout",version="v2",code=~"5..|Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss"}[1m30s])) or vector(0)) / sum(rate(requests_total{service="checkout",version="v2"}[1m30s]))`: true,
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) != len(want) {
		t.Fatalf("queries = %q, want %d", f.queries, len(want))
	}
	for _, q := range f.queries {
		if !want[q] {
			t.Errorf("unexpected query %q", q)
		}
	}

	bad := catalog.Service{Name: "checkout", Metrics: catalog.MetricQueries{Convention: catalog.ConventionApp, Requests: `{{.Nope}}`}}
	if _, err := src.VersionStats(t.Context(), bad, "v2", time.Minute, time.Now()); err == nil {
		t.Error("unknown template field: no error")
	}
	if _, err := src.VersionStats(t.Context(), svc, "v2", 0, time.Now()); err == nil {
		t.Error("zero window: no error")
	}
}

func TestPrometheusEnvoyDefaults(t *testing.T) {
	f := &fakeAPI{}
	url := f.server(t, func(kind string) (int, string) {
		if kind == "buckets" {
			return 200, emptyVector
		}
		return 200, vector("1")
	})
	src, err := metrics.NewPrometheus(zap.NewNop(), metrics.PrometheusConfig{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	// No convention means envoy: Envoy's stats of the version's cluster.
	if _, err := src.VersionStats(t.Context(), catalog.Service{Name: "checkout"}, "v2", 5*time.Minute, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		`sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="checkout|v2"}[5m]))`: true,
		`(sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="checkout|v2",envoy_response_code_class="5"}[5m])) or vector(0)) / sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="checkout|v2"}[5m]))`: true,
		`histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="checkout|v2"}[5m]))) / 1000`:                                                                           true,
		`sum by (le) (increase(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="checkout|v2"}[5m])) or sum(increase(envoy_cluster_upstream_rq_time{envoy_cluster_name="checkout|v2"}[5m]))`:                 true,
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) != len(want) {
		t.Fatalf("queries = %q, want %d", f.queries, len(want))
	}
	for _, q := range f.queries {
		if !want[q] {
			t.Errorf("unexpected query %q", q)
		}
	}
	if got := metrics.DefaultQueries(catalog.ConventionApp).Requests; got != metrics.DefaultRequestsQuery {
		t.Errorf("app requests query %q", got)
	}
}

// TestPrometheusQueryValueEdges: the answers a real server will not give on demand.
func TestPrometheusQueryValueEdges(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		noData bool
	}{
		{"NaN", 200, vector("NaN"), true},
		{"+Inf (a division by zero)", 200, vector("+Inf"), true},
		{"empty", 200, `{"status":"success","data":{"resultType":"vector","result":[]}}`, true},
		{"scalar", 200, `{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}`, false},
		{"500", 500, `{"status":"error","errorType":"internal","error":"boom"}`, false},
		{"503 html", 503, `<html>unavailable</html>`, false},
		{"malformed", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAPI{}
			src, err := metrics.NewPrometheus(zap.NewNop(), metrics.PrometheusConfig{Address: f.server(t, func(string) (int, string) { return tt.status, tt.body })})
			if err != nil {
				t.Fatal(err)
			}
			v, err := src.QueryValue(t.Context(), catalog.Service{Name: "checkout"}, "v2", `queue_depth{service="{{.Service}}"}`, time.Minute, time.Unix(1700000000, 0))
			switch {
			case tt.noData && !errors.Is(err, metrics.ErrNoData):
				t.Errorf("err = %v, want ErrNoData", err)
			case !tt.noData && tt.name == "scalar" && (err != nil || v != 3):
				t.Errorf("scalar = %v, %v; want 3", v, err)
			case !tt.noData && tt.name != "scalar" && (err == nil || errors.Is(err, metrics.ErrNoData)):
				t.Errorf("err = %v, want a failure other than ErrNoData", err)
			}
		})
	}
}

func TestPromDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{5 * time.Minute, "5m"},
		{90 * time.Second, "1m30s"},
		{1500 * time.Millisecond, "1s500ms"},
		{time.Hour, "1h"},
		{1400 * time.Microsecond, "1ms"},
	}
	for _, tt := range tests {
		got, err := metrics.PromDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("PromDuration(%v) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := metrics.PromDuration(100 * time.Microsecond); err == nil {
		t.Error("sub-millisecond window: no error")
	}
}

func histogramVector(samples ...string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(samples, ",") + `]}}`
}

func leSample(le, v string) string {
	return `{"metric":{"le":"` + le + `"},"value":[1700000000,"` + v + `"]}`
}

// TestPrometheusLatencyHistogram: the shapes of a latency histogram result, read
// through VersionStats: classic buckets by le in the convention's unit, a native
// histogram, and the shapes that are errors.
func TestPrometheusLatencyHistogram(t *testing.T) {
	native := `{"metric":{},"histogram":[1700000000,{"count":"10.2","sum":"1.5","buckets":[[0,"0.2","0.4","5.6"],[3,"-0.001","0.001","0.4"],[0,"0.1","0.2","4"]]}]}`
	emptyNative := `{"metric":{},"histogram":[1700000000,{"count":"0","sum":"0"}]}`
	inf := math.Inf(+1)
	tests := []struct {
		name       string
		convention string
		custom     catalog.MetricQueries
		buckets    string
		want       []metrics.Bucket
		wantErr    string
	}{
		{name: "envoy classic, milliseconds to seconds, rounded and monotonic",
			buckets: histogramVector(leSample("1", "2.4"), leSample("+Inf", "30.6"), leSample("250", "29.7"), leSample("100", "29.8"), leSample("1.0", "0.4")),
			want:    []metrics.Bucket{{UpperBound: 0.001, Count: 3}, {UpperBound: 0.1, Count: 30}, {UpperBound: 0.25, Count: 30}, {UpperBound: inf, Count: 31}}},
		{name: "app classic in seconds", convention: catalog.ConventionApp,
			buckets: histogramVector(leSample("0.05", "7"), leSample("+Inf", "9")),
			want:    []metrics.Bucket{{UpperBound: 0.05, Count: 7}, {UpperBound: inf, Count: 9}}},
		{name: "native", convention: catalog.ConventionApp, buckets: histogramVector(native),
			want: []metrics.Bucket{{UpperBound: 0.001, Count: 0}, {UpperBound: 0.2, Count: 4}, {UpperBound: 0.4, Count: 10}, {UpperBound: inf, Count: 10}}},
		{name: "native in envoy's milliseconds", buckets: histogramVector(native),
			want: []metrics.Bucket{{UpperBound: 0.000001, Count: 0}, {UpperBound: 0.0002, Count: 4}, {UpperBound: 0.0004, Count: 10}, {UpperBound: inf, Count: 10}}},
		{name: "an empty native histogram beside classic buckets", convention: catalog.ConventionApp,
			buckets: histogramVector(leSample("0.05", "7"), leSample("+Inf", "9"), emptyNative),
			want:    []metrics.Bucket{{UpperBound: 0.05, Count: 7}, {UpperBound: inf, Count: 9}}},
		{name: "no histogram", buckets: emptyVector},
		{name: "custom P99 only: no histogram query", custom: catalog.MetricQueries{LatencyP99: `histogram_quantile(0.99, x_bucket)`},
			buckets: histogramVector(leSample("+Inf", "9"))},
		{name: "custom P99 and buckets", custom: catalog.MetricQueries{LatencyP99: `histogram_quantile(0.99, x_bucket)`,
			LatencyBuckets: `sum by (le) (increase(x_bucket{v="{{.Version}}"}[{{.Window}}]))`},
			buckets: histogramVector(leSample("+Inf", "9")), want: []metrics.Bucket{{UpperBound: inf, Count: 9}}},
		{name: "no le", buckets: vector("3"), wantErr: "has no le label"},
		{name: "le not a number", buckets: histogramVector(leSample("fast", "3")), wantErr: `le "fast" is not a number`},
		{name: "no +Inf", buckets: histogramVector(leSample("100", "3")), wantErr: `no le="+Inf"`},
		{name: "two native histograms", buckets: histogramVector(native, native), wantErr: "2 native histograms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAPI{}
			url := f.server(t, func(kind string) (int, string) {
				switch kind {
				case "buckets":
					return 200, tt.buckets
				case "errorRate":
					return 200, vector("0")
				}
				return 200, vector("1")
			})
			src, err := metrics.NewPrometheus(zap.NewNop(), metrics.PrometheusConfig{Address: url})
			if err != nil {
				t.Fatal(err)
			}
			m := tt.custom
			m.Convention = tt.convention
			got, err := src.VersionStats(t.Context(), catalog.Service{Name: "checkout", Metrics: m}, "v2", time.Minute, time.Unix(1700000000, 0))
			if tt.wantErr != "" {
				if err == nil || errors.Is(err, metrics.ErrNoData) || !strings.Contains(err.Error(), tt.wantErr) ||
					!strings.Contains(err.Error(), "latencyBuckets of checkout/v2") {
					t.Fatalf("err = %v, want a failure with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Latency) != len(tt.want) {
				t.Fatalf("latency = %v, want %v", got.Latency, tt.want)
			}
			for i := range tt.want {
				if g, w := got.Latency[i], tt.want[i]; g.Count != w.Count || (g.UpperBound != w.UpperBound && math.Abs(g.UpperBound-w.UpperBound) > 1e-12*w.UpperBound) {
					t.Errorf("latency = %v, want %v", got.Latency, tt.want)
					break
				}
			}
		})
	}
}
