package controller

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// How a breach is decided, and why a healthy canary is neither paused nor rolled back
// on noise. The rates printed by TestSimulatedVerdicts (controller/verdict_sim_test.go)
// are what these rules do: 1,000 seeded runs per case through this code and the engine,
// lognormal latency counted through Envoy's default buckets and the ones octoroll ships.
//
// Windows. Every check the loop gathers up to three windows of both versions' numbers:
//   - the check window (the last check interval): judged for gross breaches only, the
//     fast rollback of a sudden severe regression;
//   - the sustain window (the last Thresholds.RollbackSustain, 5 min, since the ACK or
//     the last resume): a marginal rollback needs a breach measured over a whole
//     sustain window, the guide's "> 1 % above baseline for 5+ minutes". Sliding, so an
//     excursion is seen within minutes however clean the stage was before it;
//   - the analysis window (all traffic since the ACK or the last resume, at most
//     Plan.AnalysisWindow, 1 h): the pause tests, and the rollback tests once it spans a
//     sustain window. Go needs it judged with at least MinRequests on both sides.
// Nothing but the gross test judges a window shorter than the analysis window, and
// before the ACK nothing is judged but gross breaches. Both the sustain and analysis
// windows start after Plan.Warmup (two check intervals by default) past the ACK: a new
// canary's first requests run on cold caches and connections, and a window that starts
// with them pauses a healthy canary on its warm-up (the simulation's ×1.6-for-30-s
// case: about half the minor releases paused without a warm-up, none with it). Only
// gross breaches are judged in it, and the stage holds.
//
// Error rate. Let pc and ps be the canary's and the stable's error rates. The bounds of
// pc − ps come from Newcombe's hybrid score method (Newcombe 1998, method 10: each
// bound combines the distances to the matching Wilson score bounds of the two rates,
// which stay inside [0, 1] and behave at 0 errors). Against a margin m:
//   - breach when the lower bound exceeds m;
//   - clean when pc − ps ≤ m;
//   - otherwise inconclusive, and the check holds for more data, but only when the
//     interval is narrow enough to resolve m (half-width ≤ 2m); a pause margin far
//     below what the traffic can resolve (0.1 pp at 1 canary request a second) is
//     reported with its resolution and not waited for.
// Margins: gross GrossFactor × RollbackErrorRatePP (5 pp), rollback RollbackErrorRatePP
// (1 pp), pause PauseErrorRatePP (0.1 pp), or with PauseErrorRatio the stable rate ×
// (ratio − 1) for services whose baseline is 0.01 %.
//
// Latency as a test, not a ratio of two estimates. "Canary P99 > ratio × stable P99"
// means more than 1 % of canary requests are slower than t = ratio × stable P99, and
// the canary's share slower than t is tested against 1 % with a Wilson lower bound.
// The stable P99 is taken at the upper confidence bound of its rank, so a small stable
// sample raises t. Histograms only count requests up to bucket bounds; the tests read
// them two ways:
//   - gross and rollback: t is rounded UP to the next bucket bound U and the canary's
//     share slower than U is tested (the stable P99 interpolated linearly in its bucket,
//     Prometheus's histogram_quantile). Rounding up favours the canary: bucket width
//     never causes a rollback; it can only cost power. With Envoy's default buckets
//     (…100, 250, 500 ms…) a stable P99 of 202 ms puts the ×1.25 threshold at 500 ms,
//     where only a regression of about ×2 shows; the ×1.1 ladder that deploy/envoy
//     ships keeps U within 10 % of t.
//   - pause: inside the bucket (latency_interp.go). Between two bounds the share slower
//     than x, S(x), is a power-law segment (ln S linear in ln x); the stable P99 is the
//     x where that S, built from the Wilson UPPER bounds of its shares at the bounds,
//     reaches 1 % (a logarithm amplifies the noise of a small tail count: 1 request
//     slower than 250 ms where 12 were expected reads a P99 of 202 ms as 172 ms and
//     paused a healthy holdback in the simulation), the canary's share slower than t that S at t, and its
//     lower bound the same interpolation of the Wilson lower bounds at the two bounds
//     (monotone in both, so below the interpolated share; it errs only when one of the
//     two bounds does). Where there is nothing to interpolate (t on a bound or below the
//     first, no request slower than the upper bound) t is rounded up as above.
// Why interpolating cannot pause a healthy canary: when both versions have the same
// distribution they have the same bucket counts up to noise and so the same
// interpolated S, which decreases; S at ratio × the P99 (ratio > 1) is below S at the
// P99, 1 %, whatever the distribution's shape. Only bucket counts that really differ
// from the stable's can pause. Interpolation errs for other canaries: a lognormal
// tail's ln S is concave in ln x, so both the stable P99 and the canary's share are
// under-estimated, and the two errors nearly cancel. Through Envoy's default buckets a
// lognormal canary scaled by c reads a share of 1 % at c between ×1.08 and ×1.13 (σ 0.6;
// ×1.06-×1.15 for σ 0.3-1) depending on where the P99 falls, instead of ×1.10; on the
// ×1.1 ladder at ×1.100. Through Envoy's buckets a P99 +30 % now pauses (it was
// invisible when rounded up to 500 ms); only a pause, never a rollback, rests on it.
// The same gross/rollback/pause split as errors: gross when the canary's share slower
// than the rollback U exceeds GrossFactor × 1 % (its P95 beyond it); rollback and pause
// at their ratios. Without histograms (a service with only a P99 query) the P99 ratio
// can only pause, and says so.
//
// Repeated looks. A check every 30 s on a growing window is a new test each time; at a
// fixed 95 % a healthy canary would be paused somewhere in most long releases. The pause
// and rollback tests therefore use an always-valid boundary (alwaysZ: a confidence
// sequence, valid however many checks look at the growing window) at 1 − PauseConfidence
// (0.01) and 1 − Confidence (0.05) per test and window. The gross test keeps the fixed
// GrossConfidence (0.999) quantile and must be confirmed by two consecutive checks.
//
// Clustered errors. Requests are not independent: a bad pod, a client retry storm or a
// dependency blip fails requests in clusters, and Wilson intervals would read a cluster
// of 50 as 50 independent failures. The engine keeps the stable version's counts of the
// last 20 check windows (Progress.Intervals) and divides both versions' counts by their
// Pearson dispersion (dispersion(): 1 for independent requests, about the cluster size
// for clustered errors) before the error tests: the interval-to-interval spread sets
// the variance. The stable version measures it because a canary regression would
// inflate the canary's own spread and hide itself.
//
// A window is judged only when both versions served at least MinRequests requests in
// it; otherwise the check is inconclusive (Hold): it neither passes nor breaches.

