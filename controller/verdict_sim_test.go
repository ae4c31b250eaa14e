//go:build !race

package controller

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octoacme/octoroll/model"
)

// The verdict simulation drives the real engine (Rollout.Step: judge, holds, pauses,
// gross confirmation, dispersion, monitoring window) with traffic drawn from a seeded
// random source, the way the runner would gather it:
//   - every 30-s check interval each version serves a Poisson number of requests at its
//     share of the service's rate (the weights in force, holdback included);
//   - latency is lognormal (median 50 ms, σ 0.6 unless a case says otherwise: P99 ≈
//     202 ms, the long right tail real services have), counted through a real bucket
//     ladder: Envoy's default buckets, or the ×1.1 ladder octoroll ships;
//   - errors are Bernoulli per request, or arrive in clusters of a fixed size;
//   - the check, sustain and analysis windows are summed from the intervals exactly as
//     the runner queries them (Rollout.SustainWindow, Rollout.AnalysisWindow).
// Each case runs 1,000 times; the targets are asserted and the table is printed with
// -v. `go test ./controller -run TestSimulatedVerdicts -update-readme` rewrites the
// README's table from the run; TestSimulatedVerdicts fails when the README disagrees.

var (
	updateReadme = flag.Bool("update-readme", false, "rewrite the README's verdict table from the simulation")
	simRuns      = flag.Int("sim.runs", 1000, "runs per simulated verdict case")
)

// behaviour is one version's traffic at one moment.
type behaviour struct {
	errPct  float64       // true error rate, percent
	median  time.Duration // lognormal latency median
	sigma   float64       // lognormal σ
	cluster int           // errors arrive in clusters of this size (0: independent)
}

var healthy = behaviour{errPct: 0.5, median: 50 * time.Millisecond, sigma: 0.6}

func (b behaviour) slower(f float64) behaviour {
	b.median = time.Duration(f * float64(b.median))
	return b
}
func (b behaviour) errors(pct float64) behaviour {
	b.errPct = pct
	return b
}

// simClock is what a case's behaviour may depend on.
type simClock struct {
	run         time.Duration // since the rollout started
	sinceWeight time.Duration // since the current weights were set
	sinceFull   time.Duration // since 100 % (0 before)
	full        bool
	stage       int
}

type verdictCase struct {
	name   string
	target string
	ladder ladder
	rps    float64
	spec   Spec
	stable func(simClock) behaviour
	canary func(simClock) behaviour
	// stop ends a run (besides a terminal state).
	stop func(r Rollout, c simClock) bool
	// onset is when the regression starts (run time), for detection times;
	// onsetAfterFull is when it starts after the run reached 100 % (runs reach it at
	// their own times).
	onset, onsetAfterFull time.Duration
	// horizon caps a run's time (default 2 h, for runs paused in a stage).
	horizon time.Duration
	check   func(s verdictStats) error
}

func (c verdictCase) limit() time.Duration {
	if c.horizon > 0 {
		return c.horizon
	}
	return 2 * time.Hour
}

type runOutcome struct {
	rolledBack, paused, advanced, reachedFull bool
	pausedAtFull, rolledBackAtFull            bool
	rollbackAt, pauseAt, fullAt               time.Duration // run time
	rollbackStage, pauseStage                 int
	pauseReason, rollbackReason               string
}

type verdictStats struct {
	runs                     int
	rolledBack, paused       int
	pausedAtFull, backAtFull int
	advancedAll, reachedFull int
	rollbackAfterOnset       []time.Duration
	pauseAfterOnset          []time.Duration
	// actedAfterOnset: the first pause or rollback of each run that acted at or after
	// the onset, counted from it.
	actedAfterOnset             []time.Duration
	pausedOrRolledBackByHorizon int
	reasons                     map[string]int
}

func (s verdictStats) pct(n int) float64 { return 100 * float64(n) / float64(s.runs) }

// lognormCDF is P(X ≤ x) for a lognormal with the given median and σ.
func lognormCDF(x float64, median time.Duration, sigma float64) float64 {
	if x <= 0 {
		return 0
	}
	return 0.5 * math.Erfc(-math.Log(x/float64(median))/(sigma*math.Sqrt2))
}

