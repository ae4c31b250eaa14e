package controller

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// How a breach is decided, and why a 1 % canary does not roll back on noise.
//
// A check window is judged on its metrics only when both the canary and the stable
// version served at least MinRequests requests in it; otherwise the check is
// inconclusive (Hold): it neither passes nor breaches.
//
// Error rate. Let pc = canary errors / requests and ps = stable errors / requests. The
// engine computes a one-sided lower confidence bound L of pc − ps by Newcombe's hybrid
// score method (Newcombe 1998, method 10): L = (pc − ps) − √((pc − lc)² + (us − ps)²),
// where lc is the Wilson score lower bound of pc and us the Wilson score upper bound of
// ps, both at z = Φ⁻¹(c). c is Confidence (default 0.95, z = 1.645) against the
// rollback margin and PauseConfidence (default 0.99, z = 2.326) against the much smaller
// pause margin, which is tested on every check of a growing window. Wilson bounds stay
// inside [0, 1] and behave at 0 errors, where the normal approximation fails. Against a
// margin m (percentage points):
//   - breach when L > m: the canary is worse than stable + m with ≥ c;
//   - clean when pc − ps ≤ m: the point estimate is inside the bound;
//   - otherwise inconclusive: worse than the bound but not significantly so, so more
//     data is needed. This is how a 1 % canary with 1 error in 150 requests (0.67 %)
//     against a 0.2 % stable holds instead of pausing or rolling back.
//
// Marginal and gross breaches of the rollback bound are told apart by a second, stricter
// test: a gross breach has its lower bound at GrossConfidence (default 0.999, z ≈ 3.09)
// at or beyond GrossFactor × RollbackErrorRatePP (default 5 × 1 pp = 5 pp) and rolls back
// at once. A marginal breach (L > RollbackErrorRatePP at Confidence, not gross) rolls back
// only when sustained: every conclusive check for RollbackSustain (5 min) breached it.
// A conclusive check that does not breach it resets the run; an inconclusive one neither
// extends nor resets it.
//
// Two windows. Every check the loop gathers the last check window and, once the
// stage's weights are ACKed, the analysis window: all traffic since that ACK (or the
// last resume), at most Plan.AnalysisWindow (default 1 h). The tests above and the
// latency rule judge the analysis window, so a 1 % canary accumulates the requests it
// needs instead of holding forever on one short window, and a healthy canary is not
// paused by the noise of many short windows. The check window alone is judged for gross
// breaches only, so a sudden severe regression late in a long stage still rolls back
// on the next check. Before the ACK the check window is judged alone. The rates printed
// by TestSimulatedJudgement (controller/simulation_test.go) are what these rules do:
// 1,000 seeded runs per case through this code and the engine.
//
// Latency. The metrics give one P99 per version, not a distribution, so no interval can
// be computed; MinRequests is the guard (a P99 of 100 requests is its second-largest
// value). With enough requests on both sides and a known stable P99, the canary breaches
// when canary P99 > stable P99 × ratio (strictly); a missing or zero stable P99 is
// inconclusive.

// z returns the standard normal quantile Φ⁻¹(c).
func z(c float64) float64 { return math.Sqrt2 * math.Erfinv(2*c-1) }

// wilson returns the Wilson score interval of k successes in n trials at quantile zq.
func wilson(k, n uint64, zq float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	nf := float64(n)
	p := float64(k) / nf
	z2 := zq * zq
	den := 1 + z2/nf
	center := (p + z2/(2*nf)) / den
	half := zq * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	return math.Max(0, center-half), math.Min(1, center+half)
}

// deltaBounds returns the one-sided lower and upper confidence bounds of canary −
// stable error rate, as fractions, at confidence c (Newcombe's method 10: each bound
// combines the distances to the matching Wilson bounds of the two rates).
func deltaBounds(ce, cn, se, sn uint64, c float64) (lo, hi float64) {
	zq := z(c)
	pc := float64(ce) / float64(cn)
	ps := float64(se) / float64(sn)
	lc, uc := wilson(ce, cn, zq)
	ls, us := wilson(se, sn, zq)
	d := pc - ps
	return d - math.Hypot(pc-lc, us-ps), d + math.Hypot(uc-pc, ps-ls)
}

// deltaLow is the lower bound of deltaBounds.
func deltaLow(ce, cn, se, sn uint64, c float64) float64 {
	lo, _ := deltaBounds(ce, cn, se, sn, c)
	return lo
}

// tri is a three-way test outcome.
type tri int

const (
	triUnknown tri = iota
	triClean
	triBreach
)

// errorTest judges canary − stable error rate against a margin in percentage points.
func errorTest(ce, cn, se, sn uint64, marginPP, conf float64) tri {
	pc := float64(ce) / float64(cn)
	ps := float64(se) / float64(sn)
	m := marginPP / 100
	if deltaLow(ce, cn, se, sn, conf) > m {
		return triBreach
	}
	if pc-ps <= m {
		return triClean
	}
	return triUnknown
}

