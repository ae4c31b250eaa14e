// Package healthcheck owns octoroll's active health checks: it probes every endpoint of
// every version of the catalog (HTTP GET, gRPC health Check, TCP connect) as
// catalog.HealthCheck says: HTTP GET wanting one of the expected statuses, gRPC health
// Check of the configured service, TCP connect), applies the consecutive healthy/unhealthy thresholds and
// reports per version which endpoints are down. It depends on catalog only; it must
// not import controller or xds.
package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
)

// Config is a catalog.HealthCheck with its defaults applied.
type Config struct {
	Protocol           string // http, grpc or tcp
	Path               string // HTTP path
	Interval           time.Duration
	Timeout            time.Duration
	HealthyThreshold   uint32
	UnhealthyThreshold uint32
	// ExpectedStatuses are the HTTP statuses that pass (never empty after ConfigOf).
	ExpectedStatuses []catalog.StatusRange
	// GRPCService is the service asked about in grpc.health.v1 ("" = whole server).
	GRPCService string
}

// fingerprint identifies c's content; it keys the probed endpoints.
func (c Config) fingerprint() string { return fmt.Sprintf("%#v", c) }

// ConfigOf applies the catalog's defaults to hc (the prober may be given a catalog
// that did not go through catalog.Parse).
func ConfigOf(hc catalog.HealthCheck) Config {
	c := Config{
		Protocol: hc.Protocol, Path: hc.Path, Interval: hc.Interval.D(), Timeout: hc.Timeout.D(),
		HealthyThreshold: hc.HealthyThreshold, UnhealthyThreshold: hc.UnhealthyThreshold,
		ExpectedStatuses: slices.Clone(hc.ExpectedStatuses), GRPCService: hc.GRPCService,
	}
	if len(c.ExpectedStatuses) == 0 {
		c.ExpectedStatuses = []catalog.StatusRange{catalog.DefaultExpectedStatuses}
	}
	if c.Protocol == "" {
		c.Protocol = catalog.DefaultHealthCheckProtocol
	}
	if c.Path == "" {
		c.Path = catalog.DefaultHealthCheckPath
	}
	if c.Interval <= 0 {
		c.Interval = catalog.DefaultHealthCheckInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = catalog.DefaultHealthCheckTimeout
	}
	if c.HealthyThreshold == 0 {
		c.HealthyThreshold = catalog.DefaultHealthyThreshold
	}
	if c.UnhealthyThreshold == 0 {
		c.UnhealthyThreshold = catalog.DefaultUnhealthyThreshold
	}
	return c
}

// VersionHealth is the health of one version's endpoints.
type VersionHealth struct {
	Total   int // endpoints in the catalog
	Healthy int // endpoints that passed HealthyThreshold probes in a row
	// Unhealthy are the endpoints that failed UnhealthyThreshold probes in a row,
	// sorted by address. Endpoints not yet decided either way (just added, or
	// between thresholds from the start) are in neither count.
	Unhealthy []EndpointHealth
}

// AllDown reports whether the version has endpoints and every one is unhealthy.
func (v VersionHealth) AllDown() bool { return v.Total > 0 && len(v.Unhealthy) == v.Total }

// EndpointHealth is one unhealthy endpoint.
type EndpointHealth struct {
	Endpoint  string    // host:port
	LastError string    // the last failed probe's error
	Since     time.Time // the first failed probe of the current run of failures
}

// Options configure a Prober. Zero values take the defaults.
type Options struct {
	// Now is the clock of EndpointHealth.Since. Default time.Now.
	Now func() time.Time
	// NewTicker makes the per-endpoint probe tickers. Default time.NewTicker's channel.
	NewTicker func(d time.Duration) (c <-chan time.Time, stop func())
	// Resolve, when set, answers for the endpoint hosts that are DNS names (without
	// I/O, from the answers publication serves): a probe dials the first address it
	// returns, and a name it has no answer for is not probed, so that a DNS outage
	// counts against no endpoint's health. Unset, a probe dials the name itself.
	Resolve func(host string) ([]netip.Addr, error)
}

// Prober probes the endpoints of the catalog's versions. Its methods are safe for
// concurrent use; Update may be called before or while Run runs.
type Prober struct {
	log  *zap.Logger
	opts Options

	changes chan struct{}
	updated chan struct{}

	mu        sync.Mutex
	endpoints map[key]*endpoint
}

// key identifies a probed endpoint. The config is part of it: a changed health check
// starts the endpoint's state over, an unchanged one keeps it across Update.
type key struct {
	service, version, addr string
	cfgID                  string // Config.fingerprint
}

type endpoint struct {
	key
	cfg       Config
	state     state
	successes uint32 // in a row
	failures  uint32 // in a row
	lastError string
	since     time.Time // first failure of the current run

	cancel context.CancelFunc // set while its probe loop runs
	done   chan struct{}
}

type state uint8

const (
	unknown state = iota
	healthy
	unhealthy
)