// simHist draws the latency histogram of n ~ Poisson(lambda) requests: with Poisson
// arrivals the bucket counts are independent Poisson variates.
type bucketProbs struct {
	bounds []time.Duration
	p      []float64
}

func probsFor(l ladder, b behaviour) bucketProbs {
	out := bucketProbs{}
	prev := 0.0
	for _, ms := range l.ms {
		d := time.Duration(ms * float64(time.Millisecond))
		c := lognormCDF(float64(d), b.median, b.sigma)
		out.bounds = append(out.bounds, d)
		out.p = append(out.p, c-prev)
		prev = c
	}
	out.bounds = append(out.bounds, Inf)
	out.p = append(out.p, 1-prev)
	return out
}

// counts are one interval's per-bucket (not cumulative) counts and errors.
type counts struct {
	bucket []uint64
	n, e   uint64
}

type probKey struct {
	ladder string
	median time.Duration
	sigma  float64
}

type probCache struct {
	mu sync.Mutex
	m  map[probKey]bucketProbs
}

func (pc *probCache) get(l ladder, b behaviour) bucketProbs {
	k := probKey{l.name, b.median, b.sigma}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if p, ok := pc.m[k]; ok {
		return p
	}
	p := probsFor(l, b)
	pc.m[k] = p
	return p
}

var probs = &probCache{m: map[probKey]bucketProbs{}}

func drawInterval(rng *rand.Rand, l ladder, b behaviour, lambda float64) counts {
	bp := probs.get(l, b)
	c := counts{bucket: make([]uint64, len(bp.p))}
	for i, p := range bp.p {
		if m := lambda * p; m > 1e-9 {
			c.bucket[i] = poisson(rng, m)
			c.n += c.bucket[i]
		}
	}
	mean := float64(c.n) * b.errPct / 100
	if b.cluster > 1 {
		c.e = poisson(rng, mean/float64(b.cluster)) * uint64(b.cluster)
	} else {
		c.e = poisson(rng, mean)
	}
	c.e = min(c.e, c.n)
	return c
}

// series keeps prefix sums of a version's intervals, so any window sums in O(buckets).
type series struct {
	prefix []counts // prefix[i] = sum of intervals [0, i)
}

func (s *series) add(c counts) {
	last := counts{bucket: make([]uint64, len(c.bucket))}
	if len(s.prefix) > 0 {
		p := s.prefix[len(s.prefix)-1]
		copy(last.bucket, p.bucket)
		last.n, last.e = p.n, p.e
	} else {
		s.prefix = append(s.prefix, counts{bucket: make([]uint64, len(c.bucket))})
	}
	for i, v := range c.bucket {
		last.bucket[i] += v
	}
	last.n += c.n
	last.e += c.e
	s.prefix = append(s.prefix, last)
}

// stats returns the sum of the last k intervals as the engine sees it.
func (s *series) stats(k int, bounds []time.Duration) VersionStats {
	hi := s.prefix[len(s.prefix)-1]
	lo := s.prefix[max(0, len(s.prefix)-1-k)]
	h := Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds))}
	var cum uint64
	for i := range bounds {
		cum += hi.bucket[i] - lo.bucket[i]
		h.Counts[i] = cum
	}
	st := VersionStats{Requests: hi.n - lo.n, Errors: hi.e - lo.e, Latency: h}
	if q, ok := h.quantile(0.99); ok {
		st.P99 = q
	}
	return st
}