// finding is one reason for a decision.
type finding struct {
	reason    string
	cause     Cause
	endpoints []string
	alerts    []string
	checks    []string
	// gross marks a metric breach severe enough to roll back against any baseline,
	// even one carried from the last stage (see againstBaseline).
	gross bool
	// since is when the run of breaches behind a sustained finding began (its first
	// breaching check); zero for a finding of this check alone.
	since time.Time
	// span dates a marginal breach: it was measured over (at least) the last span.
	span time.Duration
	// metric names the rule of a marginal breach ("error rate", "latency"): the sustain
	// and analysis windows breaching the same rule make one finding.
	metric string
}

// verdict is the judgement of one observation.
type verdict struct {
	rollback     []finding
	pause        []finding
	inconclusive []string
	numbers      *Numbers
	// sourceFailure lists why the metrics or alert source failed on this check.
	sourceFailure []string
}

func (v verdict) failing() bool { return len(v.rollback) > 0 || len(v.pause) > 0 }

func (v verdict) clean() bool { return !v.failing() && len(v.inconclusive) == 0 }

// judgeInput is what judge needs beyond the observation.
type judgeInput struct {
	th          Thresholds
	smoke       []string
	checks      []Check
	baseline    *Baseline // used when the stable version has too little traffic
	nackGen     uint64    // current generation: a NACK of it pauses
	requireData bool      // false in the monitoring window: missing baseline is no hold
	// sampleRatio is the sample-ratio test of the analysis window, nil when not run;
	// on a mismatch the versions are not compared (see srm.go).
	sampleRatio *SampleRatio
	// dispersion divides the error counts (see Clustered errors above); 1 or less
	// means independent requests. dispersionFrom is how many check windows it was
	// measured over: below minIntervals the error tests other than gross wait.
	dispersion     float64
	dispersionFrom int
}

