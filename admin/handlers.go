package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/octoacme/octoroll/admin/api"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/xds"
)

// Event page sizes.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 1000
	// maxTimelineEvents bounds the events read to build one rollout's timeline.
	maxTimelineEvents = 20000
)

// listServices answers with every service's summary; concurrent requests share one
// computation (see coalescer), each getting one that started after it arrived.
func (s *Server) listServices(w http.ResponseWriter, r *http.Request) error {
	body, err := s.pages.shared("api services", func() ([]byte, error) {
		views := s.opts.Backend.Services()
		out := api.ServicesResponse{Services: make([]api.ServiceSummary, 0, len(views))}
		for _, v := range views {
			out.Services = append(out.Services, summarizeService(v))
		}
		sort.Slice(out.Services, func(i, j int) bool { return out.Services[i].Name < out.Services[j].Name })
		if s.opts.CatalogStatus != nil {
			st := s.opts.CatalogStatus()
			out.Catalog = &st
		}
		if f := s.freezeStatus(); f != nil && f.Frozen {
			out.Freeze = f
		}
		if s.opts.Replicas != nil {
			out.Replicas = s.opts.Replicas()
		}
		// Compact: with a thousand services the indentation alone is a third of it.
		b, err := json.Marshal(out)
		return append(b, '\n'), err
	})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
	return nil
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	v, ok := s.opts.Backend.Service(name)
	if !ok {
		return errorf(http.StatusNotFound, api.CodeUnknownService, fmt.Sprintf("unknown service %q", name))
	}
	writeJSON(w, http.StatusOK, detailService(v))
	return nil
}

func summarizeService(v ServiceView) api.ServiceSummary {
	out := api.ServiceSummary{
		Name:           v.Service.Name,
		KnownGood:      v.KnownGood,
		Weights:        v.Weights,
		WeightsPercent: model.Percents(v.Weights),
		TotalWeight:    catalog.TotalWeight,
		Proxies: api.ProxyConvergence{
			RouteVersion: v.Convergence.RouteVersion,
			Subscribed:   v.Convergence.Subscribed,
			Acked:        v.Convergence.Acked,
			Converged:    v.Convergence.Done(),
			Stragglers:   v.Convergence.Stragglers,
			NACK:         v.Convergence.NACK,
		},
	}
	if out.Weights == nil {
		out.Weights = map[string]uint32{}
	}
	out.Versions = make([]string, 0, len(v.Service.Versions))
	for _, ver := range v.Service.Versions {
		out.Versions = append(out.Versions, ver.Name)
	}
	if v.Active != nil {
		rs := summarizeRollout(*v.Active)
		out.Active = &rs
	}
	if p := v.Publication; p != nil && (!p.OK || len(p.Stale) > 0) {
		out.Publication = &api.Publication{OK: p.OK, Error: p.Error, FailingSince: p.FailingSince, Stale: p.Stale, Fallback: p.Fallback}
	}
	if d := v.Restore; d != nil {
		out.Restore, out.RestoreSummary = d, d.Summary()
	}
	return out
}

func detailService(v ServiceView) api.ServiceDetail {
	out := api.ServiceDetail{
		ServiceSummary:  summarizeService(v),
		Catalog:         v.Service,
		Matches:         v.Matches,
		LastObservation: v.LastObservation,
	}
	if len(v.Health) > 0 {
		out.Health = make(map[string]api.VersionHealth, len(v.Health))
		for ver, h := range v.Health {
			vh := api.VersionHealth{Total: h.Total, Healthy: h.Healthy}
			for _, u := range h.Unhealthy {
				vh.Unhealthy = append(vh.Unhealthy, u.Endpoint)
			}
			out.Health[ver] = vh
		}
	}
	if v.Active != nil {
		if out.LastObservation == nil {
			out.LastObservation = v.Active.Progress.Last
		}
		t := currentThresholds(*v.Active)
		out.Thresholds = &t
	}
	return out
}