func runVerdictCase(c verdictCase, rng *rand.Rand) (runOutcome, error) {
	r, _, err := New(t0, "sim", c.spec, testService())
	if err != nil {
		return runOutcome{}, err
	}
	const every = 30 * time.Second
	bounds := probs.get(c.ladder, healthy).bounds
	var stable, canary series
	var out runOutcome
	now := t0
	weightsSince, fullAt := t0, time.Time{}
	gen := r.Generation
	for !r.State.Terminal() {
		clock := simClock{run: now.Sub(t0), sinceWeight: now.Sub(weightsSince), stage: r.Stage}
		if !fullAt.IsZero() {
			clock.full, clock.sinceFull = true, now.Sub(fullAt)
		}
		if c.stop(r, clock) || clock.run >= c.limit() {
			break
		}
		// The interval that ends at now+every runs at the weights in force now.
		w := float64(r.CanaryWeight()) / 10000
		cb, sb := c.canary(clock), c.stable(clock)
		canary.add(drawInterval(rng, c.ladder, cb, c.rps*w*every.Seconds()))
		stable.add(drawInterval(rng, c.ladder, sb, c.rps*(1-w)*every.Seconds()))
		now = now.Add(every)

		obs := goodObs(r.Generation)
		obs.Checks = nil
		// The proxies ACK the weights moments after they are set, as the runner reports
		// it: the analysis window starts then, not at the next check, so the first
		// interval of every stage (a canary's warm-up) is inside it.
		obs.Convergence.AckedAt = weightsSince.Add(ackDelay)
		obs.Window = every
		obs.Canary, obs.Stable = canary.stats(1, bounds), stable.stats(1, bounds)
		if aw := r.AnalysisWindow(now); aw > 0 {
			k := intervals(aw, every)
			obs.Analysis = Sample{Window: aw, Canary: canary.stats(k, bounds), Stable: stable.stats(k, bounds)}
			if sw := r.SustainWindow(now); sw < aw {
				k := intervals(sw, every)
				obs.Sustain = Sample{Window: sw, Canary: canary.stats(k, bounds), Stable: stable.stats(k, bounds)}
			}
		}
		var evs []Event
		r, evs = r.Step(now, obs)
		if r.Generation != gen {
			gen, weightsSince = r.Generation, now
			if r.State == StateMonitoring && fullAt.IsZero() {
				fullAt = now
				out.reachedFull, out.fullAt = true, now.Sub(t0)
			}
		}
		for _, e := range evs {
			switch e.Kind {
			case EventPaused:
				if !out.paused {
					out.paused, out.pauseAt, out.pauseStage, out.pauseReason = true, now.Sub(t0), r.Stage, e.Reason
				}
				out.pausedAtFull = out.pausedAtFull || !fullAt.IsZero()
			case EventRolledBack:
				out.rolledBack, out.rollbackAt, out.rollbackStage, out.rollbackReason = true, now.Sub(t0), r.Stage, e.Reason
				out.rolledBackAtFull = !fullAt.IsZero()
			case EventStageAdvanced:
				out.advanced = true
			}
		}
	}
	return out, nil
}

// ackDelay is how long after the weights are set every proxy has ACKed them.
const ackDelay = 200 * time.Millisecond

// intervals is how many check intervals a window reaching back d covers, the interval
// it starts in included.
func intervals(d, every time.Duration) int {
	return int((d + every - 1) / every)
}

// firstAction is the run time of the run's first pause or rollback.
func (o runOutcome) firstAction() (time.Duration, bool) {
	switch {
	case o.paused && (!o.rolledBack || o.pauseAt <= o.rollbackAt):
		return o.pauseAt, true
	case o.rolledBack:
		return o.rollbackAt, true
	}
	return 0, false
}

func runVerdicts(c verdictCase, runs int, seed uint64) (verdictStats, error) {
	rng := rand.New(rand.NewPCG(seed, 0x0c70_11))
	s := verdictStats{reasons: map[string]int{}}
	for range runs {
		o, err := runVerdictCase(c, rng)
		if err != nil {
			return s, err
		}
		s.runs++
		onset, hasOnset := c.onset, c.onset > 0
		if c.onsetAfterFull > 0 {
			// A run that never reached 100 % has no onset: nothing it did came after it.
			onset, hasOnset = o.fullAt+c.onsetAfterFull, o.reachedFull
			if !hasOnset {
				onset = c.limit()
			}
		}
		if o.rolledBack {
			s.rolledBack++
			s.reasons["rollback: "+reasonKind(o.rollbackReason)]++
			if o.rollbackAt >= onset {
				s.rollbackAfterOnset = append(s.rollbackAfterOnset, o.rollbackAt-onset)
			}
		}
		if o.paused {
			s.paused++
			s.reasons["pause: "+reasonKind(o.pauseReason)]++
			if o.pauseAt >= onset {
				s.pauseAfterOnset = append(s.pauseAfterOnset, o.pauseAt-onset)
			}
		}
		if first, acted := o.firstAction(); acted && hasOnset && first >= onset {
			s.actedAfterOnset = append(s.actedAfterOnset, first-onset)
		}
		if o.paused || o.rolledBack {
			s.pausedOrRolledBackByHorizon++
		}
		if o.reachedFull {
			s.reachedFull++
		}
		if o.pausedAtFull {
			s.pausedAtFull++
		}
		if o.rolledBackAtFull {
			s.backAtFull++
		}
	}
	return s, nil
}

