package controller

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/octoacme/octoroll/model"
)

// Defaults from the release guide, and the ones the guide leaves open.
const (
	DefaultCheckInterval     = 30 * time.Second
	DefaultInconclusiveLimit = 10 * time.Minute
	DefaultAckTimeout        = 2 * time.Minute
	// DefaultAnalysisWindow caps the analysis window: the error-rate and latency tests
	// also judge the traffic since the stage's weights were ACKed (or the rollout was
	// resumed), up to this long, so that a low-traffic canary gathers enough requests
	// to be judged. At 1 canary req/s a 2-pp regression needs about an hour of requests
	// to be told from a 1-pp one with 95 % confidence.
	DefaultAnalysisWindow = time.Hour
	// DefaultWarmupChecks is the default warm-up in check intervals (Spec.Warmup): a
	// new canary's first requests are slower than its steady state, and a window that
	// starts with them would pause a healthy canary on its warm-up.
	DefaultWarmupChecks = 2
	// MaxWarmup bounds Spec.Warmup: a warm-up is minutes, not a stage.
	MaxWarmup = 30 * time.Minute
	// DefaultSourceFailureLimit is the number of consecutive checks on which the
	// metrics or alert source failed (unreachable, 5xx, timeout, no data) after which
	// the rollout pauses.
	DefaultSourceFailureLimit = 5
	// DefaultResumeWindow is how long a rollout paused at 100 % must be clean before
	// autoResume resumes it (in a stage, the stage's MinWindow is used).
	DefaultResumeWindow = 15 * time.Minute

	DefaultPauseErrorRatePP     = 0.1 // guide: error rate > 0.1 % above baseline → pause
	DefaultPauseLatencyRatio    = 1.10
	DefaultRollbackErrorRatePP  = 1.0 // guide: error rate > 1 % above baseline for 5+ min → no-go
	DefaultRollbackSustain      = 5 * time.Minute
	DefaultRollbackLatencyRatio = 1.25
	// DefaultMinRequests is the number of requests each version must serve in one check
	// window for the check to be judged at all. Below 100 the P99 of a sample is its
	// maximum and a single error moves the rate by a whole percentage point. A 1 %
	// canary reaches it in a 30 s window from about 340 req/s of total traffic; a
	// quieter service should lengthen the loop's check window or lower MinRequests.
	DefaultMinRequests = 100
	DefaultConfidence  = 0.95
	// DefaultPauseConfidence sets the pause tests' error rate (1 − 0.99), held over
	// every check of a growing window by an always-valid boundary (judge.go); the
	// no-go tests use DefaultConfidence, the gross test DefaultGrossConfidence.
	DefaultPauseConfidence = 0.99
	DefaultGrossFactor     = 5.0
	DefaultGrossConfidence = 0.999

	// DefaultFlagHeader and DefaultFlagValue form the breaking-change flag route.
	DefaultFlagHeader = "x-canary"
	DefaultFlagValue  = "always"
)

// DefaultThresholds returns the guide's thresholds with every field set.
func DefaultThresholds() Thresholds {
	return Thresholds{
		PauseErrorRatePP:     DefaultPauseErrorRatePP,
		PauseLatencyRatio:    DefaultPauseLatencyRatio,
		RollbackErrorRatePP:  DefaultRollbackErrorRatePP,
		RollbackSustain:      Duration(DefaultRollbackSustain),
		RollbackLatencyRatio: DefaultRollbackLatencyRatio,
		MinRequests:          DefaultMinRequests,
		Confidence:           DefaultConfidence,
		PauseConfidence:      DefaultPauseConfidence,
		GrossFactor:          DefaultGrossFactor,
		GrossConfidence:      DefaultGrossConfidence,
	}
}

// DefaultMonitoring returns the guide's post-release monitoring window.
func DefaultMonitoring() []Phase {
	return []Phase{
		{Name: "Immediate", Until: Duration(30 * time.Minute)},
		{Name: "Short-term", Until: Duration(4 * time.Hour)},
		{Name: "Extended", Until: Duration(24 * time.Hour)},
		{Name: "Long-term", Until: Duration(72 * time.Hour)},
	}
}

func stage(name string, weight uint32, min time.Duration) Stage {
	return Stage{Name: name, Weight: weight, MinWindow: Duration(min), MaxWindow: Duration(2 * min)}
}

