package runner

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/translate"
)

// wanted keeps each service's desired state between publishes, so that a publish
// rebuilds (and the publisher resolves, compares and translates) only the services whose
// inputs changed. A service's desired state is built from: its catalog entry, its
// persisted state (known-good version, versions rollouts added), its active rollout
// (weights, flag matches, canary version, canary warm-up), a catalog reload's warm-up,
// its endpoints' health and the DNS answers behind its names. Whatever changes one of
// these calls changedLocked (or changedAllLocked) for the services concerned: that is
// the one invalidation point. DNS answers are followed through the cache's generation,
// health through a fingerprint per service taken when the prober reports a change.
type wanted struct {
	byService map[string]translate.Desired
	// dirty are the services to build again on the next publish; all: every service.
	dirty map[string]bool
	all   bool
	// usesDNS are the services with DNS names, built again when dnsGen moves.
	usesDNS map[string]bool
	dnsGen  uint64
	// health is each service's health fingerprint when it was last built.
	health map[string]string
	// probed is, per service, what the prober and the scrapers follow (the served
	// state, DNS names expanded); they are told only when it changes.
	probed map[string]catalog.Service
}

func newWanted() wanted {
	return wanted{byService: map[string]translate.Desired{}, dirty: map[string]bool{}, all: true,
		usesDNS: map[string]bool{}, health: map[string]string{}, probed: map[string]catalog.Service{}}
}

// changedLocked marks the desired state of services to be built again on the next
// publish.
func (r *Runner) changedLocked(services ...string) {
	for _, s := range services {
		r.want.dirty[s] = true
	}
}

// changedAllLocked marks every service's desired state to be built again (a new
// catalog, state reloaded from the store).
func (r *Runner) changedAllLocked() { r.want.all = true }

// desiredLocked is the desired routing state of every catalog service, sorted by name,
// and the services built again for it (nil: every one). Only the services marked
// changed, or whose DNS answers moved, are built; the others are as last built.
func (r *Runner) desiredLocked() ([]translate.Desired, map[string]bool) {
	w := &r.want
	if g := r.dns.Generation(); g != w.dnsGen {
		w.dnsGen = g
		for s := range w.usesDNS {
			w.dirty[s] = true
		}
	}
	var rebuilt map[string]bool
	if !w.all {
		rebuilt = map[string]bool{}
	}
	out := make([]translate.Desired, 0, len(r.cat.Services))
	for _, s := range r.cat.Services {
		d, ok := w.byService[s.Name]
		if w.all || !ok || w.dirty[s.Name] {
			svc, _ := r.effectiveServiceLocked(s.Name)
			d = r.desiredOfLocked(svc)
			w.byService[s.Name] = d
			if len(publish.ServiceHosts(d.Service)) > 0 {
				w.usesDNS[s.Name] = true
			} else {
				delete(w.usesDNS, s.Name)
			}
			w.health[s.Name] = r.healthPrintLocked(d.Service)
			if rebuilt != nil {
				rebuilt[s.Name] = true
			}
		}
		out = append(out, d)
	}
	if len(w.byService) > len(out) {
		for name := range w.byService {
			if !slices.ContainsFunc(r.cat.Services, func(s catalog.Service) bool { return s.Name == name }) {
				delete(w.byService, name)
				delete(w.usesDNS, name)
				delete(w.health, name)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service.Name < out[j].Service.Name })
	return out, rebuilt
}

// publishedLocked records that a publish took the desired states desiredLocked built.
func (r *Runner) publishedLocked() {
	r.want.all = false
	clear(r.want.dirty)
}

// healthPrintLocked is a fingerprint of what the prober says of svc's versions.
func (r *Runner) healthPrintLocked(svc catalog.Service) string {
	if r.opts.Health == nil {
		return ""
	}
	var b strings.Builder
	for _, v := range svc.Versions {
		st := r.opts.Health.Status(svc.Name, v.Name)
		fmt.Fprintf(&b, "%s:%d:%d", v.Name, st.Total, st.Healthy)
		for _, u := range st.Unhealthy {
			b.WriteString("," + u.Endpoint)
		}
		b.WriteString(";")
	}
	return b.String()
}

// healthChangedLocked marks changed the services whose health fingerprint moved since
// their desired state was built.
func (r *Runner) healthChangedLocked() {
	if r.opts.Health == nil {
		return
	}
	for name, d := range r.want.byService {
		if r.healthPrintLocked(d.Service) != r.want.health[name] {
			r.want.dirty[name] = true
		}
	}
}

// probedLocked updates what the prober and the scrapers follow after a publish: the
// versions that have clusters (canaries included) of the services whose served state
// may have changed (those in rebuilt, nil for all; those whose publication changed;
// those failing), each DNS name expanded to its addresses. They are told only when it
// changed.
func (r *Runner) probedLocked(rebuilt map[string]bool, changes []publish.Change) {
	w := &r.want
	touched := false
	redo := func(name string) {
		prev, had := w.probed[name]
		served, ok := r.pub.Served(name)
		if !ok {
			if had {
				delete(w.probed, name)
				touched = true
			}
			return
		}
		next := r.dns.Expand(served.Service)
		if !had || !reflect.DeepEqual(prev, next) {
			w.probed[name] = next
			touched = true
		}
	}
	if rebuilt == nil {
		for name := range w.probed {
			if _, ok := w.byService[name]; !ok {
				delete(w.probed, name)
				touched = true
			}
		}
		for name := range w.byService {
			redo(name)
		}
	} else {
		for name := range rebuilt {
			redo(name)
		}
		for _, c := range changes {
			redo(c.Service)
		}
		for _, name := range r.pub.Failing() {
			redo(name)
		}
	}
	_, scrapes := r.opts.Metrics.(interface{ Update([]catalog.Service) })
	if !touched || (r.opts.Health == nil && !scrapes) {
		return
	}
	services := slices.Collect(maps.Values(w.probed))
	slices.SortFunc(services, func(a, b catalog.Service) int { return strings.Compare(a.Name, b.Name) })
	if r.opts.Health != nil {
		r.opts.Health.Update(services)
	}
	if u, ok := r.opts.Metrics.(interface{ Update([]catalog.Service) }); ok {
		u.Update(services)
	}
}