func reasonKind(r string) string {
	for _, k := range []string{"grossly", "error rate", "P99 latency", "inconclusive", "maxWindow", "sample ratio"} {
		if strings.Contains(r, k) {
			return k
		}
	}
	if i := strings.IndexAny(r, ":("); i > 0 {
		return r[:i]
	}
	return r
}

func (s verdictStats) String() string {
	var keys []string
	for k := range s.reasons {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var rs []string
	for _, k := range keys {
		rs = append(rs, fmt.Sprintf("%s %d", k, s.reasons[k]))
	}
	return fmt.Sprintf("rolled back %.1f %%, paused %.1f %%, reached 100 %% %.1f %% [%s]; after onset: rollback p50 %s p95 %s, pause p50 %s p95 %s",
		s.pct(s.rolledBack), s.pct(s.paused), s.pct(s.reachedFull), strings.Join(rs, ", "),
		quantile(s.rollbackAfterOnset, 0.5), quantile(s.rollbackAfterOnset, 0.95),
		quantile(s.pauseAfterOnset, 0.5), quantile(s.pauseAfterOnset, 0.95))
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
}

func simSpec(t ReleaseType, stages ...StageSpec) Spec {
	s := testSpec(t)
	s.Warmup = nil // the default
	s.SmokeChecks = nil
	s.Waivers = []Waiver{{Item: ItemSmokeTests, Reason: "simulation", By: "sim"}}
	s.Stages = stages
	return s
}

// Stop rules.
func inStage(i int) func(Rollout, simClock) bool {
	return func(r Rollout, c simClock) bool { return r.Stage > i }
}

func untilRun(d time.Duration) func(Rollout, simClock) bool {
	return func(r Rollout, c simClock) bool { return c.run >= d }
}

func fullFor(d time.Duration) func(Rollout, simClock) bool {
	return func(r Rollout, c simClock) bool { return c.full && c.sinceFull >= d }
}

func steady(b behaviour) func(simClock) behaviour { return func(simClock) behaviour { return b } }

func atMost(pct float64, n func(verdictStats) int, what string) func(verdictStats) error {
	return func(s verdictStats) error {
		if s.pct(n(s)) > pct {
			return fmt.Errorf("%s %.1f %%, want at most %g %%", what, s.pct(n(s)), pct)
		}
		return nil
	}
}

func atLeast(pct float64, n func(verdictStats) int, what string) func(verdictStats) error {
	return func(s verdictStats) error {
		if s.pct(n(s)) < pct {
			return fmt.Errorf("%s %.1f %%, want at least %g %%", what, s.pct(n(s)), pct)
		}
		return nil
	}
}

func all(fs ...func(verdictStats) error) func(verdictStats) error {
	return func(s verdictStats) error {
		for _, f := range fs {
			if err := f(s); err != nil {
				return err
			}
		}
		return nil
	}
}

func rolledBack(s verdictStats) int   { return s.rolledBack }
func pausedAtFull(s verdictStats) int { return s.pausedAtFull }
func paused(s verdictStats) int       { return s.paused }
func pausedOrRolledBack(s verdictStats) int {
	return s.pausedOrRolledBackByHorizon
}

// atLeastWithin wants at least pct % of runs to have acted within d of the onset.
func atLeastWithin(pct float64, d time.Duration, after func(verdictStats) []time.Duration, what string) func(verdictStats) error {
	return func(s verdictStats) error {
		if n := withinAfterOnset(after(s), d); s.pct(n) < pct {
			return fmt.Errorf("%s within %s of onset in %.1f %%, want at least %g %%", what, Duration(d), s.pct(n), pct)
		}
		return nil
	}
}

func rollbacksAfterOnset(s verdictStats) []time.Duration { return s.rollbackAfterOnset }
func actionsAfterOnset(s verdictStats) []time.Duration   { return s.actedAfterOnset }

// withinAfterOnset counts the runs rolled back (or paused) within d of the onset.
func withinAfterOnset(ds []time.Duration, d time.Duration) int {
	n := 0
	for _, x := range ds {
		if x <= d {
			n++
		}
	}
	return n
}

// medianFor returns the lognormal median whose P99 is p99 at σ.
func medianFor(p99 time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(p99) / math.Exp(z(0.99)*sigma))
}

