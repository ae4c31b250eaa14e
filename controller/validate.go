package controller

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
	_ "time/tzdata" // deployment windows resolve IANA zones identically on every host

	"github.com/octoacme/octoroll/model"
)

// Validate checks spec on its own, without a catalog, and returns every problem found,
// each naming its field (errors.Join). Missing pre-flight items (rollback plan,
// summary, smoke checks) are not validation errors; New reports them.
func (s Spec) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	// Names, zones, endpoints and flag matches follow model's rules, the ones
	// translation applies: what is accepted here translates.
	if err := model.ValidateName(s.Service); err != nil {
		add("service", "%v", err)
	}
	switch s.Release.Type {
	case Patch, Minor, Major, Breaking:
	case "":
		add("release.type", "required (patch, minor, major or breaking)")
	default:
		add("release.type", "%q: want patch, minor, major or breaking", s.Release.Type)
	}
	if s.Release.Date != "" {
		if _, err := time.Parse(time.DateOnly, s.Release.Date); err != nil {
			add("release.date", "%q: want YYYY-MM-DD", s.Release.Date)
		}
	}
	if s.Critical && s.Release.Type != Patch {
		add("critical", "only a patch can be critical")
	}
	switch s.Strategy {
	case "":
	case StrategyDirect, StrategyCanary:
		if s.Release.Type != Patch {
			add("strategy", "only patches choose a strategy")
		}
	default:
		add("strategy", "%q: want direct or canary", s.Strategy)
	}
	if err := model.ValidateName(s.Canary.Version); err != nil {
		add("canary.version", "%v", err)
	}
	if s.Stable != "" {
		if err := model.ValidateName(s.Stable); err != nil {
			add("stable", "%v", err)
		} else if s.Stable == s.Canary.Version {
			add("stable", "%q is also the canary version", s.Stable)
		}
	}
	var eps []model.Endpoint
	for i, e := range s.Canary.Endpoints {
		ep, err := model.ParseEndpoint(e)
		if err != nil {
			add(fmt.Sprintf("canary.endpoints[%d]", i), "%v", err)
			continue
		}
		eps = append(eps, ep)
		if j := model.DuplicateEndpoint(eps, len(eps)-1); j >= 0 {
			add(fmt.Sprintf("canary.endpoints[%d]", i), "%q: duplicate endpoint, also %q", e, eps[j].String())
		}
	}
	if err := model.ValidateZone(s.Canary.Zone); err != nil {
		add("canary.zone", "%v", err)
	}
	if s.Flag != nil {
		s.Flag.validate("flag", add)
	}
	s.Thresholds.validate("thresholds", add)
	nonNegative := func(field string, d Duration) {
		if d < 0 {
			add(field, "must not be negative")
		}
	}
	nonNegative("checkInterval", s.CheckInterval)
	nonNegative("inconclusiveLimit", s.InconclusiveLimit)
	nonNegative("ackTimeout", s.AckTimeout)
	nonNegative("analysisWindow", s.AnalysisWindow)
	if s.Warmup != nil {
		nonNegative("warmup", Duration(*s.Warmup))
		if s.Warmup.D() > MaxWarmup {
			add("warmup", "%s: want at most %s", *s.Warmup, Duration(MaxWarmup))
		}
	}
	if s.Holdback > MaxHoldback {
		add("holdback", "%s: want more than 0 and at most %s (0 or unset: no holdback)", s.Holdback, MaxHoldback)
	}
	if s.SourceFailureLimit < 0 {
		add("sourceFailureLimit", "%d: must not be negative", s.SourceFailureLimit)
	}

	var prev uint32
	for i, st := range s.Stages {
		f := fmt.Sprintf("stages[%d]", i)
		if st.Weight != 0 && st.Percent != 0 {
			add(f, "weight and percent are exclusive")
		}
		if err := model.ValidateFinite(st.Percent); err != nil {
			add(f+".percent", "%v", err)
		} else if st.Percent < 0 || st.Percent > 100 {
			add(f+".percent", "%v: want 0-100", st.Percent)
		}
		w := st.weight()
		if w > model.TotalWeight {
			add(f+".weight", "%d: want at most %d", w, model.TotalWeight)
		}
		last := i == len(s.Stages)-1
		if w >= model.TotalWeight && !last {
			add(f, "only the last stage may be 100%%")
		}
		if w < prev {
			add(f+".weight", "%d is less than the previous stage's %d: weights must not decrease", w, prev)
		}
		prev = w
		if w == 0 && st.Match == nil {
			add(f, "a 0 weight stage needs a match (header or cookie flag)")
		}
		if w < model.TotalWeight && st.MinWindow <= 0 {
			add(f+".minWindow", "required and positive")
		}
		if st.MaxWindow != 0 && st.MaxWindow < st.MinWindow {
			add(f+".maxWindow", "%s is shorter than minWindow %s", st.MaxWindow, st.MinWindow)
		}
		if st.Match != nil {
			st.Match.validate(f+".match", add)
		}
		st.Thresholds.validate(f+".thresholds", add)
		// The resolved thresholds must keep rollback bounds beyond pause bounds.
		DefaultThresholds().merge(s.Thresholds).merge(st.Thresholds).validateOrder(f+".thresholds", add)
	}
	if len(s.Stages) == 0 {
		DefaultThresholds().merge(s.Thresholds).validateOrder("thresholds", add)
	}
	names := map[string]string{}
	uniq := func(field, name string) {
		if name == "" {
			add(field, "name required")
			return
		}
		if other, ok := names[name]; ok {
			add(field, "check %q already declared at %s", name, other)
			return
		}
		names[name] = field
	}
	for i, c := range s.SmokeChecks {
		uniq(fmt.Sprintf("smokeChecks[%d]", i), c)
	}
	checkCheck := func(f string, c Check) {
		uniq(f+".name", c.Name)
		switch c.OnFail {
		case "", OnFailPause, OnFailRollback:
		default:
			add(f+".onFail", "%q: want pause or rollback", c.OnFail)
		}
		c.validateQuery(f, add)
	}
	for i, c := range s.CustomChecks {
		checkCheck(fmt.Sprintf("customChecks[%d]", i), c)
	}
	interval := orDefault(s.CheckInterval, DefaultCheckInterval)
	for i, c := range s.SmokeTests {
		f := fmt.Sprintf("smokeTests[%d]", i)
		uniq(f+".name", c.Name)
		c.validate(f, interval, add)
	}
	for i, c := range s.Synthetics {
		f := fmt.Sprintf("synthetics[%d]", i)
		uniq(f+".name", c.Name)
		c.validate(f, interval, add)
	}
	var until Duration
	for i, ph := range s.Monitoring {
		f := fmt.Sprintf("monitoring[%d]", i)
		if ph.Name == "" {
			add(f+".name", "required")
		}
		if ph.Until <= until {
			add(f+".until", "%s must be after the previous phase's end %s", ph.Until, until)
		}
		until = ph.Until
		for j, c := range ph.Checks {
			checkCheck(fmt.Sprintf("%s.checks[%d]", f, j), c)
		}
	}
	if s.Window != nil {
		s.Window.validate("window", add)
	}
	s.Gates.Validate("gates", func(field, msg string) { add(field, "%s", msg) })
	for i, st := range s.Stages {
		f := fmt.Sprintf("stages[%d].approval", i)
		switch {
		case st.Approval == "":
		case st.Approval != ApprovalRequired:
			add(f, "%q: want %s (or leave it out)", st.Approval, ApprovalRequired)
		case st.weight() >= model.TotalWeight && i == len(s.Stages)-1:
			add(f, "the trailing 100%% stage has nothing to advance to: require the approval on the stage before it, whose advance sets 100%%")
		}
	}
	for i, w := range s.Waivers {
		f := fmt.Sprintf("waivers[%d]", i)
		switch w.Item {
		case ItemRollbackPlan, ItemSummary, ItemSmokeTests:
		default:
			add(f+".item", "%q: want %s, %s or %s", w.Item, ItemRollbackPlan, ItemSummary, ItemSmokeTests)
		}
		if strings.TrimSpace(w.Reason) == "" {
			add(f+".reason", "required")
		}
		if strings.TrimSpace(w.By) == "" {
			add(f+".by", "required")
		}
	}
	errs = append(errs, s.lengthErrors()...)
	return errors.Join(errs...)
}

