package envoytest_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/metrics/envoytest"
)

// scrape reads the exporter over HTTP and parses it as octoroll's scrape source does.
func scrape(t *testing.T, e *envoytest.Exporter) (map[string]*dto.MetricFamily, error) {
	t.Helper()
	resp, err := http.Get(e.URL())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(body))
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// clusterStats reads the requests, errors and histogram (ms bounds) of one cluster.
func clusterStats(t *testing.T, fams map[string]*dto.MetricFamily, cluster string) (req, errs float64, buckets []metrics.Bucket) {
	t.Helper()
	for _, m := range fams["envoy_cluster_upstream_rq_xx"].GetMetric() {
		if label(m, "envoy_cluster_name") != cluster {
			continue
		}
		req += m.GetCounter().GetValue()
		if label(m, "envoy_response_code_class") == "5" {
			errs += m.GetCounter().GetValue()
		}
	}
	for _, m := range fams["envoy_cluster_upstream_rq_time"].GetMetric() {
		if label(m, "envoy_cluster_name") != cluster {
			continue
		}
		for _, b := range m.GetHistogram().GetBucket() {
			buckets = append(buckets, metrics.Bucket{UpperBound: b.GetUpperBound(), Count: b.GetCumulativeCountFloat()})
		}
	}
	return req, errs, buckets
}

// diff returns the bucket increases b-a (same bounds).
func diff(a, b []metrics.Bucket) []metrics.Bucket {
	out := make([]metrics.Bucket, len(b))
	for i := range b {
		out[i] = b[i]
		if i < len(a) {
			out[i].Count -= a[i].Count
		}
	}
	return out
}

func TestExporterP99(t *testing.T) {
	// For each P99 the quantile of one Add, and of the increase over later Adds of
	// assorted sizes, lands on it.
	for _, p99 := range []time.Duration{
		750 * time.Microsecond, 3 * time.Millisecond, 20 * time.Millisecond, 42 * time.Millisecond,
		50 * time.Millisecond, 80 * time.Millisecond, 99 * time.Millisecond, 120 * time.Millisecond,
		130 * time.Millisecond, 249 * time.Millisecond, 400 * time.Millisecond, 2 * time.Second, 45 * time.Second,
	} {
		t.Run(p99.String(), func(t *testing.T) {
			e := envoytest.Start(t)
			e.Add("svc|v1", 1000, 10, p99)
			f0, err := scrape(t, e)
			if err != nil {
				t.Fatal(err)
			}
			req, errs, b0 := clusterStats(t, f0, "svc|v1")
			if req != 1000 || errs != 10 {
				t.Fatalf("requests %v errors %v, want 1000 and 10", req, errs)
			}
			wantMs := float64(p99) / float64(time.Millisecond)
			if got := metrics.BucketQuantile(0.99, b0); math.Abs(got-wantMs) > wantMs*1e-9 {
				t.Errorf("P99 of one Add = %v ms, want %v", got, wantMs)
			}
			for _, n := range []int{7, 13, 250, 1, 29, 700} {
				e.Add("svc|v1", n, 0, p99)
			}
			f1, err := scrape(t, e)
			if err != nil {
				t.Fatal(err)
			}
			_, _, b1 := clusterStats(t, f1, "svc|v1")
			if got := metrics.BucketQuantile(0.99, diff(b0, b1)); math.Abs(got-wantMs) > wantMs*1e-9 {
				t.Errorf("P99 of the increase = %v ms, want %v", got, wantMs)
			}
		})
	}
}

func TestExporterClassesAndClusters(t *testing.T) {
	e := envoytest.Start(t)
	e.Add("checkout|v1", 100, 0, 10*time.Millisecond)
	e.Add("checkout|v2", 50, 5, 10*time.Millisecond)
	fams, err := scrape(t, e)
	if err != nil {
		t.Fatal(err)
	}
	// A cluster that never answered 5xx has no class 5 counter, as in Envoy.
	classes := map[string]int{}
	for _, m := range fams["envoy_cluster_upstream_rq_xx"].GetMetric() {
		classes[label(m, "envoy_cluster_name")+"/"+label(m, "envoy_response_code_class")]++
	}
	if classes["checkout|v1/5"] != 0 || classes["checkout|v1/2"] != 1 || classes["checkout|v2/5"] != 1 {
		t.Errorf("class series %v", classes)
	}
	if r, x := e.Counts("checkout|v2"); r != 50 || x != 5 {
		t.Errorf("Counts = %d, %d; want 50, 5", r, x)
	}
	if fams["envoy_cluster_upstream_rq_time"].GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("rq_time type %v, want histogram", fams["envoy_cluster_upstream_rq_time"].GetType())
	}
	e.Reset()
	if r, _ := e.Counts("checkout|v2"); r != 0 {
		t.Errorf("after Reset: %d requests", r)
	}
}

func TestExporterStopRestart(t *testing.T) {
	e := envoytest.Start(t)
	e.Add("a|v1", 1, 0, time.Millisecond)
	if _, err := scrape(t, e); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := scrape(t, e); err == nil {
		t.Fatal("scrape of a stopped exporter succeeded")
	}
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	fams, err := scrape(t, e)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := clusterStats(t, fams, "a|v1"); r != 1 {
		t.Errorf("after restart: %v requests, want the counters kept", r)
	}
	e.Close()
	if err := e.Restart(); err == nil {
		t.Error("Restart after Close succeeded")
	}
}

func TestExporterTraffic(t *testing.T) {
	e := envoytest.Start(t)
	stop := e.Traffic("a|v1", 200, 0.1, 30*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		r, x := e.Counts("a|v1")
		if r >= 100 {
			if math.Abs(float64(x)-0.1*float64(r)) > 1 {
				t.Errorf("%d errors of %d requests, want 10%%", x, r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(errors.New("Traffic added fewer than 100 requests in 10s"))
		}
		<-tick.C
	}
	stop()
	stop()
	r1, _ := e.Counts("a|v1")
	// Stopped means stopped: a scrape later shows the same count.
	if _, err := scrape(t, e); err != nil {
		t.Fatal(err)
	}
	if r2, _ := e.Counts("a|v1"); r2 != r1 {
		t.Errorf("traffic continued after stop: %d -> %d", r1, r2)
	}
}
