// Package runner is the loop around the pure rollout engine. It owns the active
// rollouts: it gathers observations (metrics, health checks, reported checks and the
// xds layer's ACK state), steps the engine, persists every transition in the store and
// only then publishes the desired weights to the xds server. Operator commands go
// through it too. After a restart it publishes exactly the persisted weights before it
// evaluates anything, so a crash never moves traffic by itself.
//
// It may import controller, xds, store, catalog, metrics, healthcheck and smoke; the admin
// API, the CLI and notifications sit on top of it and must not be imported here.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/gate"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/smoke"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

// Errors returned by the runner's API; test with errors.Is.
var (
	ErrNotFound        = errors.New("not found")
	ErrUnknownService  = errors.New("unknown service")
	ErrActiveRollout   = errors.New("the service already has an active rollout")
	ErrNoActiveRollout = errors.New("the service has no active rollout")
	ErrUnknownCheck    = errors.New("unknown check")
)

// Publisher is the xds server as the runner uses it.
type Publisher interface {
	publish.Server
	// Convergence is how far the service's served route reached the proxies.
	Convergence(service string) xds.Convergence
	// RouteVersion is the version of the service's route served now.
	RouteVersion(service string) string
	// ClusterWarmth is how many proxies of the service's route hold the clusters of
	// versions.
	ClusterWarmth(service string, versions ...string) xds.ClusterWarmth
	// RouteStragglers are the proxies of the service's route that have not ACKed one
	// of routeVersions.
	RouteStragglers(service string, routeVersions []string) []string
}

// Health is the active health-check prober as the runner uses it.
type Health interface {
	Update(services []catalog.Service)
	Status(service, version string) healthcheck.VersionHealth
	Changes() <-chan struct{}
}

// AlertSource reports the critical alerts firing for a service, as its alerts selector
// picks them (metrics.Prometheus).
type AlertSource interface {
	FiringAlerts(ctx context.Context, svc catalog.Service, at time.Time) ([]string, error)
}

// Notifier receives every event after it was persisted (a rollback's while the store
// fails, at once: it is published before it is persisted). Notify must not block.
type Notifier interface {
	Notify(ev controller.Event, r controller.Rollout)
}

// Store is the state store as the runner uses it; *store.Store satisfies it. Every
// write must be durable when it returns without an error.
type Store interface {
	PutRollout(id, service string, active bool, doc []byte, events []store.Event) (uint64, error)
	GetRollout(id string) ([]byte, error)
	ListRollouts(f store.ListFilter) ([]store.RolloutRecord, error)
	PutState(key string, doc []byte) error
	GetState(key string) ([]byte, error)
	AppendEvents(events ...store.Event) (uint64, error)
	Events(q store.EventQuery) ([]store.Event, uint64, error)
	// Path names the store in messages.
	Path() string
}

// Options wire a Runner.
type Options struct {
	Log     *zap.Logger
	Store   Store
	XDS     Publisher
	Metrics metrics.Source // nil: every check is inconclusive on traffic
	Health  Health         // nil: no health data
	Alerts  AlertSource    // nil: no alert source (no alert ever pauses)
	Notify  Notifier       // nil: no notifications
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Tick is how often Run looks for rollouts due a check; default 1s. Each rollout is
	// checked at its own plan's CheckInterval.
	Tick time.Duration
	// Resolver resolves DNS endpoint names; default net.DefaultResolver. Lookups run
	// outside the runner's lock: a name is looked up when a catalog or rollout first
	// names it, again when its answer's TTL (a publish.RecordResolver reports it;
	// within DNSMinTTL and DNSRefresh) passed, and on every tick while its lookup fails
	// (the last good answer keeps serving). SRV endpoints need a RecordResolver.
	Resolver publish.HostResolver
	// DNSRefresh is the longest an answer is kept, whatever its TTL (the answers of a
	// resolver that reports no TTL are kept this long); default
	// publish.DefaultDNSMaxTTL.
	DNSRefresh time.Duration
	// DNSMinTTL is the shortest an answer is kept, whatever its TTL; default
	// publish.DefaultDNSMinTTL, lowered to DNSRefresh when above it.
	DNSMinTTL time.Duration
	// MinWindow bounds the metrics window of one check from below; default 0 (the
	// rollout's check interval is the window).
	MinWindow time.Duration
	// OnPublish, when set, is told how long each publish to the xds server took
	// (translation, checks and handing the resources to the cache).
	OnPublish func(time.Duration)
	// Parallel bounds how many services' checks gather their observations at once
	// (metrics queries, smoke tests); default 16. Transitions stay serialised.
	Parallel int
	// HTTPChecks runs the rollouts' smoke tests and synthetics; default a smoke.Runner
	// with its defaults (each check's own timeout, 1 MiB bodies, no redirects followed).
	HTTPChecks HTTPChecker
	// Leader, when set, says whether this replica decides (several replicas on one
	// shared store); nil: it always does.
	Leader Leadership
	// Gates asks the rollouts' blocking webhooks; default a gate.Client with its
	// defaults (signed requests, each hook's timeout and attempts, 1s backoff).
	Gates GateAsker
}

