package report

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/octoacme/octoroll/controller"
)

// timeLayout formats every time of a report: UTC, to the second.
const timeLayout = "2006-01-02 15:04:05Z07:00"

// Markdown renders the report as a Markdown document: the release notes template,
// the outcome, the timeline table and, after a rollback, the incident section.
func (rep Report) Markdown() []byte {
	var b bytes.Buffer
	n := rep.Notes
	title := n.Name
	if title == "" {
		title = rep.Canary
	}
	fmt.Fprintf(&b, "# Release report: %s %s\n\n", rep.Service, inline(title))
	fmt.Fprintf(&b, "Rollout `%s` of **%s**: %s → %s (%s release).\n\n", rep.RolloutID, rep.Service, inline(rep.Stable), inline(rep.Canary), orDash(n.Type))

	b.WriteString("## Release notes\n\n")
	fmt.Fprintf(&b, "- **Release name / number:** %s\n", orDash(inline(n.Name)))
	fmt.Fprintf(&b, "- **Date:** %s\n", orDash(n.Date))
	fmt.Fprintf(&b, "- **Summary:** %s\n", orDash(inline(n.Summary)))
	list(&b, "Notable changes", n.NotableChanges)
	list(&b, "Migration steps", n.MigrationSteps)
	list(&b, "Known issues", n.KnownIssues)
	fmt.Fprintf(&b, "- **Rollback plan:** %s\n\n", orDash(inline(n.RollbackPlan)))

	o := rep.Outcome
	b.WriteString("## Outcome\n\n")
	fmt.Fprintf(&b, "- **Result:** %s", o.Result)
	if o.Result == ResultInProgress {
		fmt.Fprintf(&b, " (%s", o.State)
		if o.StageName != "" {
			fmt.Fprintf(&b, ", stage %s", inline(o.StageName))
		}
		fmt.Fprintf(&b, ", canary at %s)", pct(o.CanaryPercent))
	}
	b.WriteString("\n")
	if o.Reason != "" {
		fmt.Fprintf(&b, "- **Reason:** %s\n", inline(o.Reason))
	}
	fmt.Fprintf(&b, "- **Plan:** %s\n", inline(o.Plan))
	fmt.Fprintf(&b, "- **Created:** %s\n", stamp(o.CreatedAt))
	fmt.Fprintf(&b, "- **Started:** %s\n", stamp(o.StartedAt))
	fmt.Fprintf(&b, "- **Reached 100 %%:** %s", stamp(o.FullAt))
	if o.ToFull > 0 {
		fmt.Fprintf(&b, " (%s after the start)", o.ToFull)
	}
	b.WriteString("\n")
	ended := "Completed"
	if o.Result == ResultRolledBack {
		ended = "Rolled back"
	}
	fmt.Fprintf(&b, "- **%s:** %s", ended, stamp(o.EndedAt))
	if o.Total > 0 {
		fmt.Fprintf(&b, " (%s after the start)", o.Total)
	}
	b.WriteString("\n\n")

	if len(rep.Waivers) > 0 || len(rep.WindowOverrides) > 0 {
		b.WriteString("## Waivers and overrides\n\n")
		for _, w := range rep.Waivers {
			fmt.Fprintf(&b, "- Waived **%s** by %s: %s\n", inline(w.Item), orDash(inline(w.By)), orDash(inline(w.Reason)))
		}
		for _, ov := range rep.WindowOverrides {
			fmt.Fprintf(&b, "- Deployment window overridden at %s", stamp(ov.Time))
			if ov.StageName != "" {
				fmt.Fprintf(&b, " (stage %s)", inline(ov.StageName))
			}
			if ov.Reason != "" {
				fmt.Fprintf(&b, ": %s", inline(ov.Reason))
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}

	writeGates(&b, rep.Gates)

	b.WriteString("## Timeline\n\n")
	if len(rep.Timeline) == 0 {
		b.WriteString("No events recorded.\n\n")
	} else {
		b.WriteString("| Time | Event | Stage | Weight | Decision | Canary errors | Stable errors | Canary P99 | Stable P99 | Samples (canary / stable) | Reason |\n")
		b.WriteString("|---|---|---|---:|---|---:|---:|---:|---:|---:|---|\n")
		for _, r := range rep.Timeline {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				stamp(r.Time), cell(r.Kind), cell(r.StageName), pct(r.Percent), cell(decision(r)),
				numbersCell(r.Numbers, func(n *controller.Numbers) string { return pct(n.CanaryErrorPct) }),
				numbersCell(r.Numbers, func(n *controller.Numbers) string { return pct(n.StableErrorPct) }),
				numbersCell(r.Numbers, func(n *controller.Numbers) string { return n.CanaryP99.String() }),
				numbersCell(r.Numbers, func(n *controller.Numbers) string { return n.StableP99.String() }),
				numbersCell(r.Numbers, func(n *controller.Numbers) string {
					return strconv.FormatUint(n.CanaryRequests, 10) + " / " + strconv.FormatUint(n.StableRequests, 10)
				}),
				cell(rowReason(r)))
		}
		b.WriteString("\n")
	}

	if inc := rep.Incident; inc != nil {
		b.WriteString("## Incident\n\n")
		fmt.Fprintf(&b, "- **Trigger:** %s\n", orDash(inline(inc.Trigger)))
		if inc.Aborted {
			fmt.Fprintf(&b, "- **Aborted by:** %s\n", orDash(inline(inc.Actor)))
		}
		if inc.StageName != "" {
			fmt.Fprintf(&b, "- **Rolled back from:** stage %s at %s\n", inline(inc.StageName), pct(inc.Percent))
		}
		if len(inc.FailingChecks) > 0 {
			fmt.Fprintf(&b, "- **Failing checks:** %s\n", inline(strings.Join(inc.FailingChecks, ", ")))
		}
		if len(inc.FailingEndpoints) > 0 {
			fmt.Fprintf(&b, "- **Failing endpoints:** %s\n", inline(strings.Join(inc.FailingEndpoints, ", ")))
		}
		if len(inc.Alerts) > 0 {
			fmt.Fprintf(&b, "- **Alerts:** %s\n", inline(strings.Join(inc.Alerts, ", ")))
		}
		if n := inc.Numbers; n != nil {
			fmt.Fprintf(&b, "- **Numbers:** canary %s errors (%d of %d), P99 %s; stable %s errors (%d of %d), P99 %s\n",
				pct(n.CanaryErrorPct), n.CanaryErrors, n.CanaryRequests, n.CanaryP99,
				pct(n.StableErrorPct), n.StableErrors, n.StableRequests, n.StableP99)
		}
		fmt.Fprintf(&b, "- **Rolled back at:** %s, to %s\n", stamp(inc.RolledBackAt), inline(inc.KnownGood))
		fmt.Fprintf(&b, "- **Time to detect:** %s (from the %s at %s to the rollback decision)\n", inc.TimeToDetect, inc.DetectedFrom, stamp(inc.DetectedSince))
		if inc.Restored {
			fmt.Fprintf(&b, "- **Time to restore:** %s (every proxy acknowledged the known-good weights at %s)\n", inc.TimeToRestore, stamp(inc.RestoredAt))
		} else {
			b.WriteString("- **Time to restore:** not confirmed (no acknowledgement of the known-good weights by every proxy was recorded)\n")
		}
		fmt.Fprintf(&b, "- **Rollback plan:** %s\n\n", orDash(inline(inc.RollbackPlan)))
		b.WriteString("### Action items to capture\n\n")
		for _, a := range inc.ActionItems {
			box := " "
			if a.Done {
				box = "x"
			}
			fmt.Fprintf(&b, "- [%s] %s\n", box, inline(a.Text))
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

func list(b *bytes.Buffer, title string, items []string) {
	if len(items) == 0 {
		fmt.Fprintf(b, "- **%s:** none\n", title)
		return
	}
	fmt.Fprintf(b, "- **%s:**\n", title)
	for _, it := range items {
		fmt.Fprintf(b, "  - %s\n", inline(it))
	}
}

func decision(r Row) string {
	switch {
	case r.Decision != "":
		return string(r.Decision)
	case r.Command != "":
		s := string(r.Command)
		if r.Force {
			s += " (forced)"
		}
		if r.Actor != "" {
			s += " by " + r.Actor
		}
		return s
	}
	return ""
}

func rowReason(r Row) string {
	parts := []string{}
	if r.Reason != "" {
		parts = append(parts, r.Reason)
	}
	if r.Phase != "" && r.Kind == controller.EventPhase {
		parts = append(parts, "phase "+r.Phase)
	}
	if len(r.Checks) > 0 {
		parts = append(parts, "checks: "+strings.Join(r.Checks, ", "))
	}
	if len(r.Endpoints) > 0 {
		parts = append(parts, "endpoints: "+strings.Join(r.Endpoints, ", "))
	}
	if len(r.Alerts) > 0 {
		parts = append(parts, "alerts: "+strings.Join(r.Alerts, ", "))
	}
	if len(r.Stragglers) > 0 {
		parts = append(parts, "not acknowledged by: "+strings.Join(r.Stragglers, ", "))
	}
	return strings.Join(parts, "; ")
}

func numbersCell(n *controller.Numbers, f func(*controller.Numbers) string) string {
	if n == nil {
		return ""
	}
	return f(n)
}

// pct formats a percentage with up to three decimals ("25%", "0.5%", "1.234%").
func pct(p float64) string {
	return strconv.FormatFloat(math.Round(p*1000)/1000, 'f', -1, 64) + "%"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(timeLayout)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// inline keeps operator-written text on one line.
func inline(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(inline(s), "|", `\|`)
}
