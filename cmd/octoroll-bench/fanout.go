package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

const benchService = "bench"

// desired is the bench service with update u applied: the canary v2 has weight u.
func desired(u int) translate.Desired {
	return translate.Desired{
		Service: catalog.Service{Name: benchService, Port: 10001, Stable: "v1", Versions: []catalog.Version{
			{Name: "v1", Endpoints: []catalog.Endpoint{{Host: "127.0.0.1", Port: 8001}}},
			{Name: "v2", Endpoints: []catalog.Endpoint{{Host: "127.0.0.1", Port: 8002}}},
		}},
		Weights: map[string]uint32{"v1": uint32(catalog.TotalWeight - u), "v2": uint32(u)},
	}
}

// benchServer is one xDS server implementation under test.
type benchServer interface {
	// update publishes update u; the caller takes the decision time just before.
	update(u int) error
	serve(lis net.Listener)
	stop()
	// lockHold is the longest hold of a shared lock, and what it was.
	lockHold() (time.Duration, string)
}

// ---- octoroll ----

type octorollServer struct {
	s      *xds.Server
	cancel context.CancelFunc
	done   chan struct{}
}

func newOctoroll(u int) (*octorollServer, error) {
	s := xds.NewServer(zap.NewNop(), xds.Options{})
	if err := s.Update([]translate.Desired{desired(u)}); err != nil {
		return nil, err
	}
	return &octorollServer{s: s}, nil
}

func (o *octorollServer) update(u int) error { return o.s.Update([]translate.Desired{desired(u)}) }

func (o *octorollServer) serve(lis net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel, o.done = cancel, make(chan struct{})
	go func() { _ = o.s.Serve(ctx, lis); close(o.done) }()
}

func (o *octorollServer) stop() { o.cancel(); <-o.done }

func (o *octorollServer) lockHold() (time.Duration, string) {
	h := o.s.Stats().LockHolds
	return h.Max(), fmt.Sprintf("publish %s, resources %s, tracker %s", ms(h.Publish.D()), ms(h.Resources.D()), ms(h.Tracker.D()))
}

// ---- plain go-control-plane, as its example server uses it ----

type plainServer struct {
	cache  cachev3.SnapshotCache
	nodes  int
	gs     *grpc.Server
	cancel context.CancelFunc
	done   chan struct{}
	hold   atomic.Int64
}

func newPlain(u, nodes int) (*plainServer, error) {
	p := &plainServer{cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil), nodes: nodes}
	return p, p.update(u)
}

// update builds one snapshot and sets it for every node id, as the example server does
// for its one node. The SetSnapshot call holds the cache's lock for its whole duration.
func (p *plainServer) update(u int) error {
	res, err := translate.Translate([]translate.Desired{desired(u)})
	if err != nil {
		return err
	}
	snap, err := cachev3.NewSnapshot(fmt.Sprintf("v%d", u), res.ByType())
	if err != nil {
		return err
	}
	if err := snap.Consistent(); err != nil {
		return err
	}
	ctx := context.Background()
	for i := range p.nodes {
		start := time.Now()
		if err := p.cache.SetSnapshot(ctx, fmt.Sprintf("node-%d", i), snap); err != nil {
			return err
		}
		if d := int64(time.Since(start)); d > p.hold.Load() {
			p.hold.Store(d)
		}
	}
	return nil
}

func (p *plainServer) serve(lis net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	p.gs = grpc.NewServer(serverOptions()...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(p.gs, serverv3.NewServer(ctx, p.cache, nil))
	go func() { _ = p.gs.Serve(lis); close(p.done) }()
}

func (p *plainServer) stop() {
	p.cancel()
	stopped := make(chan struct{})
	go func() { p.gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		p.gs.Stop()
	}
	<-p.done
}

func (p *plainServer) lockHold() (time.Duration, string) {
	d := time.Duration(p.hold.Load())
	return d, fmt.Sprintf("longest single SetSnapshot %s (it holds the cache lock throughout)", ms(d))
}

// serverOptions are the gRPC options octoroll's xDS server uses (keepalive).
func serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}

func newServer(kind string, u, nodes int) (benchServer, error) {
	switch kind {
	case "octoroll":
		return newOctoroll(u)
	case "plain":
		return newPlain(u, nodes)
	}
	return nil, fmt.Errorf("unknown server kind %q", kind)
}

// ---- the fan-out and reconnect storm runs ----