func pct(k, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return 100 * float64(k) / float64(n)
}

// judge classifies one observation. It is pure.
func judge(obs Observation, in judgeInput) verdict {
	var v verdict

	// Health: any unhealthy endpoint pauses for investigation; every canary endpoint
	// down means critical functionality is broken.
	if h := obs.Health.Canary; h.Total > 0 && len(h.Unhealthy) >= h.Total {
		v.rollback = append(v.rollback, finding{cause: CauseUnhealthy,
			reason:    fmt.Sprintf("all %d canary endpoints unhealthy", h.Total),
			endpoints: sorted(h.Unhealthy)})
	} else if len(h.Unhealthy) > 0 {
		v.pause = append(v.pause, finding{cause: CauseUnhealthy,
			reason:    fmt.Sprintf("%d of %d canary endpoints unhealthy", len(h.Unhealthy), h.Total),
			endpoints: sorted(h.Unhealthy)})
	}
	if h := obs.Health.Stable; len(h.Unhealthy) > 0 {
		v.pause = append(v.pause, finding{cause: CauseUnhealthy,
			reason:    fmt.Sprintf("%d of %d stable endpoints unhealthy", len(h.Unhealthy), h.Total),
			endpoints: sorted(h.Unhealthy)})
	}
	if len(obs.Alerts) > 0 {
		v.pause = append(v.pause, finding{cause: CauseAlert,
			reason: "critical alerts firing: " + strings.Join(sorted(obs.Alerts), ", "),
			alerts: sorted(obs.Alerts)})
	}
	if c := obs.Convergence; c.NACK != "" && c.Generation == in.nackGen {
		v.pause = append(v.pause, finding{cause: CauseNACK,
			reason: fmt.Sprintf("proxies rejected weights generation %d: %s", c.Generation, c.NACK)})
	}

	// Named checks.
	results := map[string]CheckResult{}
	for _, c := range obs.Checks {
		results[c.Name] = c
	}
	for _, name := range in.smoke {
		res, ok := results[name]
		switch {
		case !ok:
			v.inconclusive = append(v.inconclusive, fmt.Sprintf("smoke check %q has no result", name))
		case !res.Passed:
			v.rollback = append(v.rollback, finding{cause: CauseSmoke,
				reason: fmt.Sprintf("smoke check %q failed%s", name, detail(res.Detail)), checks: []string{name}})
		}
	}
	for _, c := range in.checks {
		res, ok := results[c.Name]
		switch {
		case !ok:
			v.inconclusive = append(v.inconclusive, fmt.Sprintf("check %q has no result", c.Name))
		case res.Inconclusive != "":
			why := fmt.Sprintf("check %q inconclusive: %s", c.Name, res.Inconclusive)
			v.inconclusive = append(v.inconclusive, why)
			v.sourceFailure = append(v.sourceFailure, why)
		case !res.Passed:
			f := finding{cause: CauseCheck, reason: fmt.Sprintf("check %q failed%s", c.Name, detail(res.Detail)), checks: []string{c.Name}}
			if c.OnFail == OnFailRollback {
				v.rollback = append(v.rollback, f)
			} else {
				v.pause = append(v.pause, f)
			}
		}
	}

	// Metrics: the check window for gross breaches; the sustain and analysis windows for
	// the rest (see the top of this file). A sample-ratio mismatch leaves only the gross
	// tests: the split is broken, but a gross breach is a no-go whatever the split.
	srm := in.sampleRatio != nil && in.sampleRatio.Mismatch
	sustain := in.th.RollbackSustain.D()
	wins := []judgedWindow{{Sample: Sample{Window: obs.Window, Canary: obs.Canary, Stable: obs.Stable}, gross: true}}
	if a := obs.Sustain; a.Window > 0 && a.Window < obs.Analysis.Window {
		wins = append(wins, judgedWindow{Sample: a, rollback: a.Window >= sustain && !srm})
	}
	if a := obs.Analysis; a.Window > 0 {
		wins = append(wins, judgedWindow{Sample: a, rollback: a.Window >= sustain && !srm, pause: !srm, decides: true})
	}
	var outs []metricOutcome
	for _, w := range wins {
		o := judgeSample(w, in)
		if o.numbers != nil && o.numbers.Baseline {
			o.againstBaseline()
		}
		outs = append(outs, o)
	}
	v.combine(outs)
	if sr := in.sampleRatio; sr != nil {
		if v.numbers != nil {
			c := *sr
			v.numbers.SampleRatio = &c
		}
		if sr.Mismatch {
			v.inconclusive = append(v.inconclusive, sr.String())
		}
	}
	if obs.AlertsErr != "" {
		v.sourceFailure = append(v.sourceFailure, "alerts: "+obs.AlertsErr)
		v.inconclusive = append(v.inconclusive, "alert source unavailable: "+obs.AlertsErr)
	}
	if v.numbers != nil {
		th := in.th
		v.numbers.Thresholds = &th
		v.numbers.Verdict, v.numbers.Reason = v.outcome()
	}
	return v
}

