package controller

import (
	"slices"

	"github.com/octoacme/octoroll/model"
)

// ServiceState is what a service keeps between rollouts (persisted by the loop): its
// known-good version and the versions rollouts added.
type ServiceState struct {
	// Stable is the known-good version when no rollout is active (empty: the catalog's).
	Stable string `json:"stable,omitempty"`
	// Versions are versions added by rollouts that the catalog does not declare; they
	// keep their clusters.
	Versions []model.Version `json:"versions,omitempty"`
}

// CanaryVersion is the version the rollout's spec declares with its own endpoints
// (ok false when the canary is a catalog version). Endpoints that do not parse are left
// out: the pre-flight refused them already.
func (r Rollout) CanaryVersion() (model.Version, bool) {
	c := r.Spec.Canary
	if len(c.Endpoints) == 0 {
		return model.Version{}, false
	}
	v := model.Version{Name: c.Version, Zone: c.Zone}
	for _, ep := range c.Endpoints {
		e, err := model.ParseEndpoint(ep)
		if err != nil {
			continue
		}
		v.Endpoints = append(v.Endpoints, e)
	}
	return v, true
}

// After is the service's state once ro ended (completed or rolled back): ro's
// known-good version, and the canary version ro added (kept defined so that its cluster
// stays). A canary version that does not validate is never recorded, nor made the
// known-good version: it could not be translated, and the service could never be
// published again.
func (s ServiceState) After(ro Rollout) ServiceState {
	kg := ro.KnownGood()
	if v, ok := ro.CanaryVersion(); ok {
		if v.Validate() != nil {
			if kg == v.Name {
				return s
			}
		} else {
			s.Versions = upsertVersion(s.Versions, v)
		}
	}
	s.Stable = kg
	return s
}

// LeftOut is a recorded version that does not validate, and why.
type LeftOut struct {
	Version string
	Err     error
}

// Translatable is s without the versions that do not validate (an older octoroll
// recorded them: a name with '|', say), and without a known-good version naming one of
// them (the catalog's stable version then serves): kept, they would keep the service
// from ever being published.
func (s ServiceState) Translatable() (ServiceState, []LeftOut) {
	var left []LeftOut
	valid := s.Versions[:0:0]
	for _, v := range s.Versions {
		if err := v.Validate(); err != nil {
			left = append(left, LeftOut{Version: v.Name, Err: err})
			if s.Stable == v.Name {
				s.Stable = ""
			}
			continue
		}
		valid = append(valid, v)
	}
	s.Versions = valid
	return s, left
}

func upsertVersion(vs []model.Version, v model.Version) []model.Version {
	for i := range vs {
		if vs[i].Name == v.Name {
			out := slices.Clone(vs)
			out[i] = v
			return out
		}
	}
	return append(slices.Clone(vs), v)
}
