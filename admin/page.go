package admin

import (
	"bytes"
	_ "embed"
	"fmt"
	"github.com/octoacme/octoroll/admin/api"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"pct":   func(w uint32) string { return fmtPct(model.Percent(w)) },
	"ftime": ftime,
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
	// Freeze is the freeze switch; shown while Frozen.
	Freeze *api.FreezeStatus
	// Summary is one row per service, shown above the cards when there are many.
	Summary []summaryRow
	// Idle are the services without a rollout or a problem, listed by name below it.
	Idle []string
	// Counts are the services by state, for the summary's heading.
	Counts string
	// Pages are links to the pages of cards; Page is the current one (1-based).
	Pages []int
	Page  int
	// Hidden is how many services have no card on this page (idle ones and other pages).
	Hidden int
	// NACKing are the connected proxies that rejected a response.
	NACKing []nackRow
	// Service is set on one service's page (?service=NAME): its history follows.
	Service  string
	History  []historyRow
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
	Charts  []*chart
	Checks  []checkRow
	Thr     *thresholdsView
	// Judged is the last check's verdict and the numbers behind it; nil before one.
	Judged *judgedView
	// Decided are the numbers of the check that rolled the rollout back.
	Decided *decidedView
	Proxies api.ProxyConvergence
	// ProxyClass is ok, warn (not every proxy, or none at all: nobody serves the
	// weights) or bad (a proxy rejected them); ProxyText says which.
	ProxyClass, ProxyText string
	Health                []healthRow
	Events                []api.EventRecord
	Active                bool
	// Phase is the monitoring phase or the stage's window and the time left.
	Phase string
	// Buttons are the operator commands, enabled when the rollout's state allows them.
	Buttons []button
	// Publication is set when the service's desired state is not served (see
	// ServiceSummary.Publication).
	Publication *api.Publication
	// Restore is the service's last rollback and how far its known-good weights got;
	// Restoring is true until every proxy ACKed them.
	Restore   string
	Restoring bool
}

type button struct {
	Action, Label, Class string
	Enabled              bool
}

type healthRow struct {
	Version, Text, Class string
}

type nackRow struct {
	Node, Type, Message string
	Count               int
	At                  time.Time
}

type summaryRow struct {
	Name, State, Weight, Versions, Stage, Proxies, ProxyClass, Reason string
	Card                                                              bool
}

type historyRow struct {
	ID, State, Started, Ended, Weight, Reason string
	Decided                                   *decidedView
}

// decidedView are the numbers that decided a rollback.
type decidedView struct {
	Canary, Stable, Difference, P99 string
}

func decided(n *controller.Numbers) *decidedView {
	if n == nil {
		return nil
	}
	return &decidedView{
		Canary:     fmt.Sprintf("%.3f%% of %d", n.CanaryErrorPct, n.CanaryRequests),
		Stable:     fmt.Sprintf("%.3f%% of %d", n.StableErrorPct, n.StableRequests),
		Difference: fmt.Sprintf("%+.3f pp, interval [%+.3f, %+.3f] pp over %s", n.CanaryErrorPct-n.StableErrorPct, n.DeltaLowPP, n.DeltaHighPP, n.Window),
		P99:        fmt.Sprintf("%s vs %s", n.CanaryP99, n.StableP99),
	}
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

func fmtPct(p float64) string {
	s := fmt.Sprintf("%.2f", p)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

// Page sizes: a summary table above the cards from summaryFrom services on; every
// service has a card up to cardsPerPage services, beyond that only the ones with an
// active rollout (or a failing publication, or a restore under way), cardsPerPage a page.
const (
	summaryFrom  = 6
	cardsPerPage = 20
)

// pageState is what the status page and the services API keep between requests.
type pageState struct {
	index *pageIndex
	mu    sync.Mutex
	// renders coalesces concurrent requests for the same view (see coalescer).
	renders map[string]*coalescer[[]byte]
}

func newPageState(b Backend) *pageState {
	return &pageState{index: newPageIndex(b), renders: map[string]*coalescer[[]byte]{}}
}

// shared returns the result of f for key, computed once for concurrent callers.
func (p *pageState) shared(key string, f func() ([]byte, error)) ([]byte, error) {
	p.mu.Lock()
	c := p.renders[key]
	if c == nil {
		c = &coalescer[[]byte]{}
		p.renders[key] = c
	}
	p.mu.Unlock()
	return c.do(f)
}

// page is the status page: GET /, ?page=N for the next cards, ?service=NAME for one
// service with its rollout history.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	service := q.Get("service")
	pageNo := 1
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			http.Error(w, fmt.Sprintf("page: %q is not a page number", p), http.StatusBadRequest)
			return
		}
		pageNo = n
	}
	if service != "" {
		if _, ok := s.opts.Backend.Service(service); !ok {
			http.Error(w, fmt.Sprintf("unknown service %q", service), http.StatusNotFound)
			return
		}
	}
	key := fmt.Sprintf("page %d %s", pageNo, service)
	body, err := s.pages.shared(key, func() ([]byte, error) { return s.renderPage(pageNo, service) })
	if err != nil {
		s.pageError(w, err)
		return
	}
	s.writePage(w, body)
}