type addFunc func(field, format string, args ...any)

// validateCanaryEndpoints checks a new canary's endpoints against the stable version of
// svc it shares the traffic with: an instance of both would take the stable share and
// the canary share, and the comparison of the two would compare it with itself.
func (s Spec) validateCanaryEndpoints(svc model.Service, stable string) []error {
	sv, ok := svc.Version(stable)
	if !ok {
		return nil
	}
	var errs []error
	for i, e := range s.Canary.Endpoints {
		ep, err := model.ParseEndpoint(e)
		if err != nil {
			continue // reported by Validate
		}
		for _, have := range sv.Endpoints {
			if have.Key() == ep.Key() {
				errs = append(errs, fmt.Errorf("canary.endpoints[%d]: %q is an endpoint of the stable version %q: a version's traffic share must reach only that version", i, e, stable))
				break
			}
		}
	}
	return errs
}

// validateQuery checks a query check's template and bounds.
func (c Check) validateQuery(f string, add addFunc) {
	for _, b := range []struct {
		name string
		v    *float64
	}{{"min", c.Min}, {"max", c.Max}} {
		if b.v != nil {
			if err := model.ValidateFinite(*b.v); err != nil {
				add(f+"."+b.name, "%v", err)
			}
		}
	}
	if c.Query == "" {
		if c.Min != nil || c.Max != nil {
			add(f+".query", "required with min or max")
		}
		return
	}
	if c.Min == nil && c.Max == nil {
		add(f, "a query check needs min, max or both")
	}
	if c.Min != nil && c.Max != nil && *c.Min > *c.Max {
		add(f+".max", "%v is less than min %v", *c.Max, *c.Min)
	}
	t, err := template.New("query").Option("missingkey=error").Parse(c.Query)
	if err != nil {
		add(f+".query", "%v", err)
		return
	}
	sample := struct{ Service, Version, Cluster, Window string }{"svc", "v2", "svc|v2", "5m"}
	if err := t.Execute(io.Discard, sample); err != nil {
		add(f+".query", "%v (the template sees .Service, .Version, .Cluster and .Window)", err)
	}
}