// Runner is safe for concurrent use.
type Runner struct {
	opts Options
	log  *zap.Logger

	// mu serialises transitions: every change of rollouts, services or the published
	// state happens under it, persisted before it is published.
	mu       sync.Mutex
	cat      *catalog.Catalog
	services map[string]controller.ServiceState // persisted per-service state
	active   map[string]*entry                  // by service
	checks   map[string]map[string]controller.CheckResult
	// pub serves each service on its own and knows what is served; dns holds the
	// answers it resolves from.
	pub *publish.Publisher
	dns *publish.DNS
	// restores are the services' rollbacks whose known-good weights are not yet ACKed
	// by every proxy (the ACK is recorded as the rollout's last event: time to restore),
	// and each service's last confirmed restore, shown until its next rollout.
	restores map[string]controller.Restore
	// pending are store writes of moves to known-good that were published before the
	// store took them, in order; every republish tick retries them, and every other
	// write waits for them. pendingErr is the latest failure; unpersisted holds the
	// rollouts whose latest state is among them, by id.
	pending     []pendingWrite
	pendingErr  error
	unpersisted map[string]controller.Rollout
	// pubErr is set while the xds server refuses the whole published set (nothing
	// changed); every tick publishes again until it takes it.
	pubErr error
	// healthSeen is, per service with an active rollout, the health state its last
	// forced check saw; a health change forces a check only where it differs.
	healthSeen map[string]string
	// reloadWarm holds the idle services a catalog reload routes to versions new to
	// their proxies, while those versions' clusters load (see warmReloadLocked).
	reloadWarm map[string]*reloadWarming
	// want keeps each service's desired state between publishes (see wanted).
	want wanted
	wake chan struct{}
	http HTTPChecker
	// gates asks the blocking webhooks; freeze is the freeze set by a person (nil when
	// none), persisted; bg counts the onRollback hooks being told in the background.
	gates  GateAsker
	freeze *model.Freeze
	bg     sync.WaitGroup
	// calls are the blocking webhooks being asked in the background (gatecalls.go);
	// bgCtx ends them and the onRollback tells at Close.
	calls    gateCalls
	tells    tells
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

// entry is one active rollout and the loop's bookkeeping for it.
type entry struct {
	r controller.Rollout
	// pubGen and pubVersion are the rollout generation last published and the route
	// version it produced: convergence is reported for pubGen only once the xds layer
	// serves pubVersion.
	pubGen     uint64
	pubVersion string
	// pubAt is when pubGen was first served: the ACK instant of a service whose
	// proxies are optional and absent.
	pubAt     time.Time
	nextCheck time.Time
	// answered is set when a hook's deciding answer came (see checkSoon): the check
	// under way when it came may not have seen it, so the next one is due at once.
	answered bool
	last     *controller.Numbers
	// warm is set while the rollout's canary version is new to the proxies: its cluster
	// is served with the known-good weights until every proxy holds it, and only then
	// are the rollout's weights published (see warmedLocked).
	warm *warming
}

// warming is a new canary version's cluster on its way to the proxies.
type warming struct {
	// served says the resources defining the cluster are served.
	served bool
	// until is when the rollout's weights are published even if a proxy still lacks
	// the cluster (the ACK timeout then runs for them).
	until time.Time
}

func serviceKey(name string) string { return "service/" + name }

// New loads the persisted state and publishes it: the active rollouts' persisted
// weights and every idle service's known-good version, nothing else.
func New(ctx context.Context, cat *catalog.Catalog, opts Options) (*Runner, error) {
	if opts.Store == nil || opts.XDS == nil {
		return nil, errors.New("runner: a store and an xds publisher are required")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 16
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	r := &Runner{
		opts:        opts,
		log:         opts.Log.Named("runner"),
		cat:         cat,
		services:    map[string]controller.ServiceState{},
		active:      map[string]*entry{},
		checks:      map[string]map[string]controller.CheckResult{},
		restores:    map[string]controller.Restore{},
		healthSeen:  map[string]string{},
		reloadWarm:  map[string]*reloadWarming{},
		want:        newWanted(),
		unpersisted: map[string]controller.Rollout{},
		wake:        make(chan struct{}, 1),
		http:        opts.HTTPChecks,
	}
	if r.http == nil {
		r.http = smoke.New(r.log, smoke.Options{})
	}
	r.bgCtx, r.bgCancel = context.WithCancel(context.Background())
	r.gates = opts.Gates
	if r.gates == nil {
		r.gates = gate.New(gate.Options{})
	}
	r.tells.pending, r.tells.running = map[string]*pendingTell{}, map[string]bool{}
	if err := r.loadFreeze(); err != nil {
		return nil, err
	}
	r.dns = publish.NewDNSCache(opts.Resolver, publish.DNSOptions{Now: opts.Now, MinTTL: opts.DNSMinTTL, MaxTTL: opts.DNSRefresh})
	r.pub = publish.New(opts.XDS, r.dns, opts.Now)
	recs, err := opts.Store.ListRollouts(store.ListFilter{ActiveOnly: true})
	if err != nil {
		return nil, fmt.Errorf("load active rollouts: %w", err)
	}
	for _, rec := range recs {
		var ro controller.Rollout
		if err := json.Unmarshal(rec.Doc, &ro); err != nil {
			return nil, fmt.Errorf("rollout %s in %s: %w", rec.ID, opts.Store.Path(), err)
		}
		r.active[ro.Service] = &entry{r: ro}
		if doc, err := opts.Store.GetState(checksKey(ro.ID)); err == nil {
			var checks map[string]controller.CheckResult
			if err := json.Unmarshal(doc, &checks); err != nil {
				return nil, fmt.Errorf("check results of rollout %s: %w", ro.ID, err)
			}
			r.checks[ro.Service] = checks
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("check results of rollout %s: %w", ro.ID, err)
		}
		r.log.Info("resuming rollout", zap.String("service", ro.Service), zap.String("rollout", ro.ID),
			zap.String("state", string(ro.State)), zap.Int("stage", ro.Stage), zap.Uint32("canaryWeight", ro.CanaryWeight()))
	}
	for _, svc := range cat.Services {
		if err := r.loadService(svc.Name); err != nil {
			return nil, err
		}
	}
	// The names of every service are looked up before the first publish. A service
	// whose persisted state cannot be resolved or translated is reported failing and
	// retried; it never stops the others from serving, nor octoroll from starting.
	r.mu.Lock()
	desired, _ := r.desiredLocked()
	r.mu.Unlock()
	r.dns.Prime(ctx, publish.Hosts(desired...))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishLocked()
	for _, svc := range cat.Services {
		if _, busy := r.active[svc.Name]; busy {
			continue
		}
		if err := r.loadRestoreLocked(svc.Name); err != nil {
			return nil, err
		}
	}
	now := opts.Now()
	for _, e := range r.active {
		// publishLocked marked the rollouts whose weights are served as published; a
		// rollout whose service failed is not (its fallback state serves instead).
		// The first check after a restart comes one interval after the persisted last
		// check, never earlier: resuming is not a reason to judge sooner.
		e.nextCheck = e.r.Progress.LastCheck.Add(interval(e.r))
		if e.nextCheck.Before(now) {
			e.nextCheck = now
		}
	}
	return r, nil
}

func (r *Runner) loadService(name string) error {
	doc, err := r.opts.Store.GetState(serviceKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load state of service %s: %w", name, err)
	}
	var st controller.ServiceState
	if err := json.Unmarshal(doc, &st); err != nil {
		return fmt.Errorf("state of service %s in %s: %w", name, r.opts.Store.Path(), err)
	}
	st, left := st.Translatable()
	for _, l := range left {
		r.log.Warn("persisted version left out: it cannot be translated", zap.String("service", name),
			zap.String("version", l.Version), zap.Error(l.Err))
	}
	r.services[name] = st
	r.changedLocked(name)
	return nil
}

// SetCatalog replaces the catalog (after a good reload) and republishes. A catalog that
// cannot be served (for example, it drops a version an active rollout uses) is refused
// with the reason, and the previous one keeps serving; the caller may offer it again
// later (the catalog watcher does, until it is taken).
func (r *Runner) SetCatalog(ctx context.Context, cat *catalog.Catalog) error {
	r.primeDNS(ctx, cat.Services...)
	r.mu.Lock()
	defer r.mu.Unlock()
	// A service with an active rollout must stay: without it the rollout's weights
	// would silently stop being served.
	for svc, e := range r.active {
		if !slices.ContainsFunc(cat.Services, func(s catalog.Service) bool { return s.Name == svc }) {
			return fmt.Errorf("it drops service %s, which has active rollout %s", svc, e.r.ID)
		}
	}
	prev := r.cat
	r.cat = cat
	r.changedAllLocked()
	for _, svc := range cat.Services {
		if _, ok := r.services[svc.Name]; !ok {
			if err := r.loadService(svc.Name); err != nil {
				r.cat = prev
				return err
			}
		}
	}
	// A service with an active rollout must keep serving the rollout's weights: a
	// catalog that would leave them unpublishable (it drops a version they name, say)
	// is refused. One that fails already is not a reason to refuse other changes.
	desired, _ := r.desiredLocked()
	for _, d := range desired {
		e, busy := r.active[d.Service.Name]
		if st, ok := r.pub.Status(d.Service.Name); !busy || (ok && !st.OK) {
			continue
		}
		if err := r.pub.Check(d); err != nil {
			r.cat = prev
			return fmt.Errorf("service %s has active rollout %s, whose weights it cannot serve: %w", d.Service.Name, e.r.ID, err)
		}
	}
	// A version new to the proxies gets traffic only once they hold its cluster.
	r.warmReloadLocked()
	// A service of the new catalog that does not translate keeps its last good
	// resources and is reported failing; the others serve the new catalog.
	r.publishLocked()
	return nil
}

// Catalog returns the catalog in use.
func (r *Runner) Catalog() *catalog.Catalog {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cat
}

// Run checks every active rollout at its check interval until ctx is done, and at once
// when a health check changes (a canary whose endpoints all went down rolls back
// without waiting for the next interval). A health change is published first: the
// endpoints found unhealthy are marked so in EDS (see translate.Desired.Unhealthy).
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTicker(r.opts.Tick)
	defer t.Stop()
	var healthCh <-chan struct{}
	if r.opts.Health != nil {
		healthCh = r.opts.Health.Changes()
	}
	// Rounds of checks run one at a time beside this loop, so that a health change
	// reaches EDS at once even while a round waits on slow metrics or smoke tests. A
	// round asked for while one runs starts when it ends.
	done := make(chan struct{}, 1)
	running := false
	var queued, queuedForce map[string]bool // queued is non-nil when a round waits
	start := func(force map[string]bool) {
		if running {
			if queued == nil {
				queued, queuedForce = map[string]bool{}, map[string]bool{}
			}
			maps.Copy(queuedForce, force)
			return
		}
		running = true
		go func() {
			r.evaluate(ctx, force)
			done <- struct{}{}
		}()
	}
	// Publication is retried, and DNS refreshed, on its own beside the checks.
	var pubWG sync.WaitGroup
	defer pubWG.Wait()
	pubWG.Go(func() {
		pt := time.NewTicker(r.opts.Tick)
		defer pt.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-pt.C:
				r.republish(ctx)
			}
		}
	})
	for {
		select {
		case <-ctx.Done():
			if running {
				<-done
			}
			return nil
		case <-t.C:
			start(nil)
		case <-r.wake:
			start(nil)
		case <-healthCh:
			// Unhealthy endpoints leave EDS at once, whatever the rollouts decide; the
			// rollouts of the services whose health changed are checked at once.
			start(r.publishHealth(ctx))
		case <-done:
			running = false
			if queued != nil {
				force := queuedForce
				queued, queuedForce = nil, nil
				start(force)
			}
		}
	}
}

