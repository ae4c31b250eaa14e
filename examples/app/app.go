package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/octoacme/octoroll/metrics"
)

// Rand is the randomness behind the error-rate and latency knobs. *math/rand/v2.Rand
// satisfies it; tests inject a seeded one. App serialises calls, so it need not be
// safe for concurrent use.
type Rand interface {
	Float64() float64
	NormFloat64() float64
}

// shutdownTimeout bounds the graceful drain of in-flight requests.
const shutdownTimeout = 10 * time.Second

// maxPayload caps the payload UnaryCall returns on request.
const maxPayload = 1 << 20

// latencyBuckets are octoroll's ladder (×1.1 from 1 ms to 63 s, the bounds the Envoy
// bootstrap sets for upstream_rq_time), fine enough for the rollout checks' latency
// ratios (×1.10 pause, ×1.25 no-go).
var latencyBuckets = metrics.LatencyBuckets()

// App is the example service: TestService and grpc.health.v1 over gRPC, and /, /healthz
// and /metrics over HTTP. Requests to TestService and to / are served requests: they
// obey the fault knobs and are counted in the metrics; health checks and scrapes are
// neither.
type App struct {
	cfg    config
	log    *zap.Logger
	id     string // "<service>/<version>"
	health *health.Server
	grpc   *grpc.Server
	http   *http.Server

	mu  sync.Mutex
	rnd Rand

	draining atomic.Bool
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	registry *prometheus.Registry
}

// NewApp builds the servers of cfg. rnd drives the fault knobs.
func NewApp(cfg config, log *zap.Logger, rnd Rand) *App {
	a := &App{
		cfg:      cfg,
		log:      log,
		id:       cfg.Service + "/" + cfg.Version,
		rnd:      rnd,
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "requests_total",
			Help: "Served requests by code (HTTP status or gRPC code name).",
		}, []string{"service", "version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "request_duration_seconds",
			Help:    "Duration of served requests, including the added latency.",
			Buckets: latencyBuckets,
		}, []string{"service", "version"}),
	}
	a.registry.MustRegister(a.requests, a.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a.health = health.NewServer()
	a.grpc = grpc.NewServer(grpc.ChainUnaryInterceptor(a.observeGRPC))
	testgrpc.RegisterTestServiceServer(a.grpc, testService{a: a})
	healthpb.RegisterHealthServer(a.grpc, a.health)
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	a.health.SetServingStatus(testgrpc.TestService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	mux := http.NewServeMux()
	mux.Handle("/{$}", a.observeHTTP(http.HandlerFunc(a.serveRoot)))
	mux.HandleFunc("/healthz", a.serveHealthz)
	mux.Handle("/metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{Registry: a.registry}))
	// h2c as well as HTTP/1.1, so that an Envoy sidecar forwarding HTTP/2 downstreams
	// with its upstream protocol set to "use downstream protocol" reaches the app.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	a.http = &http.Server{
		Handler:           mux,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	return a
}

// Serve serves gRPC on grpcLis and HTTP on httpLis until ctx is done or a server fails,
// then drains both: health turns NOT_SERVING, in-flight requests finish (up to
// shutdownTimeout). It returns nil after a shutdown asked for by ctx.
func (a *App) Serve(ctx context.Context, grpcLis, httpLis net.Listener) error {
	errc := make(chan error, 2)
	go func() {
		if err := a.grpc.Serve(grpcLis); err != nil {
			errc <- fmt.Errorf("grpc: %w", err)
			return
		}
		errc <- nil
	}()
	go func() {
		if err := a.http.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
			return
		}
		errc <- nil
	}()
	a.log.Info("serving", zap.String("service", a.cfg.Service), zap.String("version", a.cfg.Version),
		zap.Stringer("grpc", grpcLis.Addr()), zap.Stringer("http", httpLis.Addr()),
		zap.Float64("errorRate", a.cfg.ErrorRate), zap.Duration("latency", a.cfg.Latency),
		zap.Float64("latencySigma", a.cfg.LatencySigma), zap.Duration("latencyJitter", a.cfg.LatencyJitter))

	var first error
	pending := 2
	select {
	case <-ctx.Done():
	case first = <-errc:
		pending--
	}
	a.shutdown()
	for ; pending > 0; pending-- {
		if err := <-errc; first == nil {
			first = err
		}
	}
	if first == nil {
		a.log.Info("stopped")
	}
	return first
}

// shutdown drains both servers; may be called more than once.
func (a *App) shutdown() {
	a.draining.Store(true)
	a.health.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() {
		done := make(chan struct{})
		go func() { a.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			a.log.Warn("grpc drain timed out; closing connections")
			a.grpc.Stop()
		}
	})
	wg.Go(func() {
		if err := a.http.Shutdown(ctx); err != nil {
			a.log.Warn("http drain timed out; closing connections", zap.Error(err))
			_ = a.http.Close()
		}
	})
	wg.Wait()
}

