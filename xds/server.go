package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/translate"
)

// Options configure a Server. The zero value is usable: plaintext, default keepalive.
type Options struct {
	// KeepaliveTime is how long a connection may stay idle before the server pings the
	// proxy. Default 30s.
	KeepaliveTime time.Duration
	// KeepaliveTimeout is how long the server waits for the ping answer. Default 10s.
	KeepaliveTimeout time.Duration
	// MinPingInterval is the shortest interval between proxy pings the server tolerates
	// (keepalive enforcement); faster pingers are disconnected. Default 10s.
	MinPingInterval time.Duration
	// ShutdownGrace bounds the graceful stop after the Serve context ends. Default 5s.
	ShutdownGrace time.Duration

	// CertFile and KeyFile enable TLS (PEM files). ClientCAFile additionally requires
	// and verifies client certificates (mTLS).
	CertFile, KeyFile, ClientCAFile string
	// RequireNodeIdentity (with ClientCAFile) requires every proxy's client certificate
	// to name its node id, as a URI SAN or the subject CN: a proxy cannot subscribe,
	// or ACK, as another.
	RequireNodeIdentity bool

	// AllowRawPublish enables PublishRaw, which serves resources without octoroll's
	// checks. Tests use it to make a proxy NACK; never enable it in production.
	AllowRawPublish bool

	// Now is the clock of the instants the tracker records (connections, ACKs, NACKs);
	// default time.Now. A runner on another clock gives it its own, so that an ACK
	// instant and the rollout's times compare.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.KeepaliveTime <= 0 {
		o.KeepaliveTime = 30 * time.Second
	}
	if o.KeepaliveTimeout <= 0 {
		o.KeepaliveTimeout = 10 * time.Second
	}
	if o.MinPingInterval <= 0 {
		o.MinPingInterval = 10 * time.Second
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Server serves the translated resources of every service over xDS (ADS, the per-type
// SotW services and delta) and tracks what each proxy applied. It is safe for
// concurrent use.
type Server struct {
	log   *zap.Logger
	opts  Options
	cache *Cache
	track *tracker

	updMu sync.Mutex
	// memo holds the translation of every service of the last successful Update,
	// reused for the services whose Desired did not change.
	memo translate.Memo

	changes changeWatches

	serves       atomic.Int64
	updates      atomic.Uint64
	updateErrors atomic.Uint64
	pushNanos    atomic.Int64
	lastPush     atomic.Int64
}

// NewServer returns a Server with no resources; call Update before proxies connect, or
// they receive empty configurations.
func NewServer(log *zap.Logger, opts Options) *Server {
	log = log.Named("xds")
	opts = opts.withDefaults()
	track := newTracker(log)
	track.now = opts.Now
	s := &Server{
		log:   log,
		opts:  opts,
		cache: NewCache(),
		track: track,
	}
	track.changes = &s.changes
	s.cache.onPublish = s.changes.published
	return s
}

// Update translates desired, checks the result and publishes it. Only the resource
// types whose content changed are sent, and only to the proxies watching a changed
// resource. On error nothing changes: the previous state keeps serving.
//
// The cost is proportional to the services whose Desired changed since the last
// successful Update: the others keep their translated, checked and marshaled resources.
func (s *Server) Update(desired []translate.Desired) error {
	s.updMu.Lock()
	defer s.updMu.Unlock()
	res, memo, err := s.memo.Translate(desired)
	if err != nil {
		s.updateErrors.Add(1)
		return fmt.Errorf("update xds resources: %w", err)
	}
	byType := map[string][]types.Resource{}
	for t, rs := range res.ByType() {
		byType[t] = rs
	}
	start := time.Now()
	changed, err := s.cache.setImmutable(byType)
	if err != nil {
		s.updateErrors.Add(1)
		return fmt.Errorf("publish xds resources: %w", err)
	}
	s.memo = memo
	s.observePush(start, changed)
	return nil
}

// SetResources serves res, already translated and checked (package publish translates
// and checks each service on its own, keeping a failing service's last good resources),
// in place of everything served before. As with Update, only the resource types whose
// content changed are sent, and only to the proxies watching a changed resource; on
// error nothing changes. Each resource must not be modified after it is passed in: a
// resource that is the same value as the one served is not marshaled again.
func (s *Server) SetResources(res translate.Resources) error {
	s.updMu.Lock()
	defer s.updMu.Unlock()
	start := time.Now()
	changed, err := s.cache.setImmutable(res.ByType())
	if err != nil {
		s.updateErrors.Add(1)
		return fmt.Errorf("publish xds resources: %w", err)
	}
	s.memo = translate.Memo{}
	s.observePush(start, changed)
	return nil
}

// Apply serves changes, keyed by resource type: resources already translated and
// checked, added or replaced by name, and names no longer served; every other resource
// keeps serving. Its cost is that of the changes (package publish hands over the
// resources of the services whose desired state changed). As with SetResources, only
// the proxies watching a changed resource are sent anything, resources must not be
// modified once passed in, and on error nothing changes.
func (s *Server) Apply(changes map[string]Change) error {
	s.updMu.Lock()
	defer s.updMu.Unlock()
	start := time.Now()
	changed, err := s.cache.Apply(changes)
	if err != nil {
		s.updateErrors.Add(1)
		return fmt.Errorf("publish xds resources: %w", err)
	}
	s.memo = translate.Memo{}
	s.observePush(start, changed)
	return nil
}

func (s *Server) observePush(start time.Time, changed []string) {
	if len(changed) == 0 {
		return
	}
	d := time.Since(start)
	s.updates.Add(1)
	s.pushNanos.Add(int64(d))
	s.lastPush.Store(int64(d))
	s.log.Info("published resources", zap.Strings("types", changed), zap.Duration("took", d))
}

// PublishRaw adds or replaces resources of one type without octoroll's checks. It
// exists for tests that need a proxy to reject a configuration, and fails unless
// Options.AllowRawPublish is set.
func (s *Server) PublishRaw(typeURL string, res ...types.Resource) error {
	if !s.opts.AllowRawPublish {
		return errors.New("publish raw resources: disabled (Options.AllowRawPublish)")
	}
	start := time.Now()
	changed, err := s.cache.Upsert(typeURL, res...)
	if err != nil {
		return fmt.Errorf("publish raw resources: %w", err)
	}
	s.observePush(start, changed)
	return nil
}

// Resources returns the resources served now, each type sorted by name. It walks every
// resource: for tests and diagnostics, not for a publish path.
func (s *Server) Resources() translate.Resources {
	return translate.Resources{
		Listeners: served[*listenerv3.Listener](s, resource.ListenerType),
		Routes:    served[*routev3.RouteConfiguration](s, resource.RouteType),
		Clusters:  served[*clusterv3.Cluster](s, resource.ClusterType),
		Endpoints: served[*endpointv3.ClusterLoadAssignment](s, resource.EndpointType),
	}
}

// served is the resources of typeURL served now that are a T, sorted by name.
func served[T types.Resource](s *Server, typeURL string) []T {
	var out []T
	snap := s.cache.types[typeURL].snap.Load()
	for _, n := range snap.names {
		if r, ok := snap.byName.get(n).src.(T); ok {
			out = append(out, r)
		}
	}
	return out
}

// RouteVersion returns the version of the service's RouteConfiguration as served now
// ("" when there is none). It equals Resources.RouteVersion of the published resources.
func (s *Server) RouteVersion(service string) string {
	return s.cache.Version(resource.RouteType, translate.RouteName(service))
}

// Proxies returns the status of every connected proxy, sorted by node id.
func (s *Server) Proxies() []ProxyStatus {
	return s.track.proxyStatuses()
}

// ProxyCount is the number of connected proxies.
func (s *Server) ProxyCount() int {
	s.track.lock()
	defer s.track.unlock()
	return len(s.track.proxies)
}

// ServedVersions are the versions of service that have a cluster served now, sorted. It
// costs a search of the sorted cluster names, not a pass over them.
func (s *Server) ServedVersions(service string) []string {
	names := s.cache.types[resource.ClusterType].snap.Load().names
	prefix := translate.ClusterName(service, "")
	var out []string
	for i, _ := slices.BinarySearch(names, prefix); i < len(names) && strings.HasPrefix(names[i], prefix); i++ {
		if _, v, ok := translate.ServiceOfCluster(names[i]); ok {
			out = append(out, v)
		}
	}
	return out
}

// Convergence reports how many proxies subscribed to the service's route have ACKed
// the route version served now.
func (s *Server) Convergence(service string) Convergence {
	c, _ := s.track.convergence(service, translate.RouteName(service), s.RouteVersion(service), true)
	return c
}

// ClusterWarmth reports how many proxies subscribed to the service's route hold the
// clusters of the given versions of it (CDS and EDS ACKed): a version's cluster must
// be loaded before a route sends it traffic.
func (s *Server) ClusterWarmth(service string, versions ...string) ClusterWarmth {
	names := make([]string, len(versions))
	for i, v := range versions {
		names[i] = translate.ClusterName(service, v)
	}
	return s.track.clusterWarmth(translate.RouteName(service), names)
}

// RouteStragglers returns the node ids of the proxies watching the service's route
// that have not ACKed one of routeVersions (nor any version: they may hold an older
// one), sorted. A cluster the route no longer names may be removed once there are none:
// no proxy can still route to it.
func (s *Server) RouteStragglers(service string, routeVersions []string) []string {
	return s.track.routeStragglers(translate.RouteName(service), routeVersions)
}

// waitBatch is the shortest interval between two convergence computations of one
// WaitAcked call.
const waitBatch = 2 * time.Millisecond

// WaitAcked waits until every proxy subscribed to the service's route has ACKed
// routeVersion. It returns an *AckError matching ErrNACKed as soon as a subscribed proxy
// rejects that version, one matching ErrNotAcked naming the stragglers after timeout,
// or the context's error. With no subscribed proxy it returns nil at once: it waits for
// the proxies there are (unlike Convergence.Done, which is false with none).
func (s *Server) WaitAcked(ctx context.Context, service, routeVersion string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	timedOut := func() error {
		c, _ := s.track.convergence(service, translate.RouteName(service), routeVersion, true)
		if c.Acked == c.Subscribed {
			return nil
		}
		return &AckError{Convergence: c, Timeout: timeout}
	}
	cancelled := func() error {
		return fmt.Errorf("wait for %q route version %s: %w", service, routeVersion, ctx.Err())
	}
	for {
		c, changed := s.track.convergence(service, translate.RouteName(service), routeVersion, false)
		if c.Acked == c.Subscribed {
			return nil
		}
		if c.NACK != nil {
			c, _ = s.track.convergence(service, translate.RouteName(service), routeVersion, true)
			if c.NACK != nil {
				return &AckError{Convergence: c, Timeout: timeout}
			}
			continue
		}
		select {
		case <-changed:
		case <-timer.C:
			return timedOut()
		case <-ctx.Done():
			return cancelled()
		}
		// Many proxies ACK within milliseconds of each other; checking once per batch
		// instead of once per ACK keeps a wave of 10,000 ACKs from waking this loop
		// 10,000 times.
		batch := time.NewTimer(waitBatch)
		select {
		case <-batch.C:
		case <-timer.C:
			batch.Stop()
			return timedOut()
		case <-ctx.Done():
			batch.Stop()
			return cancelled()
		}
	}
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.track.lock()
	proxies, streams := len(s.track.proxies), len(s.track.streams)
	s.track.unlock()
	pub, res := s.cache.LockHolds()
	return Stats{
		LockHolds:        LockHolds{Publish: model.Duration(pub), Resources: model.Duration(res), Tracker: model.Duration(s.track.hold.get())},
		ConnectedProxies: proxies,
		OpenStreams:      streams,
		StreamsOpened:    s.track.streamsOpened.Load(),
		Pushes:           s.track.pushes.Load(),
		ACKs:             s.track.acks.Load(),
		NACKs:            s.track.nacks.Load(),
		Updates:          s.updates.Load(),
		UpdateErrors:     s.updateErrors.Load(),
		PushDuration:     model.Duration(s.pushNanos.Load()),
		LastPushDuration: model.Duration(s.lastPush.Load()),
	}
}

// Cache returns the server's resource cache.
func (s *Server) Cache() *Cache { return s.cache }

// Serve serves xDS on lis until ctx ends, then closes every stream and stops
// gracefully. It may be called more than once, on different listeners.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	gopts := []grpc.ServerOption{
		// Proxies send small requests and hold their connection for hours: a small
		// read buffer, a write buffer returned to a shared pool between writes, and a
		// fixed receive window (which also turns off the bandwidth-estimation pings
		// that would otherwise follow every request) keep each connection cheap.
		grpc.ReadBufferSize(readBufferSize),
		grpc.WriteBufferSize(writeBufferSize),
		grpc.SharedWriteBuffer(true),
		grpc.InitialWindowSize(receiveWindow),
		grpc.InitialConnWindowSize(receiveWindow),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    s.opts.KeepaliveTime,
			Timeout: s.opts.KeepaliveTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             s.opts.MinPingInterval,
			PermitWithoutStream: true,
		}),
	}
	if s.opts.CertFile != "" || s.opts.KeyFile != "" {
		creds, err := serverTLS(s.opts)
		if err != nil {
			return fmt.Errorf("serve xds: %w", err)
		}
		gopts = append(gopts, grpc.Creds(creds))
	}
	if s.opts.RequireNodeIdentity {
		if s.opts.ClientCAFile == "" {
			return errors.New("serve xds: node identities need client certificates (ClientCAFile)")
		}
		gopts = append(gopts, grpc.StreamInterceptor(nodeIdentityInterceptor))
	}
	// Streams end when streamCtx does; GracefulStop would otherwise wait for them
	// forever, since xDS streams are long-lived.
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	gopts = append(gopts, grpc.StatsHandler(streamsEnd{ctx: streamCtx}))
	gs := grpc.NewServer(gopts...)

	cb := callbacks{t: s.track, server: s.serves.Add(1)}
	// go-control-plane serves delta ADS and the per-type services. SotW ADS, what
	// proxies use, is served by octoroll's own handler (ads.go), which sends in the order
	// the cache produced the responses (make-before-break across types) without a
	// goroutine and a channel hand-off per stream.
	xs := serverv3.NewServer(streamCtx, s.cache, cb)
	ads := &adsServer{Server: xs, log: s.log, cache: s.cache, cb: callbacks{t: s.track, server: s.serves.Add(1)}}
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, ads)
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, xs)
	endpointservice.RegisterEndpointDiscoveryServiceServer(gs, xs)
	listenerservice.RegisterListenerDiscoveryServiceServer(gs, xs)
	routeservice.RegisterRouteDiscoveryServiceServer(gs, xs)

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	s.log.Info("serving xds", zap.String("addr", lis.Addr().String()), zap.Bool("tls", s.opts.CertFile != ""))

	select {
	case err := <-errc:
		return fmt.Errorf("serve xds: %w", err)
	case <-ctx.Done():
	}
	cancel()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(s.opts.ShutdownGrace):
		gs.Stop()
		<-stopped
	}
	s.log.Info("xds server stopped", zap.String("addr", lis.Addr().String()))
	return nil
}

// Per-connection gRPC sizes; see Serve.
const (
	readBufferSize  = 8 << 10
	writeBufferSize = 16 << 10
	receiveWindow   = 1 << 20
)

func serverTLS(o Options) (credentials.TransportCredentials, error) {
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load tls key pair: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.ClientCAFile != "" {
		pem, err := os.ReadFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client ca %s: no PEM certificates", o.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}
