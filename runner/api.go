package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// ServiceView is one service as operators see it.
type ServiceView struct {
	// Service is the catalog entry plus the versions rollouts added.
	Service catalog.Service `json:"service"`
	// KnownGood is the version a no-go returns to (the stable version when idle).
	KnownGood string `json:"knownGood"`
	// Weights are the served weights, out of catalog.TotalWeight.
	Weights map[string]uint32 `json:"weights"`
	Matches []translate.Match `json:"matches,omitempty"`
	// Publication says whether the service's desired state is served (nil before its
	// first publish); while it fails, Weights are the last good ones, still served.
	Publication *publish.Status `json:"publication,omitempty"`
	// Convergence is how far the published route has reached the proxies.
	Convergence xds.Convergence `json:"convergence"`
	// Active is the active rollout, nil when idle.
	Active *controller.Rollout `json:"active,omitempty"`
	// Health is the active health-check state by version.
	Health map[string]healthcheck.VersionHealth `json:"health,omitempty"`
	// LastObservation are the numbers of the last judged check.
	LastObservation *controller.Numbers `json:"lastObservation,omitempty"`
	// Restore is the service's rollback in progress (Done false: it is restoring) or
	// its last one, until its next rollout starts; nil when there is none.
	Restore *Restore `json:"restore,omitempty"`
}

// RolloutFilter selects rollouts.
type RolloutFilter struct {
	Service    string
	State      controller.State
	ActiveOnly bool
	Limit      int
}

// EventQuery pages through the event history.
type EventQuery struct {
	After     uint64
	Limit     int
	RolloutID string
	Service   string
	Kind      string
}

// EventRecord is one persisted event with its sequence number.
type EventRecord struct {
	Seq uint64 `json:"seq"`
	controller.Event
}

