package metrics_test

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/metrics/envoytest"
	"github.com/octoacme/octoroll/metrics/promtest"
)

func TestLatencyLadders(t *testing.T) {
	ms := metrics.LatencyBucketsMS()
	if len(ms) != metrics.LatencyBucketCount || ms[0] != 1 || ms[len(ms)-1] != 63320 {
		t.Fatalf("ladder: %d bounds from %v to %v, want %d from 1 to 63320", len(ms), ms[0], ms[len(ms)-1], metrics.LatencyBucketCount)
	}
	for i := 1; i < len(ms); i++ {
		// 4 significant digits move a bound by at most 0.05 %: each step is ×1.1 ±0.1 %.
		if r := ms[i] / ms[i-1]; math.Abs(r-metrics.LatencyBucketFactor) > 0.0011 {
			t.Errorf("bound %d: %v/%v = ×%.4f", i, ms[i], ms[i-1], r)
		}
		if got := strconv.FormatFloat(ms[i], 'g', -1, 64); len(strings.Trim(strings.ReplaceAll(got, ".", ""), "0")) > 4 {
			t.Errorf("bound %d: %s has more than 4 significant digits", i, got)
		}
	}
	for name, pair := range map[string][2][]float64{
		"octoroll": {ms, metrics.LatencyBuckets()},
		"envoy":    {metrics.EnvoyDefaultBucketsMS(), metrics.EnvoyDefaultBuckets()},
	} {
		for i, s := range pair[1] {
			want, _ := strconv.ParseFloat(strconv.FormatFloat(pair[0][i], 'g', -1, 64)+"e-3", 64)
			if s != want {
				t.Errorf("%s bound %d: %v s, want %v (%v ms)", name, i, s, want, pair[0][i])
			}
		}
	}
	if got := metrics.LatencyBuckets()[1]; got != 0.0011 {
		t.Errorf("1.1 ms in seconds = %v, want 0.0011", got)
	}
	if !slices.Equal(metrics.EnvoyDefaultBucketsMS(), envoytest.Bounds) {
		t.Errorf("EnvoyDefaultBucketsMS %v, envoytest.Bounds %v", metrics.EnvoyDefaultBucketsMS(), envoytest.Bounds)
	}
	// The slices are the caller's.
	metrics.LatencyBucketsMS()[0] = 99
	metrics.EnvoyDefaultBucketsMS()[0] = 99
	if metrics.LatencyBucketsMS()[0] != 1 || metrics.EnvoyDefaultBucketsMS()[0] != 0.5 {
		t.Error("a caller's change reached the ladder")
	}
}

func TestHistogram(t *testing.T) {
	inf := math.Inf(+1)
	in := []metrics.Bucket{
		{UpperBound: inf, Count: 30.6}, {UpperBound: 0.25, Count: 29.7}, {UpperBound: 0.1, Count: 29.8},
		{UpperBound: math.NaN(), Count: 5}, {UpperBound: 0.05, Count: math.NaN()}, {UpperBound: 0.001, Count: 2.4},
		{UpperBound: 0.001, Count: 0.4}, {UpperBound: 0.0005, Count: -0.7},
	}
	orig := slices.Clone(in)
	got := metrics.Histogram(in)
	want := []metrics.Bucket{{UpperBound: 0.0005, Count: 0}, {UpperBound: 0.001, Count: 3}, {UpperBound: 0.1, Count: 30}, {UpperBound: 0.25, Count: 30}, {UpperBound: inf, Count: 31}}
	if !slices.Equal(got, want) {
		t.Errorf("Histogram = %v, want %v", got, want)
	}
	if fmt.Sprint(in) != fmt.Sprint(orig) {
		t.Errorf("Histogram changed its input: %v", in)
	}
	if got := metrics.Histogram([]metrics.Bucket{{UpperBound: 1, Count: 3}}); got != nil {
		t.Errorf("no +Inf: %v, want nil", got)
	}
	if got := metrics.Histogram(nil); got != nil {
		t.Errorf("empty: %v, want nil", got)
	}
	// BucketQuantile keeps its own order and monotonic rule.
	if q := metrics.BucketQuantile(0.5, []metrics.Bucket{{UpperBound: inf, Count: 10}, {UpperBound: 2, Count: 10}, {UpperBound: 1, Count: 0}}); q != 1.5 {
		t.Errorf("BucketQuantile = %v, want 1.5", q)
	}
}

func TestNativeBucketBound(t *testing.T) {
	for _, tc := range []struct {
		schema, index int32
		want          float64
	}{
		{0, 0, 1}, {0, 1, 2}, {0, -1, 0.5}, {3, 8, 2}, {3, 1, math.Pow(2, 0.125)}, {-1, 1, 4}, {-2, -1, 1.0 / 16}, {8, 256, 2},
	} {
		if got := metrics.NativeBucketBound(tc.schema, tc.index); math.Abs(got-tc.want) > 1e-15*tc.want {
			t.Errorf("NativeBucketBound(%d, %d) = %v, want %v", tc.schema, tc.index, got, tc.want)
		}
	}
}