func (s *Server) renderPage(pageNo int, service string) ([]byte, error) {
	if err := s.pages.index.sync(); err != nil {
		return nil, err
	}
	views := s.opts.Backend.Services()
	sort.Slice(views, func(i, j int) bool { return views[i].Service.Name < views[j].Service.Name })
	data := s.basePage("octoroll")
	data.NACKing = s.nacking()
	if service != "" {
		data.Title, data.Service, data.Single = "octoroll · "+service, service, true
		for _, v := range views {
			if v.Service.Name == service {
				c, err := s.card(v, nil)
				if err != nil {
					return nil, err
				}
				data.Services = []card{c}
			}
		}
		for _, h := range s.pages.index.history(service) {
			data.History = append(data.History, historyRow{ID: h.ID, State: string(h.State),
				Started: h.Started.UTC().Format("2006-01-02 15:04:05"), Ended: ftime(h.Ended),
				Weight: fmtPct(model.Percent(h.Weight)), Reason: h.Reason, Decided: decided(h.Decided)})
		}
		return s.execute(data)
	}
	// Which services get a card: all of them when few, else those that need one.
	carded := views
	if len(views) > cardsPerPage {
		carded = nil
		for _, v := range views {
			if v.Active != nil || (v.Publication != nil && !v.Publication.OK) || (v.Restore != nil && !v.Restore.Done) {
				carded = append(carded, v)
			}
		}
		// Those that need a person first: paused, then restoring or not published, then the rest.
		rank := func(v ServiceView) int {
			switch {
			case v.Active != nil && v.Active.State == controller.StatePaused:
				return 0
			case v.Active == nil || (v.Publication != nil && !v.Publication.OK):
				return 1
			}
			return 2
		}
		sort.SliceStable(carded, func(i, j int) bool { return rank(carded[i]) < rank(carded[j]) })
	}
	pages := max(1, (len(carded)+cardsPerPage-1)/cardsPerPage)
	if pageNo > pages {
		return nil, errorf(http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("page %d: there are %d", pageNo, pages))
	}
	data.Page = pageNo
	if pages > 1 {
		for i := 1; i <= pages; i++ {
			data.Pages = append(data.Pages, i)
		}
	}
	from, to := (pageNo-1)*cardsPerPage, min(pageNo*cardsPerPage, len(carded))
	onPage := map[string]bool{}
	for _, v := range carded[from:to] {
		c, err := s.card(v, nil)
		if err != nil {
			return nil, err
		}
		onPage[c.Name] = true
		data.Services = append(data.Services, c)
	}
	data.Hidden = len(views) - len(data.Services)
	if len(views) >= summaryFrom && data.Summary == nil {
		counts := map[string]int{}
		for _, v := range views {
			row := summaryRowOf(v)
			row.Card = onPage[row.Name]
			if v.Active == nil && row.Reason == "" {
				// The last rollout rolled back: why, with the numbers that decided it,
				// stays in the summary until the next rollout.
				if h, ok := s.pages.index.rolledBack(row.Name); ok {
					row.Reason = "last rollout rolled back: " + h.Reason
					if d := decided(h.Decided); d != nil {
						row.Reason += fmt.Sprintf(" (canary %s vs stable %s)", d.Canary, d.Stable)
					}
				}
			}
			counts[row.State]++
			if row.State == "idle" && row.ProxyClass != "bad" && row.Reason == "" {
				data.Idle = append(data.Idle, row.Name) // listed by name only
				continue
			}
			data.Summary = append(data.Summary, row)
		}
		var parts []string
		for _, st := range append([]string{"idle"}, stateNames[1:]...) {
			if counts[st] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
			}
		}
		data.Counts = fmt.Sprintf("%d services: %s", len(views), strings.Join(parts, ", "))
	}
	return s.execute(data)
}

