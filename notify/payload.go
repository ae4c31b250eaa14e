package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/report"
)

// Schema identifies the generic JSON payload; it changes only when a field is removed
// or changes meaning (fields may be added).
const Schema = "octoroll.notification/v1"

// Payload is the generic JSON body POSTed to a sink of format json, one per lifecycle
// event:
//
//	{"schema": "octoroll.notification/v1", "event": "rolled_back", "service": "checkout",
//	 "rolloutId": "…", "release": {"name", "type", "date", "stable", "canary"},
//	 "state": "rolled_back", "stage": {"index", "name", "count"},
//	 "weight": {"canary": 5000, "total": 10000, "percent": 50},
//	 "reason": "…", "actor": "…", "numbers": {…}, "checks": […], "endpoints": […],
//	 "alerts": […], "stragglers": […], "incident": {…}, "investigation": {…},
//	 "announcement": {…}, "time": "2025-03-03T10:09:00Z"}
//
// incident is set on rolled_back only, investigation on a paused event caused by
// unhealthy endpoints only, announcement on completed only.
type Payload struct {
	Schema    string           `json:"schema"`
	Event     string           `json:"event"`
	Service   string           `json:"service"`
	RolloutID string           `json:"rolloutId"`
	Release   Release          `json:"release"`
	State     controller.State `json:"state"`
	Stage     Stage            `json:"stage"`
	Weight    Weight           `json:"weight"`
	Reason    string           `json:"reason,omitempty"`
	// Actor is the person behind a command-driven event (pause, resume, promote, abort).
	Actor   string              `json:"actor,omitempty"`
	Numbers *controller.Numbers `json:"numbers,omitempty"`
	// Checks are failing check names, Endpoints unhealthy canary endpoints, Alerts
	// firing alerts and Stragglers proxies that did not acknowledge the weights.
	Checks     []string `json:"checks,omitempty"`
	Endpoints  []string `json:"endpoints,omitempty"`
	Alerts     []string `json:"alerts,omitempty"`
	Stragglers []string `json:"stragglers,omitempty"`
	// Incident is the on-call payload of a rollback.
	Incident *report.Incident `json:"incident,omitempty"`
	// Investigation is the on-call payload of a pause caused by unhealthy endpoints:
	// an incident for immediate investigation while the rollout holds its weight.
	Investigation *Investigation `json:"investigation,omitempty"`
	// Announcement is the stakeholder and support announcement of a completed release.
	Announcement *Announcement `json:"announcement,omitempty"`
	Time         time.Time     `json:"time"`
}

// Severities of an Investigation.
const SeverityIncident = "incident"

// Investigation asks on-call to investigate unhealthy endpoints at once (the release
// guide's "immediate investigation"): the rollout paused, traffic holds where it was
// and the endpoints marked unhealthy receive none.
type Investigation struct {
	// Severity is SeverityIncident.
	Severity string `json:"severity"`
	// Action tells on-call what is expected of them.
	Action string `json:"action"`
	// Trigger is the pause reason, such as "1 of 3 canary endpoints unhealthy".
	Trigger string `json:"trigger"`
	// Endpoints are the unhealthy endpoints, in the event's order.
	Endpoints []EndpointFailure `json:"endpoints"`
}

// EndpointFailure is one unhealthy endpoint. Version, LastError and Since come from
// the health checks when the notifier has them (Options.Health) and the endpoint is
// still unhealthy when the event is sent.
type EndpointFailure struct {
	Endpoint  string    `json:"endpoint"` // host:port
	Version   string    `json:"version,omitempty"`
	LastError string    `json:"lastError,omitempty"`
	Since     time.Time `json:"since,omitzero"` // first failed probe of the current run
}

// investigationAction is Investigation.Action.
const investigationAction = "investigate immediately: the rollout holds its weights while paused (an operator resumes or aborts it; with autoResume it resumes once its checks are clean again)"

