package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/octoacme/octoroll/metrics"
)

// running is an App serving on 127.0.0.1 ports.
type running struct {
	grpcAddr, httpAddr string
	conn               *grpc.ClientConn
	client             testgrpc.TestServiceClient
	stop               func() error // cancels Serve and returns its error
}

func testConfig(service, version string) config {
	return config{Service: service, Version: version, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", LogFormat: "json", LogLevel: "info"}
}

func start(t *testing.T, cfg config, seed uint64) *running {
	t.Helper()
	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		t.Fatal(err)
	}
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	app := NewApp(cfg, zaptest.NewLogger(t), rand.New(rand.NewPCG(seed, seed)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, grpcLis, httpLis) }()

	conn, err := grpc.NewClient(grpcLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	r := &running{
		grpcAddr: grpcLis.Addr().String(),
		httpAddr: httpLis.Addr().String(),
		conn:     conn,
		client:   testgrpc.NewTestServiceClient(conn),
	}
	stopped := false
	var stopErr error
	r.stop = func() error {
		if !stopped {
			stopped = true
			_ = conn.Close()
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = fmt.Errorf("Serve did not return within 30s of cancel")
			}
		}
		return stopErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return r
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestRepliesCarryVersion(t *testing.T) {
	r := start(t, testConfig("checkout", "v2"), 1)
	ctx := t.Context()

	resp, err := r.client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 16})
	if err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	if resp.GetHostname() != "checkout/v2" || resp.GetServerId() != "checkout/v2" {
		t.Errorf("UnaryCall hostname, server_id = %q, %q; want checkout/v2", resp.GetHostname(), resp.GetServerId())
	}
	if n := len(resp.GetPayload().GetBody()); n != 16 {
		t.Errorf("payload %d bytes, want 16", n)
	}
	if _, err := r.client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
		t.Errorf("EmptyCall: %v", err)
	}
	if _, err := r.client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: maxPayload + 1}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("oversized payload: %v, want InvalidArgument", err)
	}

	for _, svc := range []string{"", "grpc.testing.TestService"} {
		h, err := healthpb.NewHealthClient(r.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v, %v; want SERVING", svc, h.GetStatus(), err)
		}
	}

	code, body := httpGet(t, "http://"+r.httpAddr+"/")
	var reply rootReply
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatalf("GET / body %q: %v", body, err)
	}
	want := rootReply{Service: "checkout", Version: "v2", Hostname: "checkout/v2"}
	if code != http.StatusOK || reply != want {
		t.Errorf("GET / = %d %+v, want 200 %+v", code, reply, want)
	}
	if code, body := httpGet(t, "http://"+r.httpAddr+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	if code, _ := httpGet(t, "http://"+r.httpAddr+"/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}

// TestErrorRate checks the failing fraction against a binomial tolerance of 5 standard
// deviations (plus one request, for the rates 0 and 1).
func TestErrorRate(t *testing.T) {
	const n = 1500
	for _, rate := range []float64{0, 0.01, 0.08, 0.5, 1} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			cfg := testConfig("checkout", "v1")
			cfg.ErrorRate = rate
			r := start(t, cfg, uint64(rate*1000)+7)
			tol := 5*math.Sqrt(n*rate*(1-rate)) + 1

			grpcFails := 0
			for range n {
				_, err := r.client.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
				switch status.Code(err) {
				case codes.OK:
				case codes.Unavailable:
					grpcFails++
				default:
					t.Fatalf("UnaryCall: %v", err)
				}
			}
			httpFails := 0
			for range n {
				code, _ := httpGet(t, "http://"+r.httpAddr+"/")
				switch code {
				case http.StatusOK:
				case http.StatusServiceUnavailable:
					httpFails++
				default:
					t.Fatalf("GET / = %d", code)
				}
			}
			for _, c := range []struct {
				proto string
				fails int
			}{{"grpc", grpcFails}, {"http", httpFails}} {
				if math.Abs(float64(c.fails)-n*rate) > tol {
					t.Errorf("%s: %d of %d failed, want %.0f ± %.1f", c.proto, c.fails, n, n*rate, tol)
				}
			}
		})
	}
}

