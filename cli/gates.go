package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
)

// Usage lines of the gate commands (part of Usage).
const gatesUsage = `  octoroll approve SERVICE [--reason TEXT]        approve the current stage's advance (approval: required)
  octoroll freeze --reason TEXT                   stop every rollout start and advance until unfrozen
  octoroll unfreeze [--reason TEXT]               lift the freeze set by freeze
  octoroll freeze-status                          the freeze and the catalog's freeze windows
`

// runApprove approves the current stage of SERVICE's rollout.
func runApprove(ctx context.Context, inv *invocation, args []string) error {
	fs := inv.flags("approve")
	reason := fs.String("reason", "", "why (recorded with the approval)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := positional(pos, 1, "SERVICE"); err != nil {
		return err
	}
	if err := inv.checkOutput(); err != nil {
		return err
	}
	c, err := inv.client()
	if err != nil {
		return err
	}
	var d api.RolloutDetail
	b, err := c.postJSON(ctx, "/services/"+url.PathEscape(pos[0])+"/"+string(controller.CmdApprove), api.ActionRequest{Reason: *reason}, &d)
	if err != nil {
		return err
	}
	if inv.output == "json" {
		return inv.printJSON(b)
	}
	writeActionResult(inv.stdout, string(controller.CmdApprove), d)
	return nil
}

// runFreeze sets (on) or lifts the freeze switch.
func runFreeze(on bool) runFunc {
	return func(ctx context.Context, inv *invocation, args []string) error {
		name := "unfreeze"
		if on {
			name = "freeze"
		}
		fs := inv.flags(name)
		reason := fs.String("reason", "", "why (required to freeze)")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if err := positional(pos, 0, ""); err != nil {
			return err
		}
		if on && strings.TrimSpace(*reason) == "" {
			return usagef("freeze needs --reason TEXT (shown with the freeze)")
		}
		if err := inv.checkOutput(); err != nil {
			return err
		}
		c, err := inv.client()
		if err != nil {
			return err
		}
		var st api.FreezeStatus
		b, err := c.postJSON(ctx, "/"+name, api.FreezeRequest{Reason: *reason}, &st)
		if err != nil {
			return err
		}
		if inv.output == "json" {
			return inv.printJSON(b)
		}
		writeFreeze(inv.stdout, st)
		return nil
	}
}

func runFreezeStatus(ctx context.Context, inv *invocation, args []string) error {
	fs := inv.flags("freeze-status")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := positional(pos, 0, ""); err != nil {
		return err
	}
	if err := inv.checkOutput(); err != nil {
		return err
	}
	return show(ctx, inv, "/freeze", nil, writeFreeze)
}

// writeFreeze prints the freeze switch and the catalog's freeze windows.
func writeFreeze(w io.Writer, st api.FreezeStatus) {
	if st.Frozen {
		fmt.Fprintf(w, "FROZEN: no rollout starts or advances (rollbacks and pauses still work)\n")
		for _, f := range st.Active {
			fmt.Fprintf(w, "  %s\n", f.Summary())
		}
	} else {
		fmt.Fprintln(w, "Not frozen.")
	}
	for _, win := range st.Windows {
		fmt.Fprintf(w, "Freeze window %s: %s → %s: %s\n", win.Name, stamp(win.Start), stamp(win.End), win.Reason)
	}
}

// freezeLine is the status table's line on a freeze in force, "" when none.
func freezeLine(st *api.FreezeStatus) string {
	if st == nil || !st.Frozen {
		return ""
	}
	return "FROZEN: no rollout starts or advances: " + clip(st.Summary, 200) + "\n"
}