// finding is one reason for a decision.
type finding struct {
	reason    string
	endpoints []string
	alerts    []string
	checks    []string
	// gross marks a metric breach severe enough to roll back against any baseline,
	// even one carried from the last stage (see againstBaseline).
	gross bool
	// since is when the run of breaches behind a sustained finding began (its first
	// breaching check); zero for a finding of this check alone.
	since time.Time
}

// verdict is the judgement of one observation.
type verdict struct {
	rollback     []finding
	pause        []finding
	inconclusive []string
	// sustained is the outcome against the rollback error-rate bound, for the
	// sustained rule.
	sustained tri
	numbers   *Numbers
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
		v.rollback = append(v.rollback, finding{
			reason:    fmt.Sprintf("all %d canary endpoints unhealthy", h.Total),
			endpoints: sorted(h.Unhealthy)})
	} else if len(h.Unhealthy) > 0 {
		v.pause = append(v.pause, finding{
			reason:    fmt.Sprintf("%d of %d canary endpoints unhealthy", len(h.Unhealthy), h.Total),
			endpoints: sorted(h.Unhealthy)})
	}
	if h := obs.Health.Stable; len(h.Unhealthy) > 0 {
		v.pause = append(v.pause, finding{
			reason:    fmt.Sprintf("%d of %d stable endpoints unhealthy", len(h.Unhealthy), h.Total),
			endpoints: sorted(h.Unhealthy)})
	}
	if len(obs.Alerts) > 0 {
		v.pause = append(v.pause, finding{
			reason: "critical alerts firing: " + strings.Join(sorted(obs.Alerts), ", "),
			alerts: sorted(obs.Alerts)})
	}
	if c := obs.Convergence; c.NACK != "" && c.Generation == in.nackGen {
		v.pause = append(v.pause, finding{
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
			v.rollback = append(v.rollback, finding{
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
			f := finding{reason: fmt.Sprintf("check %q failed%s", c.Name, detail(res.Detail)), checks: []string{c.Name}}
			if c.OnFail == OnFailRollback {
				v.rollback = append(v.rollback, f)
			} else {
				v.pause = append(v.pause, f)
			}
		}
	}

	// Metrics: the check window and, when gathered, the analysis window.
	sets := []Sample{{Window: obs.Window, Canary: obs.Canary, Stable: obs.Stable}}
	if obs.Analysis.Window > 0 {
		sets = append(sets, obs.Analysis)
	}
	var outs []metricOutcome
	for i, set := range sets {
		// With an analysis window, the check window alone is judged for gross breaches
		// only: the fast rollback of a sudden, severe regression. Every other test runs
		// once per check on the analysis window, so a healthy canary is not paused by
		// the noise of many short windows.
		// A sample-ratio mismatch leaves only the gross test: the split is broken, but a
		// gross error rate is a no-go whatever the split.
		srm := in.sampleRatio != nil && in.sampleRatio.Mismatch
		o := judgeSample(set, in, (len(sets) > 1 && i == 0) || srm)
		if o.numbers != nil && o.numbers.Baseline {
			o.againstBaseline()
		}
		outs = append(outs, o)
	}
	v.combine(outs, in)
	if sr := in.sampleRatio; sr != nil {
		if v.numbers != nil {
			c := *sr
			v.numbers.SampleRatio = &c
		}
		if sr.Mismatch {
			v.inconclusive = append(v.inconclusive, sr.String())
			if v.sustained == triClean {
				v.sustained = triUnknown // neither extends nor resets the sustained run
			}
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

// metricOutcome is the judgement of one window's numbers.
type metricOutcome struct {
	// conclusive: both versions had enough requests to be judged.
	conclusive bool
	// noData says why the window could not be judged at all (source failure or too
	// few requests); sourceFailure is set when the source failed.
	noData        string
	sourceFailure []string
	inconclusive  []string
	rollback      []finding
	pause         []finding
	sustained     tri
	numbers       *Numbers
}

// combine merges the outcomes of the check window and the analysis window: a breach
// in either counts, a clean sustained-rule result needs every judged window clean, and
// a window without enough data adds nothing when another window was judged.
func (v *verdict) combine(outs []metricOutcome, in judgeInput) {
	judged := 0
	clean := true
	for _, o := range outs {
		v.sourceFailure = append(v.sourceFailure, o.sourceFailure...)
		if !o.conclusive {
			continue
		}
		judged++
		v.rollback = append(v.rollback, o.rollback...)
		v.pause = append(v.pause, o.pause...)
		v.inconclusive = append(v.inconclusive, o.inconclusive...)
		switch o.sustained {
		case triBreach:
			v.sustained = triBreach
		case triUnknown:
			clean = false
		}
	}
	if judged == 0 {
		// Nothing judged: report the widest window's reason (the last one).
		last := outs[len(outs)-1]
		if last.noData != "" {
			v.inconclusive = append(v.inconclusive, last.noData)
		}
		return
	}
	if v.sustained != triBreach && clean {
		v.sustained = triClean
	}
	// The widest judged window carries the numbers; the check window's are attached.
	for i := len(outs) - 1; i >= 0; i-- {
		if outs[i].numbers != nil {
			v.numbers = outs[i].numbers
			if i > 0 && outs[0].numbers != nil {
				v.numbers.Recent = outs[0].numbers
			}
			break
		}
	}
}

// judgeSample judges one window's numbers against the thresholds.
func judgeSample(set Sample, in judgeInput, grossOnly bool) metricOutcome {
	var o metricOutcome
	th := in.th
	cs, ss := set.Canary, set.Stable
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
		ss = VersionStats{Requests: in.baseline.Requests, Errors: in.baseline.Errors, P99: in.baseline.P99.D()}
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
			o.noData = fmt.Sprintf("stable served %d requests < minRequests %d%s", ss.Requests, th.MinRequests, inWindow(set.Window))
		}
		return o
	}
	if cs.Requests < th.MinRequests {
		o.noData = fmt.Sprintf("canary served %d requests < minRequests %d%s", cs.Requests, th.MinRequests, inWindow(set.Window))
		return o
	}
	o.conclusive = true
	ce, se := min(cs.Errors, cs.Requests), min(ss.Errors, ss.Requests)
	lo, hi := deltaBounds(ce, cs.Requests, se, ss.Requests, th.Confidence)
	n := &Numbers{
		CanaryRequests: cs.Requests, CanaryErrors: ce, StableRequests: ss.Requests, StableErrors: se,
		CanaryErrorPct: pct(ce, cs.Requests), StableErrorPct: pct(se, ss.Requests),
		DeltaLowPP: 100 * lo, DeltaHighPP: 100 * hi,
		CanaryP99: Duration(cs.P99), StableP99: Duration(ss.P99),
		Window: Duration(set.Window), Baseline: baseline,
	}
	o.numbers = n
	over := ""
	if set.Window > 0 {
		over = " over " + Duration(set.Window).String()
	}
	rates := fmt.Sprintf("canary %.3f%% (%d/%d) vs stable %.3f%% (%d/%d)%s, difference %+.3f pp, interval [%+.3f, %+.3f] pp",
		n.CanaryErrorPct, ce, cs.Requests, n.StableErrorPct, se, ss.Requests, over,
		n.CanaryErrorPct-n.StableErrorPct, n.DeltaLowPP, n.DeltaHighPP)

	grossPP := th.GrossFactor * th.RollbackErrorRatePP
	if 100*deltaLow(ce, cs.Requests, se, ss.Requests, th.GrossConfidence) >= grossPP {
		o.rollback = append(o.rollback, finding{gross: true, reason: fmt.Sprintf(
			"error rate grossly above baseline (≥ %.3g pp at %.3g confidence): %s", grossPP, th.GrossConfidence, rates)})
	}
	if grossOnly {
		o.sustained = triUnknown
		if len(o.rollback) == 0 {
			o.sustained = triClean // neutral: the analysis window decides
		}
		return o
	}
	o.sustained = errorTest(ce, cs.Requests, se, ss.Requests, th.RollbackErrorRatePP, th.Confidence)
	switch errorTest(ce, cs.Requests, se, ss.Requests, th.PauseErrorRatePP, th.PauseConfidence) {
	case triBreach:
		o.pause = append(o.pause, finding{reason: fmt.Sprintf(
			"error rate more than %.3g pp above baseline at %.3g confidence: %s", th.PauseErrorRatePP, th.PauseConfidence, rates)})
	case triUnknown:
		o.inconclusive = append(o.inconclusive, fmt.Sprintf(
			"error rate above baseline + %.3g pp but not significant at %.3g confidence: %s", th.PauseErrorRatePP, th.PauseConfidence, rates))
	}

	if ss.P99 <= 0 || cs.P99 <= 0 {
		o.inconclusive = append(o.inconclusive, "P99 latency unknown"+over)
	} else {
		ratio := float64(cs.P99) / float64(ss.P99)
		n.LatencyRatio = ratio
		lat := fmt.Sprintf("canary P99 %s vs stable %s%s (×%.3f)", Duration(cs.P99), Duration(ss.P99), over, ratio)
		switch {
		case float64(cs.P99) > float64(ss.P99)*th.RollbackLatencyRatio:
			o.rollback = append(o.rollback, finding{reason: fmt.Sprintf(
				"P99 latency more than ×%.3g baseline: %s", th.RollbackLatencyRatio, lat)})
		case float64(cs.P99) > float64(ss.P99)*th.PauseLatencyRatio:
			o.pause = append(o.pause, finding{reason: fmt.Sprintf(
				"P99 latency more than ×%.3g baseline: %s", th.PauseLatencyRatio, lat)})
		}
	}
	return o
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
	}
	out.reason = strings.Join(reasons, "; ")
	return out
}

// since returns now − t, or 0 if t is zero.
func since(now, t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return now.Sub(t)
}