// scrape parses the app's /metrics.
func scrape(t *testing.T, httpAddr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, "http://"+httpAddr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestMetricsFollowConvention(t *testing.T) {
	cfg := testConfig("checkout", "v3")
	cfg.ErrorRate = 0.5
	cfg.Latency = 5 * time.Millisecond
	r := start(t, cfg, 42)

	want := map[string]float64{} // code -> count
	for range 40 {
		_, err := r.client.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
		want[status.Code(err).String()]++
	}
	for range 10 {
		_, err := r.client.EmptyCall(t.Context(), &testgrpc.Empty{})
		want[status.Code(err).String()]++
	}
	for range 30 {
		code, _ := httpGet(t, "http://"+r.httpAddr+"/")
		want[fmt.Sprint(code)]++
	}
	// Neither health checks nor scrapes are served requests.
	httpGet(t, "http://"+r.httpAddr+"/healthz")
	if _, err := healthpb.NewHealthClient(r.conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	scrape(t, r.httpAddr)

	mfs := scrape(t, r.httpAddr)
	reqs := mfs["requests_total"]
	if reqs.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("requests_total type %v, want counter", reqs.GetType())
	}
	got := map[string]float64{}
	for _, m := range reqs.GetMetric() {
		l := labels(m)
		if len(l) != 3 || l["service"] != "checkout" || l["version"] != "v3" || l["code"] == "" {
			t.Errorf("requests_total labels %v, want exactly service=checkout, version=v3, code", l)
		}
		got[l["code"]] = m.GetCounter().GetValue()
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests_total by code = %v, want %v", got, want)
	}
	for _, code := range []string{"OK", "Unavailable", "200", "503"} {
		if got[code] == 0 {
			t.Errorf("no requests_total{code=%q} at error rate 0.5 over 80 requests", code)
		}
	}

	dur := mfs["request_duration_seconds"]
	if dur.GetType() != dto.MetricType_HISTOGRAM || len(dur.GetMetric()) != 1 {
		t.Fatalf("request_duration_seconds: type %v with %d series, want one histogram", dur.GetType(), len(dur.GetMetric()))
	}
	m := dur.GetMetric()[0]
	if l := labels(m); len(l) != 2 || l["service"] != "checkout" || l["version"] != "v3" {
		t.Errorf("request_duration_seconds labels %v, want exactly service=checkout, version=v3", l)
	}
	if c := m.GetHistogram().GetSampleCount(); c != 80 {
		t.Errorf("request_duration_seconds count %d, want 80", c)
	}
	// The added latency is a floor on every observation.
	if s := m.GetHistogram().GetSampleSum(); s < 80*cfg.Latency.Seconds() {
		t.Errorf("request_duration_seconds sum %.3fs, below 80 × %s", s, cfg.Latency)
	}
	// The buckets are octoroll's ladder, as the Envoy bootstrap's upstream_rq_time.
	var bounds []float64
	for _, b := range m.GetHistogram().GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
	}
	if want := append(metrics.LatencyBuckets(), math.Inf(+1)); !slices.Equal(bounds, want) {
		t.Errorf("request_duration_seconds bounds %v, want metrics.LatencyBuckets %v", bounds, want)
	}
}

func TestFault(t *testing.T) {
	// seq is a Rand returning its values in turn.
	cfg := testConfig("s", "v")
	cfg.ErrorRate = 0.25
	cfg.Latency = 20 * time.Millisecond
	cfg.LatencyJitter = 10 * time.Millisecond
	a := NewApp(cfg, zaptest.NewLogger(t), &seq{vals: []float64{0.1, 0.5, 0.3, 0.99}})
	for i, want := range []struct {
		fail  bool
		delay time.Duration
	}{{true, 25 * time.Millisecond}, {false, 29900 * time.Microsecond}} {
		fail, delay := a.fault()
		if fail != want.fail || delay != want.delay {
			t.Errorf("draw %d: fault() = %v, %v; want %v, %v", i, fail, delay, want.fail, want.delay)
		}
	}

	// With both knobs off no randomness is drawn.
	off := NewApp(testConfig("s", "v"), zaptest.NewLogger(t), &seq{})
	if fail, delay := off.fault(); fail || delay != 0 {
		t.Errorf("knobs off: fault() = %v, %v", fail, delay)
	}
}