// isToken reports whether s is an RFC 9110 token (a method or a header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// hasCtl reports whether s has a control character (CR and LF would split a header).
func hasCtl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f })
}

// validate checks one smoke test or synthetic; interval is the rollout's check interval,
// which a request must fit in.
func (c HTTPCheck) validate(f string, interval Duration, add addFunc) {
	if c.Method != "" && !isToken(c.Method) {
		add(f+".method", "%q: not an HTTP method", c.Method)
	}
	switch {
	case c.Path == "":
		add(f+".path", "required (starts with /)")
	case !strings.HasPrefix(c.Path, "/") || strings.HasPrefix(c.Path, "//"):
		add(f+".path", "%q: must start with a single /", c.Path)
	case strings.ContainsAny(c.Path, " #") || hasCtl(c.Path):
		add(f+".path", "%q: spaces, # and control characters are not allowed", c.Path)
	default:
		if _, err := url.ParseRequestURI(c.Path); err != nil {
			add(f+".path", "%q: %v", c.Path, errors.Unwrap(err))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
		if !isToken(name) {
			add(fmt.Sprintf("%s.headers[%q]", f, name), "not a valid header name")
		}
		if hasCtl(c.Headers[name]) {
			add(fmt.Sprintf("%s.headers[%q]", f, name), "control characters are not allowed in a header value")
		}
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		switch {
		case err != nil:
			add(f+".url", "%q: %v", c.URL, errors.Unwrap(err))
		case u.Scheme != "http" && u.Scheme != "https":
			add(f+".url", "%q: want http://host:port or https://host:port", c.URL)
		case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery ||
			u.Fragment != "" || strings.ContainsAny(c.URL, "?#"):
			add(f+".url", "%q: want scheme://host[:port] only; the request path goes in path", c.URL)
		case u.Port() != "":
			if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
				add(f+".url", "%q: port %s: want 1-65535", c.URL, u.Port())
			}
		}
		if c.Port != 0 {
			add(f+".port", "applies to direct requests only, not with url")
		}
	}
	if c.Port > 65535 {
		add(f+".port", "%d: want 1-65535", c.Port)
	}
	switch {
	case c.Timeout < 0:
		add(f+".timeout", "must not be negative")
	case c.Timeout > interval:
		add(f+".timeout", "%s is longer than the check interval %s", c.Timeout, interval)
	}
	for i, st := range c.Expect.Status {
		if st < 100 || st > 599 {
			add(fmt.Sprintf("%s.expect.status[%d]", f, i), "%d: want an HTTP status 100-599", st)
		}
	}
	for i, j := range c.Expect.JSON {
		jf := fmt.Sprintf("%s.expect.json[%d].path", f, i)
		if _, err := ParseJSONPath(j.Path); err != nil {
			add(jf, "%v", err)
		}
	}
}

// ParseJSONPath splits a JSONExpect path into its keys: "items.0.id" is items, 0, id;
// "." is the body itself (no keys). An empty path or an empty key is an error.
func ParseJSONPath(path string) ([]string, error) {
	if path == "." {
		return nil, nil
	}
	if path == "" {
		return nil, errors.New("required (a dotted path such as status or items.0.id, or . for the body)")
	}
	keys := strings.Split(path, ".")
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("%q: empty key", path)
		}
	}
	return keys, nil
}

func (m MatchSpec) validate(f string, add addFunc) {
	switch {
	case (m.Header == "") == (m.Cookie == ""):
		add(f, "exactly one of header and cookie")
	case m.Header != "":
		if err := model.ValidateHeaderName(m.Header); err != nil {
			add(f+".header", "%v", err)
		}
	default:
		if err := model.ValidateCookieName(m.Cookie); err != nil {
			add(f+".cookie", "%v", err)
		}
	}
	if err := model.ValidateMatchValue(m.Value, m.Cookie != ""); err != nil {
		add(f+".value", "%v", err)
	}
}

