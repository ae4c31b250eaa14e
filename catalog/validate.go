package catalog

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/octoacme/octoroll/model"
)

// Validate checks a catalog built in code (Parse validates what it reads). Zero values
// count as "not set", as they do before ApplyDefaults. Every problem is reported, joined
// with errors.Join; each is a *FieldError naming the field.
func (c *Catalog) Validate() error {
	if c == nil {
		return &FieldError{Msg: "no catalog"}
	}
	v := validator{}
	v.catalog(c)
	if len(v.errs) == 0 {
		return nil
	}
	return errors.Join(v.errs...)
}

// ApplyDefaults fills every unset field with its documented default. It may be called
// more than once.
func (c *Catalog) ApplyDefaults() {
	for i := range c.Services {
		s := &c.Services[i]
		if len(s.Domains) == 0 {
			s.Domains = []string{s.Name}
		}
		hc := &s.HealthCheck
		hc.Protocol = orString(hc.Protocol, DefaultHealthCheckProtocol)
		hc.Path = orString(hc.Path, DefaultHealthCheckPath)
		hc.Interval = orDuration(hc.Interval, DefaultHealthCheckInterval)
		hc.Timeout = orDuration(hc.Timeout, DefaultHealthCheckTimeout)
		hc.HealthyThreshold = orUint(hc.HealthyThreshold, DefaultHealthyThreshold)
		hc.UnhealthyThreshold = orUint(hc.UnhealthyThreshold, DefaultUnhealthyThreshold)
		o := &s.Outlier
		o.Consecutive5xx = orUint(o.Consecutive5xx, DefaultConsecutive5xx)
		o.Interval = orDuration(o.Interval, DefaultOutlierInterval)
		o.BaseEjectionTime = orDuration(o.BaseEjectionTime, DefaultBaseEjectionTime)
		o.MaxEjectionPercent = orUint(o.MaxEjectionPercent, DefaultMaxEjectionPercent)
		m := &s.Metrics
		m.Convention = m.EffectiveConvention()
		m.ScrapePath = m.EffectiveScrapePath()
		m.Alerts = m.EffectiveAlerts()
	}
	for i := range c.Notifications {
		c.Notifications[i].Format = orString(c.Notifications[i].Format, DefaultSinkFormat)
	}
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orDuration(d Duration, def time.Duration) Duration {
	if d <= 0 {
		return Duration(def)
	}
	return d
}

func orUint(u uint32, def uint32) uint32 {
	if u == 0 {
		return def
	}
	return u
}

// validator checks a decoded catalog. With positions (from Parse) it names file:line:col
// and tells an explicit zero from an absent field; without them zero means absent.
type validator struct {
	file    string
	pos     map[string]position
	bad     map[string]bool
	present bool
	errs    []error
}

// parent strips the last element of a field path: a.b[2] -> a.b -> a.
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

func (v *validator) at(path string) position {
	for p := path; ; p = parent(p) {
		if pos, ok := v.pos[p]; ok {
			return pos
		}
		if p == "" {
			if v.present {
				return position{1, 1}
			}
			return position{}
		}
	}
}

func (v *validator) add(path, format string, args ...any) {
	for p := path; p != ""; p = parent(p) {
		if v.bad[p] {
			// Already reported by the decoder.
			return
		}
	}
	pos := v.at(path)
	v.errs = append(v.errs, &FieldError{File: v.file, Line: pos.line, Column: pos.col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// line is the line of path for "first at line N" notes, or 0.
func (v *validator) where(path string) string {
	if p := v.at(path); p.line > 0 {
		return fmt.Sprintf(" (line %d)", p.line)
	}
	return ""
}

// explicitZero reports whether the file set path to zero (with no positions, never).
func (v *validator) explicitZero(path string, isZero bool) bool {
	if !v.present || !isZero {
		return false
	}
	_, ok := v.pos[path]
	return ok
}

func (v *validator) catalog(c *Catalog) {
	if len(c.Services) == 0 {
		v.add("services", "no services: declare at least one")
	}
	names := map[string]int{}
	ports := map[uint32]int{}
	domains := map[string]int{} // lower-cased domain -> service index
	for i := range c.Services {
		s := &c.Services[i]
		p := fmt.Sprintf("services[%d]", i)
		v.service(s, p)
		if s.Name != "" {
			if j, dup := names[s.Name]; dup {
				v.add(p+".name", "%q: duplicate service name, first declared at services[%d]%s", s.Name, j, v.where(fmt.Sprintf("services[%d].name", j)))
			} else {
				names[s.Name] = i
			}
		}
		if s.Port >= 1 && s.Port <= 65535 {
			if j, dup := ports[s.Port]; dup {
				v.add(p+".port", "port %d is also the port of services[%d] (%s): each service needs its own sidecar listener port", s.Port, j, c.Services[j].Name)
			} else {
				ports[s.Port] = i
			}
		}
		// The service name is always one of its virtual host's domains.
		if j, ok := names[s.Name]; ok && j != i {
			// A duplicate name is reported above; its domains would only repeat it.
			continue
		}
		own := map[string]string{strings.ToLower(s.Name): p + ".name"}
		for k, d := range s.Domains {
			own[strings.ToLower(d)] = fmt.Sprintf("%s.domains[%d]", p, k)
		}
		for d, dp := range own {
			if d == "" {
				continue
			}
			if j, taken := domains[d]; taken && j != i {
				v.add(dp, "domain %q is also routed to services[%d] (%s)", d, j, c.Services[j].Name)
				continue
			}
			domains[d] = i
		}
	}
	sinks := map[string]int{}
	for i := range c.Notifications {
		k := &c.Notifications[i]
		p := fmt.Sprintf("notifications[%d]", i)
		v.sink(k, p)
		if k.Name != "" {
			if j, dup := sinks[k.Name]; dup {
				v.add(p+".name", "%q: duplicate sink name, first declared at notifications[%d]", k.Name, j)
			} else {
				sinks[k.Name] = i
			}
		}
	}
	model.ValidateFreezeWindows(c.Freezes, "freezes", func(field, msg string) { v.add(field, "%s", msg) })
	sortErrors(v.errs)
}

func (v *validator) service(s *Service, p string) {
	if err := model.ValidateName(s.Name); err != nil {
		v.add(p+".name", "%s", err)
	}
	switch {
	case s.Port == 0 && !v.explicitZero(p+".port", true):
		v.add(p+".port", "required: the port an Envoy sidecar listens on for this service (1-65535)")
	case s.Port < 1 || s.Port > 65535:
		v.add(p+".port", "%d: port out of range 1-65535", s.Port)
	}
	seenDomain := map[string]int{}
	for k, d := range s.Domains {
		dp := fmt.Sprintf("%s.domains[%d]", p, k)
		if err := model.ValidateDomain(d); err != nil {
			v.add(dp, "%s", err)
			continue
		}
		if j, dup := seenDomain[strings.ToLower(d)]; dup {
			v.add(dp, "%q: duplicate domain, also domains[%d]", d, j)
			continue
		}
		seenDomain[strings.ToLower(d)] = k
	}
	if len(s.Versions) == 0 {
		v.add(p+".versions", "at least one version is required")
	}
	versions := map[string]int{}
	endpoints := map[Endpoint]string{} // endpoint -> path where first seen
	for k := range s.Versions {
		v.version(&s.Versions[k], fmt.Sprintf("%s.versions[%d]", p, k), versions, endpoints, k)
	}
	switch {
	case s.Stable == "":
		v.add(p+".stable", "required: the name of the known-good version")
	case len(s.Versions) > 0:
		if _, ok := versions[s.Stable]; !ok {
			v.add(p+".stable", "%q is not one of the versions (%s)", s.Stable, strings.Join(s.VersionNames(), ", "))
		}
	}
	v.healthCheck(&s.HealthCheck, p+".healthCheck")
	v.outlier(&s.Outlier, p+".outlierDetection")
	v.metrics(&s.Metrics, p+".metrics")
	s.Gates.Validate(p+".gates", func(field, msg string) { v.add(field, "%s", msg) })
}

func (v *validator) version(ver *Version, p string, names map[string]int, endpoints map[Endpoint]string, k int) {
	if err := model.ValidateName(ver.Name); err != nil {
		v.add(p+".name", "%s", err)
	} else if j, dup := names[ver.Name]; dup {
		v.add(p+".name", "%q: duplicate version name, first declared at versions[%d]", ver.Name, j)
	} else {
		names[ver.Name] = k
	}
	if len(ver.Endpoints) == 0 {
		v.add(p+".endpoints", "at least one endpoint (host:port) is required")
	}
	for e, ep := range ver.Endpoints {
		ip := fmt.Sprintf("%s.endpoints[%d]", p, e)
		if err := ep.Validate(); err != nil {
			v.add(ip, "%s", err.Error())
			continue
		}
		key := ep.Key()
		if first, dup := endpoints[key]; dup {
			if parent(first) == parent(ip) {
				v.add(ip, "%q: duplicate endpoint, also %s", ep.String(), first)
			} else {
				v.add(ip, "%q: endpoint also belongs to %s: a version's traffic share must reach only that version", ep.String(), first)
			}
			continue
		}
		endpoints[key] = ip
	}
	seen := map[Endpoint]int{}
	for e, ep := range ver.Metrics {
		ip := fmt.Sprintf("%s.metrics[%d]", p, e)
		if err := ep.Validate(); err != nil {
			v.add(ip, "%s", err.Error())
			continue
		}
		key := ep.Key()
		if j, dup := seen[key]; dup {
			v.add(ip, "%q: duplicate metrics endpoint, also metrics[%d]", ep.String(), j)
			continue
		}
		seen[key] = e
	}
	if err := model.ValidateZone(ver.Zone); err != nil {
		v.add(p+".zone", "%s", err)
	}
}

func (v *validator) duration(d Duration, p string) {
	if d < 0 {
		v.add(p, "%s: must be positive", d)
	}
}

func (v *validator) atLeastOne(u uint32, p string) {
	if v.explicitZero(p, u == 0) {
		v.add(p, "must be at least 1 (leave it out for the default)")
	}
}

func (v *validator) healthCheck(hc *HealthCheck, p string) {
	switch hc.Protocol {
	case "", ProtocolTCP, ProtocolHTTP, ProtocolGRPC:
	default:
		v.add(p+".protocol", "%q: unknown protocol, want tcp, http or grpc", hc.Protocol)
	}
	if hc.Path != "" && !strings.HasPrefix(hc.Path, "/") {
		v.add(p+".path", "%q: must start with '/'", hc.Path)
	}
	v.duration(hc.Interval, p+".interval")
	v.duration(hc.Timeout, p+".timeout")
	interval := orDuration(hc.Interval, DefaultHealthCheckInterval)
	timeout := orDuration(hc.Timeout, DefaultHealthCheckTimeout)
	if hc.Interval >= 0 && hc.Timeout >= 0 && timeout >= interval {
		v.add(p+".timeout", "%s must be shorter than the interval (%s)", timeout, interval)
	}
	v.atLeastOne(hc.HealthyThreshold, p+".healthyThreshold")
	v.atLeastOne(hc.UnhealthyThreshold, p+".unhealthyThreshold")
	protocol := orString(hc.Protocol, DefaultHealthCheckProtocol)
	if len(hc.ExpectedStatuses) > 0 && protocol != ProtocolHTTP {
		v.add(p+".expectedStatuses", "only used when protocol is http (protocol is %s)", protocol)
	}
	seen := map[StatusRange]int{}
	for i, r := range hc.ExpectedStatuses {
		sp := fmt.Sprintf("%s.expectedStatuses[%d]", p, i)
		if _, _, err := r.Bounds(); err != nil {
			v.add(sp, "%s", err)
			continue
		}
		if j, dup := seen[r]; dup {
			v.add(sp, "%q: duplicate, also expectedStatuses[%d]", string(r), j)
			continue
		}
		seen[r] = i
	}
	if hc.GRPCService != "" {
		if protocol != ProtocolGRPC {
			v.add(p+".grpcService", "only used when protocol is grpc (protocol is %s)", protocol)
		} else if strings.ContainsFunc(hc.GRPCService, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			v.add(p+".grpcService", "%q: no spaces or control characters (a gRPC service name such as pkg.Service)", hc.GRPCService)
		}
	}
}

func (v *validator) outlier(o *Outlier, p string) {
	v.atLeastOne(o.Consecutive5xx, p+".consecutive5xx")
	v.duration(o.Interval, p+".interval")
	v.duration(o.BaseEjectionTime, p+".baseEjectionTime")
	if o.MaxEjectionPercent > 100 {
		v.add(p+".maxEjectionPercent", "%d: must be 1-100", o.MaxEjectionPercent)
	} else {
		v.atLeastOne(o.MaxEjectionPercent, p+".maxEjectionPercent")
	}
}

// queryData has the fields a metric query template may use (see MetricQueries);
// alertData those of the alerts selector.
type (
	queryData struct{ Service, Version, Cluster, Window string }
	alertData struct{ Service string }
)

func (v *validator) metrics(m *MetricQueries, p string) {
	switch m.Convention {
	case "", ConventionEnvoy, ConventionApp:
	default:
		v.add(p+".convention", "%q: unknown convention, want %s or %s", m.Convention, ConventionEnvoy, ConventionApp)
	}
	if m.ScrapePath != "" && !strings.HasPrefix(m.ScrapePath, "/") {
		v.add(p+".scrapePath", "%q: must start with '/'", m.ScrapePath)
	}
	seen := map[Endpoint]int{}
	for i, ep := range m.Targets {
		ip := fmt.Sprintf("%s.targets[%d]", p, i)
		if err := ep.Validate(); err != nil {
			v.add(ip, "%s", err.Error())
			continue
		}
		key := ep.Key()
		if j, dup := seen[key]; dup {
			v.add(ip, "%q: duplicate target, also targets[%d]", ep.String(), j)
			continue
		}
		seen[key] = i
	}
	query := queryData{Service: "svc", Version: "v1", Cluster: "svc|v1", Window: "5m"}
	for _, q := range []struct {
		name, tmpl string
		data       any
		fields     string
	}{
		{"requests", m.Requests, query, queryFields},
		{"errorRate", m.ErrorRate, query, queryFields},
		{"latencyP99", m.LatencyP99, query, queryFields},
		{"latencyBuckets", m.LatencyBuckets, query, queryFields},
		{"alerts", m.Alerts, alertData{Service: "svc"}, ".Service"},
	} {
		if q.tmpl == "" {
			continue
		}
		if err := checkTemplate(q.tmpl, q.data, q.fields); err != nil {
			v.add(p+"."+q.name, "%s", err)
		}
	}
	names := map[string]int{}
	for i, c := range m.Checks {
		cp := fmt.Sprintf("%s.checks[%d]", p, i)
		switch {
		case c.Name == "":
			v.add(cp+".name", "required")
		default:
			if j, dup := names[c.Name]; dup {
				v.add(cp+".name", "%q: duplicate check, also checks[%d]", c.Name, j)
			}
			names[c.Name] = i
		}
		if c.Query == "" {
			v.add(cp+".query", "required")
		} else if err := checkTemplate(c.Query, query, queryFields); err != nil {
			v.add(cp+".query", "%s", err)
		}
		finite := func(f string, x *float64) {
			if x != nil {
				if err := model.ValidateFinite(*x); err != nil {
					v.add(cp+"."+f, "%s", err)
				}
			}
		}
		finite("min", c.Min)
		finite("max", c.Max)
		switch {
		case c.Min == nil && c.Max == nil:
			v.add(cp, "needs min, max or both")
		case c.Min != nil && c.Max != nil && *c.Min > *c.Max:
			v.add(cp+".max", "%v is less than min %v", *c.Max, *c.Min)
		}
		switch c.OnFail {
		case "", "pause", "rollback":
		default:
			v.add(cp+".onFail", "%q: want pause or rollback", c.OnFail)
		}
	}
	if m.Alerts != "" {
		switch {
		case strings.HasPrefix(strings.TrimSpace(m.Alerts), "{"):
			v.add(p+".alerts", "%q: write the label matchers without braces, e.g. service=\"{{.Service}}\"", m.Alerts)
		default:
			// An empty or malformed selector would match every service's alerts, or make
			// every alert query fail.
			var b strings.Builder
			if t, err := template.New("alerts").Option("missingkey=error").Parse(m.Alerts); err == nil &&
				t.Execute(&b, alertData{Service: "svc"}) == nil && !matchersRE.MatchString(b.String()) {
				v.add(p+".alerts", "%q: want PromQL label matchers such as service=\"{{.Service}}\",team=~\"pay.*\"", m.Alerts)
			}
		}
	}
}

const queryFields = ".Service, .Version, .Cluster, .Window"

// matchersRE matches a non-empty, comma-separated list of PromQL label matchers
// (name op "value"), a trailing comma allowed.
var matchersRE = func() *regexp.Regexp {
	m := `[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"`
	return regexp.MustCompile(`^\s*` + m + `(?:\s*,\s*` + m + `)*\s*,?\s*$`)
}()

// checkTemplate parses tmpl and executes it on sample data, which catches misspelt
// fields ({{.Servce}}) as well as syntax errors.
func checkTemplate(tmpl string, data any, fields string) error {
	t, err := template.New("query").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return fmt.Errorf("query template: %s", strings.TrimPrefix(err.Error(), "template: "))
	}
	if err := t.Execute(io.Discard, data); err != nil {
		return fmt.Errorf("query template (fields are %s): %s", fields, strings.TrimPrefix(err.Error(), "template: "))
	}
	return nil
}

func (v *validator) sink(k *Sink, p string) {
	if k.Name == "" {
		v.add(p+".name", "required")
	}
	if k.URL == "" {
		v.add(p+".url", "required: the webhook address")
	} else if u, err := url.Parse(k.URL); err != nil {
		v.add(p+".url", "%q: not a URL", model.RedactURL(k.URL))
	} else if u.Scheme != "http" && u.Scheme != "https" {
		v.add(p+".url", "%q: want an http or https URL", model.RedactURL(k.URL))
	} else if u.Host == "" {
		v.add(p+".url", "%q: no host", model.RedactURL(k.URL))
	}
	switch k.Format {
	case "", FormatJSON, FormatSlack:
	default:
		v.add(p+".format", "%q: unknown format, want json or slack", k.Format)
	}
	seen := map[string]int{}
	for i, e := range k.Events {
		ep := fmt.Sprintf("%s.events[%d]", p, i)
		if !IsEventName(e) {
			v.add(ep, "%q: unknown event, want one of %s", e, strings.Join(EventNames(), ", "))
			continue
		}
		if j, dup := seen[e]; dup {
			v.add(ep, "%q: duplicate event, also events[%d]", e, j)
			continue
		}
		seen[e] = i
	}
}