// Evaluate retries publication (as Run does on every tick) and checks every rollout that
// is due now. Tests drive it on an injected clock.
func (r *Runner) Evaluate(ctx context.Context) {
	r.republish(ctx)
	r.evaluate(ctx, nil)
}

// evaluate checks every rollout that is due, and those of the services in force at once.
func (r *Runner) evaluate(ctx context.Context, force map[string]bool) {
	if !r.leading() {
		r.tellsFollowing()
		return // a follower serves what the leader persisted and decides nothing
	}
	r.resumeTells()
	now := r.opts.Now()
	r.mu.Lock()
	var due []string
	for svc, e := range r.active {
		if force[svc] || !now.Before(e.nextCheck) {
			due = append(due, svc)
		}
	}
	r.confirmRestoresLocked(now)
	r.mu.Unlock()
	sort.Strings(due)
	// Each check gathers without the lock (a slow metrics source or smoke test holds
	// up only its own service) and commits under it.
	sem := make(chan struct{}, r.opts.Parallel)
	var wg sync.WaitGroup
	for _, svc := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			switch err := r.check(ctx, svc); {
			case errors.Is(err, ErrNotPersisted):
				r.log.Warn("rolled back and published; not yet persisted", zap.String("service", svc), zap.Error(err))
			case err != nil:
				r.log.Error("check failed", zap.String("service", svc), zap.Error(err))
			}
		})
	}
	wg.Wait()
}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}