// Start runs pre-flight and starts a rollout of spec. The first weights are persisted,
// then published.
//
// Start refuses (controller.ErrInvalidSpec, naming the field) everything that would
// leave the service unpublishable: the spec is validated on its own before the service
// is looked up (a request without a service is an invalid spec, not an unknown
// service), and then the service's desired state with the new rollout, every flag
// match of its plan included, must resolve and translate now: a canary endpoint whose
// DNS name does not resolve is refused, not left to fail every publish.
func (r *Runner) Start(ctx context.Context, spec controller.Spec, actor string) (controller.Rollout, error) {
	if err := spec.Validate(); err != nil {
		return controller.Rollout{}, fmt.Errorf("%w: %w", controller.ErrInvalidSpec, err)
	}
	// The canary's DNS names are looked up before the lock is taken.
	if hosts := canaryHosts(spec); len(hosts) > 0 {
		r.dns.Prime(ctx, hosts)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.notLeaderLocked(); err != nil {
		return controller.Rollout{}, err
	}
	svc, ok := r.effectiveServiceLocked(spec.Service)
	if !ok {
		return controller.Rollout{}, fmt.Errorf("%w %q", ErrUnknownService, spec.Service)
	}
	if e, ok := r.active[spec.Service]; ok {
		return controller.Rollout{}, fmt.Errorf("%w: %s is %s", ErrActiveRollout, e.r.ID, e.r.State)
	}
	now := r.opts.Now()
	freeze := r.activeFreezeLocked(now)
	ro, evs, err := controller.Create(now, store.NewID(now, spec.Service), spec, svc, freeze)
	if err != nil {
		return controller.Rollout{}, err
	}
	for i := range evs {
		if (evs[i].Kind == controller.EventCreated || evs[i].Kind == controller.EventFreezeOverride) && evs[i].Actor == "" {
			evs[i].Actor = actor
		}
	}
	e := &entry{r: ro, nextCheck: now.Add(interval(ro))}
	// The last rollback's restore is history now (still recorded if its ACK comes).
	if w, ok := r.restores[spec.Service]; ok && !w.Watching() {
		delete(r.restores, spec.Service)
	}
	if smoke, _ := ro.Wants(now); smoke || ro.GateWanted(now, freeze) != "" {
		// Pending on its smoke tests or gates only: run them at once rather than one
		// interval on.
		e.nextCheck = now
		defer r.poke()
	}
	r.active[spec.Service] = e
	r.changedLocked(spec.Service)
	if err := r.checkPublishableLocked(ro); err != nil {
		delete(r.active, spec.Service)
		return controller.Rollout{}, err
	}
	if r.newToProxiesLocked(ro) {
		e.warm = &warming{until: now.Add(ro.Plan.AckTimeout.D())}
		if err := r.putWarmLocked(ro.Service, ro.ID, false); err != nil {
			delete(r.active, spec.Service)
			return controller.Rollout{}, err
		}
	}
	if err := r.commitLocked(ctx, e, ro, evs); err != nil {
		delete(r.active, spec.Service)
		return controller.Rollout{}, err
	}
	r.log.Info("rollout started", zap.String("service", ro.Service), zap.String("rollout", ro.ID),
		zap.String("actor", actor), zap.String("canary", ro.Canary), zap.String("stable", ro.Stable),
		zap.String("weights", weightString(ro.Weights())))
	return ro, nil
}

// newToProxiesLocked reports whether ro's canary version has no cluster at the proxies
// yet: the service's served resources do not define it and a proxy watches its route.
// A route that sends traffic to a cluster the proxy has not loaded fails those
// requests (gRPC-Go: "unknown cluster selected for RPC"; Envoy: no healthy upstream),
// so such a version is first served at weight 0 (see warmedLocked).
func (r *Runner) newToProxiesLocked(ro controller.Rollout) bool {
	served, ok := r.pub.Served(ro.Service)
	if !ok {
		return false // nothing served: the proxies get the cluster with the first route
	}
	if _, have := served.Service.Version(ro.Canary); have {
		return false
	}
	return !r.opts.XDS.ClusterWarmth(ro.Service, ro.Canary).Done()
}

// canaryHosts is the DNS names (publish.NameOf's form) of spec's canary endpoints; an
// endpoint that does not parse, or an IP address, has none.
func canaryHosts(spec controller.Spec) []string {
	var hosts []string
	for _, ep := range spec.Canary.Endpoints {
		if e, err := catalog.ParseEndpoint(ep); err == nil {
			hosts = append(hosts, publish.ServiceHosts(catalog.Service{Versions: []catalog.Version{{Endpoints: []catalog.Endpoint{e}}}})...)
		}
	}
	return hosts
}

// checkPublishableLocked reports, as an invalid spec naming the field, why the desired
// state of ro's service with ro active would not publish: a canary endpoint whose DNS
// name has no answer (the names were looked up just before), or resources that do not
// translate, with every flag match of ro's plan in force. ro must be in r.active.
func (r *Runner) checkPublishableLocked(ro controller.Rollout) error {
	var errs []error
	for i, s := range ro.Spec.Canary.Endpoints {
		ep, err := catalog.ParseEndpoint(s)
		if err != nil || ep.IsIP() {
			continue
		}
		if _, err := r.dns.Cached(publish.NameOf(ep)); err != nil {
			errs = append(errs, fmt.Errorf("canary.endpoints[%d]: %q does not resolve: %w", i, s, err))
		}
	}
	if len(errs) == 0 {
		svc, _ := r.effectiveServiceLocked(ro.Service)
		d := r.desiredOfLocked(svc)
		seen := map[controller.MatchSpec]bool{}
		for _, st := range ro.Plan.Stages {
			if m := st.Match; m != nil && !seen[*m] {
				seen[*m] = true
				d.Matches = append(d.Matches, translate.Match{Header: m.Header, Cookie: m.Cookie, Value: m.Value, Version: ro.Canary})
			}
		}
		if err := r.pub.Check(d); err != nil {
			errs = append(errs, fmt.Errorf("service %s would not publish: %w", ro.Service, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", controller.ErrInvalidSpec, errors.Join(errs...))
	}
	return nil
}

// Command applies an operator command to the service's active rollout.
func (r *Runner) Command(ctx context.Context, service string, cmd controller.Command) (controller.Rollout, error) {
	// An operator's promotion runs the smoke tests first, as the loop's own do; the
	// requests go out before the lock is taken.
	cmd = r.smokeBeforePromote(ctx, service, cmd)
	cmd = r.gatesBeforePromote(ctx, service, cmd)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.notLeaderLocked(); err != nil {
		return controller.Rollout{}, err
	}
	e, ok := r.active[service]
	if !ok {
		if _, known := r.effectiveServiceLocked(service); !known {
			return controller.Rollout{}, fmt.Errorf("%w %q", ErrUnknownService, service)
		}
		return controller.Rollout{}, fmt.Errorf("%w: %s", ErrNoActiveRollout, service)
	}
	now := r.opts.Now()
	cmd.Freeze = r.activeFreezeLocked(now)
	next, evs, err := e.r.Apply(now, cmd)
	if err != nil {
		return e.r, err
	}
	if cmd.Kind == controller.CmdApprove {
		// The approval may be all the stage waited for: check at once.
		e.nextCheck = now
	}
	if err := r.commitLocked(ctx, e, next, evs); err != nil {
		if errors.Is(err, ErrNotPersisted) {
			// Done and published; the store takes it later.
			r.poke()
			return next, err
		}
		return e.r, err
	}
	r.poke()
	return next, nil
}

// ReportCheck records the latest result of a named check for the service's active
// rollout; the next observation carries it. A name that is not one of the rollout's
// reported checks (Plan.ReportedChecks) is refused with ErrUnknownCheck: its result
// would be ignored.
func (r *Runner) ReportCheck(_ context.Context, service string, res controller.CheckResult) error {
	if res.Name == "" {
		return errors.New("check name is required")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.notLeaderLocked(); err != nil {
		return err
	}
	e, ok := r.active[service]
	if !ok {
		if _, known := r.effectiveServiceLocked(service); !known {
			return fmt.Errorf("%w %q", ErrUnknownService, service)
		}
		return fmt.Errorf("%w: %s", ErrNoActiveRollout, service)
	}
	if known := e.r.Plan.ReportedChecks(); !slices.Contains(known, res.Name) {
		if len(known) == 0 {
			return fmt.Errorf("%w: name: %q: rollout %s takes no reported checks (it declares no smokeChecks and no customChecks without a query)",
				ErrUnknownCheck, res.Name, e.r.ID)
		}
		return fmt.Errorf("%w: name: %q is not a reported check of rollout %s; its reported checks are %s",
			ErrUnknownCheck, res.Name, e.r.ID, strings.Join(known, ", "))
	}
	checks := maps.Clone(r.checks[service])
	if checks == nil {
		checks = map[string]controller.CheckResult{}
	}
	checks[res.Name] = res
	// Persisted so that a restart does not forget a passing smoke check and hold the
	// rollout until someone reports it again.
	doc, err := json.Marshal(checks)
	if err != nil {
		return err
	}
	if err := r.persistLocked("check "+res.Name, false, "", func() error {
		return r.opts.Store.PutState(checksKey(e.r.ID), doc)
	}); err != nil {
		return fmt.Errorf("persist check %s: %w", res.Name, err)
	}
	r.checks[service] = checks
	return nil
}

func checksKey(rolloutID string) string { return "checks/" + rolloutID }

// Services returns every catalog service, sorted by name. The runner's lock is taken
// once for all of them (the loop holds it while it persists a transition), and the
// convergence and health, which have their own locks, are read after.
func (r *Runner) Services() []ServiceView {
	r.mu.Lock()
	out := make([]ServiceView, 0, len(r.cat.Services))
	for _, s := range r.cat.Services {
		out = append(out, r.viewLocked(r.effectiveLocked(s)))
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Service.Name < out[j].Service.Name })
	for i := range out {
		r.serviceUnlocked(&out[i])
	}
	return out
}

// Service returns one service.
func (r *Runner) Service(name string) (ServiceView, bool) {
	r.mu.Lock()
	v, ok := r.serviceLocked(name)
	r.mu.Unlock()
	if ok {
		r.serviceUnlocked(&v)
	}
	return v, ok
}

// serviceLocked is the part of a service's view the runner's lock guards.
func (r *Runner) serviceLocked(name string) (ServiceView, bool) {
	svc, ok := r.effectiveServiceLocked(name)
	if !ok {
		return ServiceView{}, false
	}
	return r.viewLocked(svc), true
}

// viewLocked is the part of the view of svc, an effective service, the lock guards.
func (r *Runner) viewLocked(svc catalog.Service) ServiceView {
	name := svc.Name
	v := ServiceView{Service: svc, KnownGood: svc.Stable}
	if d, ok := r.pub.Served(name); ok {
		v.Weights = d.Weights
		v.Matches = d.Matches
	}
	if st, ok := r.pub.Status(name); ok {
		v.Publication = &st
	}
	if e, ok := r.active[name]; ok {
		ro := e.r
		v.Active = &ro
		v.KnownGood = ro.KnownGood()
		v.LastObservation = e.last
	}
	if d, ok := r.restoreLocked(name); ok {
		v.Restore = &d
	}
	return v
}

// serviceUnlocked completes v with what is read without the runner's lock.
func (r *Runner) serviceUnlocked(v *ServiceView) {
	name := v.Service.Name
	v.Convergence = r.opts.XDS.Convergence(name)
	if h := r.opts.Health; h != nil {
		v.Health = map[string]healthcheck.VersionHealth{}
		for _, ver := range v.Service.Versions {
			v.Health[ver.Name] = h.Status(name, ver.Name)
		}
	}
}

// Rollout returns one rollout, active or finished.
func (r *Runner) Rollout(id string) (controller.Rollout, error) {
	if ro, ok := r.unpersistedRollout(id); ok {
		return ro, nil
	}
	return r.storedRollout(id)
}

// storedRollout reads one rollout from the store.
func (r *Runner) storedRollout(id string) (controller.Rollout, error) {
	doc, err := r.opts.Store.GetRollout(id)
	if errors.Is(err, store.ErrNotFound) {
		return controller.Rollout{}, fmt.Errorf("rollout %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return controller.Rollout{}, err
	}
	var ro controller.Rollout
	if err := json.Unmarshal(doc, &ro); err != nil {
		return controller.Rollout{}, fmt.Errorf("decode rollout %s: %w", id, err)
	}
	return ro, nil
}

// Rollouts lists rollouts, newest first.
func (r *Runner) Rollouts(f RolloutFilter) ([]controller.Rollout, error) {
	limit := f.Limit
	if f.State != "" {
		limit = 0 // filter after reading
	}
	recs, err := r.opts.Store.ListRollouts(store.ListFilter{Service: f.Service, ActiveOnly: f.ActiveOnly, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]controller.Rollout, 0, len(recs))
	for _, rec := range recs {
		var ro controller.Rollout
		if err := json.Unmarshal(rec.Doc, &ro); err != nil {
			return nil, fmt.Errorf("decode rollout %s: %w", rec.ID, err)
		}
		if newer, ok := r.unpersistedRollout(ro.ID); ok {
			ro = newer // its write is pending
			if f.ActiveOnly && ro.State.Terminal() {
				continue
			}
		}
		if f.State != "" && ro.State != f.State {
			continue
		}
		out = append(out, ro)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// Events pages through the persisted event history.
func (r *Runner) Events(q EventQuery) ([]EventRecord, uint64, error) {
	evs, next, err := r.opts.Store.Events(store.EventQuery{After: q.After, Limit: q.Limit, RolloutID: q.RolloutID, Service: q.Service, Kind: q.Kind})
	if err != nil {
		return nil, 0, err
	}
	out := make([]EventRecord, 0, len(evs))
	for _, se := range evs {
		rec := EventRecord{Seq: se.Seq}
		if err := json.Unmarshal(se.Data, &rec.Event); err != nil {
			return nil, 0, fmt.Errorf("decode event %d: %w", se.Seq, err)
		}
		out = append(out, rec)
	}
	return out, next, nil
}

// RolloutEvents returns every event of one rollout, oldest first (for reports).
func (r *Runner) RolloutEvents(id string) ([]controller.Event, error) {
	var out []controller.Event
	var after uint64
	for {
		recs, next, err := r.Events(EventQuery{After: after, Limit: store.MaxEventLimit, RolloutID: id})
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			out = append(out, rec.Event)
		}
		if len(recs) == 0 || next == after {
			return out, nil
		}
		after = next
	}
}

// Record appends an event that is not a transition (a notification that could not be
// delivered, say) to the rollout's history. It does not take the runner's lock, so hooks
// that run during a transition may call it.
func (r *Runner) Record(ev controller.Event) error {
	if ev.Service == "" && ev.RolloutID != "" {
		if ro, err := r.Rollout(ev.RolloutID); err == nil {
			ev.Service = ro.Service
			ev.State, ev.Stage, ev.Generation, ev.Weight = ro.State, ro.Stage, ro.Generation, ro.CanaryWeight()
		}
	}
	if ev.Time.IsZero() {
		ev.Time = r.opts.Now()
	}
	sevs, err := storeEvents([]controller.Event{ev})
	if err != nil {
		return err
	}
	_, err = r.opts.Store.AppendEvents(sevs...)
	return err
}
