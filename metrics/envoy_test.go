package metrics_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/metrics/envoytest"
	"github.com/octoacme/octoroll/metrics/promtest"
	"github.com/octoacme/octoroll/translate"
)

func TestClusterNameMatchesXDS(t *testing.T) {
	if got, want := metrics.ClusterName("checkout", "v2"), translate.ClusterName("checkout", "v2"); got != want {
		t.Fatalf("metrics.ClusterName = %q, translate.ClusterName = %q", got, want)
	}
}

// envoyService is checkout with the envoy convention reading one Envoy admin target.
func envoyService(t *testing.T, target string) catalog.Service {
	return catalog.Service{
		Name: "checkout", Stable: "v1",
		Versions: []catalog.Version{{Name: "v1"}, {Name: "v2"}},
		Metrics:  catalog.MetricQueries{Targets: []catalog.Endpoint{endpoint(t, target)}},
	}
}

// traffic is what one version's cluster serves in the test.
type traffic struct {
	rps       float64
	errorFrac float64
	p99       time.Duration
}

func checkStats(t *testing.T, source, version string, got metrics.Stats, want traffic, window time.Duration, requestsTol float64) {
	t.Helper()
	wantReq := want.rps * window.Seconds()
	if math.Abs(got.Requests-wantReq) > wantReq*requestsTol {
		t.Errorf("%s %s: %.1f requests, want %.0f ±%.0f%%", source, version, got.Requests, wantReq, requestsTol*100)
	}
	// Both classes are extrapolated alike, so the fraction is not; the exporter's error
	// counts are whole, so allow a little rounding.
	if math.Abs(got.ErrorRate()-want.errorFrac) > 0.004 {
		t.Errorf("%s %s: error rate %.4f, want %.4f", source, version, got.ErrorRate(), want.errorFrac)
	}
	// Every bucket's increase scales alike under extrapolation: the quantile holds.
	if d := (got.P99 - want.p99).Abs(); float64(d) > 0.01*float64(want.p99) {
		t.Errorf("%s %s: P99 %v, want %v", source, version, got.P99, want.p99)
	}
}