type fanoutResult struct {
	Kind    string
	N       int
	Updates int
	Connect time.Duration // until every client had full config
	Recv    dist
	Ack     dist
	// AllAcked is the time from decision until the server saw every ACK (WaitAcked,
	// octoroll only; one extra update).
	AllAcked     time.Duration
	CPUPerUpdate time.Duration // server CPU per client per update
	RSSPerClient float64       // bytes
	LockHold     time.Duration
	LockDetail   string
	Storm        *stormResult
}

type stormResult struct {
	FromStart dist          // new server listening → each client full config
	FromStop  time.Duration // old server stop begins → last client full config
	Reconnect int64
}

func runFanout(kind string, n, updates int, storm bool) (*fanoutResult, error) {
	res := &fanoutResult{Kind: kind, N: n, Updates: updates}
	srv, err := newServer(kind, 0, n)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := lis.Addr().String()
	before := rss()
	srv.serve(lis)
	stopped := false
	defer func() {
		if !stopped {
			srv.stop()
		}
	}()
	start := time.Now()
	ch, err := startChild(addr, benchService, n)
	if err != nil {
		return nil, err
	}
	defer ch.stop()
	if err := ch.await("full 0", 4*time.Minute); err != nil {
		return nil, err
	}
	res.Connect = time.Since(start)
	res.RSSPerClient = float64(rss()-before) / float64(n)

	decided := make([]int64, updates+2)
	cpu0 := cpuTime()
	for u := 1; u <= updates; u++ {
		decided[u] = time.Now().UnixNano()
		if err := srv.update(u); err != nil {
			return nil, err
		}
		if err := ch.await(fmt.Sprintf("done %d", u), 2*time.Minute); err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond) // pacing between updates, not a wait for a condition
	}
	cpu := cpuTime() - cpu0
	res.CPUPerUpdate = cpu / time.Duration(n*updates)

	last := updates
	if o, ok := srv.(*octorollServer); ok {
		last++
		decided[last] = time.Now().UnixNano()
		if err := o.update(last); err != nil {
			return nil, err
		}
		ctx := context.Background()
		if err := o.s.WaitAcked(ctx, benchService, o.s.RouteVersion(benchService), time.Minute); err != nil {
			return nil, err
		}
		res.AllAcked = time.Duration(time.Now().UnixNano() - decided[last])
		if err := ch.await(fmt.Sprintf("done %d", last), 2*time.Minute); err != nil {
			return nil, err
		}
	}
	res.LockHold, res.LockDetail = srv.lockHold()

	if storm {
		res.Storm = &stormResult{}
		stopAt := time.Now()
		srv.stop()
		stopped = true
		srv2, err := newServer(kind, last, n)
		if err != nil {
			return nil, err
		}
		var lis2 net.Listener
		for deadline := time.Now().Add(10 * time.Second); ; {
			if lis2, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond) // the old listener's port is being released
		}
		if err != nil {
			return nil, fmt.Errorf("listen again on %s: %w", addr, err)
		}
		startAt := time.Now()
		srv2.serve(lis2)
		defer srv2.stop()
		if err := ch.await("full 1", 3*time.Minute); err != nil {
			return nil, err
		}
		rep, err := ch.report()
		if err != nil {
			return nil, err
		}
		if len(rep.Full) < 2 {
			return nil, errors.New("storm: no second full config in the report")
		}
		var from []time.Duration
		var lastFull int64
		for _, t := range rep.Full[1] {
			from = append(from, time.Duration(t-startAt.UnixNano()))
			lastFull = max(lastFull, t)
		}
		res.Storm.FromStart = newDist(from)
		res.Storm.FromStop = time.Duration(lastFull - stopAt.UnixNano())
		res.Storm.Reconnect = rep.Errors
		fill(res, rep, decided, updates)
		return res, nil
	}
	rep, err := ch.report()
	if err != nil {
		return nil, err
	}
	fill(res, rep, decided, updates)
	return res, nil
}

func fill(res *fanoutResult, rep loadReport, decided []int64, updates int) {
	var recv, ack []time.Duration
	for u := 1; u <= updates && u < len(rep.Recv); u++ {
		for i := range rep.Recv[u] {
			if t := rep.Recv[u][i]; t > 0 {
				recv = append(recv, time.Duration(t-decided[u]))
			}
			if t := rep.Ack[u][i]; t > 0 {
				ack = append(ack, time.Duration(t-decided[u]))
			}
		}
	}
	res.Recv, res.Ack = newDist(recv), newDist(ack)
}

// dist summarises samples.
type dist struct {
	N             int
	P50, P99, Max time.Duration
}

func newDist(s []time.Duration) dist {
	if len(s) == 0 {
		return dist{}
	}
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return dist{N: len(s), P50: q(0.50), P99: q(0.99), Max: s[len(s)-1]}
}