// scrapedAt waits until Prometheus's latest sample of the series sel has the value
// want and returns its timestamp.
func scrapedAt(t *testing.T, prom *metrics.Prometheus, sel string, want float64) time.Time {
	t.Helper()
	var at time.Time
	eventually(t, 60*time.Second, fmt.Sprintf("%s == %v scraped", sel, want), func() error {
		// timestamp() of a selector is its sample's time (of an expression, the
		// evaluation time).
		ts, err := prom.Query(t.Context(), fmt.Sprintf(`timestamp(%[1]s) and %[1]s == %[2]v`, sel, want), time.Now())
		if err != nil {
			return err
		}
		at = time.UnixMilli(int64(math.Round(ts * 1000)))
		return nil
	})
	return at
}

// checkServed compares a source's histogram with what a target served: bounds in
// seconds (+Inf last) and cumulative counts, rounded to whole requests.
func checkServed(t *testing.T, source string, got []metrics.Bucket, bounds, counts []float64) {
	t.Helper()
	if len(got) != len(bounds) {
		t.Fatalf("%s: %d buckets, want %d: %v", source, len(got), len(bounds), got)
	}
	for i, b := range got {
		ub := bounds[i]
		if b.UpperBound != ub && !(math.Abs(b.UpperBound-ub) <= 1e-12*ub) {
			t.Fatalf("%s: bucket %d bound %v s, want %v", source, i, b.UpperBound, ub)
		}
		if want := math.Round(counts[i]); b.Count != want {
			t.Errorf("%s: bucket le=%v count %v, want %v", source, ub, b.Count, want)
		}
	}
}

