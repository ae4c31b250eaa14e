package runner_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// healthServer serves grpc.health.v1 on 127.0.0.1:0 until the test ends.
func healthServer(t *testing.T) (*health.Server, string) {
	t.Helper()
	hs := health.NewServer()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return hs, lis.Addr().String()
}

// edsHealth returns the health status of every endpoint the xds server publishes for
// svcName's cluster of version, by host:port.
func edsHealth(xs *xds.Server, version string) map[string]corev3.HealthStatus {
	out := map[string]corev3.HealthStatus{}
	for _, cla := range xs.Resources().Endpoints {
		if cla.GetClusterName() != translate.ClusterName(svcName, version) {
			continue
		}
		for _, loc := range cla.GetEndpoints() {
			for _, lbe := range loc.GetLbEndpoints() {
				sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
				out[fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())] = lbe.GetHealthStatus()
			}
		}
	}
	return out
}

// healthRig is a runner and the real prober for one service whose v1 has two real gRPC
// health servers (a, b) and v2 one (c), probed every 50 ms.
type healthRig struct {
	hsA, hsB *health.Server
	a, b, c  string
	xs       *xds.Server
	prober   *healthcheck.Prober
	run      *runner.Runner
}

func newHealthRig(t *testing.T, opts runner.Options) *healthRig {
	t.Helper()
	g := &healthRig{}
	g.hsA, g.a = healthServer(t)
	g.hsB, g.b = healthServer(t)
	_, g.c = healthServer(t)
	cat := &catalog.Catalog{Services: []catalog.Service{{
		Name: svcName, Port: 10001, Stable: "v1", ProxiesOptional: true,
		Versions: []catalog.Version{version(t, "v1", g.a, g.b), version(t, "v2", g.c)},
		HealthCheck: catalog.HealthCheck{
			Protocol: catalog.ProtocolGRPC,
			Interval: catalog.Duration(50 * time.Millisecond), Timeout: catalog.Duration(time.Second),
			HealthyThreshold: 1, UnhealthyThreshold: 2,
		},
	}}}
	st, err := store.Open(t.TempDir(), store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	g.xs = xds.NewServer(log, xds.Options{})
	g.prober = healthcheck.New(log, healthcheck.Options{})
	opts.Log, opts.Store, opts.XDS, opts.Health = log, st, g.xs, g.prober
	if g.run, err = runner.New(context.Background(), cat, opts); err != nil {
		t.Fatal(err)
	}
	return g
}

// start runs the prober and the runner's loop until the test ends; stop runs first
// at the end, after their context is cancelled.
func (g *healthRig) start(t *testing.T, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	proberDone, runDone := make(chan error, 1), make(chan error, 1)
	go func() { proberDone <- g.prober.Run(ctx) }()
	go func() { runDone <- g.run.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if stop != nil {
			stop()
		}
		<-proberDone
		<-runDone
	})
}

// TestUnhealthyEndpointLeavesEDS runs the runner's loop with the real prober against
// real gRPC health servers: an endpoint whose server goes NOT_SERVING is published
// UNHEALTHY in EDS without any rollout or tick, and healthy again when it serves;
// routes and clusters do not change meanwhile.
func TestUnhealthyEndpointLeavesEDS(t *testing.T) {
	// A long tick: only the prober's change notifications may publish health.
	g := newHealthRig(t, runner.Options{Tick: time.Hour})
	g.start(t, nil)
	hsA, hsB, a, b, c, xs, prober := g.hsA, g.hsB, g.a, g.b, g.c, g.xs, g.prober

	waitEDS := func(what string, want map[string]corev3.HealthStatus) {
		t.Helper()
		deadline := time.NewTimer(waitTimeout)
		defer deadline.Stop()
		poll := time.NewTicker(10 * time.Millisecond)
		defer poll.Stop()
		for {
			got := edsHealth(xs, "v1")
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			select {
			case <-poll.C:
			case <-deadline.C:
				t.Fatalf("%s: EDS of v1 %v, want %v", what, got, want)
			}
		}
	}
	healthy := corev3.HealthStatus_UNKNOWN // unset: no mark
	waitEDS("start", map[string]corev3.HealthStatus{a: healthy, b: healthy})
	if st := prober.Status(svcName, "v1"); st.Total != 2 {
		t.Fatalf("prober status %+v, want the two v1 endpoints probed", st)
	}
	_, routes0, clusters0, _ := xs.Resources().Versions()

	hsB.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitEDS("b not serving", map[string]corev3.HealthStatus{a: healthy, b: corev3.HealthStatus_UNHEALTHY})
	if got := edsHealth(xs, "v2"); got[c] != healthy {
		t.Errorf("v2 EDS %v, want it untouched", got)
	}
	_, routes1, clusters1, _ := xs.Resources().Versions()
	if routes1 != routes0 || clusters1 != clusters0 {
		t.Errorf("a health change changed routes (%s -> %s) or clusters (%s -> %s)", routes0, routes1, clusters0, clusters1)
	}

	hsB.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitEDS("b serving again", map[string]corev3.HealthStatus{a: healthy, b: healthy})

	// a down: marked. Then b down too: fewer than half would stay, so none is marked
	// (Envoy's default panic threshold): marking every endpoint would fail every request
	// even when only octoroll's view of them is broken.
	hsA.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitEDS("a not serving", map[string]corev3.HealthStatus{a: corev3.HealthStatus_UNHEALTHY, b: healthy})
	hsB.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitEDS("both down", map[string]corev3.HealthStatus{a: healthy, b: healthy})
	if st := prober.Status(svcName, "v1"); len(st.Unhealthy) != 2 {
		t.Errorf("prober status %+v, want both v1 endpoints unhealthy", st)
	}
}

// TestHealthPublishedWhileChecksHang: a round of checks waiting on a hung metrics
// source does not hold back the EDS publish of a health change.
func TestHealthPublishedWhileChecksHang(t *testing.T) {
	src := &stuckMetrics{stuck: svcName, release: make(chan struct{})}
	g := newHealthRig(t, runner.Options{Metrics: src, Tick: 10 * time.Millisecond})
	if _, err := g.run.Start(context.Background(), crashSpec(), "test"); err != nil {
		t.Fatal(err)
	}
	g.start(t, func() { close(src.release) })
	hsB, b, xs := g.hsB, g.b, g.xs

	hsB.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	deadline := time.Now().Add(waitTimeout)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for edsHealth(xs, "v1")[b] != corev3.HealthStatus_UNHEALTHY {
		if time.Now().After(deadline) {
			t.Fatalf("EDS of v1 %v while the checks hang, want %s UNHEALTHY", edsHealth(xs, "v1"), b)
		}
		<-poll.C
	}
}