func summaryRowOf(v ServiceView) summaryRow {
	row := summaryRow{Name: v.Service.Name, State: "idle", Weight: "0%", Versions: v.KnownGood}
	row.ProxyClass, row.Proxies = proxyState(v.Convergence.Subscribed, v.Convergence.Acked, v.Convergence.NACK != nil, v.Active != nil)
	if a := v.Active; a != nil {
		row.State = string(a.State)
		row.Weight = fmtPct(model.Percent(a.CanaryWeight()))
		row.Versions = a.Stable + " → " + a.Canary
		row.Stage = fmt.Sprintf("%s (%d of %d)", stageName(*a, a.Stage), min(a.Stage+1, len(a.Plan.Stages)+1), len(a.Plan.Stages)+1)
		row.Reason = a.Reason
	}
	if p := v.Publication; p != nil && !p.OK {
		row.Reason = "not published: " + p.Error
	}
	return row
}

// proxyState classes a convergence: every subscribed proxy ACKed is ok; none subscribed
// is a warning (nobody serves the weights), as is a proxy behind; a rejection is bad.
func proxyState(subscribed, acked int, nack, active bool) (class, text string) {
	text = fmt.Sprintf("proxies converged %d of %d", acked, subscribed)
	switch {
	case nack:
		return "bad", text + ", rejected"
	case subscribed == 0 && active:
		return "warn", text + ": no proxy serves these weights"
	case subscribed == 0:
		return "warn", text + ": no proxy subscribed"
	case acked < subscribed:
		return "warn", text
	}
	return "ok", text
}

