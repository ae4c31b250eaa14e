package runner

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
)

// reloadWarming is a catalog reload routing an idle service to versions new to its
// proxies (a `stable` moved to a version added in the same reload). A route that sends
// traffic to a cluster a proxy has not loaded fails those requests (gRPC-Go: "unknown
// cluster selected for RPC"), so the new clusters are served first under the weights
// served before the reload, and the reload's weights once every proxy watching the
// route holds them, or after the ACK timeout (controller.DefaultAckTimeout).
type reloadWarming struct {
	// versions are the new versions the reload's weights route to.
	versions []string
	// weights are the weights served before the reload, kept meanwhile.
	weights map[string]uint32
	// keep are the versions those weights name that the reloaded catalog dropped: their
	// clusters stay defined until the reload's weights are published.
	keep []catalog.Version
	// served says the resources defining the new clusters are served.
	served bool
	// until is when the reload's weights are published even if a proxy still lacks a
	// cluster.
	until time.Time
}

// warmReloadLocked decides, after the catalog changed and before it is published, which
// idle services route to versions new to their proxies, and so first serve those
// versions' clusters under the weights served before. A service still warming from an
// earlier reload keeps its weights and deadline.
func (r *Runner) warmReloadLocked() {
	now := r.opts.Now()
	prev := r.reloadWarm
	r.reloadWarm = map[string]*reloadWarming{}
	for name := range prev {
		r.changedLocked(name)
	}
	for _, s := range r.cat.Services {
		name := s.Name
		if _, busy := r.active[name]; busy {
			continue // a rollout's weights warm its own canary (see newToProxiesLocked)
		}
		served, ok := r.pub.Served(name)
		if !ok {
			continue // nothing served: the proxies get the clusters with the first route
		}
		svc, _ := r.effectiveServiceLocked(name)
		d := r.desiredOfLocked(svc) // r.reloadWarm has no entry: the reload's weights
		old := prev[name]
		var fresh []string
		for v, w := range d.Weights {
			if w == 0 {
				continue
			}
			_, defined := served.Service.Version(v)
			if defined && (old == nil || !slices.Contains(old.versions, v)) {
				continue // its cluster was served before the reload
			}
			if r.opts.XDS.ClusterWarmth(name, v).Done() {
				continue
			}
			fresh = append(fresh, v)
		}
		if len(fresh) == 0 {
			continue
		}
		slices.Sort(fresh)
		w := &reloadWarming{versions: fresh, weights: served.Weights, until: now.Add(controller.DefaultAckTimeout)}
		if old != nil {
			w.weights, w.until, w.keep = old.weights, old.until, old.keep
		}
		for v, wt := range w.weights {
			if _, have := svc.Version(v); have || wt == 0 || slices.ContainsFunc(w.keep, func(k catalog.Version) bool { return k.Name == v }) {
				continue
			}
			if def, ok := served.Service.Version(v); ok {
				w.keep = append(w.keep, def)
			}
		}
		r.reloadWarm[name] = w
		r.changedLocked(name)
		r.log.Info("catalog reload routes to versions new to the proxies: their clusters are loaded first",
			zap.String("service", name), zap.Strings("versions", fresh), zap.String("weights", weightString(w.weights)))
	}
}

// reloadWarmDesired rewrites d, the reload's desired state of an idle service, to what
// is served while its new versions warm: the weights served before the reload, with the
// versions they name defined. It reports whether the service is warming.
func (r *Runner) reloadWarmDesired(svc catalog.Service, weights *map[string]uint32, versions *[]catalog.Version) bool {
	w := r.reloadWarm[svc.Name]
	if w == nil {
		return false
	}
	*weights = maps.Clone(w.weights)
	for _, k := range w.keep {
		if _, have := svc.Version(k.Name); !have {
			*versions = append(slices.Clip(*versions), k)
		}
	}
	return true
}

// reloadServedLocked marks the warming services whose publication succeeded as serving
// their new clusters.
func (r *Runner) reloadServedLocked() {
	for name, w := range r.reloadWarm {
		if st, ok := r.pub.Status(name); ok && st.OK && r.pubErr == nil {
			w.served = true
		}
	}
}

// reloadWarmedLocked ends the warming of every service whose new clusters are held by
// every proxy watching its route, or whose ACK timeout passed (recorded as a
// cluster_late event naming the stragglers), and reports whether any ended: the
// reload's weights are then to be published.
func (r *Runner) reloadWarmedLocked() bool {
	now := r.opts.Now()
	ended := false
	for name, w := range r.reloadWarm {
		if _, busy := r.active[name]; busy {
			delete(r.reloadWarm, name)
			r.changedLocked(name)
			ended = true
			continue
		}
		if !w.served {
			continue
		}
		cw := r.opts.XDS.ClusterWarmth(name, w.versions...)
		if !cw.Done() {
			if now.Before(w.until) {
				continue
			}
			r.clusterLateLocked(name, nil, w.versions, cw.Stragglers, controller.DefaultAckTimeout)
		}
		delete(r.reloadWarm, name)
		r.changedLocked(name)
		ended = true
	}
	return ended
}

// clusterLateLocked records, logs and reports that the proxies of service did not load
// the clusters of versions within timeout, so the weights routing to them are published
// anyway: the stragglers may fail those requests until they load them.
func (r *Runner) clusterLateLocked(service string, ro *controller.Rollout, versions, stragglers []string, timeout time.Duration) {
	reason := fmt.Sprintf("proxies did not load the cluster of %s within %s; publishing the weights routing to it (not loaded by: %s)",
		strings.Join(versions, ", "), timeout, strings.Join(stragglers, ", "))
	ev := controller.Event{Time: r.opts.Now(), Service: service, Kind: controller.EventClusterLate, Reason: reason}
	if ro != nil {
		ev.RolloutID, ev.State, ev.Stage, ev.Generation, ev.Weight = ro.ID, ro.State, ro.Stage, ro.Generation, ro.CanaryWeight()
	}
	r.log.Warn("proxies did not load a new version's cluster in time; publishing the weights routing to it",
		zap.String("service", service), zap.Strings("versions", versions), zap.Strings("stragglers", stragglers))
	r.recordClusterLateLocked(ev)
}

// recordClusterLateLocked persists a cluster_late event.
func (r *Runner) recordClusterLateLocked(ev controller.Event) {
	service := ev.Service
	sevs, err := storeEvents([]controller.Event{ev})
	if err != nil {
		return
	}
	err = r.persistLocked("cluster_late event of "+service, true, "", func() error {
		_, err := r.opts.Store.AppendEvents(sevs...)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotPersisted) {
		r.log.Warn("record cluster_late event", zap.String("service", service), zap.Error(err))
	}
}