// Preset returns the stage plan of a release type (without the implied 100 %), as in
// the design's preset table. strategy matters for patches only ("direct": no stages).
// Each MaxWindow is twice the MinWindow, the guide's 15-30 and 30-60 min ranges.
func Preset(t ReleaseType, strategy string) []Stage {
	major := []Stage{
		stage("canary", 500, 60*time.Minute),
		stage("10%", 1000, 30*time.Minute),
		stage("25%", 2500, 60*time.Minute),
		stage("50%", 5000, 60*time.Minute),
	}
	switch t {
	case Patch:
		if strategy == StrategyDirect {
			return []Stage{}
		}
		return []Stage{stage("canary", 500, 5*time.Minute)}
	case Minor:
		return []Stage{
			stage("canary", 500, 15*time.Minute),
			stage("25%", 2500, 30*time.Minute),
			stage("50%", 5000, 30*time.Minute),
		}
	case Major:
		return major
	case Breaking:
		flag := stage("flag", 0, 30*time.Minute)
		flag.Match = &MatchSpec{Header: DefaultFlagHeader, Value: DefaultFlagValue}
		return append([]Stage{flag}, major...)
	}
	return nil
}

// merge returns base with every non-zero field of over applied.
func (base Thresholds) merge(over Thresholds) Thresholds {
	set(&base.PauseErrorRatePP, over.PauseErrorRatePP)
	set(&base.PauseErrorRatio, over.PauseErrorRatio)
	set(&base.PauseLatencyRatio, over.PauseLatencyRatio)
	set(&base.RollbackErrorRatePP, over.RollbackErrorRatePP)
	set(&base.RollbackSustain, over.RollbackSustain)
	set(&base.RollbackLatencyRatio, over.RollbackLatencyRatio)
	set(&base.MinRequests, over.MinRequests)
	set(&base.Confidence, over.Confidence)
	set(&base.PauseConfidence, over.PauseConfidence)
	set(&base.GrossFactor, over.GrossFactor)
	set(&base.GrossConfidence, over.GrossConfidence)
	return base
}