// outcome names the verdict and its reason.
func (v verdict) outcome() (string, string) {
	switch {
	case len(v.rollback) > 0:
		return VerdictRollback, mergeFindings(v.rollback).reason
	case len(v.pause) > 0:
		return VerdictPause, mergeFindings(v.pause).reason
	case len(v.inconclusive) > 0:
		return VerdictInconclusive, strings.Join(v.inconclusive, "; ")
	}
	return VerdictClean, "every threshold met"
}

// judgedWindow is one window and the tests it is judged by.
type judgedWindow struct {
	Sample
	gross    bool // the gross tests
	rollback bool // the marginal rollback tests (the window spans RollbackSustain)
	pause    bool // the pause tests
	decides  bool // the window Go needs judged (the analysis window)
}

// metricOutcome is the judgement of one window's numbers.
type metricOutcome struct {
	decides bool
	// conclusive: both versions had enough requests to be judged.
	conclusive bool
	// noData says why the window could not be judged at all (source failure or too
	// few requests); sourceFailure is set when the source failed.
	noData        string
	sourceFailure []string
	inconclusive  []string
	rollback      []finding
	pause         []finding
	numbers       *Numbers
}

// combine merges the windows' outcomes: a breach in any counts; the deciding window,
// when gathered, must be judged for the check to be clean. Without one (at the ACK, or
// a window shorter than the source's shortest) the check window must have been judged:
// a failing source or too few requests is never clean.
func (v *verdict) combine(outs []metricOutcome) {
	decided := false
	for _, o := range outs {
		v.sourceFailure = append(v.sourceFailure, o.sourceFailure...)
		for _, f := range o.rollback {
			if f.metric == "" || !slices.ContainsFunc(v.rollback, func(g finding) bool { return g.metric == f.metric }) {
				v.rollback = append(v.rollback, f)
			}
		}
		v.pause = append(v.pause, o.pause...)
		v.inconclusive = append(v.inconclusive, o.inconclusive...)
		if o.decides {
			decided = true
			if !o.conclusive && o.noData != "" {
				v.inconclusive = append(v.inconclusive, o.noData)
			}
		}
	}
	if !decided && outs[0].noData != "" {
		v.inconclusive = append(v.inconclusive, outs[0].noData)
	}
	// The widest judged window carries the numbers; the others are attached.
	for i := len(outs) - 1; i >= 0; i-- {
		if outs[i].numbers == nil {
			continue
		}
		v.numbers = outs[i].numbers
		for j := 0; j < i; j++ {
			n := outs[j].numbers
			switch {
			case n == nil:
			case j == 0:
				v.numbers.Recent = n
			default:
				v.numbers.Sustain = n
			}
		}
		break
	}
}