func (t Thresholds) validate(f string, add addFunc) {
	for _, c := range []struct {
		name string
		v    float64
	}{
		{"pauseErrorRatePP", t.PauseErrorRatePP}, {"pauseLatencyRatio", t.PauseLatencyRatio},
		{"rollbackErrorRatePP", t.RollbackErrorRatePP}, {"rollbackLatencyRatio", t.RollbackLatencyRatio},
		{"confidence", t.Confidence}, {"pauseConfidence", t.PauseConfidence},
		{"grossConfidence", t.GrossConfidence}, {"grossFactor", t.GrossFactor},
	} {
		if err := model.ValidateFinite(c.v); err != nil {
			add(f+"."+c.name, "%v", err)
		}
	}
	if t.PauseErrorRatePP < 0 {
		add(f+".pauseErrorRatePP", "must not be negative")
	}
	if t.RollbackErrorRatePP < 0 {
		add(f+".rollbackErrorRatePP", "must not be negative")
	}
	if t.PauseErrorRatio != 0 && !(t.PauseErrorRatio > 1) {
		add(f+".pauseErrorRatio", "%v: want more than 1 (or unset)", t.PauseErrorRatio)
	}
	if t.PauseLatencyRatio != 0 && t.PauseLatencyRatio < 1 {
		add(f+".pauseLatencyRatio", "%v: want at least 1", t.PauseLatencyRatio)
	}
	if t.RollbackLatencyRatio != 0 && t.RollbackLatencyRatio < 1 {
		add(f+".rollbackLatencyRatio", "%v: want at least 1", t.RollbackLatencyRatio)
	}
	if t.RollbackSustain < 0 {
		add(f+".rollbackSustain", "must not be negative")
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"confidence", t.Confidence}, {"pauseConfidence", t.PauseConfidence}, {"grossConfidence", t.GrossConfidence}} {
		if c.v != 0 && (c.v < 0.5 || c.v >= 1) {
			add(f+"."+c.name, "%v: want 0.5 ≤ %s < 1", c.v, c.name)
		}
	}
	if t.GrossFactor != 0 && t.GrossFactor < 1 {
		add(f+".grossFactor", "%v: want at least 1", t.GrossFactor)
	}
}

// validateOrder checks a resolved set: a rollback bound tighter than the pause bound
// would roll back on what should only pause.
func (t Thresholds) validateOrder(f string, add addFunc) {
	if t.RollbackErrorRatePP < t.PauseErrorRatePP {
		add(f+".rollbackErrorRatePP", "%v is below pauseErrorRatePP %v", t.RollbackErrorRatePP, t.PauseErrorRatePP)
	}
	if t.RollbackLatencyRatio < t.PauseLatencyRatio {
		add(f+".rollbackLatencyRatio", "%v is below pauseLatencyRatio %v", t.RollbackLatencyRatio, t.PauseLatencyRatio)
	}
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("%q: want HH:MM (24 h)", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func (w DeploymentWindow) validate(f string, add addFunc) {
	for i, d := range w.Days {
		if _, ok := weekdays[strings.ToLower(d)]; !ok {
			add(fmt.Sprintf("%s.days[%d]", f, i), "%q: want a weekday such as mon or Monday", d)
		}
	}
	start, err1 := parseClock(w.Start)
	if err1 != nil {
		add(f+".start", "%v", err1)
	}
	end, err2 := parseClock(w.End)
	if err2 != nil {
		add(f+".end", "%v", err2)
	}
	if err1 == nil && err2 == nil && start == end {
		add(f, "start and end are equal (an empty window)")
	}
	if _, err := time.LoadLocation(w.TimeZone); err != nil {
		add(f+".timeZone", "%q: unknown IANA time zone", w.TimeZone)
	}
}

// Contains reports whether t falls inside the window. An overnight window (End before
// Start) belongs to the day it starts on. A window that does not validate contains
// nothing.
func (w DeploymentWindow) Contains(t time.Time) bool {
	start, err1 := parseClock(w.Start)
	end, err2 := parseClock(w.End)
	loc, err3 := time.LoadLocation(w.TimeZone)
	if err1 != nil || err2 != nil || err3 != nil || start == end {
		return false
	}
	t = t.In(loc)
	mins := t.Hour()*60 + t.Minute()
	dayOK := func(d time.Weekday) bool {
		if len(w.Days) == 0 {
			return true
		}
		for _, name := range w.Days {
			if weekdays[strings.ToLower(name)] == d {
				return true
			}
		}
		return false
	}
	if start < end {
		return dayOK(t.Weekday()) && mins >= start && mins < end
	}
	if mins >= start {
		return dayOK(t.Weekday())
	}
	return mins < end && dayOK(t.AddDate(0, 0, -1).Weekday())
}
