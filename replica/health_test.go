package replica

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/internal/etcdtest"
	"github.com/octoacme/octoroll/model"
)

// healthMember is a replica with its own real prober, shared through Health.
type healthMember struct {
	*member
	prober *healthcheck.Prober
	health *Health
	stop   func()
}

func startHealthMember(t *testing.T, etcd *etcdtest.Server, prefix, id string, services []catalog.Service) *healthMember {
	t.Helper()
	px := etcd.Proxy(t)
	st := openStore(t, px.Endpoint, prefix)
	rep := New(Options{Store: st, Self: Info{ID: id}, TTL: time.Second, Load: func(context.Context) error { return nil }})
	prober := healthcheck.New(zap.NewNop(), healthcheck.Options{})
	h := NewHealth(rep, prober)
	h.Update(services)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = rep.Run(ctx) })
	wg.Go(func() { _ = h.Run(ctx) })
	wg.Go(func() { _ = prober.Run(ctx) })
	stop := sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stop)
	return &healthMember{member: &member{rep: rep, st: st, proxy: px}, prober: prober, health: h, stop: stop}
}

// Only the leader probes; a follower publishes the leader's results (the same
// endpoint marked unhealthy) without probing anything; once the leader is gone, the
// new leader probes and finds the same.
func TestHealthIsTheLeaders(t *testing.T) {
	etcd := etcdtest.Start(t)
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close()
	ep := func(addr string) catalog.Endpoint {
		ap := netip.MustParseAddrPort(addr)
		return catalog.Endpoint{Host: ap.Addr().String(), Port: uint32(ap.Port())}
	}
	services := []catalog.Service{{Name: "svc", Stable: "v1",
		HealthCheck: catalog.HealthCheck{Protocol: "tcp", Interval: model.Duration(100 * time.Millisecond),
			Timeout: model.Duration(50 * time.Millisecond), UnhealthyThreshold: 1},
		Versions: []catalog.Version{{Name: "v1", Endpoints: []catalog.Endpoint{ep(up.Addr().String()), ep(downAddr)}}}}}

	a := startHealthMember(t, etcd, "/health/", "a", services)
	waitFor(t, "a leads", a.rep.Leading)
	b := startHealthMember(t, etcd, "/health/", "b", services)
	oneDown := func(h *Health) func() bool {
		return func() bool {
			s := h.Status("svc", "v1")
			return s.Total == 2 && s.Healthy == 1 && len(s.Unhealthy) == 1 && s.Unhealthy[0].Endpoint == downAddr
		}
	}
	waitFor(t, "the follower publishes the leader's results", oneDown(b.health))
	if s := b.prober.Status("svc", "v1"); s.Total != 0 {
		t.Errorf("the follower probes: %+v", s)
	}

	a.stop()
	waitFor(t, "b leads", b.rep.Leading)
	waitFor(t, "the new leader's own results", func() bool {
		s := b.prober.Status("svc", "v1")
		return s.Total == 2 && s.Healthy+len(s.Unhealthy) == 2
	})
	if !oneDown(b.health)() {
		t.Errorf("the new leader's health = %+v", b.health.Status("svc", "v1"))
	}
}
