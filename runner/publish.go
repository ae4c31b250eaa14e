package runner

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/translate"
)

// effectiveServiceLocked is the catalog entry plus the versions rollouts added (a
// canary not declared in the catalog, kept defined after it completed or rolled back).
func (r *Runner) effectiveServiceLocked(name string) (catalog.Service, bool) {
	for _, s := range r.cat.Services {
		if s.Name == name {
			return r.effectiveLocked(s), true
		}
	}
	return catalog.Service{}, false
}

// effectiveLocked is effectiveServiceLocked of the catalog's svc.
func (r *Runner) effectiveLocked(svc catalog.Service) catalog.Service {
	name := svc.Name
	svc.Versions = slices.Clone(svc.Versions)
	add := func(v catalog.Version) {
		for _, have := range svc.Versions {
			if have.Name == v.Name {
				return // the catalog's declaration wins
			}
		}
		svc.Versions = append(svc.Versions, v)
	}
	st := r.services[name]
	for _, v := range st.Versions {
		add(v)
	}
	if e, ok := r.active[name]; ok {
		if v, ok := e.r.CanaryVersion(); ok {
			add(v)
		}
	}
	if st.Stable != "" {
		svc.Stable = st.Stable
	}
	return svc
}

// desiredOfLocked is the desired routing state of svc, an effective service: its
// active rollout's weights and flag matches, or its known-good version at 100 %.
func (r *Runner) desiredOfLocked(svc catalog.Service) translate.Desired {
	d := translate.Desired{Service: svc}
	if e, ok := r.active[svc.Name]; ok && e.warm != nil {
		// The new canary version's cluster is defined, at weight 0, and no flag match
		// routes to it yet.
		d.Weights = map[string]uint32{e.r.KnownGood(): catalog.TotalWeight}
	} else if ok {
		d.Weights = e.r.Weights()
		for _, m := range e.r.Matches() {
			d.Matches = append(d.Matches, translate.Match{Header: m.Header, Cookie: m.Cookie, Value: m.Value, Version: m.Version})
		}
	} else if !r.reloadWarmDesired(svc, &d.Weights, &d.Service.Versions) {
		d.Weights = map[string]uint32{svc.Stable: catalog.TotalWeight}
	}
	d.Unhealthy = r.unhealthyLocked(svc)
	return d
}

// unhealthyLocked is, per version of svc, the endpoints the health checks found
// unhealthy, for EDS to mark (nil when there are none or no prober), as long as at
// least half of the version's endpoints stay unmarked. Only the version's current
// endpoints count: the prober follows a catalog change one publish later.
func (r *Runner) unhealthyLocked(svc catalog.Service) map[string][]string {
	if r.opts.Health == nil {
		return nil
	}
	// The prober probes each address behind a name (see publishLocked): they count.
	svc = r.dns.Expand(svc)
	var out map[string][]string
	for _, v := range svc.Versions {
		st := r.opts.Health.Status(svc.Name, v.Name)
		if len(st.Unhealthy) == 0 {
			continue
		}
		have := make(map[string]bool, len(v.Endpoints))
		for _, ep := range v.Endpoints {
			have[ep.String()] = true
		}
		var down []string
		for _, e := range st.Unhealthy {
			if have[e.Endpoint] {
				down = append(down, e.Endpoint)
			}
		}
		if len(down) == 0 {
			continue
		}
		if 2*len(down) > len(v.Endpoints) {
			// Fewer than half would stay: as Envoy's default panic threshold does, mark
			// none. Marking every endpoint of a version would fail all of its requests
			// even when only octoroll's view of the endpoints is broken (a partition
			// between octoroll and the health ports); the rollout still pauses or rolls
			// back on the health state.
			continue
		}
		if out == nil {
			out = map[string][]string{}
		}
		sort.Strings(down)
		out[v.Name] = down
	}
	return out
}