// TestEnvoyConventionRealServer: a real Prometheus scrapes Envoy-shaped stats every
// second; the default envoy queries give each version's requests, error rate and P99,
// and the embedded scrape source reading the same exporter gives the same figures.
// Then the failures: no series and NaN are no data, a stopped server is an error.
func TestEnvoyConventionRealServer(t *testing.T) {
	promtest.Require(t)
	e := envoytest.Start(t)
	want := map[string]traffic{
		"v1": {rps: 100, errorFrac: 0.01, p99: 80 * time.Millisecond},
		"v2": {rps: 40, errorFrac: 0.05, p99: 120 * time.Millisecond},
	}
	for v, tr := range want {
		cluster := metrics.ClusterName("checkout", v)
		// History before the first scrape: the counters are far from zero, so rate()
		// never shortens its extrapolation towards a zero crossing.
		e.Add(cluster, 100000, int(100000*tr.errorFrac), tr.p99)
		t.Cleanup(e.Traffic(cluster, tr.rps, tr.errorFrac, tr.p99))
	}
	e.Add("other|v1", 1000, 500, time.Second) // another cluster on the same exposition

	srv := promtest.StartServer(t, []string{e.Addr()}, promtest.Options{MetricsPath: envoytest.Path})
	prom, err := metrics.NewPrometheus(zaptest.NewLogger(t), metrics.PrometheusConfig{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	svc := envoyService(t, e.Addr())
	scrape := metrics.NewScrape(zaptest.NewLogger(t), metrics.ScrapeConfig{Interval: 250 * time.Millisecond})
	scrape.Update([]catalog.Service{svc})
	go func() { _ = scrape.Run(t.Context()) }()

	const window = 10 * time.Second
	ctx := t.Context()
	start := time.Now()
	// Wait until Prometheus holds a full window of scrapes of the traffic: 11 samples
	// a second apart reach back past the window's start. (Prometheus applies its
	// first targets a few seconds after it starts.)
	eventually(t, 60*time.Second, "a full window of samples", func() error {
		n, err := prom.Query(ctx, `count_over_time(envoy_cluster_upstream_rq_total{envoy_cluster_name="checkout|v2"}[11s])`, time.Now())
		if err != nil {
			return err
		}
		if n < 11 || time.Since(start) < window+time.Second {
			return fmt.Errorf("%v samples in the last 11s", n)
		}
		return nil
	})

	// At the latest scrape, rate() need not extrapolate towards the window's end.
	last, err := prom.Query(ctx, `max(timestamp(envoy_cluster_upstream_rq_total{envoy_cluster_name="checkout|v2"}))`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(int64(last * 1000))
	for _, v := range []string{"v1", "v2"} {
		p, err := prom.VersionStats(ctx, svc, v, window, at)
		if err != nil {
			t.Fatalf("prometheus %s: %v", v, err)
		}
		// ±10 %: a scrape late by a few hundred milliseconds at either end of the window
		// on a busy machine moves rate() by that much.
		checkStats(t, "prometheus", v, p, want[v], window, 0.1)
		s, err := scrape.VersionStats(ctx, svc, v, window, at)
		if err != nil {
			t.Fatalf("scrape %s: %v", v, err)
		}
		// The scrape source counts between its first and last sample in the window,
		// without extrapolating: up to one interval (and a tick of traffic) short.
		checkStats(t, "scrape", v, s, want[v], window, 0.1)
		t.Logf("%s: prometheus %.0f req, %.4f errors, P99 %v; scrape %.0f req, %.4f errors, P99 %v",
			v, p.Requests, p.ErrorRate(), p.P99, s.Requests, s.ErrorRate(), s.P99)
	}

	// A custom check's query, rendered with the version's cluster and window.
	perSec, err := prom.QueryValue(ctx, svc, "v2",
		`sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="{{.Cluster}}",envoy_response_code_class="5"}[{{.Window}}]))`, window, at)
	if err != nil || math.Abs(perSec-2) > 0.5 {
		t.Errorf("QueryValue(5xx per second of v2) = %v, %v; want about 2", perSec, err)
	}
	// No series and NaN are no data; a broken query is an error of another kind.
	for _, tc := range []struct {
		name, tmpl string
		noData     bool
	}{
		{"empty", `sum(rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="{{.Cluster}}-absent"}[{{.Window}}]))`, true},
		{"NaN", `0/0`, true},
		{"syntax", `sum(rate(envoy_cluster_upstream_rq_xx[{{.Window}}])`, false},
		{"template", `{{.Nope}}`, false},
	} {
		_, err := prom.QueryValue(ctx, svc, "v2", tc.tmpl, window, at)
		if tc.noData != errors.Is(err, metrics.ErrNoData) || err == nil {
			t.Errorf("QueryValue %s: err = %v, want no data %v", tc.name, err, tc.noData)
		}
	}
	absent := svc
	absent.Versions = append(absent.Versions, catalog.Version{Name: "v9"})
	if _, err := prom.VersionStats(ctx, absent, "v9", window, at); !errors.Is(err, metrics.ErrNoData) {
		t.Errorf("prometheus, version without series: err = %v, want ErrNoData", err)
	}

	// The server goes away mid-analysis: an error, neither no data nor figures.
	srv.Stop()
	if st, err := prom.VersionStats(ctx, svc, "v2", window, time.Now()); err == nil || errors.Is(err, metrics.ErrNoData) {
		t.Errorf("prometheus stopped: %+v, %v; want a failure other than ErrNoData", st, err)
	} else if !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("prometheus stopped: %v, want the address named", err)
	}
	if _, err := prom.FiringAlerts(ctx, svc, time.Now()); err == nil {
		t.Error("FiringAlerts of a stopped server: no error")
	}
}

// TestScrapeEnvoyExposition drives the scrape source round by round on a fake clock
// against the exporter: exact counts and P99 per version from one exposition scraped
// once per round, then the target going away and coming back.
func TestScrapeEnvoyExposition(t *testing.T) {
	e := envoytest.Start(t)
	e.Add("checkout|v1", 5000, 10, 70*time.Millisecond) // history before the first sample
	clk := &clock{now: time.Unix(1000, 0)}
	s := metrics.NewScrape(zaptest.NewLogger(t), metrics.ScrapeConfig{Interval: 5 * time.Second, Now: clk.Now})
	svc := envoyService(t, e.Addr())
	// v2 also lists the same exposition as its own: still one scrape per round.
	svc.Versions[1].Metrics = []catalog.Endpoint{endpoint(t, e.Addr())}
	other := catalog.Service{Name: "search", Versions: []catalog.Version{{Name: "v1"}},
		Metrics: catalog.MetricQueries{Targets: []catalog.Endpoint{endpoint(t, e.Addr())}}}
	s.Update([]catalog.Service{svc, other})
	ctx := t.Context()
	s.ScrapeOnce(ctx)
	if got := e.Scrapes(); got != 1 {
		t.Fatalf("%d scrapes in one round of three versions on one exposition, want 1", got)
	}

	e.Add("checkout|v1", 1000, 10, 70*time.Millisecond)
	e.Add("checkout|v2", 200, 0, 150*time.Millisecond)
	e.Add("checkout|v2", 200, 40, 150*time.Millisecond)
	e.Add("search|v1", 3, 3, time.Second)
	clk.Add(5 * time.Second)
	s.ScrapeOnce(ctx)
	stats := func(v string) metrics.Stats {
		t.Helper()
		st, err := s.VersionStats(ctx, svc, v, 10*time.Second, clk.Now())
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		return st
	}
	v1, v2 := stats("v1"), stats("v2")
	if v1.Requests != 1000 || v1.Errors != 10 || (v1.P99-70*time.Millisecond).Abs() > time.Microsecond {
		t.Errorf("v1 = %+v, want 1000 requests, 10 errors, P99 70ms", v1)
	}
	if v2.Requests != 400 || v2.Errors != 40 || (v2.P99-150*time.Millisecond).Abs() > time.Microsecond {
		t.Errorf("v2 = %+v, want 400 requests, 40 errors, P99 150ms", v2)
	}
	if st, err := s.VersionStats(ctx, other, "v1", 10*time.Second, clk.Now()); err != nil || st.Requests != 3 || st.Errors != 3 {
		t.Errorf("search/v1 = %+v, %v; want 3 requests, 3 errors", st, err)
	}

	// The target goes away: every version it serves answers an error naming it.
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	clk.Add(5 * time.Second)
	s.ScrapeOnce(ctx)
	for _, v := range []string{"v1", "v2"} {
		_, err := s.VersionStats(ctx, svc, v, 10*time.Second, clk.Now())
		if err == nil || errors.Is(err, metrics.ErrNoData) || !strings.Contains(err.Error(), e.Addr()) {
			t.Errorf("%s with the target down: err = %v, want a failure naming %s", v, err, e.Addr())
		}
	}
	for _, tg := range s.Targets() {
		if tg.LastError == "" || tg.Endpoint != e.Addr() || !strings.HasSuffix(tg.URL, envoytest.Path) {
			t.Errorf("target %+v, want the failure recorded", tg)
		}
	}
	// It comes back: the next round answers again, counting across the gap.
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	e.Add("checkout|v2", 100, 0, 150*time.Millisecond)
	clk.Add(5 * time.Second)
	s.ScrapeOnce(ctx)
	if st, err := s.VersionStats(ctx, svc, "v2", 10*time.Second, clk.Now()); err != nil || st.Requests != 100 {
		t.Errorf("v2 after the target came back: %+v, %v; want 100 requests", st, err)
	}
	// Envoy restarts: counters from zero count as a reset.
	e.Reset()
	e.Add("checkout|v2", 30, 3, 150*time.Millisecond)
	clk.Add(5 * time.Second)
	s.ScrapeOnce(ctx)
	if st, err := s.VersionStats(ctx, svc, "v2", 5*time.Second, clk.Now()); err != nil || st.Requests != 30 || st.Errors != 3 {
		t.Errorf("v2 after an Envoy restart: %+v, %v; want 30 requests, 3 errors", st, err)
	}
}