// currentThresholds are the thresholds r judges its checks with now: the current
// stage's, or the plan's at 100 %.
func currentThresholds(r controller.Rollout) controller.Thresholds {
	if st, ok := r.CurrentStage(); ok {
		return st.Thresholds
	}
	return r.Plan.Thresholds
}

func summarizeRollout(r controller.Rollout) api.RolloutSummary {
	r = redactRollout(r)
	out := api.RolloutSummary{
		ID: r.ID, Service: r.Service, Stable: r.Stable, Canary: r.Canary,
		Release: r.Spec.Release.Name, Type: string(r.Plan.Type),
		State: r.State, PausedFrom: r.PausedFrom,
		Stage: r.Stage, Stages: len(r.Plan.Stages),
		CanaryWeight: r.CanaryWeight(), Generation: r.Generation,
		Plan:         r.Plan.String(),
		LastDecision: r.Progress.LastDecision, Reason: r.Reason,
		Failing: r.Progress.Failing, Aborted: r.Aborted,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, StartedAt: r.StartedAt,
		FullAt: r.FullAt, EndedAt: r.EndedAt,
		AwaitingApproval: r.AwaitingApproval(),
	}
	if out.Type == "" {
		out.Type = string(r.Spec.Release.Type)
	}
	out.CanaryPercent = model.Percent(out.CanaryWeight)
	out.StageName = stageName(r, r.Stage)
	return out
}

// stageName names step i of r's plan; the step after the last stage is 100 %.
func stageName(r controller.Rollout, i int) string {
	if i >= 0 && i < len(r.Plan.Stages) {
		if n := r.Plan.Stages[i].Name; n != "" {
			return n
		}
		return fmt.Sprintf("%g%%", model.Percent(r.Plan.Stages[i].Weight))
	}
	return "100%"
}

// timeline builds the plan's steps (stages and the final 100 %) with when each was
// entered and left, from r's events in order.
func timeline(r controller.Rollout, events []controller.Event) []api.StageStep {
	steps := make([]api.StageStep, 0, len(r.Plan.Stages)+1)
	for i, st := range r.Plan.Stages {
		steps = append(steps, api.StageStep{Index: i, Name: stageName(r, i), Weight: st.Weight,
			Percent: model.Percent(st.Weight), MinWindow: st.MinWindow, MaxWindow: st.MaxWindow})
	}
	steps = append(steps, api.StageStep{Index: len(r.Plan.Stages), Name: "100%",
		Weight: catalog.TotalWeight, Percent: 100})
	cur := -1
	for _, ev := range events {
		if ev.State == controller.StatePending || ev.Stage < 0 || ev.Stage >= len(steps) {
			continue
		}
		if ev.State == controller.StateRolledBack || ev.State == controller.StateCompleted {
			if cur >= 0 && steps[cur].LeftAt.IsZero() {
				steps[cur].LeftAt = ev.Time
			}
			continue
		}
		if ev.Stage != cur {
			if cur >= 0 && steps[cur].LeftAt.IsZero() {
				steps[cur].LeftAt = ev.Time
			}
			cur = ev.Stage
			if steps[cur].EnteredAt.IsZero() {
				steps[cur].EnteredAt = ev.Time
			}
		}
	}
	for i := range steps {
		switch {
		case r.State == controller.StateCompleted:
			steps[i].Status = api.StepDone
		case i < r.Stage:
			steps[i].Status = api.StepDone
		case i == r.Stage && r.State == controller.StateRolledBack:
			steps[i].Status = api.StepFailed
		case i == r.Stage && r.State != controller.StatePending:
			steps[i].Status = api.StepCurrent
		default:
			steps[i].Status = api.StepPending
		}
	}
	return steps
}

// lastDecision returns the latest decision event of events.
func lastDecision(events []controller.Event) *api.DecisionView {
	for i := len(events) - 1; i >= 0; i-- {
		ev := events[i]
		if ev.Kind == controller.EventDecision || (ev.Decision != "" && ev.Numbers != nil) {
			return &api.DecisionView{Time: ev.Time, Decision: ev.Decision, Reason: ev.Reason, Numbers: ev.Numbers}
		}
	}
	return nil
}