// New returns a prober with no endpoints; call Update and Run.
func New(log *zap.Logger, opts Options) *Prober {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewTicker == nil {
		opts.NewTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	return &Prober{
		log:       log.Named("healthcheck"),
		opts:      opts,
		changes:   make(chan struct{}, 1),
		updated:   make(chan struct{}, 1),
		endpoints: map[key]*endpoint{},
	}
}

// Changes receives a value after one or more endpoints changed between healthy and
// unhealthy; read Status to see the result. It is not closed. Notifications coalesce:
// a slow reader misses none of the state, only intermediate wake-ups.
func (p *Prober) Changes() <-chan struct{} { return p.changes }

// Update sets the endpoints to probe: every endpoint of every version of services.
// Endpoints that stay (same service, version, address and health-check settings) keep
// their state; new ones start undecided; removed ones stop being probed.
func (p *Prober) Update(services []catalog.Service) {
	want := map[key]Config{}
	for _, svc := range services {
		cfg := ConfigOf(svc.HealthCheck)
		fp := cfg.fingerprint()
		for _, v := range svc.Versions {
			for _, ep := range v.Endpoints {
				want[key{svc.Name, v.Name, addr(ep), fp}] = cfg
			}
		}
	}
	p.mu.Lock()
	for k, cfg := range want {
		if p.endpoints[k] == nil {
			p.endpoints[k] = &endpoint{key: k, cfg: cfg}
		}
	}
	changed := false
	for k, e := range p.endpoints {
		if _, ok := want[k]; !ok {
			if e.cancel != nil {
				e.cancel()
			}
			changed = changed || e.state == unhealthy
			delete(p.endpoints, k)
		}
	}
	p.mu.Unlock()
	select {
	case p.updated <- struct{}{}:
	default:
	}
	if changed {
		p.notify()
	}
}

func addr(ep catalog.Endpoint) string {
	return net.JoinHostPort(ep.Host, strconv.FormatUint(uint64(ep.Port), 10))
}

// Status returns the health of one version. An unknown version has Total 0.
func (p *Prober) Status(service, version string) VersionHealth {
	p.mu.Lock()
	var vh VersionHealth
	for k, e := range p.endpoints {
		if k.service != service || k.version != version {
			continue
		}
		vh.Total++
		switch e.state {
		case healthy:
			vh.Healthy++
		case unhealthy:
			vh.Unhealthy = append(vh.Unhealthy, EndpointHealth{Endpoint: k.addr, LastError: e.lastError, Since: e.since})
		}
	}
	p.mu.Unlock()
	sort.Slice(vh.Unhealthy, func(i, j int) bool { return vh.Unhealthy[i].Endpoint < vh.Unhealthy[j].Endpoint })
	return vh
}

// Run probes until ctx ends, then stops every probe loop and returns ctx.Err(). Each
// endpoint is probed at once and then every Interval, in its own goroutine, so a slow
// endpoint delays no other.
func (p *Prober) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		p.mu.Lock()
		for _, e := range p.endpoints {
			e.cancel = nil // a later Run starts them again
		}
		p.mu.Unlock()
	}()
	for {
		p.mu.Lock()
		for _, e := range p.endpoints {
			if e.cancel != nil {
				continue
			}
			ectx, cancel := context.WithCancel(ctx)
			e.cancel = cancel
			wg.Go(func() { p.loop(ectx, e) })
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.updated:
		}
	}
}

func (p *Prober) loop(ctx context.Context, e *endpoint) {
	probe := p.prober(e.addr, e.cfg)
	defer probe.close()
	tick, stop := p.opts.NewTicker(e.cfg.Interval)
	defer stop()
	for {
		if _, err := p.dialAddr(e.addr); err != nil {
			p.log.Debug("endpoint not probed", zap.String("service", e.service), zap.String("version", e.version), zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-tick:
			}
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
		err := probe.check(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		p.record(e, err)
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// record applies one probe result to e's counters and state.
func (p *Prober) record(e *endpoint, err error) {
	now := p.opts.Now()
	p.mu.Lock()
	if p.endpoints[e.key] != e {
		p.mu.Unlock()
		return // removed by Update while probing
	}
	before := e.state
	if err == nil {
		e.successes++
		e.failures = 0
		if e.successes >= e.cfg.HealthyThreshold {
			e.state = healthy
		}
	} else {
		if e.failures == 0 {
			e.since = now
		}
		e.failures++
		e.successes = 0
		e.lastError = err.Error()
		if e.failures >= e.cfg.UnhealthyThreshold {
			e.state = unhealthy
		}
	}
	after := e.state
	p.mu.Unlock()
	if before == after {
		return
	}
	log := p.log.With(zap.String("service", e.service), zap.String("version", e.version), zap.String("endpoint", e.addr))
	if after == unhealthy {
		log.Warn("endpoint unhealthy", zap.Uint32("failures", e.cfg.UnhealthyThreshold), zap.Error(err))
	} else {
		log.Info("endpoint healthy", zap.Uint32("successes", e.cfg.HealthyThreshold))
	}
	p.notify()
}

func (p *Prober) notify() {
	select {
	case p.changes <- struct{}{}:
	default:
	}
}

// checker is one protocol's probe of one endpoint.
type checker interface {
	check(ctx context.Context) error
	close()
}

// dialAddr returns the address a probe of addr dials: addr itself, or, when its host is
// a DNS name and Options.Resolve is set, the first address Resolve answers.
func (p *Prober) dialAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || p.opts.Resolve == nil {
		return addr, nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return addr, nil
	}
	ips, err := p.opts.Resolve(host)
	if err == nil && len(ips) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", host, err)
	}
	return net.JoinHostPort(ips[0].String(), port), nil
}

// dial connects to addr through dialAddr.
func (p *Prober) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	to, err := p.dialAddr(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

func (p *Prober) prober(addr string, cfg Config) checker {
	switch cfg.Protocol {
	case "http":
		return newHTTPChecker(addr, cfg.Path, cfg.ExpectedStatuses, p.dial)
	case "grpc":
		return newGRPCChecker(addr, cfg, p.dial)
	case "tcp":
		return tcpChecker{addr: addr, dial: p.dial}
	default:
		return failChecker{err: fmt.Errorf("unknown health check protocol %q", cfg.Protocol)}
	}
}
