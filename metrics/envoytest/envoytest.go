// Package envoytest is a test exporter that serves Envoy-shaped cluster stats over real
// HTTP, the way Envoy's admin endpoint serves /stats/prometheus: per cluster the
// response counters envoy_cluster_upstream_rq_xx{envoy_response_code_class,
// envoy_cluster_name} and the request time histogram envoy_cluster_upstream_rq_time
// (milliseconds, Envoy's default bucket bounds, or the bounds the test gives, as a
// bootstrap's histogram_bucket_settings would). The test drives the traffic with Add or
// Traffic, and can stop and restart the listener to make the target go away.
//
// Add and Traffic place latencies deterministically so that histogram_quantile(0.99)
// over any increase of a cluster's histogram, and metrics.BucketQuantile alike, lands
// exactly on the P99 the test asked for; to make that exact whatever the number of
// requests, bucket counts may be fractional (the text format carries floats). AddSampled
// and TrafficSampled draw each request's latency from a lognormal distribution, the
// long right tail real services have, in whole counts as Envoy's. The +Inf bucket and the _count are the whole request count.
// It imports nothing of octoroll.
package envoytest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Path is the path the exposition is served at, as Envoy's admin endpoint does.
const Path = "/stats/prometheus"

// Bounds are Envoy's default histogram bucket upper bounds, in milliseconds; a +Inf
// bucket follows them.
var Bounds = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Exporter is the test exporter. Its methods are safe for concurrent use.
type Exporter struct {
	addr   string
	bounds []float64 // finite bucket bounds, ms, ascending

	mu       sync.Mutex
	clusters map[string]*cluster
	scrapes  int
	srv      *http.Server
	served   chan struct{} // closed when the current server's Serve returns
	closed   bool
	traffic  sync.WaitGroup
	stopAll  context.CancelFunc
	trafficC context.Context
}

// cluster is one cluster's counters.
type cluster struct {
	requests, errors uint64
	buckets          []float64 // per bucket (not cumulative); last is +Inf
	sumMs            float64
}

// New starts an exporter listening on addr ("127.0.0.1:0" picks a free port), with
// Envoy's default bucket bounds.
func New(addr string) (*Exporter, error) { return NewWithBounds(addr, Bounds) }

// NewWithBounds is New with the given finite bucket bounds, in milliseconds; they must
// ascend.
func NewWithBounds(addr string, bounds []float64) (*Exporter, error) {
	if len(bounds) == 0 || !sort.Float64sAreSorted(bounds) {
		return nil, errors.New("bounds must be given in ascending order")
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Exporter{bounds: append([]float64(nil), bounds...), clusters: map[string]*cluster{}, stopAll: cancel, trafficC: ctx}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	e.addr = l.Addr().String()
	e.serve(l)
	return e, nil
}

// Start starts an exporter on 127.0.0.1 and closes it when the test ends.
func Start(t testing.TB) *Exporter {
	t.Helper()
	return StartWithBounds(t, Bounds)
}

// StartWithBounds is Start with the given bucket bounds (see NewWithBounds).
func StartWithBounds(t testing.TB, bounds []float64) *Exporter {
	t.Helper()
	e, err := NewWithBounds("127.0.0.1:0", bounds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func (e *Exporter) serve(l net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, _ *http.Request) {
		e.mu.Lock()
		e.scrapes++
		e.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(e.Exposition()))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	e.srv, e.served = srv, done
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
}

// Addr is the host:port the exporter listens on; it stays the same across Restart.
func (e *Exporter) Addr() string { return e.addr }

// URL is the exposition's address, http://Addr/stats/prometheus.
func (e *Exporter) URL() string { return "http://" + e.addr + Path }

// Stop closes the listener and every connection: scrapes fail until Restart. Traffic
// keeps counting meanwhile, as a proxy does whose admin port is unreachable.
func (e *Exporter) Stop() error {
	e.mu.Lock()
	srv, done := e.srv, e.served
	e.srv = nil
	e.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-done
	return err
}

// Restart listens again on Addr after Stop (Go listeners set SO_REUSEADDR, so the
// port just released binds again at once unless another process took it).
func (e *Exporter) Restart() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("exporter closed")
	}
	if e.srv != nil {
		return nil
	}
	l, err := net.Listen("tcp", e.addr)
	if err != nil {
		return fmt.Errorf("listen %s again: %w", e.addr, err)
	}
	e.serve(l)
	return nil
}

// Close stops the traffic generators and the listener.
func (e *Exporter) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.stopAll()
	e.traffic.Wait()
	_ = e.Stop()
}

// Reset sets every counter to zero, as a restarted Envoy does.
func (e *Exporter) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clusters = map[string]*cluster{}
}