// rolloutEvents reads every event of rollout id, oldest first.
func (s *Server) rolloutEvents(id string) ([]controller.Event, error) {
	var out []controller.Event
	var after uint64
	for len(out) < maxTimelineEvents {
		page, next, err := s.opts.Backend.Events(EventQuery{After: after, Limit: MaxEventLimit, RolloutID: id})
		if err != nil {
			return nil, fmt.Errorf("events of rollout %s: %w", id, err)
		}
		for _, e := range page {
			out = append(out, redactEvent(e.Event))
		}
		if len(page) == 0 || next <= after {
			break
		}
		after = next
	}
	return out, nil
}

func (s *Server) rolloutDetail(r controller.Rollout) (api.RolloutDetail, error) {
	r = redactRollout(r)
	events, err := s.rolloutEvents(r.ID)
	if err != nil {
		return api.RolloutDetail{}, err
	}
	return api.RolloutDetail{
		RolloutSummary: summarizeRollout(r),
		Timeline:       timeline(r, events),
		Decision:       lastDecision(events),
		Rollout:        r,
	}, nil
}

var states = []controller.State{
	controller.StatePending, controller.StateProgressing, controller.StatePaused,
	controller.StateMonitoring, controller.StateCompleted, controller.StateRolledBack,
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := RolloutFilter{Service: q.Get("service"), State: controller.State(q.Get("state"))}
	if f.State != "" && !slices.Contains(states, f.State) {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("unknown state %q", f.State))
	}
	if a := q.Get("active"); a != "" {
		b, err := strconv.ParseBool(a)
		if err != nil {
			return errorf(http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("active: %q is not a boolean", a))
		}
		f.ActiveOnly = b
	}
	limit, err := intParam(q.Get("limit"), 0, MaxEventLimit)
	if err != nil {
		return err
	}
	f.Limit = limit
	rs, err := s.opts.Backend.Rollouts(f)
	if err != nil {
		return fmt.Errorf("list rollouts: %w", err)
	}
	out := api.RolloutsResponse{Rollouts: make([]api.RolloutSummary, 0, len(rs))}
	for _, ro := range rs {
		if f.ActiveOnly && ro.State.Terminal() {
			continue
		}
		out.Rollouts = append(out.Rollouts, summarizeRollout(ro))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// intParam parses a non-negative integer parameter; empty gives def; values above max
// are clamped.
func intParam(v string, def, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errorf(http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("limit: %q is not a non-negative integer", v))
	}
	return min(n, max), nil
}