// judgeSample judges one window's numbers against the thresholds.
func judgeSample(w judgedWindow, in judgeInput) metricOutcome {
	o := metricOutcome{decides: w.decides}
	th := in.th
	cs, ss := w.Canary, w.Stable
	switch {
	case cs.Err != nil:
		o.noData = "canary metrics unavailable: " + cs.Err.Error()
		o.sourceFailure = append(o.sourceFailure, o.noData)
		return o
	case cs.Inconclusive != "":
		o.noData = "canary metrics inconclusive: " + cs.Inconclusive
		o.sourceFailure = append(o.sourceFailure, o.noData)
		return o
	}
	stableOK := ss.Err == nil && ss.Inconclusive == "" && ss.Requests >= th.MinRequests
	baseline := false
	if !stableOK && in.baseline != nil && in.baseline.Requests >= th.MinRequests {
		b := in.baseline
		ss = VersionStats{Requests: b.Requests, Errors: b.Errors, P99: b.P99.D(), Latency: b.Latency}
		stableOK, baseline = true, true
	}
	if !stableOK {
		if !in.requireData {
			// At 100 % with no baseline there is nothing to compare with: not judged,
			// and no source failure either (the stable version may rightly be idle).
			return o
		}
		switch {
		case ss.Err != nil:
			o.noData = "stable metrics unavailable: " + ss.Err.Error()
			o.sourceFailure = append(o.sourceFailure, o.noData)
		case ss.Inconclusive != "":
			o.noData = "stable metrics inconclusive: " + ss.Inconclusive
			o.sourceFailure = append(o.sourceFailure, o.noData)
		default:
			o.noData = fmt.Sprintf("stable served %d requests < minRequests %d%s", ss.Requests, th.MinRequests, inWindow(w.Window))
		}
		return o
	}
	if cs.Requests < th.MinRequests {
		o.noData = fmt.Sprintf("canary served %d requests < minRequests %d%s", cs.Requests, th.MinRequests, inWindow(w.Window))
		return o
	}
	o.conclusive = true
	ce, se := min(cs.Errors, cs.Requests), min(ss.Errors, ss.Requests)
	phi := max(in.dispersion, 1)
	// The growing analysis window is tested with the always-valid boundary; the sliding
	// sustain window, of fixed length and looked at continually (some 300 disjoint
	// windows a day), with the fixed GrossConfidence quantile (0.999).
	zr := alwaysZ(1-th.Confidence, float64(cs.Requests)/phi)
	if !w.decides {
		zr = z(th.GrossConfidence)
	}
	lo, hi := deltaBounds(ce, cs.Requests, se, ss.Requests, zr, phi)
	n := &Numbers{
		CanaryRequests: cs.Requests, CanaryErrors: ce, StableRequests: ss.Requests, StableErrors: se,
		CanaryErrorPct: pct(ce, cs.Requests), StableErrorPct: pct(se, ss.Requests),
		DeltaLowPP: 100 * lo, DeltaHighPP: 100 * hi,
		CanaryP99: Duration(cs.P99), StableP99: Duration(ss.P99),
		Window: Duration(w.Window), Baseline: baseline, Dispersion: phi,
	}
	o.numbers = n
	over := ""
	if w.Window > 0 {
		over = " over " + Duration(w.Window).String()
	}
	rates := func(zq float64) string {
		lo, hi := deltaBounds(ce, cs.Requests, se, ss.Requests, zq, phi)
		s := fmt.Sprintf("canary %.3f%% (%d/%d) vs stable %.3f%% (%d/%d)%s, difference %+.3f pp, interval [%+.3f, %+.3f] pp (z %.2f",
			n.CanaryErrorPct, ce, cs.Requests, n.StableErrorPct, se, ss.Requests, over,
			n.CanaryErrorPct-n.StableErrorPct, 100*lo, 100*hi, zq)
		if phi > 1 {
			s += fmt.Sprintf(", counts ÷ dispersion %.2f", phi)
		}
		return s + ")"
	}
	lat := newLatency(cs, ss)
	n.CanaryP99, n.StableP99 = Duration(lat.canaryP99), Duration(lat.stableP99)
	if lat.canaryP99 > 0 && lat.stableP99 > 0 {
		n.LatencyRatio = float64(lat.canaryP99) / float64(lat.stableP99)
	}

	if w.gross {
		zg := z(th.GrossConfidence)
		grossPP := th.GrossFactor * th.RollbackErrorRatePP
		if errorTest(ce, cs.Requests, se, ss.Requests, grossPP, zg, phi) == triBreach {
			o.rollback = append(o.rollback, finding{gross: true, cause: CauseErrorRate, reason: fmt.Sprintf(
				"error rate grossly above baseline (> %.3g pp at %.3g confidence): %s", grossPP, th.GrossConfidence, rates(zg))})
		}
		if t, why := lat.test(th.RollbackLatencyRatio, th.GrossFactor/100, zg, over, false); t == triBreach {
			o.rollback = append(o.rollback, finding{gross: true, cause: CauseLatency, reason: "P99 latency grossly above baseline: " + why})
		}
		if !w.rollback && !w.pause {
			return o
		}
	}
	// Until the dispersion is measured (the first minutes of a rollout) an error rate
	// above the pause margin holds rather than pauses or rolls back: a cluster of
	// errors cannot be told from a regression yet. The analysis window keeps those
	// minutes for the tests after.
	errorsKnown := in.dispersionFrom >= minIntervals
	// A marginal breach is dated from the start of the last sustain window it covers.
	span := min(w.Window, th.RollbackSustain.D())
	if w.rollback && errorsKnown {
		if errorTest(ce, cs.Requests, se, ss.Requests, th.RollbackErrorRatePP, zr, phi) == triBreach {
			o.rollback = append(o.rollback, finding{span: span, metric: "error rate", cause: CauseErrorRate, reason: fmt.Sprintf(
				"error rate more than %.3g pp above baseline for %s: %s", th.RollbackErrorRatePP, Duration(w.Window), rates(zr))})
		}
	}
	if w.rollback && lat.histograms() {
		zl := alwaysZ(1-th.Confidence, float64(lat.canaryN()))
		if !w.decides {
			zl = z(th.GrossConfidence)
		}
		if t, why := lat.test(th.RollbackLatencyRatio, 0.01, zl, over, false); t == triBreach {
			o.rollback = append(o.rollback, finding{span: span, metric: "latency", cause: CauseLatency, reason: fmt.Sprintf(
				"P99 latency more than ×%.3g baseline: %s", th.RollbackLatencyRatio, why)})
		}
	}
	if !w.pause {
		return o
	}
	zp := alwaysZ(1-th.PauseConfidence, float64(cs.Requests)/phi)
	m := pauseMargin(th, se, ss.Requests)
	switch t := errorTest(ce, cs.Requests, se, ss.Requests, m, zp, phi); {
	case !errorsKnown:
		if t != triClean {
			o.inconclusive = append(o.inconclusive, fmt.Sprintf(
				"error rate above baseline + %.3g pp while how clustered errors are is still measured (%d of %d check windows): %s",
				m, in.dispersionFrom, minIntervals, rates(zp)))
		}
	case t == triBreach:
		o.pause = append(o.pause, finding{cause: CauseErrorRate, reason: fmt.Sprintf(
			"error rate more than %.3g pp above baseline: %s", m, rates(zp))})
	case t == triUnknown:
		if lo, hi := deltaBounds(ce, cs.Requests, se, ss.Requests, zp, phi); 100*(hi-lo)/2 <= 2*m {
			o.inconclusive = append(o.inconclusive, fmt.Sprintf(
				"error rate above baseline + %.3g pp but not significantly: %s", m, rates(zp)))
		}
	}
	if !lat.histograms() {
		if why := lat.ratioOnly(th.PauseLatencyRatio, over); why != "" {
			o.pause = append(o.pause, finding{cause: CauseLatency, reason: why})
		} else if lat.stableP99 <= 0 || lat.canaryP99 <= 0 {
			o.inconclusive = append(o.inconclusive, "P99 latency unknown"+over)
		}
		return o
	}
	zl := alwaysZ(1-th.PauseConfidence, float64(lat.canaryN()))
	t, why := lat.test(th.PauseLatencyRatio, 0.01, zl, over, true)
	n.LatencyBound, n.CanarySlowPct, n.CanarySlowLowPct = Duration(lat.bound), 100*lat.share, 100*lat.lo
	switch t {
	case triBreach:
		o.pause = append(o.pause, finding{cause: CauseLatency, reason: fmt.Sprintf("P99 latency more than ×%.3g baseline: %s", th.PauseLatencyRatio, why)})
	case triUnknown:
		if why != "" && (lat.hi-lat.lo)/2 <= 0.005 {
			o.inconclusive = append(o.inconclusive, fmt.Sprintf(
				"P99 latency above ×%.3g baseline but not significantly: %s", th.PauseLatencyRatio, why))
		} else if why != "" && lat.bound == 0 {
			o.inconclusive = append(o.inconclusive, why)
		}
	}
	return o
}