// set assigns v to *dst unless v is the zero value ("inherit").
func set[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

func orDefault(d Duration, def time.Duration) Duration {
	if d == 0 {
		return Duration(def)
	}
	return d
}

// stageWeight converts a StageSpec's Weight or Percent to a weight out of TotalWeight.
func (s StageSpec) weight() uint32 {
	if s.Percent != 0 {
		return uint32(math.Round(s.Percent * model.TotalWeight / 100))
	}
	return s.Weight
}

func weightName(w uint32) string {
	return strconv.FormatFloat(float64(w)*100/model.TotalWeight, 'f', -1, 64) + "%"
}

// Resolve applies the preset of spec's release type and the defaults to spec. It
// validates spec first.
func Resolve(spec Spec) (Plan, error) {
	if err := spec.Validate(); err != nil {
		return Plan{}, err
	}
	return resolve(spec), nil
}

func resolve(spec Spec) Plan {
	p := Plan{
		Type:               spec.Release.Type,
		Critical:           spec.Critical,
		CheckInterval:      orDefault(spec.CheckInterval, DefaultCheckInterval),
		InconclusiveLimit:  orDefault(spec.InconclusiveLimit, DefaultInconclusiveLimit),
		AckTimeout:         orDefault(spec.AckTimeout, DefaultAckTimeout),
		AnalysisWindow:     orDefault(spec.AnalysisWindow, DefaultAnalysisWindow),
		SourceFailureLimit: spec.SourceFailureLimit,
		AutoResume:         spec.AutoResume,
		SmokeChecks:        append([]string(nil), spec.SmokeChecks...),
		Window:             spec.Window,
		Holdback:           uint32(spec.Holdback),
		Gates:              spec.Gates.Merge(Gates{}),
	}
	p.Warmup = Duration(DefaultWarmupChecks * p.CheckInterval.D())
	if spec.Warmup != nil {
		p.Warmup = Duration(*spec.Warmup)
	}
	if p.SourceFailureLimit == 0 {
		p.SourceFailureLimit = DefaultSourceFailureLimit
	}
	p.SmokeTests = resolveHTTPChecks(spec.SmokeTests, p.CheckInterval)
	p.Synthetics = resolveHTTPChecks(spec.Synthetics, p.CheckInterval)
	p.Thresholds = DefaultThresholds().merge(spec.Thresholds)
	if p.Type == Patch {
		p.Strategy = spec.Strategy
		if p.Strategy == "" {
			p.Strategy = StrategyCanary
			if spec.Critical {
				p.Strategy = StrategyDirect
			}
		}
	}
	for _, c := range spec.CustomChecks {
		if c.OnFail == "" {
			c.OnFail = OnFailPause
		}
		p.Checks = append(p.Checks, c)
	}
	if len(spec.Stages) > 0 {
		for i, s := range spec.Stages {
			w := s.weight()
			if w >= model.TotalWeight && i == len(spec.Stages)-1 {
				break // the implied 100 %
			}
			st := Stage{Name: s.Name, Weight: w, MinWindow: s.MinWindow, MaxWindow: s.MaxWindow,
				Thresholds: s.Thresholds, Approval: s.Approval}
			if st.Name == "" {
				st.Name = weightName(w)
				if s.Match != nil && w == 0 {
					st.Name = "flag"
				}
			}
			if st.MaxWindow == 0 {
				st.MaxWindow = 2 * st.MinWindow
			}
			if s.Match != nil {
				m := *s.Match
				st.Match = &m
			}
			p.Stages = append(p.Stages, st)
		}
	} else {
		p.Stages = Preset(p.Type, p.Strategy)
		if spec.Flag != nil {
			for i := range p.Stages {
				if p.Stages[i].Match != nil {
					m := *spec.Flag
					p.Stages[i].Match = &m
				}
			}
		}
	}
	if p.Stages == nil {
		p.Stages = []Stage{}
	}
	for i := range p.Stages {
		p.Stages[i].Thresholds = p.Thresholds.merge(p.Stages[i].Thresholds)
	}
	if len(spec.Monitoring) > 0 {
		for _, ph := range spec.Monitoring {
			ph.Checks = append([]Check(nil), ph.Checks...)
			for j := range ph.Checks {
				if ph.Checks[j].OnFail == "" {
					ph.Checks[j].OnFail = OnFailPause
				}
			}
			p.Monitoring = append(p.Monitoring, ph)
		}
	} else {
		p.Monitoring = DefaultMonitoring()
	}
	return p
}

// resolveHTTPChecks copies checks with the default method and timeout filled in; the
// default timeout is at most the check interval.
func resolveHTTPChecks(checks []HTTPCheck, interval Duration) []HTTPCheck {
	if len(checks) == 0 {
		return nil
	}
	out := make([]HTTPCheck, len(checks))
	for i, c := range checks {
		c.Method = strings.ToUpper(c.MethodOrDefault())
		if c.Timeout <= 0 {
			c.Timeout = min(Duration(DefaultHTTPCheckTimeout), interval)
		}
		c.Headers = maps.Clone(c.Headers)
		c.Expect.Status = slices.Clone(c.Expect.Status)
		c.Expect.JSON = slices.Clone(c.Expect.JSON)
		out[i] = c
	}
	return out
}

// String describes a plan briefly: "5% 15m0s → 25% 30m0s → 50% 30m0s → 100%".
func (p Plan) String() string {
	s := ""
	for _, st := range p.Stages {
		if st.Match != nil {
			s += fmt.Sprintf("%s %s %s → ", st.Name, st.Match, st.MinWindow)
			continue
		}
		s += fmt.Sprintf("%s %s → ", weightName(st.Weight), st.MinWindow)
	}
	if p.Holdback > 0 {
		return s + fmt.Sprintf("%s (%s held back on the previous version until the monitoring window closes) → 100%%",
			weightName(model.TotalWeight-min(p.Holdback, model.TotalWeight)), weightName(p.Holdback))
	}
	return s + "100%"
}

// String formats m as "header x-canary: always" or "cookie name=value".
func (m MatchSpec) String() string {
	if m.Cookie != "" {
		return "cookie " + m.Cookie + "=" + m.Value
	}
	return "header " + m.Header + ": " + m.Value
}

// ReportedChecks are the names of the checks whose results are reported to octoroll
// (POST …/checks), sorted: the smoke checks and the checks without a query, of the
// rollout and of every monitoring phase. octoroll evaluates the others itself.
func (p Plan) ReportedChecks() []string {
	names := slices.Clone(p.SmokeChecks)
	add := func(cs []Check) {
		for _, c := range cs {
			if c.Query == "" {
				names = append(names, c.Name)
			}
		}
	}
	add(p.Checks)
	for _, ph := range p.Monitoring {
		add(ph.Checks)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