// AddEndpointErrors fills p.Investigation's endpoints with the last probe error, the
// version and the time of the first failure from h, for the canary and stable versions
// of r. It does nothing when p has no investigation or h is nil.
func AddEndpointErrors(p *Payload, r controller.Rollout, h HealthSource) {
	if p.Investigation == nil || h == nil {
		return
	}
	known := map[string]EndpointFailure{}
	for _, v := range []string{r.Canary, r.Stable} {
		if v == "" {
			continue
		}
		for _, e := range h.Status(p.Service, v).Unhealthy {
			if _, dup := known[e.Endpoint]; !dup {
				known[e.Endpoint] = EndpointFailure{Endpoint: e.Endpoint, Version: v, LastError: e.LastError, Since: e.Since}
			}
		}
	}
	for i, e := range p.Investigation.Endpoints {
		if k, ok := known[e.Endpoint]; ok {
			p.Investigation.Endpoints[i] = k
		}
	}
}

// Release names the release and the versions involved.
type Release struct {
	Name   string `json:"name,omitempty"`
	Type   string `json:"type"`
	Date   string `json:"date,omitempty"`
	Stable string `json:"stable"`
	Canary string `json:"canary"`
}

// Stage is the stage after the event: its index in the plan, its name, and the number
// of stages before 100 % (index == count at 100 %).
type Stage struct {
	Index int    `json:"index"`
	Name  string `json:"name,omitempty"`
	Count int    `json:"count"`
}

// Weight is the canary weight after the event.
type Weight struct {
	Canary  uint32  `json:"canary"` // out of Total
	Total   uint32  `json:"total"`  // catalog.TotalWeight
	Percent float64 `json:"percent"`
}

// Announcement tells stakeholders and support that a release is live.
type Announcement struct {
	Title string `json:"title"`
	// Notes are the release notes of the guide's template.
	Notes     report.ReleaseNotes `json:"notes"`
	NewStable string              `json:"newStable"`
	StartedAt time.Time           `json:"startedAt,omitzero"`
	FullAt    time.Time           `json:"fullAt,omitzero"`
	// CompletedAt is when the monitoring window closed; Duration runs from StartedAt.
	CompletedAt time.Time        `json:"completedAt"`
	Duration    catalog.Duration `json:"duration,omitempty"`
}

// Build makes the payload of lifecycle event ev of rollout r (r as after ev). history
// holds the rollout's earlier events, oldest first, for the incident's time to detect;
// it may be empty.
func Build(ev controller.Event, r controller.Rollout, history []controller.Event) Payload {
	rel := r.Spec.Release
	p := Payload{
		Schema: Schema, Event: ev.Kind, Service: ev.Service, RolloutID: ev.RolloutID,
		Release: Release{Name: rel.Name, Type: string(rel.Type), Date: rel.Date, Stable: r.Stable, Canary: r.Canary},
		State:   ev.State,
		Stage:   Stage{Index: ev.Stage, Name: ev.StageName, Count: len(r.Plan.Stages)},
		Weight:  Weight{Canary: ev.Weight, Total: catalog.TotalWeight, Percent: model.Percent(ev.Weight)},
		Reason:  ev.Reason, Actor: ev.Actor, Numbers: ev.Numbers,
		Checks: ev.Checks, Endpoints: ev.Endpoints, Alerts: ev.Alerts, Stragglers: ev.Stragglers,
		Time: ev.Time,
	}
	if p.Service == "" {
		p.Service = r.Service
	}
	if p.RolloutID == "" {
		p.RolloutID = r.ID
	}
	switch ev.Kind {
	case controller.EventPaused:
		// Only health findings carry endpoints.
		if len(ev.Endpoints) > 0 {
			inv := &Investigation{Severity: SeverityIncident, Action: investigationAction, Trigger: ev.Reason}
			for _, e := range ev.Endpoints {
				inv.Endpoints = append(inv.Endpoints, EndpointFailure{Endpoint: e})
			}
			p.Investigation = inv
		}
	case controller.EventRolledBack:
		evs := append(append([]controller.Event(nil), history...), ev)
		inc := report.BuildIncident(r, evs)
		p.Incident = &inc
	case controller.EventCompleted:
		notes := report.Build(r, nil).Notes
		title := fmt.Sprintf("%s %s is live", r.Service, orStr(rel.Name, r.Canary))
		a := &Announcement{Title: title, Notes: notes, NewStable: r.Canary, StartedAt: r.StartedAt, FullAt: r.FullAt, CompletedAt: ev.Time}
		if !r.StartedAt.IsZero() {
			a.Duration = catalog.Duration(ev.Time.Sub(r.StartedAt))
		}
		p.Announcement = a
	}
	return p
}

