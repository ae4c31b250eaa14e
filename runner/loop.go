package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/store"
)

// check gathers one observation for the service's active rollout and steps it.
func (r *Runner) check(ctx context.Context, service string) error {
	r.mu.Lock()
	e, ok := r.active[service]
	if !ok {
		r.mu.Unlock()
		return nil
	}
	ro := e.r
	pubGen, pubVersion := e.pubGen, e.pubVersion
	pub := r.publicationLocked(e)
	svc, _ := r.effectiveServiceLocked(service)
	checks := r.checks[service]
	results := make([]controller.CheckResult, 0, len(checks))
	for _, c := range checks {
		results = append(results, c)
	}
	freeze := r.activeFreezeLocked(r.opts.Now())
	r.mu.Unlock()

	// Gathering does I/O (metrics queries) and runs without the lock, so commands and
	// other services' checks are not held up by a slow metrics source.
	obs := r.gather(ctx, svc, ro, pubGen, pubVersion)
	obs.Convergence = r.convergence(svc, ro, pub)
	obs.Checks = append(results, r.queryChecks(ctx, svc, ro, obs.Window)...)
	r.httpChecks(ctx, svc, ro, &obs)
	obs.Freeze = freeze
	r.gateChecks(ro, &obs)

	if err := ctx.Err(); err != nil {
		// Shutting down: requests cut short are no verdict on the canary.
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok = r.active[service]
	if !ok || e.r.ID != ro.ID {
		return nil // finished or replaced while gathering
	}
	if e.r.Generation != ro.Generation || e.r.State != ro.State {
		// A command moved the rollout while gathering: what was gathered was chosen for
		// the state before it. The next tick checks again.
		return nil
	}
	now := r.opts.Now()
	next, evs := e.r.Step(now, obs)
	e.nextCheck = now.Add(interval(next))
	if e.answered {
		e.nextCheck, e.answered = now, false
	}
	if n := next.Progress.Last; n != nil {
		e.last = n
	}
	err := r.commitLocked(ctx, e, next, evs)
	r.askAhead(e.r, e.nextCheck, freeze)
	return err
}

// interval is the rollout's check interval (the plan's, never zero).
func interval(ro controller.Rollout) time.Duration {
	if d := ro.Plan.CheckInterval.D(); d > 0 {
		return d
	}
	return 30 * time.Second
}

// gather builds the observation of one check: both versions' traffic over the check
// window, their health, and the xds layer's convergence of the published generation.
func (r *Runner) gather(ctx context.Context, svc catalog.Service, ro controller.Rollout, pubGen uint64, pubVersion string) controller.Observation {
	var obs controller.Observation
	window := max(interval(ro), r.opts.MinWindow)
	at := r.opts.Now()
	obs.Window = window
	// Both versions over both windows, queried at once.
	var wg sync.WaitGroup
	wg.Go(func() { obs.Canary = r.versionStats(ctx, svc, ro.Canary, window, at) })
	wg.Go(func() { obs.Stable = r.versionStats(ctx, svc, ro.Stable, window, at) })
	// The analysis window (since the ACK) and, when shorter, the sustain window (the
	// last rollbackSustain of it); whole seconds keep the queries' windows (and the
	// recorded numbers) readable. A window shorter than the source's shortest is not
	// asked for: the engine then judges nothing but gross breaches.
	if aw := ro.AnalysisWindow(at).Truncate(time.Second); aw > 0 && aw >= r.opts.MinWindow {
		obs.Analysis.Window = aw
		wg.Go(func() { obs.Analysis.Canary = r.versionStats(ctx, svc, ro.Canary, aw, at) })
		wg.Go(func() { obs.Analysis.Stable = r.versionStats(ctx, svc, ro.Stable, aw, at) })
		if sw := ro.SustainWindow(at).Truncate(time.Second); sw < aw && sw >= r.opts.MinWindow {
			obs.Sustain.Window = sw
			wg.Go(func() { obs.Sustain.Canary = r.versionStats(ctx, svc, ro.Canary, sw, at) })
			wg.Go(func() { obs.Sustain.Stable = r.versionStats(ctx, svc, ro.Stable, sw, at) })
		}
	}
	if h := r.opts.Health; h != nil {
		obs.Health.Canary = endpointHealth(h.Status(svc.Name, ro.Canary))
		obs.Health.Stable = endpointHealth(h.Status(svc.Name, ro.Stable))
	}
	if a := r.opts.Alerts; a != nil {
		alerts, err := a.FiringAlerts(ctx, svc, at)
		if err != nil {
			// An unreachable alert source is not an alert, nor a pass: the check holds
			// and counts towards the rollout's source-failure limit.
			r.log.Warn("alerts query failed", zap.String("service", svc.Name), zap.Error(err))
			obs.AlertsErr = err.Error()
		}
		obs.Alerts = alerts
	}
	wg.Wait()
	return obs
}

// publication is what the loop knows of an active rollout's publication when a check
// starts.
type publication struct {
	gen     uint64
	version string
	at      time.Time
	// err says why the rollout's current generation is not served.
	err string
}

func (r *Runner) publicationLocked(e *entry) publication {
	p := publication{gen: e.pubGen, version: e.pubVersion, at: e.pubAt}
	if p.gen == e.r.Generation && p.version != "" {
		return p
	}
	p.err = "not served yet"
	if e.warm != nil && e.warm.served {
		p.err = fmt.Sprintf("the proxies are loading the cluster of new version %s before it gets traffic", e.r.Canary)
	} else if st, ok := r.pub.Status(e.r.Service); ok && !st.OK && st.Error != "" {
		p.err = st.Error
	} else if r.pubErr != nil {
		p.err = r.pubErr.Error()
	}
	return p
}

// convergence is the engine's view of the rollout's current weights: whether they are
// published (and why not), and how far they reached the proxies: every subscribed
// proxy ACKed them (at least one, unless the service's proxies are optional), when the
// last one did, and who has not.
func (r *Runner) convergence(svc catalog.Service, ro controller.Rollout, pub publication) controller.Convergence {
	c := controller.Convergence{Generation: ro.Generation}
	if pub.gen != ro.Generation || pub.version == "" {
		c.NotPublished = pub.err
		return c
	}
	acks := r.routeAcks(svc.Name)
	c.Published, c.Version = true, pub.version
	c.Subscribed, c.Stragglers = acks.Subscribed, acks.Stragglers
	if acks.RouteVersion != pub.version {
		return c // published again since (a catalog or health change): counted next check
	}
	c.NACK = acks.NACK
	c.AckedAt, c.Acked = acks.Reached(svc.ProxiesOptional, pub.at)
	return c
}

// queryChecks evaluates the rollout's query checks (and those of its current
// monitoring phase) on the canary version over the check window.
func (r *Runner) queryChecks(ctx context.Context, svc catalog.Service, ro controller.Rollout, window time.Duration) []controller.CheckResult {
	checks := ro.Plan.Checks
	if ro.State == controller.StateMonitoring || ro.PausedFrom == controller.StateMonitoring {
		if ro.Phase < len(ro.Plan.Monitoring) {
			checks = append(slices.Clone(checks), ro.Plan.Monitoring[ro.Phase].Checks...)
		}
	}
	var out []controller.CheckResult
	at := r.opts.Now()
	for _, c := range checks {
		if c.Query == "" {
			continue
		}
		res := controller.CheckResult{Name: c.Name}
		q, ok := r.opts.Metrics.(metrics.Querier)
		if !ok {
			res.Inconclusive = metrics.ErrNoQueries.Error()
			out = append(out, res)
			continue
		}
		v, err := q.QueryValue(ctx, svc, ro.Canary, c.Query, window, at)
		switch {
		case err != nil:
			res.Inconclusive = err.Error()
		case c.Min != nil && v < *c.Min:
			res.Detail = fmt.Sprintf("value %g is below min %g", v, *c.Min)
		case c.Max != nil && v > *c.Max:
			res.Detail = fmt.Sprintf("value %g is above max %g", v, *c.Max)
		default:
			res.Passed = true
			res.Detail = fmt.Sprintf("value %g within bounds", v)
		}
		out = append(out, res)
	}
	return out
}

func (r *Runner) versionStats(ctx context.Context, svc catalog.Service, version string, window time.Duration, at time.Time) controller.VersionStats {
	if r.opts.Metrics == nil {
		return controller.VersionStats{Inconclusive: "no metrics source configured"}
	}
	st, err := r.opts.Metrics.VersionStats(ctx, svc, version, window, at)
	switch {
	case errors.Is(err, metrics.ErrNoData):
		return controller.VersionStats{Inconclusive: fmt.Sprintf("no metrics for %s over %s", version, controller.Duration(window))}
	case err != nil:
		return controller.VersionStats{Err: err}
	}
	return controller.VersionStats{
		Requests: uint64(st.Requests + 0.5),
		Errors:   uint64(st.Errors + 0.5),
		P99:      st.P99,
		Latency:  latencyHistogram(st.Latency),
	}
}

// latencyHistogram maps a source's histogram (metrics.Stats.Latency: cumulative, bounds
// in seconds, the last +Inf) into the engine's: bounds as durations, the +Inf bucket
// and any bound too large for a duration as controller.Inf, bounds below zero as 0
// (latencies are not negative), counts as whole numbers. Bounds that become equal keep
// the higher count, so counts still never decrease. A histogram without a +Inf bucket
// (which the sources never give) maps to none.
func latencyHistogram(buckets []metrics.Bucket) controller.Histogram {
	if len(buckets) == 0 || !math.IsInf(buckets[len(buckets)-1].UpperBound, +1) {
		return controller.Histogram{}
	}
	h := controller.Histogram{
		Bounds: make([]time.Duration, 0, len(buckets)),
		Counts: make([]uint64, 0, len(buckets)),
	}
	for _, b := range buckets {
		bound := controller.Inf
		if ns := b.UpperBound * float64(time.Second); ns < float64(controller.Inf) {
			bound = time.Duration(max(math.Round(ns), 0))
		}
		count := uint64(max(math.Round(b.Count), 0))
		if n := len(h.Bounds); n > 0 && h.Bounds[n-1] >= bound {
			h.Counts[n-1] = max(h.Counts[n-1], count)
			continue
		}
		if n := len(h.Counts); n > 0 {
			count = max(count, h.Counts[n-1])
		}
		h.Bounds = append(h.Bounds, bound)
		h.Counts = append(h.Counts, count)
	}
	return h
}

func endpointHealth(v healthcheck.VersionHealth) controller.EndpointHealth {
	h := controller.EndpointHealth{Total: v.Total}
	for _, u := range v.Unhealthy {
		h.Unhealthy = append(h.Unhealthy, u.Endpoint)
	}
	return h
}

// commitLocked persists a transition, then publishes its weights, then notifies. The
// order is the crash-safety contract: what proxies are told is on disk first. The one
// exception, with one replica, is a move to known-good (a rollback or an abort): it
// never waits on the disk. When the store fails it is published at once and its writes
// are queued, retried on every tick; the error returned is then a *NotPersistedError,
// and the transition is done. With several replicas it waits on etcd like every other
// transition (rollbackFirst): a failed write publishes nothing.
func (r *Runner) commitLocked(ctx context.Context, e *entry, next controller.Rollout, evs []controller.Event) error {
	prev := e.r
	terminal := next.State.Terminal()
	restore := next.State == controller.StateRolledBack && prev.State != controller.StateRolledBack
	doc, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode rollout %s: %w", next.ID, err)
	}
	sevs, err := storeEvents(evs)
	if err != nil {
		return err
	}
	for i := range sevs {
		if model.IsEventName(sevs[i].Kind) {
			sevs[i].Rollout = doc // what a notification of it, sent later, describes
		}
	}
	// A move to known-good is published before it is persisted with one replica only
	// (rollbackFirst).
	queue := restore && r.rollbackFirst()
	var notPersisted error
	if terminal {
		// The known-good version is recorded before the rollout stops being active, so
		// a crash between the two writes leaves an active rollout that settles the same
		// way again, never an idle service pointing at the old version.
		st := r.services[next.Service].After(next)
		if err := r.putService(next.Service, st, queue); err != nil {
			if !errors.Is(err, ErrNotPersisted) {
				return err
			}
			notPersisted = err
		}
	}
	if restore {
		// The restore watch is on disk before the rollback: whoever loads the rollback
		// (a restart, the next leader) watches its restore. So are the onRollback
		// notifications: whoever loads them tells the hooks.
		r.putRestore(next.Service, restoreDoc{RolloutID: next.ID})
		r.noteTells(next)
	}
	err = r.persistLocked("rollout "+next.ID, queue, next.ID, func() error {
		if _, err := r.opts.Store.PutRollout(next.ID, next.Service, !terminal, doc, sevs); err != nil {
			return fmt.Errorf("persist rollout %s: %w", next.ID, err)
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrNotPersisted):
		notPersisted = err
		r.unpersisted[next.ID] = next
	case err != nil:
		return err
	}
	e.r = next
	r.changedLocked(next.Service)
	if terminal {
		delete(r.active, next.Service)
		delete(r.checks, next.Service)
		r.calls.drop(next.ID)
	}
	if terminal || next.Generation != prev.Generation || e.pubVersion == "" {
		// Served unless the service fails to publish, in which case the xds server
		// keeps its last good resources, the publish is retried on every tick and the
		// engine sees the generation as not published.
		r.publishLocked()
		st, _ := r.pub.Status(next.Service)
		st.OK = st.OK && r.pubErr == nil // a refused set changed no status
		if st.OK && e.warm != nil {
			e.warm.served = true
		} else if st.OK {
			e.served(next.Generation, r.opts.XDS.Convergence(next.Service).RouteVersion, r.opts.Now())
		}
		if restore {
			r.watchRestoreLocked(next, e.pubVersion, st.OK)
		}
	}
	if restore {
		r.tellRollback(next)
	}
	for _, ev := range evs {
		r.logEvent(ev)
		if r.opts.Notify != nil {
			r.opts.Notify.Notify(ev, next)
		}
	}
	return notPersisted
}

// served records that generation gen of the rollout is what the xds server serves, in
// route version version, since now (unless it already was).
func (e *entry) served(gen uint64, version string, now time.Time) {
	if e.pubGen != gen || e.pubAt.IsZero() {
		e.pubAt = now
	}
	e.pubGen, e.pubVersion = gen, version
}

// putService records a service's state. With queue (a move to known-good) the new state
// holds at once and a store failure queues the write (a *NotPersistedError); without,
// nothing changes unless the write succeeds.
func (r *Runner) putService(name string, st controller.ServiceState, queue bool) error {
	doc, err := json.Marshal(st)
	if err != nil {
		return err
	}
	err = r.persistLocked("state of service "+name, queue, "", func() error {
		if err := r.opts.Store.PutState(serviceKey(name), doc); err != nil {
			return fmt.Errorf("persist state of service %s: %w", name, err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotPersisted) {
		return err
	}
	r.services[name] = st
	r.changedLocked(name)
	return err
}

func storeEvents(evs []controller.Event) ([]store.Event, error) {
	out := make([]store.Event, 0, len(evs))
	for _, ev := range evs {
		data, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
		out = append(out, store.Event{Time: ev.Time, RolloutID: ev.RolloutID, Service: ev.Service, Kind: ev.Kind, Data: data})
	}
	return out, nil
}

func (r *Runner) logEvent(ev controller.Event) {
	fields := []zap.Field{
		zap.String("service", ev.Service), zap.String("rollout", ev.RolloutID), zap.String("kind", ev.Kind),
		zap.String("state", string(ev.State)), zap.Int("stage", ev.Stage), zap.Uint32("canaryWeight", ev.Weight),
	}
	if ev.Decision != "" {
		fields = append(fields, zap.String("decision", string(ev.Decision)))
	}
	if ev.Reason != "" {
		fields = append(fields, zap.String("reason", ev.Reason))
	}
	if n := ev.Numbers; n != nil {
		fields = append(fields, zap.Float64("canaryErrorPct", n.CanaryErrorPct), zap.Float64("stableErrorPct", n.StableErrorPct),
			zap.Duration("canaryP99", n.CanaryP99.D()), zap.Duration("stableP99", n.StableP99.D()),
			zap.Uint64("canaryRequests", n.CanaryRequests), zap.Uint64("stableRequests", n.StableRequests))
	}
	switch ev.Kind {
	case controller.EventDecision, controller.EventHold:
		r.log.Debug("rollout event", fields...)
	case controller.EventRolledBack, controller.EventPaused:
		r.log.Warn("rollout event", fields...)
	default:
		r.log.Info("rollout event", fields...)
	}
}