func (s *Server) startRollout(w http.ResponseWriter, r *http.Request) error {
	format, err := bodyFormat(r, true)
	if err != nil {
		return err
	}
	data, err := readBody(w, r)
	if err != nil {
		return err
	}
	spec, err := DecodeSpec(data, format)
	if err != nil {
		return err
	}
	if o := strings.TrimSpace(r.URL.Query().Get(api.OverrideFreezeParam)); o != "" {
		spec.OverrideFreeze = o
	}
	ro, err := s.opts.Backend.Start(r.Context(), spec, actor(r))
	switch {
	case err != nil && spec.Service == "":
		return fmt.Errorf("start rollout: %w", err)
	case err != nil:
		return fmt.Errorf("start rollout of %s: %w", spec.Service, err)
	}
	d, err := s.rolloutDetail(ro)
	if err != nil {
		return err
	}
	w.Header().Set("Location", api.APIPrefix+"/rollouts/"+ro.ID)
	writeJSON(w, http.StatusCreated, d)
	return nil
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) error {
	ro, err := s.opts.Backend.Rollout(r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("rollout %s: %w", r.PathValue("id"), err)
	}
	d, err := s.rolloutDetail(ro)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) action(w http.ResponseWriter, r *http.Request) error {
	name, kind := r.PathValue("name"), controller.CommandKind(r.PathValue("action"))
	if !slices.Contains(api.Actions, kind) {
		return errorf(http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("unknown action %q: one of %s", kind, actionList()))
	}
	var req api.ActionRequest
	if err := readJSON(w, r, &req, true); err != nil {
		return err
	}
	reason, err := trimReason(req.Reason)
	if err != nil {
		return err
	}
	req.Reason = reason
	if kind == controller.CmdAbort && req.Reason == "" {
		return errorf(http.StatusBadRequest, api.CodeReasonRequired, "abort needs a reason")
	}
	if _, ok := s.opts.Backend.Service(name); !ok {
		return errorf(http.StatusNotFound, api.CodeUnknownService, fmt.Sprintf("unknown service %q", name))
	}
	ro, err := s.opts.Backend.Command(r.Context(), name, controller.Command{
		Kind: kind, Actor: actor(r), Reason: req.Reason, Force: req.Force, OverrideFreeze: strings.TrimSpace(req.OverrideFreeze)})
	status, warning := http.StatusOK, ""
	switch {
	case errors.Is(err, runner.ErrNotPersisted):
		// Applied and published; the store takes it when it works again.
		status, warning = http.StatusAccepted, err.Error()
	case err != nil:
		return fmt.Errorf("%s %s: %w", kind, name, err)
	}
	if ro.State == controller.StateRolledBack {
		s.awaitRestore(r.Context(), name, ro.ID)
	}
	d, err := s.rolloutDetail(ro)
	if err != nil {
		return err
	}
	d.Warning = warning
	if v, ok := s.opts.Backend.Service(name); ok && v.Restore != nil && v.Restore.RolloutID == ro.ID {
		d.Restore, d.RestoreSummary = v.Restore, v.Restore.Summary()
	}
	writeJSON(w, status, d)
	return nil
}

// restoreWait bounds how long an action that rolled back waits for the proxies to ACK
// the known-good weights before it answers with how far they got.
const restoreWait = 3 * time.Second