// Encode renders p in format (catalog.FormatJSON or catalog.FormatSlack; empty is
// JSON).
func Encode(format string, p Payload) ([]byte, error) {
	switch format {
	case "", catalog.FormatJSON:
		return json.Marshal(p)
	case catalog.FormatSlack:
		return json.Marshal(Slack(p))
	}
	return nil, fmt.Errorf("unknown notification format %q", format)
}

// SlackMessage is a Slack-compatible incoming-webhook body: a plain-text fallback and
// Block Kit blocks.
type SlackMessage struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks"`
}

// SlackBlock is one Block Kit block (header, section, context or divider).
type SlackBlock struct {
	Type     string      `json:"type"`
	Text     *SlackText  `json:"text,omitempty"`
	Fields   []SlackText `json:"fields,omitempty"`
	Elements []SlackText `json:"elements,omitempty"`
}

// SlackText is a Block Kit text object.
type SlackText struct {
	Type string `json:"type"` // plain_text or mrkdwn
	Text string `json:"text"`
}

// slackTextMax keeps section texts under Block Kit's 3000-character limit.
const slackTextMax = 2900

// Slack renders p as a human-readable Slack message.
func Slack(p Payload) SlackMessage {
	name := p.Service + " " + orStr(p.Release.Name, p.Release.Canary)
	headline := headline(p, name)
	m := SlackMessage{Text: headline}
	m.Blocks = append(m.Blocks, SlackBlock{Type: "header", Text: &SlackText{Type: "plain_text", Text: clip(headline, 150)}})
	fields := []SlackText{
		md("*State*\n" + string(p.State)),
		md(fmt.Sprintf("*Canary weight*\n%s%%", trimFloat(p.Weight.Percent))),
		md(fmt.Sprintf("*Versions*\n%s → %s", p.Release.Stable, p.Release.Canary)),
	}
	if p.Stage.Name != "" {
		fields = append(fields, md(fmt.Sprintf("*Stage*\n%s (%d of %d)", p.Stage.Name, min(p.Stage.Index+1, p.Stage.Count+1), p.Stage.Count+1)))
	}
	m.Blocks = append(m.Blocks, SlackBlock{Type: "section", Fields: fields})

	var body []string
	if p.Reason != "" && p.Incident == nil && p.Investigation == nil {
		body = append(body, "*Reason:* "+p.Reason)
	}
	if n := p.Numbers; n != nil && p.Incident == nil {
		body = append(body, numbersLine(n))
	}
	if inv := p.Investigation; inv != nil {
		lines := []string{":rotating_light: *Incident — investigate immediately*", "*Trigger:* " + inv.Trigger, "*Unhealthy endpoints:*"}
		for _, e := range inv.Endpoints {
			lines = append(lines, "• "+endpointLine(e))
		}
		lines = append(lines, "The rollout holds its weight and the unhealthy endpoints get no traffic; resume or abort once understood.")
		body = append(body, strings.Join(lines, "\n"))
	} else {
		body = append(body, findings("Unhealthy endpoints", p.Endpoints))
	}
	body = append(body, findings("Failing checks", p.Checks),
		findings("Alerts", p.Alerts), findings("Proxies not acknowledging", p.Stragglers))
	if inc := p.Incident; inc != nil {
		body = append(body, ":rotating_light: *Incident — on-call, please investigate*",
			"*Trigger:* "+inc.Trigger,
			findings("Failing checks", inc.FailingChecks), findings("Failing endpoints", inc.FailingEndpoints),
			findings("Alerts", inc.Alerts))
		if inc.Numbers != nil {
			body = append(body, numbersLine(inc.Numbers))
		}
		body = append(body, fmt.Sprintf("*Time to detect:* %s (from the %s)", inc.TimeToDetect, inc.DetectedFrom))
		if inc.Restored {
			body = append(body, fmt.Sprintf("*Time to restore:* %s", inc.TimeToRestore))
		} else {
			body = append(body, "*Time to restore:* not confirmed yet")
		}
		body = append(body, fmt.Sprintf("*Traffic returned to:* %s", inc.KnownGood),
			"*Rollback plan:* "+orStr(inc.RollbackPlan, "none documented"))
	}
	if a := p.Announcement; a != nil {
		n := a.Notes
		body = append(body, "*Summary:* "+orStr(n.Summary, "—"), bullets("Notable changes", n.NotableChanges),
			bullets("Migration steps", n.MigrationSteps), bullets("Known issues", n.KnownIssues))
		if a.Duration > 0 {
			body = append(body, fmt.Sprintf("Rolled out and monitored in %s; %s is the new stable version.", a.Duration, a.NewStable))
		}
	}
	if text := joinNonEmpty(body, "\n"); text != "" {
		m.Blocks = append(m.Blocks, SlackBlock{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: clip(text, slackTextMax)}})
	}
	m.Blocks = append(m.Blocks, SlackBlock{Type: "context", Elements: []SlackText{
		md(fmt.Sprintf("rollout `%s` · %s release · %s", p.RolloutID, orStr(p.Release.Type, "?"), p.Time.UTC().Format(time.RFC3339))),
	}})
	return m
}