// warmingCanary is a healthy canary ×1.6 slower for the first 30 s of every stage.
func warmingCanary(c simClock) behaviour {
	if c.sinceWeight < 30*time.Second {
		return healthy.slower(1.6)
	}
	return healthy
}

func verdictCases() []verdictCase {
	minorCanary := simSpec(Minor)
	stage25 := simSpec(Minor, StageSpec{Percent: 25, MinWindow: Duration(30 * time.Minute)}, StageSpec{Percent: 50, MinWindow: Duration(30 * time.Minute)})
	noWarmup := simSpec(Minor)
	noWarmup.Warmup = new(model.ZeroableDuration)
	withHoldback := simSpec(Minor)
	withHoldback.Holdback = 200 // 2 %
	var cs []verdictCase
	for _, l := range []ladder{envoyLadder, shippedLadder} {
		cs = append(cs,
			verdictCase{name: "healthy, 5 % of 200 req/s, minor canary stage", target: "rolled back ≤ 0.5 %, paused ≤ 5 %",
				ladder: l, rps: 200, spec: minorCanary, stable: steady(healthy), canary: steady(healthy), stop: inStage(0),
				check: all(atMost(0.5, rolledBack, "rolled back"), atMost(5, paused, "paused"))},
			verdictCase{name: "healthy, 5 % of 20 req/s, minor canary stage", target: "rolled back ≤ 0.5 %, paused ≤ 5 %",
				ladder: l, rps: 20, spec: minorCanary, stable: steady(healthy), canary: steady(healthy), stop: inStage(0),
				check: all(atMost(0.5, rolledBack, "rolled back"), atMost(5, paused, "paused"))},
		)
		onBound := healthy
		bound := 250 * time.Millisecond
		if l.name == shippedLadder.name {
			bound = time.Duration(251.6 * float64(time.Millisecond))
		}
		onBound.median = medianFor(bound, onBound.sigma)
		cs = append(cs,
			verdictCase{name: fmt.Sprintf("healthy, true P99 on a bucket bound (%s), 5 %% of 200 req/s", bound), target: "rolled back ≤ 1 %",
				ladder: l, rps: 200, spec: minorCanary, stable: steady(onBound), canary: steady(onBound), stop: inStage(0),
				check: atMost(1, rolledBack, "rolled back")},
			verdictCase{name: "healthy, ×1.6 latency for the first 30 s of every stage, 200 req/s, minor release", target: "rolled back ≤ 1 %",
				ladder: l, rps: 200, spec: minorCanary, stable: steady(healthy),
				canary: warmingCanary, stop: fullFor(0), horizon: 3 * time.Hour,
				check: atMost(1, rolledBack, "rolled back")},
			verdictCase{name: "healthy, ×1.6 latency for the first 30 s of every stage, warmup: 0s, 200 req/s, minor release", target: "rolled back ≤ 1 %",
				ladder: l, rps: 200, spec: noWarmup, stable: steady(healthy), canary: warmingCanary, stop: fullFor(0), horizon: 3 * time.Hour,
				check: atMost(1, rolledBack, "rolled back")},
			verdictCase{name: "healthy, whole minor release + 4 h at 100 %, 50 req/s", target: "rolled back ≤ 1 %, any pause ≤ 10 %",
				ladder: l, rps: 50, spec: minorCanary, stable: steady(healthy), canary: steady(healthy), stop: fullFor(4 * time.Hour), horizon: 6 * time.Hour,
				check: all(atMost(1, rolledBack, "rolled back"), atMost(10, paused, "paused"))},
			verdictCase{name: "P99 +30 %, 5 % of 200 req/s, minor canary stage", target: "paused or rolled back ≥ 95 %",
				ladder: l, rps: 200, spec: minorCanary, stable: steady(healthy), canary: steady(healthy.slower(1.3)), stop: inStage(0),
				check: atLeast(95, pausedOrRolledBack, "paused or rolled back")},

			verdictCase{name: "P99 +15 %, 5 % of 200 req/s, minor canary stage", target: "rolled back ≤ 5 %; paused as power allows",
				ladder: l, rps: 200, spec: minorCanary, stable: steady(healthy), canary: steady(healthy.slower(1.15)), stop: inStage(0),
				check: atMost(5, rolledBack, "rolled back")},
			verdictCase{name: "+2 pp for 6 min from minute 10, 25 % of 200 req/s", target: "rolled back ≥ 90 %",
				ladder: l, rps: 200, spec: stage25, stable: steady(healthy), onset: 10 * time.Minute,
				canary: func(c simClock) behaviour {
					if c.run >= 10*time.Minute && c.run < 16*time.Minute {
						return healthy.errors(2.5)
					}
					return healthy
				}, stop: inStage(0),
				check: atLeast(90, rolledBack, "rolled back")},
			verdictCase{name: "+3 pp from minute 20 of a 30-min 25 % stage, 200 req/s", target: "rolled back ≥ 99 %, p95 ≤ 8 min after onset",
				ladder: l, rps: 200, spec: stage25, stable: steady(healthy), onset: 20 * time.Minute,
				canary: func(c simClock) behaviour {
					if c.run >= 20*time.Minute {
						return healthy.errors(3.5)
					}
					return healthy
				}, stop: untilRun(20*time.Minute + 8*time.Minute + 30*time.Second),
				check: atLeastWithin(99, 8*time.Minute, rollbacksAfterOnset, "rolled back")},
		)
		cycle := func(c simClock) behaviour {
			if !c.full {
				return healthy
			}
			// 0.5 % → 2 % → 0.5 % over a day.
			return healthy.errors(0.5 + 0.75*(1-math.Cos(2*math.Pi*c.sinceFull.Hours()/24)))
		}
		cs = append(cs,
			verdictCase{name: "at 100 %, both versions swing 0.5 → 2 % errors over a day, no holdback", target: "rolled back 0 %",
				ladder: l, rps: 200, spec: minorCanary, stable: cycle, canary: cycle, stop: fullFor(24 * time.Hour), horizon: 26 * time.Hour,
				check: atMost(0, rolledBack, "rolled back")},
			verdictCase{name: "at 100 %, both versions swing 0.5 → 2 % errors over a day, 2 % holdback", target: "rolled back 0 %, paused at 100 % 0 %",
				ladder: l, rps: 200, spec: withHoldback, stable: cycle, canary: cycle, stop: fullFor(24 * time.Hour), horizon: 26 * time.Hour,
				check: all(atMost(0, rolledBack, "rolled back"), atMost(0, pausedAtFull, "paused at 100 %"))},
		)
		late := func(c simClock) behaviour {
			if c.full && c.sinceFull >= 3*time.Hour {
				return healthy.errors(3.5)
			}
			return healthy
		}
		cs = append(cs,
			verdictCase{name: "at 100 %, canary +3 pp from hour 3, 2 % holdback, 200 req/s", target: "rolled back ≥ 99 % within 10 min",
				ladder: l, rps: 200, spec: withHoldback, stable: steady(healthy), canary: late, onsetAfterFull: 3 * time.Hour,
				stop: fullFor(3*time.Hour + 10*time.Minute), horizon: 5 * time.Hour,
				check: atLeastWithin(99, 10*time.Minute, rollbacksAfterOnset, "rolled back")},
			verdictCase{name: "at 100 %, canary +3 pp from hour 3, no holdback, 200 req/s", target: "paused ≥ 99 % within 10 min",
				ladder: l, rps: 200, spec: minorCanary, stable: steady(healthy), canary: late, onsetAfterFull: 3 * time.Hour,
				stop: fullFor(3*time.Hour + 10*time.Minute), horizon: 5 * time.Hour,
				check: atLeastWithin(99, 10*time.Minute, actionsAfterOnset, "paused or rolled back")},
			verdictCase{name: "5 % of 10,000 req/s: +0.05 pp", target: "paused ≤ 1 %",
				ladder: l, rps: 10000, spec: minorCanary, stable: steady(healthy), canary: steady(healthy.errors(0.55)), stop: inStage(0),
				check: atMost(1, paused, "paused")},
			verdictCase{name: "5 % of 10,000 req/s: +0.15 pp", target: "paused ≥ 99 %",
				ladder: l, rps: 10000, spec: minorCanary, stable: steady(healthy), canary: steady(healthy.errors(0.65)), stop: inStage(0),
				check: atLeast(99, paused, "paused")},
		)
		for _, size := range []int{10, 50} {
			b := healthy
			b.cluster = size
			cs = append(cs, verdictCase{name: fmt.Sprintf("healthy, errors in clusters of %d, 200 req/s, minor release", size), target: "rolled back ≤ 1 %, paused ≤ 10 %",
				ladder: l, rps: 200, spec: minorCanary, stable: steady(b), canary: steady(b), stop: fullFor(0), horizon: 3 * time.Hour,
				check: all(atMost(1, rolledBack, "rolled back"), atMost(10, paused, "paused"))})
		}
	}
	major := simSpec(Major)
	cs = append(cs,
		verdictCase{name: "healthy, 1 % of 10 req/s, 1 % stage of 15 min", target: "rolled back ≤ 1 % (holds for data, then pauses)",
			ladder: shippedLadder, rps: 10, spec: simSpec(Minor, StageSpec{Percent: 1, MinWindow: Duration(15 * time.Minute)}),
			stable: steady(healthy), canary: steady(healthy), stop: untilRun(time.Hour),
			check: atMost(1, rolledBack, "rolled back")},
		verdictCase{name: "+2 pp, 5 % of 20 req/s, major canary stage (60 min, max 120 min)", target: "rolled back ≥ 99 % within the stage",
			ladder: shippedLadder, rps: 20, spec: major, stable: steady(healthy), canary: steady(healthy.errors(2.5)), stop: inStage(0),
			check: atLeast(99, rolledBack, "rolled back")},
	)
	cs = append(cs, verdictCase{name: "P99 +50 %, 5 % of 200 req/s, minor canary stage", target: "rolled back ≥ 95 % within the stage",
		ladder: shippedLadder, rps: 200, spec: minorCanary, stable: steady(healthy), canary: steady(healthy.slower(1.5)), stop: inStage(0),
		check: atLeast(95, rolledBack, "rolled back")})
	return cs
}

