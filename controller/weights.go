package controller

import "github.com/octoacme/octoroll/model"

// CanaryWeight is the canary's desired weight out of model.TotalWeight. During the
// monitoring window (paused there too) the plan's holdback stays on the previous
// version; once the window closes the canary has all of it.
func (r Rollout) CanaryWeight() uint32 {
	switch r.State {
	case StateRolledBack, StatePending, "":
		return 0
	case StateCompleted:
		return model.TotalWeight
	case StateMonitoring:
		return model.TotalWeight - r.holdback()
	case StatePaused:
		if r.PausedFrom == StatePending {
			return 0
		}
	}
	if r.Stage >= len(r.Plan.Stages) {
		return model.TotalWeight - r.holdback()
	}
	return r.Plan.Stages[r.Stage].Weight
}

// holdback is the previous version's weight in the monitoring window, bounded so the
// weights always sum to model.TotalWeight whatever a decoded plan holds.
func (r Rollout) holdback() uint32 { return min(r.Plan.Holdback, model.TotalWeight) }

// HoldbackActive reports whether the previous version is live as a concurrent control:
// the rollout is in its monitoring window (or paused there) with a holdback.
func (r Rollout) HoldbackActive() bool {
	return r.holdback() > 0 && r.inMonitoring()
}

// inMonitoring reports whether r is in its monitoring window, running or paused.
func (r Rollout) inMonitoring() bool {
	return r.State == StateMonitoring || (r.State == StatePaused && r.PausedFrom == StateMonitoring)
}

// Weights returns the desired weights of the stable and canary versions out of
// model.TotalWeight, always summing to it. Both versions are always present, the
// one not in use at 0, so its cluster stays defined: the known-good version during the
// monitoring window, the canary after a rollback.
func (r Rollout) Weights() map[string]uint32 {
	c := r.CanaryWeight()
	return map[string]uint32{r.Stable: model.TotalWeight - c, r.Canary: c}
}

// Matches returns the header/cookie flag routes in force: from a flag stage on until
// 100 %, requests carrying the flag go to the canary. Nil otherwise.
func (r Rollout) Matches() []Match {
	if r.CanaryWeight() == 0 && r.State != StateProgressing && r.State != StatePaused {
		return nil
	}
	if r.State != StateProgressing && r.State != StatePaused {
		return nil
	}
	if r.State == StatePaused && r.PausedFrom != StateProgressing {
		return nil
	}
	var m *MatchSpec
	for i := 0; i <= r.Stage && i < len(r.Plan.Stages); i++ {
		if r.Plan.Stages[i].Match != nil {
			m = r.Plan.Stages[i].Match
		}
	}
	if m == nil {
		return nil
	}
	return []Match{{Header: m.Header, Cookie: m.Cookie, Value: m.Value, Version: r.Canary}}
}

// KnownGood is the version a no-go returns traffic to: the stable version until the
// rollout completes, then the canary.
func (r Rollout) KnownGood() string {
	if r.State == StateCompleted {
		return r.Canary
	}
	return r.Stable
}

// NewStable returns the version that became stable when the monitoring window closed;
// ok is false unless the rollout completed. The loop records it in the model.
func (r Rollout) NewStable() (version string, ok bool) {
	if r.State != StateCompleted {
		return "", false
	}
	return r.Canary, true
}

// CurrentStage returns the current stage; ok is false at 100 % or before any stage.
func (r Rollout) CurrentStage() (Stage, bool) {
	if r.Stage < 0 || r.Stage >= len(r.Plan.Stages) {
		return Stage{}, false
	}
	return r.Plan.Stages[r.Stage], true
}