func headline(p Payload, name string) string {
	switch p.Event {
	case catalog.EventStarted:
		return fmt.Sprintf("Rollout started: %s (%s → %s)", name, p.Release.Stable, p.Release.Canary)
	case catalog.EventStageAdvanced:
		return fmt.Sprintf("Rollout advanced: %s at %s%% (%s)", name, trimFloat(p.Weight.Percent), p.Stage.Name)
	case catalog.EventPaused:
		if inv := p.Investigation; inv != nil {
			return fmt.Sprintf("INCIDENT: rollout paused, %s at %s%%: %d unhealthy endpoint(s), investigate now", name, trimFloat(p.Weight.Percent), len(inv.Endpoints))
		}
		return fmt.Sprintf("Rollout paused: %s at %s%%", name, trimFloat(p.Weight.Percent))
	case catalog.EventResumed:
		return fmt.Sprintf("Rollout resumed: %s at %s%%", name, trimFloat(p.Weight.Percent))
	case catalog.EventRolledBack:
		kg := p.Release.Stable
		if p.Incident != nil {
			kg = p.Incident.KnownGood
		}
		return fmt.Sprintf("ROLLED BACK: %s, all traffic back on %s", name, kg)
	case catalog.EventCompleted:
		return fmt.Sprintf("Released: %s is live", name)
	case catalog.EventMonitoringClosed:
		return fmt.Sprintf("Monitoring window closed: %s", name)
	case catalog.EventPublishFailed:
		return fmt.Sprintf("NOT PUBLISHED: %s keeps its last good resources; octoroll retries", p.Service)
	case catalog.EventPublished:
		return fmt.Sprintf("Published again: %s is served its desired state", p.Service)
	case catalog.EventFrozen:
		return "FROZEN: no rollout starts or advances on any service until unfrozen"
	case catalog.EventUnfrozen:
		return "Unfrozen: rollouts start and advance again"
	}
	return fmt.Sprintf("%s: %s", p.Event, name)
}

func numbersLine(n *controller.Numbers) string {
	return fmt.Sprintf("*Numbers:* canary %s%% errors (%d/%d), P99 %s · stable %s%% errors (%d/%d), P99 %s",
		trimFloat(n.CanaryErrorPct), n.CanaryErrors, n.CanaryRequests, n.CanaryP99,
		trimFloat(n.StableErrorPct), n.StableErrors, n.StableRequests, n.StableP99)
}

// endpointLine renders one unhealthy endpoint for Slack.
func endpointLine(e EndpointFailure) string {
	s := "`" + e.Endpoint + "`"
	if e.Version != "" {
		s += " (" + e.Version + ")"
	}
	if e.LastError != "" {
		s += ": " + clip(e.LastError, 300)
	}
	if !e.Since.IsZero() {
		s += ", failing since " + e.Since.UTC().Format(time.RFC3339)
	}
	return s
}

func findings(title string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return fmt.Sprintf("*%s:* %s", title, strings.Join(items, ", "))
}

func bullets(title string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return fmt.Sprintf("*%s:*\n• %s", title, strings.Join(items, "\n• "))
}

func md(s string) SlackText { return SlackText{Type: "mrkdwn", Text: s} }

func joinNonEmpty(parts []string, sep string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.3f", f)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func orStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
