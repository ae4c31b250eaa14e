package controller

import (
	"time"

	"github.com/octoacme/octoroll/catalog"
)

// New runs pre-flight and creates a rollout of spec.Canary on svc.
func New(now time.Time, id string, spec Spec, svc catalog.Service) (Rollout, []Event, error) {
	return Rollout{}, nil, nil
}

// Step advances r by at most one transition. It does no I/O and never reads the wall clock.
func (r Rollout) Step(now time.Time, obs Observation) (Rollout, []Event) { return r, nil }

// Apply applies an operator command.
func (r Rollout) Apply(now time.Time, cmd Command) (Rollout, []Event, error) { return r, nil, nil }


// Validate checks spec on its own (not against a catalog).
func (s Spec) Validate() error { return nil }
