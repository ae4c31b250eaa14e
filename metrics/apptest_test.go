package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// app is an in-test HTTP target exposing the application metrics convention from a
// client_golang registry, as the example app does.
type app struct {
	addr     string
	opts     prometheus.HistogramOpts
	srv      *httptest.Server
	reg      atomic.Pointer[prometheus.Registry]
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

func newApp(t *testing.T) *app {
	t.Helper()
	return newAppWith(t, prometheus.HistogramOpts{Buckets: latencyBuckets})
}

// newAppWith is newApp with the latency histogram's buckets (classic Buckets, native
// NativeHistogramBucketFactor) taken from opts.
func newAppWith(t *testing.T, opts prometheus.HistogramOpts) *app {
	t.Helper()
	opts.Name, opts.Help = "request_duration_seconds", "Latency."
	a := &app{opts: opts}
	a.reset()
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		promhttp.HandlerFor(a.reg.Load(), promhttp.HandlerOpts{}).ServeHTTP(w, r)
	}))
	t.Cleanup(a.srv.Close)
	a.addr = strings.TrimPrefix(a.srv.URL, "http://")
	return a
}

// reset replaces the registry with a fresh one, as a restarted process would: every
// counter starts again from zero.
func (a *app) reset() {
	reg := prometheus.NewRegistry()
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total", Help: "Requests by outcome."},
		[]string{"service", "version", "code"})
	a.latency = prometheus.NewHistogramVec(a.opts, []string{"service", "version"})
	reg.MustRegister(a.requests, a.latency)
	a.reg.Store(reg)
}

// touch creates the series of a version at zero, so that a scrape sees them before
// any traffic and the first requests count as an increase.
func (a *app) touch(service, version string, codes ...string) {
	for _, c := range codes {
		a.requests.WithLabelValues(service, version, c)
	}
	a.latency.WithLabelValues(service, version)
}

// serve records n requests of a version with the given code and latency.
func (a *app) serve(service, version, code string, n int, latency time.Duration) {
	for range n {
		a.requests.WithLabelValues(service, version, code).Inc()
		a.latency.WithLabelValues(service, version).Observe(latency.Seconds())
	}
}
