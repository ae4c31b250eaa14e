package admin

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// Chart geometry: every chart of a card shares the time axis.
const (
	chartW, chartH         = 640, 120
	chartLeft, chartTop    = 52, 8
	chartPlotW, chartPlotH = 576, 92
)

// chart is one inline SVG line chart over a rollout's time span.
type chart struct {
	Label      string // aria label and title
	Width      int
	Height     int
	Series     []seriesView
	Ticks      []tick
	Start, End string
	Last       string
	// Points is the first series' polyline (the weight chart's line).
	Points string
}

type seriesView struct {
	Name, Class, Points string
	Dashed              bool
}

type tick struct {
	Y     float64
	Label string
}

type pt struct {
	t time.Time
	v float64
}

type series struct {
	name, class string
	dashed      bool
	step        bool
	pts         []pt
}

// span is the time axis of a rollout's charts: its first event to its end (or now).
type span struct{ start, end time.Time }

func (s span) x(t time.Time) float64 {
	d := s.end.Sub(s.start)
	if d <= 0 {
		d = time.Second
	}
	return chartLeft + float64(t.Sub(s.start))/float64(d)*chartPlotW
}

// lines draws series on a y axis from 0 to the largest value (at least minMax).
func lines(label string, sp span, ss []series, minMax float64, format func(float64) string) *chart {
	top := minMax
	any := false
	for _, s := range ss {
		for _, p := range s.pts {
			top = math.Max(top, p.v)
			any = true
		}
	}
	if !any {
		return nil
	}
	top *= 1.1
	y := func(v float64) float64 { return chartTop + chartPlotH - v/top*chartPlotH }
	c := &chart{Label: label, Width: chartW, Height: chartH,
		Start: sp.start.UTC().Format("15:04:05"), End: sp.end.UTC().Format("15:04:05")}
	for _, s := range ss {
		if len(s.pts) == 0 {
			continue
		}
		var b strings.Builder
		add := func(t time.Time, v float64) { fmt.Fprintf(&b, "%.1f,%.1f ", sp.x(t), y(v)) }
		prev := s.pts[0].v
		add(s.pts[0].t, prev)
		for _, p := range s.pts[1:] {
			if s.step {
				add(p.t, prev)
			}
			add(p.t, p.v)
			prev = p.v
		}
		if s.step {
			add(sp.end, prev)
		}
		c.Series = append(c.Series, seriesView{Name: s.name, Class: s.class, Dashed: s.dashed, Points: strings.TrimSpace(b.String())})
	}
	for i := range 5 {
		v := top / 1.1 * float64(i) / 4
		c.Ticks = append(c.Ticks, tick{Y: y(v), Label: format(v)})
	}
	if len(c.Series) > 0 {
		c.Points = c.Series[0].Points
	}
	return c
}

// rolloutCharts draws the canary weight, the error rate and the P99 of both versions
// over r's events, with the pause and rollback thresholds (relative to the stable
// version, as the engine judges them), and the latest numbers as the last point.
func rolloutCharts(r controller.Rollout, events []controller.Event, last *controller.Numbers, now time.Time) []*chart {
	var evs []controller.Event
	for _, ev := range events {
		if !ev.Time.IsZero() {
			evs = append(evs, ev)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	sp := span{start: evs[0].Time, end: now}
	if !r.EndedAt.IsZero() {
		sp.end = r.EndedAt
	}
	if t := evs[len(evs)-1].Time; sp.end.Before(t) {
		sp.end = t
	}
	weight := series{name: "canary weight", class: "weight", step: true}
	for _, ev := range evs {
		weight.pts = append(weight.pts, pt{ev.Time, model.Percent(ev.Weight)})
	}
	thr := currentThresholds(r)
	errC := series{name: "canary " + r.Canary, class: "canary"}
	errS := series{name: "stable " + r.Stable, class: "stable"}
	errP := series{name: "pause threshold", class: "pause", dashed: true}
	errR := series{name: "rollback threshold", class: "rollback", dashed: true}
	latC, latS := errC, errS
	latP, latR := errP, errR
	addNumbers := func(t time.Time, n *controller.Numbers) {
		if n == nil || (n.CanaryRequests == 0 && n.StableRequests == 0) {
			return
		}
		errC.pts = append(errC.pts, pt{t, n.CanaryErrorPct})
		errS.pts = append(errS.pts, pt{t, n.StableErrorPct})
		errP.pts = append(errP.pts, pt{t, n.StableErrorPct + thr.PauseErrorRatePP})
		errR.pts = append(errR.pts, pt{t, n.StableErrorPct + thr.RollbackErrorRatePP})
		if n.StableP99 > 0 && n.CanaryP99 > 0 {
			ms := func(d catalog.Duration) float64 { return float64(d.D()) / 1e6 }
			latC.pts = append(latC.pts, pt{t, ms(n.CanaryP99)})
			latS.pts = append(latS.pts, pt{t, ms(n.StableP99)})
			latP.pts = append(latP.pts, pt{t, ms(n.StableP99) * thr.PauseLatencyRatio})
			latR.pts = append(latR.pts, pt{t, ms(n.StableP99) * thr.RollbackLatencyRatio})
		}
	}
	var lastAt time.Time
	for _, ev := range evs {
		if ev.Numbers != nil {
			addNumbers(ev.Time, ev.Numbers)
			lastAt = ev.Time
		}
	}
	if last != nil && r.Progress.LastCheck.After(lastAt) && !r.Progress.LastCheck.After(sp.end) {
		addNumbers(r.Progress.LastCheck, last)
	}
	out := []*chart{lines("canary weight over time", sp, []series{weight}, 100, func(v float64) string { return fmtPct(v) })}
	out[0].Last = fmtPct(weight.pts[len(weight.pts)-1].v)
	if c := lines("error rate of both versions over time, with the thresholds", sp, []series{errC, errS, errP, errR}, 0.1,
		func(v float64) string { return fmt.Sprintf("%.2g%%", v) }); c != nil {
		out = append(out, c)
	}
	if c := lines("P99 latency of both versions over time, with the thresholds", sp, []series{latC, latS, latP, latR}, 1,
		func(v float64) string { return fmt.Sprintf("%.3gms", v) }); c != nil {
		out = append(out, c)
	}
	return out
}
