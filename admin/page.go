package admin

import (
	"bytes"
	_ "embed"
	"fmt"
	"github.com/octoacme/octoroll/admin/api"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
)

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"pct":   func(w uint32) string { return fmtPct(percent(w)) },
	"ftime": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"lower": strings.ToLower,
}).Parse(pageHTML))

// recentEvents is how many events a service card lists.
const recentEvents = 12

type pageData struct {
	Title    string
	Version  string
	Now      time.Time
	Services []card
	Catalog  catalog.Status
	Ready    string
	Single   bool
	Replicas *api.Replicas
}

// card is one service on the status page.
type card struct {
	Name      string
	KnownGood string
	// Rollout is the active rollout, or the latest one when Past.
	Rollout *api.RolloutSummary
	Past    bool
	Weight  string // canary weight, "25%"
	Steps   []api.StageStep
	Chart   *chart
	Checks  []checkRow
	Thr     *thresholdsView
	// Judged is the last check's verdict and the numbers behind it; nil before one.
	Judged  *judgedView
	Proxies api.ProxyConvergence
	Events  []api.EventRecord
	Active  bool
	// Publication is set when the service's desired state is not served (see
	// ServiceSummary.Publication).
	Publication *api.Publication
	// Restore is the service's last rollback and how far its known-good weights got;
	// Restoring is true until every proxy ACKed them.
	Restore   string
	Restoring bool
}

type checkRow struct {
	Role, Version            string
	ErrorPct, P99, Requests  string
	ErrorClass, LatencyClass string
}

type thresholdsView struct {
	PauseErr, RollbackErr, PauseLat, RollbackLat, MinRequests string
}

// judgedView is the verdict of the last check: over which window, the confidence
// interval of the error-rate difference, and why.
type judgedView struct {
	Verdict, Class, Window, Difference, Reason string
}

func judged(n *controller.Numbers) *judgedView {
	if n == nil || n.Verdict == "" {
		return nil
	}
	v := &judgedView{Verdict: n.Verdict, Reason: n.Reason, Window: n.Window.String(),
		Difference: fmt.Sprintf("%+.3f pp, interval [%+.3f, %+.3f] pp", n.CanaryErrorPct-n.StableErrorPct, n.DeltaLowPP, n.DeltaHighPP)}
	switch n.Verdict {
	case controller.VerdictRollback:
		v.Class = "bad"
	case controller.VerdictPause, controller.VerdictInconclusive:
		v.Class = "warn"
	default:
		v.Class = "ok"
	}
	if n.Baseline {
		v.Window += " (stable: the baseline from the last stage)"
	}
	return v
}

// chart is the weight-over-time SVG chart.
type chart struct {
	Width, Height int
	Points        string // polyline points
	Start, End    string
	Last          string
	Ticks         []tick
}

type tick struct {
	Y     float64
	Label string
}

func fmtPct(p float64) string {
	s := fmt.Sprintf("%.2f", p)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	views := s.opts.Backend.Services()
	sort.Slice(views, func(i, j int) bool { return views[i].Service.Name < views[j].Service.Name })
	data := s.basePage("octoroll")
	for _, v := range views {
		c, err := s.card(v, nil)
		if err != nil {
			s.pageError(w, err)
			return
		}
		data.Services = append(data.Services, c)
	}
	s.render(w, data)
}

func (s *Server) rolloutPage(w http.ResponseWriter, r *http.Request) {
	ro, err := s.opts.Backend.Rollout(r.PathValue("id"))
	if err != nil {
		status, _, msg := classify(err)
		http.Error(w, msg, status)
		return
	}
	v, _ := s.opts.Backend.Service(ro.Service)
	if v.Service.Name == "" {
		v.Service.Name = ro.Service
	}
	c, err := s.card(v, &ro)
	if err != nil {
		s.pageError(w, err)
		return
	}
	data := s.basePage("octoroll · " + ro.ID)
	data.Single = true
	data.Services = []card{c}
	s.render(w, data)
}

func (s *Server) basePage(title string) pageData {
	d := pageData{Title: title, Version: s.opts.Version, Now: s.opts.Now()}
	if s.opts.CatalogStatus != nil {
		d.Catalog = s.opts.CatalogStatus()
	}
	if err := s.ready(); err != nil {
		d.Ready = err.Error()
	}
	if s.opts.Replicas != nil {
		d.Replicas = s.opts.Replicas()
	}
	return d
}

func (s *Server) pageError(w http.ResponseWriter, err error) {
	status, _, msg := classify(err)
	if status >= 500 {
		s.log.Error("status page failed", zap.Error(err))
	}
	http.Error(w, msg, status)
}