// The lognormal latency knob: median Latency, e^(σ·Z) around it, seeded.
func TestLognormalLatency(t *testing.T) {
	cfg := testConfig("s", "v")
	cfg.Latency = 50 * time.Millisecond
	cfg.LatencySigma = 0.5
	one := NewApp(cfg, zaptest.NewLogger(t), &seq{vals: []float64{1, -2}})
	if _, d := one.fault(); d != time.Duration(float64(50*time.Millisecond)*math.Exp(0.5)) {
		t.Errorf("Z = 1: delay %s, want 50ms × e^0.5", d)
	}
	if _, d := one.fault(); d != time.Duration(float64(50*time.Millisecond)*math.Exp(-1)) {
		t.Errorf("Z = -2: delay %s, want 50ms × e^-1", d)
	}
	cfg.LatencySigma = 0.6
	a := NewApp(cfg, zaptest.NewLogger(t), rand.New(rand.NewPCG(3, 3)))
	const n = 20000
	ds := make([]time.Duration, n)
	for i := range ds {
		_, ds[i] = a.fault()
	}
	slices.Sort(ds)
	med, p99 := ds[n/2], ds[n*99/100]
	wantP99 := time.Duration(float64(50*time.Millisecond) * math.Exp(0.6*2.3263))
	if med < 48*time.Millisecond || med > 52*time.Millisecond {
		t.Errorf("median %s, want 50ms ± 4%%", med)
	}
	if lo, hi := wantP99*92/100, wantP99*108/100; p99 < lo || p99 > hi {
		t.Errorf("P99 %s, want %s ± 8%%", p99, wantP99)
	}
}

type seq struct {
	vals []float64
	i    int
}

func (s *seq) Float64() float64 {
	v := s.vals[s.i]
	s.i++
	return v
}

// NormFloat64 returns the next value too: the standard normal draw it stands for.
func (s *seq) NormFloat64() float64 { return s.Float64() }

// gate is a Rand that blocks its first draw until released, so that a test can hold a
// request in flight.
type gate struct {
	entered, release chan struct{}
	once             bool
}

func (g *gate) NormFloat64() float64 { return 0 }

func (g *gate) Float64() float64 {
	if !g.once {
		g.once = true
		close(g.entered)
		<-g.release
	}
	return 0.99
}

func TestShutdownDrainsInFlight(t *testing.T) {
	cfg := testConfig("checkout", "v1")
	cfg.ErrorRate = 0.01 // makes every request draw from the gate
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	app := NewApp(cfg, zaptest.NewLogger(t), g)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, grpcLis, httpLis) }()

	conn, err := grpc.NewClient(grpcLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	inflight := make(chan *testgrpc.SimpleResponse, 1)
	go func() {
		resp, err := testgrpc.NewTestServiceClient(conn).UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
		if err != nil {
			t.Errorf("in-flight call: %v", err)
		}
		inflight <- resp
	}()
	<-g.entered
	cancel()
	// The HTTP listener closes at once; new connections are refused while the gRPC call
	// drains.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", httpLis.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("HTTP listener still accepting 10s after shutdown began")
		}
		runtime.Gosched()
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v while a call was in flight", err)
	default:
	}
	close(g.release)
	if resp := <-inflight; resp.GetHostname() != "checkout/v1" {
		t.Errorf("in-flight reply hostname %q", resp.GetHostname())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after the in-flight call finished")
	}
}

func TestServeReportsListenerFailure(t *testing.T) {
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLis.Close() // Serve on a closed listener fails at once
	app := NewApp(testConfig("s", "v"), zaptest.NewLogger(t), rand.New(rand.NewPCG(1, 1)))
	if err := app.Serve(context.Background(), grpcLis, httpLis); err == nil || !strings.Contains(err.Error(), "http:") {
		t.Errorf("Serve on a closed HTTP listener = %v, want an http: error", err)
	}
}
