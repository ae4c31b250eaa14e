package cli

import (
	"fmt"
	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/model"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/octoacme/octoroll/controller"
)

// barWidth is the number of cells of a progress bar: one per 5 %.
const barWidth = 20

// bar draws a weight (percent) as "[#####...............]  25.0%".
func bar(percent float64) string {
	p := min(max(percent, 0), 100)
	n := int(p * barWidth / 100)
	if p > 0 && n == 0 {
		n = 1 // any traffic at all shows
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", barWidth-n) + "] " + fmt.Sprintf("%5.1f%%", p)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func pct(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) + "%" }

func stageLabel(r api.RolloutSummary) string {
	if r.Stage >= r.Stages {
		return "100%"
	}
	return fmt.Sprintf("%s (%d/%d)", r.StageName, r.Stage+1, r.Stages)
}

func stateLabel(r api.RolloutSummary) string {
	if r.State == controller.StatePaused && r.PausedFrom != "" {
		return fmt.Sprintf("paused (from %s)", r.PausedFrom)
	}
	return string(r.State)
}

func proxiesLabel(p api.ProxyConvergence) string {
	s := fmt.Sprintf("%d/%d", p.Acked, p.Subscribed)
	if p.NACK != nil {
		s += " NACK"
	}
	return s
}

// decisionLabel is the last decision and its reason, clipped for a table cell.
func decisionLabel(r api.RolloutSummary) string { return clip(fullDecision(r), 60) }

// fullDecision is the last decision and its whole reason.
func fullDecision(r api.RolloutSummary) string {
	if r.LastDecision == "" && r.Reason == "" {
		return "-"
	}
	s := string(r.LastDecision)
	if r.Reason != "" {
		if s != "" {
			s += ": "
		}
		s += r.Reason
	}
	return s
}

// writeServicesResponse prints the status table of every service, then what keeps the
// catalog on disk from being the one in use.
func writeServicesResponse(w io.Writer, v api.ServicesResponse) {
	fmt.Fprint(w, freezeLine(v.Freeze))
	writeServices(w, v.Services)
	if v.Catalog != nil {
		writeCatalogProblem(w, v.Catalog)
	}
	if v.Replicas != nil {
		writeReplicas(w, *v.Replicas)
	}
}

// writeReplicas prints the replicas sharing one etcd and which one leads.
func writeReplicas(w io.Writer, r api.Replicas) {
	leader := "no leader known (an election is under way, or etcd is unreachable)"
	if r.Leader != "" {
		leader = r.Leader + " leads"
	}
	fmt.Fprintf(w, "\nReplicas: %d, %s; this answer is from %s.\n", len(r.Members), leader, r.Self)
	tw := table(w)
	fmt.Fprintln(tw, "REPLICA\tROLE\tPROXIES\tXDS\tADMIN\tRECORD UPDATED\tPROBLEM")
	for _, m := range r.Members {
		role := "follower"
		if m.Leader {
			role = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", m.ID, role, m.Proxies, dash(m.XDS), m.Admin, stamp(m.Updated), dash(m.Error))
	}
	tw.Flush()
}

// writeCatalogProblem says, in full, why the catalog on disk is not the one in use,
// when it is not.
func writeCatalogProblem(w io.Writer, c *model.CatalogStatus) {
	if !c.Failing && c.Refused == "" {
		return
	}
	since := c.RefusedSince
	if c.Failing {
		since = c.LastErrorAt
	}
	fmt.Fprintf(w, "Catalog: %s (since %s; the previous catalog keeps serving)\n", c.State(), stamp(since))
}

// writeServices prints the status table of every service.
func writeServices(w io.Writer, svcs []api.ServiceSummary) {
	if len(svcs) == 0 {
		fmt.Fprintln(w, "No services in the catalog.")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tSTAGE\tCANARY WEIGHT\tKNOWN-GOOD → CANARY\tPROXIES ACKED\tLAST DECISION")
	for _, s := range svcs {
		if a := s.Active; a != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s → %s\t%s\t%s\n", s.Name, stateLabel(*a), stageLabel(*a), bar(a.CanaryPercent),
				s.KnownGood, a.Canary, proxiesLabel(s.Proxies), decisionLabel(*a))
			continue
		}
		state, last := "idle", "-"
		if d := s.Restore; d != nil {
			last = clip(s.RestoreSummary, 60)
			if !d.Done {
				state = "restoring"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, state, "-", bar(0), s.KnownGood, proxiesLabel(s.Proxies), last)
	}
	tw.Flush()
	for _, s := range svcs {
		if p := s.Publication; p != nil && !p.OK {
			fmt.Fprintf(w, "%s: NOT PUBLISHED since %s, the last good resources keep serving: %s\n", s.Name, stamp(p.FailingSince), clip(p.Error, 200))
		}
	}
}

// writeServiceDetail prints one service in depth.
func writeServiceDetail(w io.Writer, d api.ServiceDetail) {
	tw := table(w)
	fmt.Fprintf(tw, "Service:\t%s\n", d.Name)
	fmt.Fprintf(tw, "Versions:\t%s (known-good %s)\n", strings.Join(d.Versions, ", "), d.KnownGood)
	fmt.Fprintf(tw, "Weights:\t%s\n", weights(d.Weights))
	p := d.Proxies
	conv := fmt.Sprintf("%d of %d subscribed proxies ACKed route version %s", p.Acked, p.Subscribed, dash(p.RouteVersion))
	if len(p.Stragglers) > 0 {
		conv += "; waiting for " + strings.Join(p.Stragglers, ", ")
	}
	fmt.Fprintf(tw, "Proxies:\t%s\n", conv)
	if pub := d.Publication; pub != nil {
		switch {
		case !pub.OK && pub.Fallback:
			fmt.Fprintf(tw, "Publication:\tNOT PUBLISHED since %s, its catalog state at the known-good version serves: %s\n", stamp(pub.FailingSince), pub.Error)
		case !pub.OK:
			fmt.Fprintf(tw, "Publication:\tNOT PUBLISHED since %s, the last good resources keep serving: %s\n", stamp(pub.FailingSince), pub.Error)
		}
		for _, s := range pub.Stale {
			fmt.Fprintf(tw, "Stale DNS:\t%s\n", s)
		}
	}
	if p.NACK != nil {
		fmt.Fprintf(tw, "Last NACK:\t%s rejected %s at %s: %s\n", p.NACK.NodeID, p.NACK.Version, stamp(p.NACK.At), p.NACK.Message)
	}
	for _, m := range d.Matches {
		flagName := "header " + m.Header
		if m.Cookie != "" {
			flagName = "cookie " + m.Cookie
		}
		fmt.Fprintf(tw, "Flag route:\t%s = %s → %s\n", flagName, m.Value, m.Version)
	}
	if len(d.Health) > 0 {
		versions := make([]string, 0, len(d.Health))
		for v := range d.Health {
			versions = append(versions, v)
		}
		slices.Sort(versions)
		var parts []string
		for _, v := range versions {
			h := d.Health[v]
			s := fmt.Sprintf("%s %d/%d healthy", v, h.Healthy, h.Total)
			if len(h.Unhealthy) > 0 {
				s += " (unhealthy: " + strings.Join(h.Unhealthy, ", ") + ")"
			}
			parts = append(parts, s)
		}
		fmt.Fprintf(tw, "Health:\t%s\n", strings.Join(parts, "; "))
	}
	if r := d.Restore; r != nil {
		line := d.RestoreSummary
		if r.Done && !r.RestoredAt.IsZero() {
			line += fmt.Sprintf(" (restored in %s)", model.FormatDuration(r.RestoredAt.Sub(r.RolledBackAt)))
		}
		fmt.Fprintf(tw, "Restore:\t%s, rollout %s\n", line, r.RolloutID)
		if r.NotPersisted != "" {
			fmt.Fprintf(tw, "Store:\tnot yet persisted: %s\n", r.NotPersisted)
		}
	}
	a := d.Active
	if a == nil {
		fmt.Fprintf(tw, "Rollout:\tnone (idle)\n")
		tw.Flush()
		return
	}
	fmt.Fprintf(tw, "Rollout:\t%s, %s release %s: %s → %s\n", a.ID, a.Type, dash(a.Release), a.Stable, a.Canary)
	fmt.Fprintf(tw, "State:\t%s\n", stateLabel(*a))
	fmt.Fprintf(tw, "Stage:\t%s, plan %s\n", stageLabel(*a), a.Plan)
	fmt.Fprintf(tw, "Canary:\t%s\n", bar(a.CanaryPercent))
	fmt.Fprintf(tw, "Last decision:\t%s\n", fullDecision(*a))
	if n := d.LastObservation; n != nil {
		fmt.Fprintf(tw, "Canary numbers:\t%s errors (%d of %d), P99 %s\n", pct(round3(n.CanaryErrorPct)), n.CanaryErrors, n.CanaryRequests, n.CanaryP99)
		fmt.Fprintf(tw, "Stable numbers:\t%s errors (%d of %d), P99 %s\n", pct(round3(n.StableErrorPct)), n.StableErrors, n.StableRequests, n.StableP99)
		if n.Verdict != "" {
			fmt.Fprintf(tw, "Last check:\t%s over %s; difference interval [%+.3f, %+.3f] pp\n", n.Verdict, n.Window, n.DeltaLowPP, n.DeltaHighPP)
		}
	}
	if th := d.Thresholds; th != nil {
		fmt.Fprintf(tw, "Thresholds:\tpause at +%s pp errors or P99 ×%s; roll back at +%s pp for %s or P99 ×%s; min %d requests\n",
			num(th.PauseErrorRatePP), num(th.PauseLatencyRatio), num(th.RollbackErrorRatePP), th.RollbackSustain,
			num(th.RollbackLatencyRatio), th.MinRequests)
	}
	tw.Flush()
}

func round3(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func weights(m map[string]uint32) string {
	if len(m) == 0 {
		return "-"
	}
	names := make([]string, 0, len(m))
	for v := range m {
		names = append(names, v)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, v := range names {
		parts[i] = fmt.Sprintf("%s %s", v, pct(model.Percent(m[v])))
	}
	return strings.Join(parts, ", ")
}

func writeStarted(w io.Writer, d api.RolloutDetail) {
	r := d.RolloutSummary
	fmt.Fprintf(w, "Started rollout %s of %s: %s → %s (%s release %s)\n", r.ID, r.Service, r.Stable, r.Canary, r.Type, dash(r.Release))
	fmt.Fprintf(w, "Plan:  %s\n", r.Plan)
	fmt.Fprintf(w, "State: %s, stage %s, canary %s\n", stateLabel(r), stageLabel(r), bar(r.CanaryPercent))
	if r.Reason != "" {
		fmt.Fprintf(w, "Note:  %s\n", r.Reason)
	}
}

var actionDone = map[string]string{
	"pause": "Paused %s", "resume": "Resumed %s", "promote": "Promoted %s to the next stage",
	"promote-full": "Promoted %s to 100 %%", "abort": "Aborted %s",
	"finish": "Finished %s: monitoring window closed", "approve": "Approved the current stage of %s",
}

func writeActionResult(w io.Writer, action string, d api.RolloutDetail) {
	r := d.RolloutSummary
	fmt.Fprintf(w, actionDone[action]+" (rollout %s)\n", r.Service, r.ID)
	fmt.Fprintf(w, "State:  %s, stage %s\n", stateLabel(r), stageLabel(r))
	fmt.Fprintf(w, "Canary: %s on %s\n", bar(r.CanaryPercent), r.Canary)
	if r.Reason != "" {
		fmt.Fprintf(w, "Reason: %s\n", r.Reason)
	}
	if d.RestoreSummary != "" {
		// What the proxies serve, not what was asked: "aborted: 12 of 12 proxies on v1".
		fmt.Fprintf(w, "Traffic: %s\n", d.RestoreSummary)
	}
	if d.Warning != "" {
		fmt.Fprintf(w, "Warning: %s\n", d.Warning)
	}
}

func writeRollouts(w io.Writer, rs []api.RolloutSummary) {
	if len(rs) == 0 {
		fmt.Fprintln(w, "No rollouts.")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "ROLLOUT\tSERVICE\tRELEASE\tVERSIONS\tSTATE\tSTAGE\tCANARY\tCREATED\tENDED")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s → %s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Service, r.Type, dash(r.Release), r.Stable, r.Canary,
			stateLabel(r), stageLabel(r), pct(r.CanaryPercent), stamp(r.CreatedAt), stamp(r.EndedAt))
	}
	tw.Flush()
}

func writeRolloutDetail(w io.Writer, d api.RolloutDetail) {
	r := d.RolloutSummary
	tw := table(w)
	fmt.Fprintf(tw, "Rollout:\t%s\n", r.ID)
	fmt.Fprintf(tw, "Service:\t%s, %s release %s: %s → %s\n", r.Service, r.Type, dash(r.Release), r.Stable, r.Canary)
	fmt.Fprintf(tw, "State:\t%s\n", stateLabel(r))
	fmt.Fprintf(tw, "Canary:\t%s\n", bar(r.CanaryPercent))
	fmt.Fprintf(tw, "Plan:\t%s\n", r.Plan)
	fmt.Fprintf(tw, "Created:\t%s\n", stamp(r.CreatedAt))
	fmt.Fprintf(tw, "Started:\t%s\n", stamp(r.StartedAt))
	fmt.Fprintf(tw, "At 100%%:\t%s\n", stamp(r.FullAt))
	fmt.Fprintf(tw, "Ended:\t%s\n", stamp(r.EndedAt))
	if dv := d.Decision; dv != nil {
		fmt.Fprintf(tw, "Last decision:\t%s at %s: %s\n", dv.Decision, stamp(dv.Time), dash(dv.Reason))
	} else if r.Reason != "" {
		fmt.Fprintf(tw, "Reason:\t%s\n", r.Reason)
	}
	tw.Flush()
	if len(d.Timeline) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = table(w)
	fmt.Fprintln(tw, "STEP\tSTAGE\tWEIGHT\tWINDOW\tSTATUS\tENTERED\tLEFT")
	for _, s := range d.Timeline {
		window := "-"
		if s.MinWindow > 0 {
			window = s.MinWindow.String()
			if s.MaxWindow > 0 {
				window += "–" + s.MaxWindow.String()
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Index+1, s.Name, pct(s.Percent), window, s.Status, stamp(s.EnteredAt), stamp(s.LeftAt))
	}
	tw.Flush()
}

func writeEvents(w io.Writer, resp api.EventsResponse) {
	if len(resp.Events) == 0 {
		fmt.Fprintln(w, "No events.")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "SEQ\tTIME\tSERVICE\tROLLOUT\tEVENT\tSTATE\tSTAGE\tWEIGHT\tDECISION\tREASON")
	for _, e := range resp.Events {
		dec := string(e.Decision)
		if e.Command != "" {
			dec = string(e.Command)
			if e.Actor != "" {
				dec += " by " + e.Actor
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, stamp(e.Time), e.Service, e.RolloutID, e.Kind, e.State,
			dash(e.StageName), pct(model.Percent(e.Weight)), dash(dec), dash(clip(e.Reason, 80)))
	}
	tw.Flush()
	fmt.Fprintf(w, "Next page: --after %d\n", resp.Next)
}

// typeNames abbreviates the xDS resource type URLs.
var typeNames = map[string]string{
	"type.googleapis.com/envoy.config.listener.v3.Listener":              "LDS",
	"type.googleapis.com/envoy.config.route.v3.RouteConfiguration":       "RDS",
	"type.googleapis.com/envoy.config.cluster.v3.Cluster":                "CDS",
	"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment": "EDS",
}

func typeName(url string) string {
	if n, ok := typeNames[url]; ok {
		return n
	}
	if i := strings.LastIndexByte(url, '.'); i >= 0 {
		return url[i+1:]
	}
	return url
}

func writeProxies(w io.Writer, ps []model.ProxyStatus) {
	if len(ps) == 0 {
		fmt.Fprintln(w, "No proxies connected.")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "NODE\tCLUSTER\tZONE\tCONNECTED SINCE\tSTREAMS\tWATCHED / ACKED VERSION\tNACKS\tLAST NACK")
	for _, p := range ps {
		urls := make([]string, 0, len(p.Types))
		for u := range p.Types {
			urls = append(urls, u)
		}
		slices.SortFunc(urls, func(a, b string) int { return strings.Compare(typeName(a), typeName(b)) })
		var types []string
		for _, u := range urls {
			ts := p.Types[u]
			types = append(types, fmt.Sprintf("%s %d@%s", typeName(u), len(ts.Watched), dash(ts.AckedVersion)))
		}
		last := "-"
		if p.LastNACK != nil {
			last = fmt.Sprintf("%s %s: %s", typeName(p.LastNACK.TypeURL), stamp(p.LastNACK.At), clip(p.LastNACK.Message, 60))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\n", p.NodeID, dash(p.Cluster), dash(p.Zone), stamp(p.ConnectedSince), p.Streams,
			dash(strings.Join(types, ", ")), p.NACKs, last)
	}
	tw.Flush()
}
