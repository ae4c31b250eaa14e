package report

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

// GateRow is one gate hook's answer, one approval or one freeze override of a rollout.
type GateRow struct {
	Time time.Time `json:"time"`
	// Kind is gate, approved or freeze_override.
	Kind      string `json:"kind"`
	StageName string `json:"stageName,omitempty"`
	// Gate is the hook's answer (Kind gate): point, hook, answer, reason, HTTP status,
	// the start of the body, the error when it gave no answer, attempts.
	Gate *model.GateAnswer `json:"gate,omitempty"`
	// Actor approved or overrode; Reason says it in a line.
	Actor  string `json:"actor,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// gateRow returns e as a GateRow, false for an event of another kind.
func gateRow(e controller.Event) (GateRow, bool) {
	switch e.Kind {
	case controller.EventGate, controller.EventApproved, controller.EventFreezeOverride:
		return GateRow{Time: e.Time, Kind: e.Kind, StageName: e.StageName, Gate: e.Gate, Actor: e.Actor, Reason: e.Reason}, true
	}
	return GateRow{}, false
}

// writeGates renders the gates section: every hook's answer, approval and freeze
// override, in order.
func writeGates(b *bytes.Buffer, rows []GateRow) {
	if len(rows) == 0 {
		return
	}
	b.WriteString("## Gates\n\n")
	b.WriteString("| Time | Stage | Gate | Answer | HTTP | Attempts | Reason / body |\n")
	b.WriteString("|---|---|---|---|---:|---:|---|\n")
	for _, r := range rows {
		gateName, answer, status, attempts, why := r.Kind, "-", "-", "-", r.Reason
		switch g := r.Gate; {
		case g != nil:
			gateName = g.Point + " " + g.Hook
			answer = g.Answer
			if g.Status > 0 {
				status = strconv.Itoa(g.Status)
			}
			attempts = strconv.Itoa(g.Attempts)
			why = g.Reason
			if g.Error != "" {
				why = g.Error
			}
			if g.Body != "" && g.Answer == model.AnswerError {
				why += " — body: " + g.Body
			}
		case r.Kind == controller.EventApproved:
			gateName, answer = "approval", "approved by "+r.Actor
		case r.Kind == controller.EventFreezeOverride:
			gateName, answer = "freeze", "overridden"
			if r.Actor != "" {
				answer += " by " + r.Actor
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", stamp(r.Time), cell(r.StageName), cell(gateName),
			cell(answer), status, attempts, cell(why))
	}
	b.WriteString("\n")
}