// pauseMargin is the pause margin in percentage points: PauseErrorRatePP, or with
// PauseErrorRatio the stable rate × (ratio − 1).
func pauseMargin(th Thresholds, se, sn uint64) float64 {
	if th.PauseErrorRatio > 0 && sn > 0 {
		return (th.PauseErrorRatio - 1) * pct(se, sn)
	}
	return th.PauseErrorRatePP
}

// errorTest judges canary − stable error rate against a margin in percentage points
// at quantile zq, counts divided by the dispersion phi.
func errorTest(ce, cn, se, sn uint64, marginPP, zq, phi float64) tri {
	m := marginPP / 100
	lo, _ := deltaBounds(ce, cn, se, sn, zq, phi)
	switch {
	case lo > m:
		return triBreach
	case float64(ce)/float64(cn)-float64(se)/float64(sn) <= m:
		return triClean
	}
	return triUnknown
}

// latency is one window's latency evidence: both histograms when the source has them.
type latency struct {
	canary, stable Histogram
	// canaryP99 and stableP99 are the versions' P99 (interpolated in the histogram
	// when there is one, else the source's own P99).
	canaryP99, stableP99 time.Duration
	// Set by test: the bound the canary was counted at, its share of requests slower
	// than it and the share's Wilson bounds.
	bound         time.Duration
	share, lo, hi float64
}