// publishHealth republishes after the health checks changed: only the EDS resources of
// the versions whose endpoints changed health differ, so proxies see nothing else.
// It returns the services whose endpoints' health changed since the last call.
func (r *Runner) publishHealth(ctx context.Context) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.healthChangedLocked()
	r.publishLocked()
	changed := map[string]bool{}
	if r.opts.Health == nil {
		return changed
	}
	seen := map[string]bool{}
	for name := range r.active {
		svc, ok := r.effectiveServiceLocked(name)
		if !ok {
			continue
		}
		seen[name] = true
		var b strings.Builder
		for _, v := range svc.Versions {
			st := r.opts.Health.Status(name, v.Name)
			fmt.Fprintf(&b, "%s:%d:%d", v.Name, st.Total, st.Healthy)
			for _, u := range st.Unhealthy {
				b.WriteString("," + u.Endpoint)
			}
			b.WriteString(";")
		}
		if fp := b.String(); r.healthSeen[name] != fp {
			r.healthSeen[name] = fp
			changed[name] = true
		}
	}
	for name := range r.healthSeen {
		if !seen[name] {
			delete(r.healthSeen, name)
		}
	}
	return changed
}

// republish refreshes the DNS answers that are due (their TTL, within the bounds,
// passed; outside the lock) and publishes again when an answer changed (only the EDS
// resources of the versions behind the name differ) or a service's desired state is not served yet: a
// failed publication is retried on every tick until it is served.
func (r *Runner) republish(ctx context.Context) {
	// Writes a move to known-good could not make wait for the store first.
	r.retryPersist()
	r.mu.Lock()
	var names []string
	for _, s := range r.cat.Services {
		svc, _ := r.effectiveServiceLocked(s.Name)
		names = append(names, publish.ServiceHosts(svc)...)
	}
	r.mu.Unlock()
	r.dns.Use(names)
	changed := r.dns.Refresh(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retireLocked()
	warmed := r.warmedLocked()
	if r.reloadWarmedLocked() {
		warmed = true
	}
	if !warmed && !changed && len(r.pub.Failing()) == 0 && r.pubErr == nil {
		return
	}
	r.publishLocked()
}

// warmedLocked ends the warming of every active rollout whose new canary cluster is
// served and held by every proxy watching the service's route (on every replica) (or that waited the
// plan's ACK timeout for it), and reports whether any ended: the rollouts' weights are
// then to be published. The engine holds the rollout meanwhile, as not published, and
// its stage clock starts at the ACK of those weights.
func (r *Runner) warmedLocked() bool {
	if !r.leading() {
		return false // the leader ends a warming, for the proxies of every replica
	}
	now := r.opts.Now()
	ended := false
	for svc, e := range r.active {
		if e.warm == nil || !e.warm.served {
			continue
		}
		w := r.opts.XDS.ClusterWarmth(svc, e.r.Canary)
		late := !w.Done()
		if late && now.Before(e.warm.until) {
			continue
		}
		if !r.endWarmLocked(svc) {
			continue // etcd did not take it: nothing moves forward
		}
		if late {
			r.clusterLateLocked(svc, &e.r, []string{e.r.Canary}, w.Stragglers, e.r.Plan.AckTimeout.D())
		}
		e.warm = nil
		r.changedLocked(svc)
		ended = true
	}
	return ended
}

// primeDNS looks up, before the caller takes the lock, the DNS names of svcs that have
// no answer yet, so that the publish under the lock finds them.
func (r *Runner) primeDNS(ctx context.Context, svcs ...catalog.Service) {
	var hosts []string
	for _, s := range svcs {
		hosts = append(hosts, publish.ServiceHosts(s)...)
	}
	if len(hosts) > 0 {
		r.dns.Prime(ctx, hosts)
	}
}

// publishLocked hands the desired state of every service to the publisher, which
// serves each service on its own: a service whose DNS names have no answer or whose
// resources do not translate keeps its last good resources, is reported (an event
// publish_failed, its status) and is retried on every tick; the others are served.
// It does no I/O apart from handing the resources to the xds server (DNS answers come
// from the cache).
func (r *Runner) publishLocked() {
	desired, rebuilt := r.desiredLocked()
	start := time.Now()
	var changes []publish.Change
	var err error
	if rebuilt == nil {
		changes, err = r.pub.PublishWithFallback(desired, r.fallbackLocked)
	} else {
		changes, err = r.pub.PublishChanged(desired, rebuilt, r.fallbackLocked)
	}
	if err != nil {
		// The xds cache refused the whole set: nothing changed, every service keeps
		// serving what it served; every tick publishes again until it takes it.
		if r.pubErr == nil || r.pubErr.Error() != err.Error() {
			r.log.Error("publish", zap.Error(err))
		}
		r.pubErr = err
		return
	}
	r.pubErr = nil
	r.publishedLocked()
	r.reloadServedLocked()
	if r.opts.OnPublish != nil {
		r.opts.OnPublish(time.Since(start))
	}
	// Every active rollout whose desired state is served now serves its current
	// weights, possibly in a new route version (a catalog change adds a version or an
	// endpoint): its ACK is the one that counts for the rollout's generation. A rollout
	// whose service failed keeps its previous generation: the engine sees its weights
	// as not published.
	now := r.opts.Now()
	for svc, e := range r.active {
		if st, ok := r.pub.Status(svc); ok && st.OK {
			if e.warm != nil {
				e.warm.served = true // the rollout's weights are not served yet
				continue
			}
			e.served(e.r.Generation, r.opts.XDS.RouteVersion(svc), now)
		}
	}
	for svc, w := range r.restores {
		if _, busy := r.active[svc]; busy || !w.Watching() {
			continue
		}
		if st, ok := r.pub.Status(svc); ok && st.OK {
			r.restores[svc] = w.Served(now, r.opts.XDS.RouteVersion(svc))
		}
	}
	// Probers and scrapers follow the versions that have clusters, canaries included,
	// and every address behind their DNS and SRV names: each instance is probed and
	// scraped on its own.
	r.probedLocked(rebuilt, changes)
	for _, c := range changes {
		r.publicationEventLocked(c)
	}
}

// fallbackLocked is what service serves while its desired state does not publish and
// it has no last good resources (a restart with a persisted rollout that no longer
// translates): its catalog entry, the versions rollouts added that validate, and its
// known-good version (the catalog's stable one when that is not among them) at 100 %.
func (r *Runner) fallbackLocked(service string) (translate.Desired, bool) {
	i := slices.IndexFunc(r.cat.Services, func(s catalog.Service) bool { return s.Name == service })
	if i < 0 {
		return translate.Desired{}, false
	}
	svc := r.cat.Services[i]
	svc.Versions = slices.Clone(svc.Versions)
	st := r.services[service]
	for _, v := range st.Versions {
		if _, ok := svc.Version(v.Name); !ok && v.Validate() == nil {
			svc.Versions = append(svc.Versions, v)
		}
	}
	known := st.Stable
	if e, ok := r.active[service]; ok {
		known = e.r.KnownGood()
	}
	if _, ok := svc.Version(known); ok {
		svc.Stable = known
	}
	return translate.Desired{Service: svc, Weights: map[string]uint32{svc.Stable: catalog.TotalWeight},
		Unhealthy: r.unhealthyLocked(svc)}, true
}

// publicationEventLocked records, logs and notifies a service's publication failing
// (once per distinct failure) or recovering.
func (r *Runner) publicationEventLocked(c publish.Change) {
	ev := controller.Event{Time: r.opts.Now(), Service: c.Service, Kind: controller.EventPublished,
		Reason: "the desired state is served"}
	if c.Err != "" {
		ev.Kind, ev.Reason = controller.EventPublishFailed, "not published, the last good resources keep serving: "+c.Err
	}
	var ro controller.Rollout
	if e, ok := r.active[c.Service]; ok {
		ro = e.r
		ev.RolloutID, ev.State, ev.Stage, ev.Generation, ev.Weight = ro.ID, ro.State, ro.Stage, ro.Generation, ro.CanaryWeight()
	}
	if sevs, err := storeEvents([]controller.Event{ev}); err == nil {
		err := r.persistLocked("publication event of "+c.Service, true, "", func() error {
			_, err := r.opts.Store.AppendEvents(sevs...)
			return err
		})
		if err != nil && !errors.Is(err, ErrNotPersisted) {
			r.log.Warn("record publication event", zap.String("service", c.Service), zap.Error(err))
		}
	}
	if c.Err != "" {
		r.log.Error("service not published", zap.String("service", c.Service), zap.String("error", c.Err))
	} else {
		r.log.Info("service published", zap.String("service", c.Service))
	}
	if r.opts.Notify != nil {
		r.opts.Notify.Notify(ev, ro)
	}
}

// weightString renders weights for logs: "v1=9500 v2=500".
func weightString(w map[string]uint32) string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, w[k])
	}
	return b.String()
}

// ResolvedHost returns the addresses publication serves for the DNS name host (the
// last good answer, kept while its refresh fails), or why it has none. It does no I/O;
// the name is looked up on the next refresh if it is new. The health prober dials
// these addresses, so that a DNS outage is not taken for unhealthy endpoints.
func (r *Runner) ResolvedHost(host string) ([]netip.Addr, error) { return r.dns.Cached(host) }
