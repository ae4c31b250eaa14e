package controller

// The monitoring window's baseline.
//
// At 100 % the stable version has no traffic, so the window's checks need another
// baseline. With a holdback (Plan.Holdback) the previous version keeps that share of
// traffic until the window closes: a concurrent control measured over the same windows
// as the canary, judged exactly as in a stage, breaches rolling back. Without one the
// baseline is the stable version over the last stage (Rollout.Baseline: the stage's
// last analysis window, P99 included), a before/after comparison across whatever
// changed since: the time of day, the traffic mix, the dependencies. Such a comparison
// cannot tell a regression from a daily cycle, so a breach of it pauses for a person
// and only a gross one (see againstBaseline) rolls back.

// againstBaseline turns the rollbacks of a comparison with a carried baseline into
// pauses, except gross breaches.
func (o *metricOutcome) againstBaseline() {
	var keep []finding
	for _, f := range o.rollback {
		if f.gross {
			keep = append(keep, f)
			continue
		}
		f.reason += " (against the last stage's baseline: paused, not rolled back)"
		o.pause = append(o.pause, f)
	}
	o.rollback = keep
}

// sampleRatio runs the sample-ratio test on obs's analysis window when the weights in
// force are ACKed and the canary's share is the weight alone (see srm.go).
func (r Rollout) sampleRatio(obs Observation) *SampleRatio {
	a := obs.Analysis
	if a.Window <= 0 || r.Progress.AckedAt.IsZero() || len(r.Matches()) > 0 {
		return nil
	}
	if !usable(a.Canary) || !usable(a.Stable) {
		return nil
	}
	s, ok := CheckSampleRatio(a.Canary.Requests, a.Stable.Requests, r.CanaryWeight())
	if !ok {
		return nil
	}
	return &s
}

// usable reports whether a version's numbers came from a working source.
func usable(s VersionStats) bool { return s.Err == nil && s.Inconclusive == "" }

// noteStable records the stable version's numbers of a judged check, the baseline
// carried into the monitoring window: the analysis window's when gathered (it covers
// the stage since its ACK or last resume and replaces what was recorded), else the
// check window's, added up until an analysis window is recorded.
func (p *Progress) noteStable(obs Observation, minRequests uint64) {
	if a := obs.Analysis; a.Window > 0 && usable(a.Stable) && a.Stable.Requests >= minRequests {
		p.StableRequests, p.StableErrors = a.Stable.Requests, min(a.Stable.Errors, a.Stable.Requests)
		if a.Stable.P99 > 0 {
			p.StableP99 = Duration(a.Stable.P99)
		}
		p.StableLatency = a.Stable.Latency
		p.StableWindow, p.StableAnalysis = Duration(a.Window), true
		return
	}
	s := obs.Stable
	if p.StableAnalysis || !usable(s) || s.Requests < minRequests {
		return
	}
	p.StableRequests += s.Requests
	p.StableErrors += min(s.Errors, s.Requests)
	if s.P99 > 0 {
		p.StableP99 = Duration(s.P99)
	}
	if h, ok := p.StableLatency.add(s.Latency); ok && s.Latency.valid() {
		p.StableLatency = h
	}
	p.StableWindow += Duration(obs.Window)
}