func newLatency(cs, ss VersionStats) *latency {
	l := &latency{canaryP99: cs.P99, stableP99: ss.P99}
	if cs.Latency.valid() && ss.Latency.valid() && cs.Latency.total() > 0 && ss.Latency.total() > 0 {
		l.canary, l.stable = cs.Latency, ss.Latency
		if q, ok := l.canary.quantile(0.99); ok {
			l.canaryP99 = q
		}
		if q, ok := l.stable.quantile(0.99); ok {
			l.stableP99 = q
		}
	}
	return l
}

func (l *latency) histograms() bool { return len(l.canary.Counts) > 0 }

func (l *latency) canaryN() uint64 { return l.canary.total() }

// test tests "more than share of canary requests are slower than ratio × stable P99",
// the share's Wilson lower bound at quantile zq against share. With inside false (the
// gross and rollback tests) the threshold is rounded up to the canary histogram's next
// bound; with inside true (the pause test) both the stable P99 and the canary's share
// are interpolated inside their buckets (latency_interp.go). It explains its outcome.
func (l *latency) test(ratio, share, zq float64, over string, inside bool) (tri, string) {
	if !l.histograms() {
		return triUnknown, ""
	}
	// The stable P99 is itself an estimate: take the quantile at the upper confidence
	// bound of its rank (the same quantile zq), so a stable sample too small to place
	// its P99 raises the threshold instead of lowering it.
	// Read inside its bucket, the upper confidence bounds of its tail shares do that.
	ns := float64(l.stable.total())
	rank := 0.99 + zq*math.Sqrt(0.99*0.01/ns)
	q, ok := l.stable.quantile(rank)
	if inside {
		q, ok = l.stable.quantileInside(0.99, zq)
	}
	if ns*(1-rank) < 1 || !ok {
		return triUnknown, "" // the stable sample cannot place its P99 inside the histogram
	}
	t := time.Duration(ratio * float64(q))
	s, ok := l.canary.slower(t, zq, inside)
	if !ok {
		l.bound = 0
		return triUnknown, fmt.Sprintf("×%.3g stable P99 (%s) is beyond the histogram's last bound%s: latency not testable", ratio, Duration(t), over)
	}
	l.bound, l.share, l.lo, l.hi = s.at, s.share, s.lower, s.upper
	if l.share <= share {
		return triClean, ""
	}
	var why string
	if s.interpolated {
		why = fmt.Sprintf("%.2f%% of canary requests slower than %s (×%.3g stable P99 %s; interpolated inside the bucket [%s, %s] between %d/%d and %d/%d slower than its bounds)%s",
			100*l.share, Duration(t), ratio, Duration(q), Duration(s.lo), Duration(s.hi), s.slowLo, s.n, s.slow, s.n, over)
	} else {
		why = fmt.Sprintf("%.2f%% of canary requests (%d/%d) slower than %s (≥ ×%.3g stable P99 %s)%s",
			100*l.share, s.slow, s.n, Duration(s.at), ratio, Duration(q), over)
	}
	why += fmt.Sprintf(", lower bound %.2f%% vs %.3g%% (z %.2f), canary P99 %s", 100*l.lo, 100*share, zq, Duration(l.canaryP99))
	if l.lo > share {
		return triBreach, why
	}
	return triUnknown, why
}