// Scrapes returns how many times the exposition was served.
func (e *Exporter) Scrapes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.scrapes
}

// Counts returns the requests and errors the cluster has served so far.
func (e *Exporter) Counts(clusterName string) (requests, errors uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.clusters[clusterName]; c != nil {
		return c.requests, c.errors
	}
	return 0, 0
}

// split returns, for a P99 of p99 ms, the bucket k holding it and the fractions of the
// observations to put below bucket k (in bucket k-1) and above it (in bucket k+1), the
// rest going into bucket k. With N observations, b below and c in bucket k, the
// quantile interpolates to L + (U-L)·(0.99N-b)/c, where (L, U] are the bounds of
// bucket k; the fractions make that equal p99:
//
//	x = (p99-L)/(U-L); x ≤ 0.99: below = (0.99-x)/(1-x), above = 0
//	                   x > 0.99: below = 0, above = 1-0.99/x
//
// A P99 in the first bucket with x ≤ 0.99 cannot be reached (nothing lies below 0): all
// observations go into it and the quantile is 0.495 ms. A P99 beyond the last finite
// bound goes into +Inf, where the quantile is the last finite bound, 3600000 ms.
func split(bounds []float64, p99 float64) (k int, below, above float64) {
	if p99 <= 0 {
		return 0, 0, 0
	}
	k = sort.SearchFloat64s(bounds, p99) // first bound >= p99
	if k == len(bounds) {
		return k, 0, 0
	}
	lower := 0.0
	if k > 0 {
		lower = bounds[k-1]
	}
	x := (p99 - lower) / (bounds[k] - lower)
	switch {
	case x <= 0.99 && k == 0:
		return 0, 0, 0
	case x <= 0.99:
		return k, (0.99 - x) / (1 - x), 0
	default:
		return k, 0, 1 - 0.99/x
	}
}

// cluster returns clusterName's counters, created empty on first use. e.mu is held.
func (e *Exporter) cluster(clusterName string) *cluster {
	c := e.clusters[clusterName]
	if c == nil {
		c = &cluster{buckets: make([]float64, len(e.bounds)+1)}
		e.clusters[clusterName] = c
	}
	return c
}

// Add records requests responses of clusterName (a cluster name such as
// "checkout|v2"), errors of them with a 5xx status, and their latencies placed so that
// the 0.99 quantile of the cluster's histogram over any run of Adds with the same p99
// is p99 (see split).
func (e *Exporter) Add(clusterName string, requests, errors int, p99 time.Duration) {
	e.record(clusterName, requests, errors, func(c *cluster) {
		e.place(c, requests, p99)
	})
}

// record counts requests responses of clusterName, errors of them failing, and has
// latencies put them in its buckets, under e.mu.
func (e *Exporter) record(clusterName string, requests, errors int, latencies func(c *cluster)) {
	if requests <= 0 {
		return
	}
	errors = min(max(errors, 0), requests)
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.cluster(clusterName)
	c.requests += uint64(requests)
	c.errors += uint64(errors)
	latencies(c)
}

// place puts requests latencies in c's buckets so that its 0.99 quantile is p99.
func (e *Exporter) place(c *cluster, requests int, p99 time.Duration) {
	ms := float64(p99) / float64(time.Millisecond)
	k, fb, fa := split(e.bounds, ms)
	n := float64(requests)
	below, above := n*fb, n*fa
	in := n - below - above
	if below > 0 {
		c.buckets[k-1] += below
		c.sumMs += below * e.bounds[k-1]
	}
	c.buckets[k] += in
	c.sumMs += in * ms
	if above > 0 {
		c.buckets[k+1] += above
		c.sumMs += above * e.bounds[min(k+1, len(e.bounds)-1)]
	}
}

// Traffic adds rps requests per second to clusterName, errorFrac of them failing, all
// with the given P99, from a goroutine that keeps the counts in step with the elapsed
// time (every 50 ms), until stop is called or the exporter closes. stop may be called
// more than once.
func (e *Exporter) Traffic(clusterName string, rps, errorFrac float64, p99 time.Duration) (stop func()) {
	return e.flow(rps, errorFrac, func(n, errs int) { e.Add(clusterName, n, errs, p99) })
}

// Lognormal is a latency distribution with the long right tail real services have: a
// lognormal with the given median and σ (median 50 ms, σ 0.6 has a P99 of 202 ms).
type Lognormal struct {
	Median time.Duration
	Sigma  float64
}

// WithP99 returns the lognormal of σ sigma whose P99 is p99.
func WithP99(p99 time.Duration, sigma float64) Lognormal {
	const z99 = 2.3263478740408408
	return Lognormal{Median: time.Duration(float64(p99) / math.Exp(z99*sigma)), Sigma: sigma}
}