// TestEnvoyHistogramRealServer: an Envoy-shaped exposition with octoroll's bucket
// ladder, read by a real Prometheus through the default envoy queries and by the
// scrape source: both give the histogram the exporter served over the window, bucket
// by bucket, with the bounds converted from milliseconds to seconds.
func TestEnvoyHistogramRealServer(t *testing.T) {
	promtest.Require(t)
	ladder := metrics.LatencyBucketsMS()
	e := envoytest.StartWithBounds(t, ladder)
	const cluster = "checkout|v2"
	// History before the window, errors included: Envoy creates the 5xx counter on its
	// first error, and rate() misses the first increment of a new counter.
	e.Add(cluster, 1000, 1, 40*time.Millisecond)
	srv := promtest.StartServer(t, []string{e.Addr()}, promtest.Options{MetricsPath: envoytest.Path})
	prom, err := metrics.NewPrometheus(zaptest.NewLogger(t), metrics.PrometheusConfig{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	svc := envoyService(t, e.Addr())
	clk := &clock{now: time.Unix(1000, 0)}
	scrape := metrics.NewScrape(zaptest.NewLogger(t), metrics.ScrapeConfig{Interval: 5 * time.Second, Now: clk.Now})
	scrape.Update([]catalog.Service{svc})
	ctx := t.Context()

	// The window runs from a scrape of the history to a scrape of the traffic below:
	// with a sample at each end, increase() extrapolates nothing.
	const sel = `envoy_cluster_upstream_rq_total{envoy_cluster_name="checkout|v2"}`
	from := scrapedAt(t, prom, sel, 1000)
	_, before := e.Histogram(cluster)
	scrape.ScrapeOnce(ctx)
	for _, a := range []struct {
		n, errs int
		p99     time.Duration
	}{{500, 0, 3 * time.Millisecond}, {300, 3, 47 * time.Millisecond}, {150, 0, 230 * time.Millisecond}, {50, 5, 1900 * time.Millisecond}} {
		e.Add(cluster, a.n, a.errs, a.p99)
	}
	boundsMs, after := e.Histogram(cluster)
	clk.Add(5 * time.Second)
	scrape.ScrapeOnce(ctx)
	to := scrapedAt(t, prom, sel, 2000)

	served := make([]float64, len(after))
	for i := range after {
		served[i] = after[i] - before[i]
	}
	bounds := append(metrics.LatencyBuckets(), math.Inf(+1))
	if len(boundsMs) != len(bounds) {
		t.Fatalf("exporter serves %d buckets, ladder has %d", len(boundsMs), len(bounds))
	}

	p, err := prom.VersionStats(ctx, svc, "v2", to.Sub(from), to)
	if err != nil {
		t.Fatal(err)
	}
	if !within(p.Requests, 1000, 0.01) {
		t.Errorf("prometheus: %v requests, want 1000", p.Requests)
	}
	checkServed(t, "prometheus", p.Latency, bounds, served)
	s, err := scrape.VersionStats(ctx, svc, "v2", 5*time.Second, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	checkServed(t, "scrape", s.Latency, bounds, served)
	if d := (s.P99 - p.P99).Abs(); d > time.Millisecond {
		t.Errorf("P99: prometheus %v, scrape %v", p.P99, s.P99)
	}
	t.Logf("window %v: %v requests, P99 %v; %d buckets agree", to.Sub(from), p.Requests, p.P99, len(bounds))
}

// appObservation is a batch of requests the app test serves.
type appObservation struct {
	code    string
	n       int
	latency time.Duration
}

var appObservations = []appObservation{
	{"200", 400, 3 * time.Millisecond}, {"200", 300, 47 * time.Millisecond}, {"500", 20, 230 * time.Millisecond},
	{"200", 100, 230 * time.Millisecond}, {"200", 5, 1900 * time.Millisecond},
}

// checkObserved checks a source's histogram against the app's observations: every
// finite bound counts the observations at most that long, the +Inf bucket all of them,
// and each latency observed has a bound above it within the resolution (×res).
func checkObserved(t *testing.T, source string, got []metrics.Bucket, res float64) {
	t.Helper()
	if len(got) == 0 || !math.IsInf(got[len(got)-1].UpperBound, +1) {
		t.Fatalf("%s: histogram %v, want one with +Inf last", source, got)
	}
	total := 0
	for _, o := range appObservations {
		total += o.n
	}
	if c := got[len(got)-1].Count; c != float64(total) {
		t.Errorf("%s: +Inf count %v, want %d", source, c, total)
	}
	for _, b := range got[:len(got)-1] {
		want := 0
		for _, o := range appObservations {
			if o.latency.Seconds() <= b.UpperBound {
				want += o.n
			}
		}
		if b.Count != float64(want) {
			t.Errorf("%s: le=%v count %v, want %d", source, b.UpperBound, b.Count, want)
		}
	}
	for _, o := range appObservations {
		x := o.latency.Seconds()
		if !slices.ContainsFunc(got, func(b metrics.Bucket) bool { return b.UpperBound >= x && b.UpperBound <= x*res }) {
			t.Errorf("%s: no bound within ×%v above %v", source, res, o.latency)
		}
	}
}

// TestAppHistogramRealServer: the app convention's histogram served by a
// client_golang registry, classic with octoroll's ladder and native (schema 3, as
// NativeHistogramBucketFactor 1.1 gives), read by a real Prometheus (with its
// native-histograms feature for the native one, which makes it scrape the protobuf
// format) and by the scrape source (which asks for the protobuf format): both give the
// observations of the window.
func TestAppHistogramRealServer(t *testing.T) {
	promtest.Require(t)
	for _, tc := range []struct {
		name     string
		opts     prometheus.HistogramOpts
		features []string
		res      float64
	}{
		{"classic", prometheus.HistogramOpts{Buckets: metrics.LatencyBuckets()}, nil, 1.1 * 1.0005},
		{"native", prometheus.HistogramOpts{NativeHistogramBucketFactor: 1.1}, []string{"native-histograms"}, math.Pow(2, 0.125)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAppWith(t, tc.opts)
			a.touch("checkout", "v2", "200", "500")
			srv := promtest.StartServer(t, []string{a.addr}, promtest.Options{Features: tc.features})
			prom, err := metrics.NewPrometheus(zaptest.NewLogger(t), metrics.PrometheusConfig{Address: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			svc := catalog.Service{Name: "checkout", Stable: "v2", Versions: []catalog.Version{{Name: "v2"}},
				Metrics: catalog.MetricQueries{Convention: catalog.ConventionApp, Targets: []catalog.Endpoint{endpoint(t, a.addr)}}}
			clk := &clock{now: time.Unix(1000, 0)}
			scrape := metrics.NewScrape(zaptest.NewLogger(t), metrics.ScrapeConfig{Interval: 5 * time.Second, Now: clk.Now})
			scrape.Update([]catalog.Service{svc})
			ctx := t.Context()

			const sel = `requests_total{service="checkout",version="v2",code="200"}`
			from := scrapedAt(t, prom, sel, 0)
			scrape.ScrapeOnce(ctx)
			for _, o := range appObservations {
				a.serve("checkout", "v2", o.code, o.n, o.latency)
			}
			clk.Add(5 * time.Second)
			scrape.ScrapeOnce(ctx)
			to := scrapedAt(t, prom, sel, 805)

			p, err := prom.VersionStats(ctx, svc, "v2", to.Sub(from), to)
			if err != nil {
				t.Fatal(err)
			}
			if !within(p.Requests, 825, 0.01) || !within(p.Errors, 20, 0.01) {
				t.Errorf("prometheus: %+v, want 825 requests, 20 errors", p)
			}
			checkObserved(t, "prometheus", p.Latency, tc.res)
			s, err := scrape.VersionStats(ctx, svc, "v2", 5*time.Second, clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			checkObserved(t, "scrape", s.Latency, tc.res)
			// 5 of 825 requests took 1.9 s: the 0.99 quantile lies in the bucket below.
			for src, p99 := range map[string]time.Duration{"prometheus": p.P99, "scrape": s.P99} {
				if p99 <= 200*time.Millisecond || p99 > 260*time.Millisecond {
					t.Errorf("%s: P99 %v, want in the bucket of 230ms", src, p99)
				}
			}
			t.Logf("prometheus: %d buckets, P99 %v; scrape: %d buckets, P99 %v", len(p.Latency), p.P99, len(s.Latency), s.P99)
		})
	}
}