// nacking lists the connected proxies that rejected a response.
func (s *Server) nacking() []nackRow {
	if s.opts.Proxies == nil {
		return nil
	}
	var out []nackRow
	for _, p := range s.opts.Proxies() {
		if p.NACKs == 0 {
			continue
		}
		row := nackRow{Node: p.NodeID, Count: p.NACKs}
		if n := p.LastNACK; n != nil {
			row.Type, row.Message, row.At = n.TypeURL[strings.LastIndex(n.TypeURL, ".")+1:], n.Message, n.At
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
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
	body, err := s.execute(data)
	if err != nil {
		s.pageError(w, err)
		return
	}
	s.writePage(w, body)
}

func (s *Server) basePage(title string) pageData {
	d := pageData{Title: title, Version: s.opts.Version, Now: s.opts.Now()}
	if s.opts.CatalogStatus != nil {
		d.Catalog = s.opts.CatalogStatus()
	}
	if err := s.ready(); err != nil {
		d.Ready = err.Error()
	}
	d.Freeze = s.freezeStatus()
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

func (s *Server) execute(data pageData) ([]byte, error) {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render status page: %w", err)
	}
	return buf.Bytes(), nil
}

func (s *Server) writePage(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
	_, _ = w.Write(body)
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
	for _, ver := range v.Service.Versions {
		h, ok := v.Health[ver.Name]
		if !ok || h.Total == 0 {
			continue
		}
		row := healthRow{Version: ver.Name, Class: "ok", Text: fmt.Sprintf("%d of %d endpoints healthy", h.Healthy, h.Total)}
		if len(h.Unhealthy) > 0 {
			row.Class = "bad"
			var eps []string
			for _, u := range h.Unhealthy {
				eps = append(eps, u.Endpoint)
			}
			row.Text += "; unhealthy: " + strings.Join(eps, ", ")
		} else if h.Healthy < h.Total {
			row.Class = "warn"
		}
		if undecided := h.Total - h.Healthy - len(h.Unhealthy); undecided > 0 {
			row.Text += fmt.Sprintf("; %d not yet decided", undecided)
		}
		c.Health = append(c.Health, row)
	}
	var events []controller.Event
	if ro == nil {
		var err error
		if ro, events, err = s.pages.index.latest(v.Service.Name, v.Active); err != nil {
			return c, err
		}
	} else if evs, ok := s.pages.index.events(ro.Service, ro.ID); ok {
		events = evs
	} else {
		var err error
		if events, err = s.rolloutEvents(ro.ID); err != nil {
			return c, err
		}
	}
	c.ProxyClass, c.ProxyText = proxyState(c.Proxies.Subscribed, c.Proxies.Acked, c.Proxies.NACK != nil, ro != nil && !ro.State.Terminal())
	if n := c.Proxies.NACK; n != nil {
		c.ProxyText += fmt.Sprintf(": %s rejected route %s: %s", n.NodeID, n.Version, n.Message)
	}
	if ro == nil {
		return c, nil
	}
	now := s.opts.Now()
	rs := summarizeRollout(*ro)
	c.Rollout = &rs
	c.Active = !ro.State.Terminal()
	c.Past = !c.Active
	c.Weight = fmtPct(rs.CanaryPercent)
	c.Steps = timeline(*ro, events)
	c.Phase = phase(*ro, now)
	buttons := []button{
		{Action: string(controller.CmdPause), Label: "Pause"},
		{Action: string(controller.CmdResume), Label: "Resume"},
		{Action: string(controller.CmdPromote), Label: "Promote"},
		{Action: string(controller.CmdPromoteFull), Label: "Promote to 100%"},
		{Action: string(controller.CmdFinish), Label: "Finish"},
		{Action: string(controller.CmdAbort), Label: "Abort", Class: "danger"},
	}
	if ro.AwaitingApproval() {
		buttons = append(buttons[:3:3], append([]button{{Action: string(controller.CmdApprove), Label: "Approve"}}, buttons[3:]...)...)
	}
	for _, b := range buttons {
		b.Enabled = c.Active && ro.Allows(now, controller.CommandKind(b.Action))
		c.Buttons = append(c.Buttons, b)
	}
	for i := len(events) - 1; i >= 0 && len(c.Events) < recentEvents; i-- {
		c.Events = append(c.Events, api.NewEventRecord(0, events[i]))
	}
	last := ro.Progress.Last
	if c.Active && v.LastObservation != nil && v.Active != nil && v.Active.ID == ro.ID {
		last = v.LastObservation
	}
	c.Charts = rolloutCharts(*ro, events, last, now)
	if ro.State == controller.StateRolledBack {
		for i := len(events) - 1; i >= 0; i-- {
			if events[i].Kind == controller.EventRolledBack {
				c.Decided = decided(events[i].Numbers)
				if events[i].Numbers != nil {
					last = events[i].Numbers
				}
				break
			}
		}
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

// phase says where the rollout is in time: the monitoring phase and the time left, or
// the stage's window monitored so far.
func phase(r controller.Rollout, now time.Time) string {
	state := r.State
	if state == controller.StatePaused {
		state = r.PausedFrom
	}
	switch {
	case state == controller.StateMonitoring && len(r.Plan.Monitoring) > 0 && !r.FullAt.IsZero():
		i := min(max(r.Phase, 0), len(r.Plan.Monitoring)-1)
		ph := r.Plan.Monitoring[i]
		end := r.FullAt.Add(r.Plan.Monitoring[len(r.Plan.Monitoring)-1].Until.D())
		return fmt.Sprintf("monitoring phase %s (%d of %d) until %s after 100%%: %s left of it, %s left of the monitoring window",
			ph.Name, i+1, len(r.Plan.Monitoring), ph.Until, roundDur(max(0, r.FullAt.Add(ph.Until.D()).Sub(now))), roundDur(max(0, end.Sub(now))))
	case state == controller.StateProgressing:
		if st, ok := r.CurrentStage(); ok {
			if r.Progress.AckedAt.IsZero() {
				return fmt.Sprintf("stage %s: waiting for the proxies' ACK", stageName(r, r.Stage))
			}
			return fmt.Sprintf("stage %s: %s of %s monitored clean, %s left", stageName(r, r.Stage),
				roundDur(r.Progress.Monitored.D()), roundDur(st.MinWindow.D()), roundDur(max(0, st.MinWindow.D()-r.Progress.Monitored.D())))
		}
	}
	return ""
}

func roundDur(d time.Duration) string {
	switch {
	case d >= time.Hour:
		d = d.Round(time.Minute)
	case d >= time.Minute:
		d = d.Round(time.Second)
	default:
		d = d.Round(100 * time.Millisecond)
	}
	return d.String()
}

func ftime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05")
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
