package runner

import "reflect"

// setStableForBench sets service's known-good version, as a rollout ending does.
func (r *Runner) setStableForBench(service, version string) {
	st := r.services[service]
	st.Stable = version
	r.services[service] = st
	r.changedLocked(service)
}

// StaleDesired returns the services whose kept desired state differs from the one
// their inputs give now, although nothing marked them changed: an input that changed
// without going through the invalidation point (see wanted).
func (r *Runner) StaleDesired() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := &r.want
	if w.all {
		return nil
	}
	dnsMoved := r.dns.Generation() != w.dnsGen
	var out []string
	for _, s := range r.cat.Services {
		d, ok := w.byService[s.Name]
		if !ok || w.dirty[s.Name] || (dnsMoved && w.usesDNS[s.Name]) {
			continue
		}
		svc, _ := r.effectiveServiceLocked(s.Name)
		if !reflect.DeepEqual(d, r.desiredOfLocked(svc)) {
			out = append(out, s.Name)
		}
	}
	return out
}