func (s *Server) render(w http.ResponseWriter, data pageData) {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, data); err != nil {
		s.log.Error("render status page", zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
	_, _ = w.Write(buf.Bytes())
}

// card builds a service card: for ro when given, else the active rollout, else the
// service's latest rollout.
func (s *Server) card(v ServiceView, ro *controller.Rollout) (card, error) {
	sum := summarizeService(v)
	c := card{Name: v.Service.Name, KnownGood: v.KnownGood, Proxies: sum.Proxies, Weight: "0%", Publication: sum.Publication}
	if d := sum.Restore; d != nil && (ro == nil || ro.ID == d.RolloutID) {
		c.Restore, c.Restoring = sum.RestoreSummary, !d.Done
		if d.NotPersisted != "" {
			c.Restore += "; not yet persisted: " + d.NotPersisted
		}
	}
	if ro == nil && v.Active != nil {
		ro = v.Active
	}
	if ro == nil {
		latest, err := s.opts.Backend.Rollouts(RolloutFilter{Service: v.Service.Name, Limit: 1})
		if err != nil {
			return c, fmt.Errorf("latest rollout of %s: %w", v.Service.Name, err)
		}
		if len(latest) > 0 {
			ro = &latest[0]
		}
	}
	if ro == nil {
		return c, nil
	}
	rs := summarizeRollout(*ro)
	c.Rollout = &rs
	c.Active = !ro.State.Terminal()
	c.Past = !c.Active
	c.Weight = fmtPct(rs.CanaryPercent)
	events, err := s.rolloutEvents(ro.ID)
	if err != nil {
		return c, err
	}
	c.Steps = timeline(*ro, events)
	c.Chart = weightChart(*ro, events, s.opts.Now())
	for i := len(events) - 1; i >= 0 && len(c.Events) < recentEvents; i-- {
		c.Events = append(c.Events, api.EventRecord{Event: events[i]})
	}
	last := ro.Progress.Last
	if c.Active && v.LastObservation != nil {
		last = v.LastObservation
	}
	thr := currentThresholds(*ro)
	c.Thr = &thresholdsView{
		PauseErr:    fmt.Sprintf("+%g pp", thr.PauseErrorRatePP),
		RollbackErr: fmt.Sprintf("+%g pp for %s", thr.RollbackErrorRatePP, thr.RollbackSustain),
		PauseLat:    fmt.Sprintf("× %g", thr.PauseLatencyRatio),
		RollbackLat: fmt.Sprintf("× %g", thr.RollbackLatencyRatio),
		MinRequests: fmt.Sprint(thr.MinRequests),
	}
	c.Checks = checkRows(*ro, last, thr)
	c.Judged = judged(last)
	return c, nil
}

func checkRows(ro controller.Rollout, n *controller.Numbers, thr controller.Thresholds) []checkRow {
	if n == nil {
		return []checkRow{
			{Role: "canary", Version: ro.Canary, ErrorPct: "–", P99: "–", Requests: "–"},
			{Role: "stable", Version: ro.Stable, ErrorPct: "–", P99: "–", Requests: "–"},
		}
	}
	errClass, latClass := "ok", "ok"
	delta := n.CanaryErrorPct - n.StableErrorPct
	switch {
	case delta > thr.RollbackErrorRatePP:
		errClass = "bad"
	case delta > thr.PauseErrorRatePP:
		errClass = "warn"
	}
	if n.StableP99 > 0 {
		ratio := float64(n.CanaryP99) / float64(n.StableP99)
		switch {
		case ratio > thr.RollbackLatencyRatio:
			latClass = "bad"
		case ratio > thr.PauseLatencyRatio:
			latClass = "warn"
		}
	}
	reqClass := func(r uint64) string {
		if r < thr.MinRequests {
			return " (below minimum)"
		}
		return ""
	}
	return []checkRow{
		{Role: "canary", Version: ro.Canary, ErrorPct: fmt.Sprintf("%.3f%%", n.CanaryErrorPct),
			P99: n.CanaryP99.String(), Requests: fmt.Sprint(n.CanaryRequests) + reqClass(n.CanaryRequests),
			ErrorClass: errClass, LatencyClass: latClass},
		{Role: "stable", Version: ro.Stable, ErrorPct: fmt.Sprintf("%.3f%%", n.StableErrorPct),
			P99: n.StableP99.String(), Requests: fmt.Sprint(n.StableRequests) + reqClass(n.StableRequests),
			ErrorClass: "ok", LatencyClass: "ok"},
	}
}

// weightChart plots the canary weight over time as a step line from r's events.
func weightChart(r controller.Rollout, events []controller.Event, now time.Time) *chart {
	type pt struct {
		t time.Time
		w uint32
	}
	var pts []pt
	for _, ev := range events {
		if ev.Time.IsZero() {
			continue
		}
		pts = append(pts, pt{ev.Time, ev.Weight})
	}
	if len(pts) == 0 {
		return nil
	}
	end := now
	if !r.EndedAt.IsZero() {
		end = r.EndedAt
	}
	if last := pts[len(pts)-1].t; end.Before(last) {
		end = last
	}
	start := pts[0].t
	span := end.Sub(start)
	if span <= 0 {
		span = time.Second
	}
	const w, h, left, top, plotW, plotH = 640, 170, 44, 10, 584, 130
	x := func(t time.Time) float64 { return left + float64(t.Sub(start))/float64(span)*plotW }
	y := func(wt uint32) float64 { return top + plotH - float64(wt)/catalog.TotalWeight*plotH }
	var b strings.Builder
	add := func(px, py float64) { fmt.Fprintf(&b, "%.1f,%.1f ", px, py) }
	prev := pts[0].w
	add(x(pts[0].t), y(prev))
	for _, p := range pts[1:] {
		add(x(p.t), y(prev))
		add(x(p.t), y(p.w))
		prev = p.w
	}
	add(x(end), y(prev))
	c := &chart{Width: w, Height: h, Points: strings.TrimSpace(b.String()),
		Start: start.UTC().Format("15:04:05"), End: end.UTC().Format("15:04:05"),
		Last: fmtPct(percent(prev))}
	for _, p := range []uint32{0, 2500, 5000, 7500, 10000} {
		c.Ticks = append(c.Ticks, tick{Y: y(p), Label: fmtPct(percent(p))})
	}
	return c
}