// AddSampled records requests responses of clusterName, errors of them with a 5xx
// status, each with a latency drawn from d by rng: whole bucket counts, as Envoy's.
func (e *Exporter) AddSampled(clusterName string, requests, errors int, d Lognormal, rng *rand.Rand) {
	e.record(clusterName, requests, errors, func(c *cluster) {
		median := float64(d.Median) / float64(time.Millisecond)
		for range requests {
			ms := median * math.Exp(d.Sigma*rng.NormFloat64())
			c.buckets[sort.SearchFloat64s(e.bounds, ms)]++
			c.sumMs += ms
		}
	})
}

// TrafficSampled is Traffic with every request's latency drawn from d, seeded by seed.
func (e *Exporter) TrafficSampled(clusterName string, rps, errorFrac float64, d Lognormal, seed uint64) (stop func()) {
	rng := rand.New(rand.NewPCG(seed, 0xe17))
	return e.flow(rps, errorFrac, func(n, errs int) { e.AddSampled(clusterName, n, errs, d, rng) })
}

// flow calls add with the requests and errors due since the last call, every 50 ms,
// keeping rps requests a second and errorFrac of them failing, until stop is called or
// the exporter closes.
func (e *Exporter) flow(rps, errorFrac float64, add func(n, errs int)) (stop func()) {
	ctx, cancel := context.WithCancel(e.trafficC)
	done := make(chan struct{})
	e.traffic.Add(1)
	go func() {
		defer e.traffic.Done()
		defer close(done)
		start := time.Now()
		var sent, failed int
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			total := int(rps * time.Since(start).Seconds())
			n := total - sent
			if n <= 0 {
				continue
			}
			errs := int(math.Round(float64(total)*errorFrac)) - failed
			add(n, errs)
			sent, failed = total, failed+min(max(errs, 0), n)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// Exposition returns the text the exporter serves, clusters in name order.
func (e *Exporter) Exposition() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := make([]string, 0, len(e.clusters))
	for n := range e.clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# TYPE envoy_cluster_upstream_rq_xx counter\n")
	for _, n := range names {
		c := e.clusters[n]
		// Envoy creates a class's counter on its first response of that class.
		if ok := c.requests - c.errors; ok > 0 {
			fmt.Fprintf(&b, "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=%s} %d\n", quote(n), ok)
		}
		if c.errors > 0 {
			fmt.Fprintf(&b, "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=%s} %d\n", quote(n), c.errors)
		}
	}
	b.WriteString("# TYPE envoy_cluster_upstream_rq_total counter\n")
	for _, n := range names {
		fmt.Fprintf(&b, "envoy_cluster_upstream_rq_total{envoy_cluster_name=%s} %d\n", quote(n), e.clusters[n].requests)
	}
	b.WriteString("# TYPE envoy_cluster_upstream_rq_time histogram\n")
	for _, n := range names {
		c := e.clusters[n]
		for i, cum := range c.cumulative()[:len(e.bounds)] {
			fmt.Fprintf(&b, "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=%s,le=\"%s\"} %s\n",
				quote(n), strconv.FormatFloat(e.bounds[i], 'f', -1, 64), strconv.FormatFloat(cum, 'f', -1, 64))
		}
		fmt.Fprintf(&b, "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=%s,le=\"+Inf\"} %d\n", quote(n), c.requests)
		fmt.Fprintf(&b, "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=%s} %s\n", quote(n), strconv.FormatFloat(c.sumMs, 'f', -1, 64))
		fmt.Fprintf(&b, "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=%s} %d\n", quote(n), c.requests)
	}
	return b.String()
}

// cumulative returns the cluster's cumulative bucket counts as served, +Inf last (the
// request count).
func (c *cluster) cumulative() []float64 {
	out := make([]float64, len(c.buckets))
	var cum float64
	for i, count := range c.buckets[:len(c.buckets)-1] {
		cum += count
		out[i] = min(cum, float64(c.requests))
	}
	out[len(out)-1] = float64(c.requests)
	return out
}

// Histogram returns the request time histogram the cluster has served so far, as the
// exposition carries it: the bucket bounds in milliseconds, +Inf last, and the
// cumulative count of each. A cluster without traffic has every count zero.
func (e *Exporter) Histogram(clusterName string) (boundsMs, cumulative []float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	boundsMs = append(append([]float64(nil), e.bounds...), math.Inf(+1))
	if c := e.clusters[clusterName]; c != nil {
		return boundsMs, c.cumulative()
	}
	return boundsMs, make([]float64, len(boundsMs))
}

// quote writes a label value in the exposition format's escaping.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