func TestSimulatedVerdicts(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 runs per case; skipped with -short")
	}
	cases := verdictCases()
	rows := make([]string, len(cases))
	for i, c := range cases {
		t.Run(fmt.Sprintf("%s/%s", c.ladder.name, c.name), func(t *testing.T) {
			t.Parallel()
			s, err := runVerdicts(c, *simRuns, uint64(i+1))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s / %s: %s", c.ladder.name, c.name, s)
			verdict := "met"
			if err := c.check(s); err != nil {
				t.Error(err)
				verdict = "MISSED: " + err.Error()
			}
			after := "-"
			if (c.onset > 0 || c.onsetAfterFull > 0) && len(s.rollbackAfterOnset) > 0 {
				after = fmt.Sprintf("%s / %s", quantile(s.rollbackAfterOnset, 0.5), quantile(s.rollbackAfterOnset, 0.95))
			}
			rows[i] = fmt.Sprintf("| %s | %s | %s | %.1f %% | %s | %.1f %% (%.1f %% at 100 %%) | %s |", c.name, c.ladder.name, c.target,
				s.pct(s.rolledBack), after, s.pct(s.paused), s.pct(s.pausedAtFull), verdict)
		})
	}
	t.Cleanup(func() {
		if t.Failed() || slices.Contains(rows, "") {
			return // a failure, or only some cases run (-run): no table to compare
		}
		table := "| case | buckets | target | rolled back | rollback after onset (p50 / p95) | paused | |\n|---|---|---|---|---|---|---|\n" + strings.Join(rows, "\n") + "\n"
		readme := filepath.Join("..", "README.md")
		if *updateReadme {
			if err := replaceBetween(readme, table); err != nil {
				t.Fatal(err)
			}
			return
		}
		b, err := os.ReadFile(readme)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), beginMark+"\n"+table+endMark) {
			t.Errorf("README's verdict table differs from the simulation; run go test ./controller -run TestSimulatedVerdicts -update-readme\n%s", table)
		}
	})
}

const (
	beginMark = "<!-- verdict table: go test ./controller -run TestSimulatedVerdicts -update-readme -->"
	endMark   = "<!-- end of verdict table -->"
)

func replaceBetween(path, table string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q … %q markers", path, beginMark, endMark)
	}
	s = s[:i] + beginMark + "\n" + table + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