// awaitRestore waits until the service's restore of rollout id is done, cannot progress
// by waiting (not published, no proxy subscribed), or restoreWait passed.
func (s *Server) awaitRestore(ctx context.Context, service, id string) {
	ctx, cancel := context.WithTimeout(ctx, restoreWait)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		v, ok := s.opts.Backend.Service(service)
		if !ok || v.Restore == nil || v.Restore.RolloutID != id {
			return
		}
		if d := v.Restore; d.Done || d.Subscribed == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func actionList() string {
	names := make([]string, len(api.Actions))
	for i, a := range api.Actions {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

func (s *Server) reportCheck(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var req api.CheckRequest
	if err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if strings.TrimSpace(req.Name) == "" {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "name: a check name is required")
	}
	for _, f := range []struct {
		field, v string
		max      int
	}{{"name", req.Name, model.MaxLabelLen}, {"detail", req.Detail, model.MaxTextLen}} {
		if err := model.CheckLength(f.field, f.v, f.max); err != nil {
			return errorf(http.StatusBadRequest, api.CodeBadRequest, err.Error())
		}
	}
	if _, ok := s.opts.Backend.Service(name); !ok {
		return errorf(http.StatusNotFound, api.CodeUnknownService, fmt.Sprintf("unknown service %q", name))
	}
	err := s.opts.Backend.ReportCheck(r.Context(), name, controller.CheckResult{Name: req.Name, Passed: req.Passed, Detail: req.Detail})
	if err != nil {
		return fmt.Errorf("report check %s of %s: %w", req.Name, name, err)
	}
	writeJSON(w, http.StatusOK, api.CheckResponse{Service: name, Name: req.Name, Passed: req.Passed})
	return nil
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var after uint64
	if a := q.Get("after"); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("after: %q is not a cursor", a))
		}
		after = n
	}
	limit, err := intParam(q.Get("limit"), DefaultEventLimit, MaxEventLimit)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = DefaultEventLimit
	}
	evs, next, err := s.opts.Backend.Events(EventQuery{After: after, Limit: limit,
		RolloutID: q.Get("rollout"), Service: q.Get("service"), Kind: q.Get("kind")})
	if err != nil {
		return fmt.Errorf("list events: %w", err)
	}
	out := api.EventsResponse{Events: make([]api.EventRecord, 0, len(evs)), Next: next}
	for _, e := range evs {
		out.Events = append(out.Events, api.NewEventRecord(e.Seq, redactEvent(e.Event)))
	}
	if out.Next < after {
		out.Next = after
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listProxies(w http.ResponseWriter, r *http.Request) error {
	out := api.ProxiesResponse{}
	if s.opts.Proxies != nil {
		out.Proxies = s.opts.Proxies()
	}
	if out.Proxies == nil {
		out.Proxies = []xds.ProxyStatus{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// proxyConfig is GET /api/v1/proxies/{id}/config: the resources sent to and ACKed by
// one connected proxy, per type, like Envoy's config_dump.
func (s *Server) proxyConfig(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if s.opts.ProxyConfig == nil {
		return errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "proxy config dumps are not available in this server")
	}
	pc, ok := s.opts.ProxyConfig(id)
	if !ok {
		return errorf(http.StatusNotFound, api.CodeUnknownProxy, fmt.Sprintf("no connected proxy with node id %q", id))
	}
	writeJSON(w, http.StatusOK, pc)
	return nil
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	ro, err := s.opts.Backend.Rollout(id)
	if err != nil {
		return fmt.Errorf("rollout %s: %w", id, err)
	}
	if s.opts.Report == nil {
		return errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "release reports are not available in this server")
	}
	events, err := s.rolloutEvents(id)
	if err != nil {
		return err
	}
	md, doc := s.opts.Report(ro, events)
	if prefersMarkdown(r.Header.Get("Accept")) {
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Vary", "Accept")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(md)
		return nil
	}
	w.Header().Set("Vary", "Accept")
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// prefersMarkdown reports whether an Accept header ranks text/markdown above JSON.
func prefersMarkdown(accept string) bool {
	md, js := acceptQ(accept, "text", "markdown"), acceptQ(accept, "application", "json")
	return md > js
}

// acceptQ returns the quality an Accept header gives typ/sub (its most specific
// matching range; 0 when none matches).
func acceptQ(accept, typ, sub string) float64 {
	best, bestSpec := 0.0, -1
	for _, part := range strings.Split(accept, ",") {
		fields := strings.Split(part, ";")
		mr := strings.ToLower(strings.TrimSpace(fields[0]))
		t, st, ok := strings.Cut(mr, "/")
		if !ok {
			continue
		}
		spec := -1
		switch {
		case t == typ && st == sub:
			spec = 2
		case t == typ && st == "*":
			spec = 1
		case t == "*" && st == "*":
			spec = 0
		}
		if spec < 0 || spec < bestSpec {
			continue
		}
		q := 1.0
		for _, p := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		best, bestSpec = q, spec
	}
	return best
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	out := api.StatusResponse{Version: s.opts.Version, Time: s.opts.Now()}
	if s.opts.CatalogStatus != nil {
		out.Catalog = s.opts.CatalogStatus()
	}
	if s.opts.XDSStats != nil {
		out.XDS = s.opts.XDSStats()
	}
	if err := s.ready(); err != nil {
		out.Ready = err.Error()
	}
	for _, v := range s.opts.Backend.Services() {
		if p := v.Publication; p != nil && !p.OK {
			out.PublishFailures = append(out.PublishFailures, api.PublishFailure{Service: v.Service.Name, Error: model.RedactText(p.Error), Since: p.FailingSince})
		}
	}
	out.Freeze = s.freezeStatus()
	if s.opts.Replicas != nil {
		out.Replicas = s.opts.Replicas()
	}
	if out.Auth = s.opts.Tokens.Status(); out.Auth != nil {
		out.Auth.ReadsNeedToken = s.readsNeedToken()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) ready() error {
	if s.opts.Ready == nil {
		return nil
	}
	return s.opts.Ready()
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, api.HealthResponse{Status: "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if err := s.ready(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, api.HealthResponse{Status: "not ready", Error: err.Error()})
		return nil
	}
	writeJSON(w, http.StatusOK, api.HealthResponse{Status: "ok"})
	return nil
}
