package runner

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/translate"
)

// effectiveServiceLocked is the catalog entry plus the versions rollouts added (a
// canary not declared in the catalog, kept defined after it completed or rolled back).
func (r *Runner) effectiveServiceLocked(name string) (catalog.Service, bool) {
	var svc catalog.Service
	found := false
	for _, s := range r.cat.Services {
		if s.Name == name {
			svc, found = s, true
			break
		}
	}
	if !found {
		return svc, false
	}
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
		if v, ok := canaryVersion(e.r); ok {
			add(v)
		}
	}
	if st.Stable != "" {
		svc.Stable = st.Stable
	}
	return svc, true
}

// canaryVersion is the version a rollout's spec declares with its own endpoints.
func canaryVersion(ro controller.Rollout) (catalog.Version, bool) {
	c := ro.Spec.Canary
	if len(c.Endpoints) == 0 {
		return catalog.Version{}, false
	}
	v := catalog.Version{Name: c.Version, Zone: c.Zone}
	for _, ep := range c.Endpoints {
		e, err := catalog.ParseEndpoint(ep)
		if err != nil {
			continue // the engine's pre-flight refused bad endpoints already
		}
		v.Endpoints = append(v.Endpoints, e)
	}
	return v, true
}

func upsertVersion(vs []catalog.Version, v catalog.Version) []catalog.Version {
	for i := range vs {
		if vs[i].Name == v.Name {
			out := slices.Clone(vs)
			out[i] = v
			return out
		}
	}
	return append(slices.Clone(vs), v)
}

// desiredLocked is the desired routing state of every catalog service.
func (r *Runner) desiredLocked() []translate.Desired {
	out := make([]translate.Desired, 0, len(r.cat.Services))
	for _, s := range r.cat.Services {
		svc, _ := r.effectiveServiceLocked(s.Name)
		d := translate.Desired{Service: svc}
		if e, ok := r.active[s.Name]; ok {
			d.Weights = e.r.Weights()
			for _, m := range e.r.Matches() {
				d.Matches = append(d.Matches, translate.Match{Header: m.Header, Cookie: m.Cookie, Value: m.Value, Version: m.Version})
			}
		} else {
			d.Weights = map[string]uint32{svc.Stable: catalog.TotalWeight}
		}
		d.Unhealthy = r.unhealthyLocked(svc)
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service.Name < out[j].Service.Name })
	return out
}

// unhealthyLocked is, per version of svc, the endpoints the health checks found
// unhealthy, for EDS to mark (nil when there are none or no prober), as long as at
// least half of the version's endpoints stay unmarked. Only the version's current
// endpoints count: the prober follows a catalog change one publish later.
func (r *Runner) unhealthyLocked(svc catalog.Service) map[string][]string {
	if r.opts.Health == nil {
		return nil
	}
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
	if err := r.publishLocked(ctx); err != nil {
		r.log.Error("publish endpoint health", zap.Error(err))
	}
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

// publishLocked hands the whole desired state to the xds server. DNS endpoint names are
// resolved first; a name that does not resolve fails the publish and the xds server
// keeps serving the last good state.
func (r *Runner) publishLocked(ctx context.Context) error {
	desired := r.desiredLocked()
	resolved := make([]translate.Desired, 0, len(desired))
	for _, d := range desired {
		rd, err := ResolveEndpoints(ctx, r.opts.Resolver, d)
		if err != nil {
			return fmt.Errorf("service %s: %w", d.Service.Name, err)
		}
		resolved = append(resolved, rd)
	}
	start := time.Now()
	if err := r.opts.XDS.Update(resolved); err != nil {
		return err
	}
	if r.opts.OnPublish != nil {
		r.opts.OnPublish(time.Since(start))
	}
	// Every active rollout's current weights are served now, possibly in a new route
	// version (a catalog change adds a version or an endpoint): its ACK is the one that
	// counts for the rollout's generation, and for a rollback's restore.
	for svc, e := range r.active {
		e.pubGen, e.pubVersion = e.r.Generation, r.opts.XDS.Convergence(svc).RouteVersion
	}
	for svc, w := range r.restoring {
		if _, busy := r.active[svc]; !busy {
			w.version = r.opts.XDS.Convergence(svc).RouteVersion
			r.restoring[svc] = w
		}
	}
	services := make([]catalog.Service, 0, len(desired))
	for _, d := range desired {
		r.published[d.Service.Name] = d
		services = append(services, d.Service)
	}
	// Probers and scrapers follow the versions that have clusters, canaries included.
	if r.opts.Health != nil {
		r.opts.Health.Update(services)
	}
	if u, ok := r.opts.Metrics.(interface{ Update([]catalog.Service) }); ok {
		u.Update(services)
	}
	return nil
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