// fault draws the outcome of one served request: whether it fails and the latency to
// add before answering.
func (a *App) fault() (fail bool, delay time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fail = a.cfg.ErrorRate > 0 && a.rnd.Float64() < a.cfg.ErrorRate
	delay = a.cfg.Latency
	if a.cfg.LatencySigma > 0 {
		delay = time.Duration(float64(delay) * math.Exp(a.cfg.LatencySigma*a.rnd.NormFloat64()))
	}
	if a.cfg.LatencyJitter > 0 {
		delay += time.Duration(a.rnd.Float64() * float64(a.cfg.LatencyJitter))
	}
	return fail, delay
}

// wait sleeps for d or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// observe records one served request.
func (a *App) observe(code string, start time.Time) {
	a.requests.WithLabelValues(a.cfg.Service, a.cfg.Version, code).Inc()
	a.duration.WithLabelValues(a.cfg.Service, a.cfg.Version).Observe(time.Since(start).Seconds())
}

// observeGRPC counts TestService calls; the health service is not a served request.
func (a *App) observeGRPC(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, "/"+testgrpc.TestService_ServiceDesc.ServiceName+"/") {
		return handler(ctx, req)
	}
	start := time.Now()
	resp, err := handler(ctx, req)
	a.observe(status.Code(err).String(), start)
	return resp, err
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (a *App) observeHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		a.observe(strconv.Itoa(rec.code), start)
	})
}

// rootReply is the JSON body of GET /.
type rootReply struct {
	Service string `json:"service"`
	Version string `json:"version"`
	// Hostname is "<service>/<version>", as in the gRPC SimpleResponse.
	Hostname string `json:"hostname"`
	Error    string `json:"error,omitempty"`
}

func (a *App) serveRoot(w http.ResponseWriter, r *http.Request) {
	fail, delay := a.fault()
	if err := wait(r.Context(), delay); err != nil {
		// The client went away; 499 is the conventional code for it.
		w.WriteHeader(499)
		return
	}
	reply := rootReply{Service: a.cfg.Service, Version: a.cfg.Version, Hostname: a.id}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-App-Version", a.cfg.Version)
	if fail {
		reply.Error = "injected failure"
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(reply)
}

func (a *App) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	if a.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// testService is the gRPC interop TestService; only its unary calls are implemented.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	a *App
}

// serve applies the fault knobs to one call.
func (s testService) serve(ctx context.Context) error {
	fail, delay := s.a.fault()
	if err := wait(ctx, delay); err != nil {
		return status.FromContextError(err).Err()
	}
	if fail {
		return status.Errorf(codes.Unavailable, "%s: injected failure", s.a.id)
	}
	return nil
}

func (s testService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	if err := s.serve(ctx); err != nil {
		return nil, err
	}
	return &testgrpc.Empty{}, nil
}

// UnaryCall answers with hostname and server_id set to "<service>/<version>", and a
// zero payload of the requested size (at most 1 MiB).
func (s testService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if err := s.serve(ctx); err != nil {
		return nil, err
	}
	resp := &testgrpc.SimpleResponse{Hostname: s.a.id, ServerId: s.a.id}
	if n := req.GetResponseSize(); n > 0 {
		if n > maxPayload {
			return nil, status.Errorf(codes.InvalidArgument, "response_size %d exceeds %d", n, maxPayload)
		}
		resp.Payload = &testgrpc.Payload{Body: make([]byte, n)}
	}
	return resp, nil
}