// ratioOnly is the fallback without histograms: the P99 ratio, which can only pause.
func (l *latency) ratioOnly(ratio float64, over string) string {
	if l.stableP99 <= 0 || l.canaryP99 <= 0 || float64(l.canaryP99) <= float64(l.stableP99)*ratio {
		return ""
	}
	return fmt.Sprintf("P99 latency more than ×%.3g baseline: canary P99 %s vs stable %s%s (×%.3f; no histogram, so no test: pauses, never rolls back)",
		ratio, Duration(l.canaryP99), Duration(l.stableP99), over, float64(l.canaryP99)/float64(l.stableP99))
}

func inWindow(w time.Duration) string {
	if w <= 0 {
		return ""
	}
	return " in " + Duration(w).String()
}

func detail(d string) string {
	if d == "" {
		return ""
	}
	return ": " + d
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// merge combines findings into one reason and their details.
func mergeFindings(fs []finding) finding {
	var out finding
	var reasons []string
	for _, f := range fs {
		reasons = append(reasons, f.reason)
		out.endpoints = append(out.endpoints, f.endpoints...)
		out.alerts = append(out.alerts, f.alerts...)
		out.checks = append(out.checks, f.checks...)
		if !f.since.IsZero() && (out.since.IsZero() || f.since.Before(out.since)) {
			out.since = f.since
		}
	}
	out.reason = strings.Join(reasons, "; ")
	if len(fs) > 0 {
		out.cause = fs[0].cause
	}
	return out
}

// since returns now − t, or 0 if t is zero.
func since(now, t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return now.Sub(t)
}
