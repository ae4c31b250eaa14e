package cli

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
)

func init() {
	register(approveCommand)
	register(freezeCommand(true))
	register(freezeCommand(false))
	register(freezeStatusCommand)
}

// approveCommand approves the current stage of SERVICE's rollout (approval: required).
func approveCommand(a *App) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "approve SERVICE",
		Short: "Approve the current stage's advance (a stage with approval: required)",
		Args:  exactArgs("SERVICE"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			return post(a, "/services/"+url.PathEscape(args[0])+"/"+string(controller.CmdApprove), api.ActionRequest{Reason: reason},
				func(w io.Writer, d api.RolloutDetail) { writeActionResult(w, string(controller.CmdApprove), d) })
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why (recorded with the approval)")
	return c
}

// freezeCommand builds freeze (on) and unfreeze: the switch that stops every rollout
// start and advance.
func freezeCommand(on bool) func(*App) *cobra.Command {
	return func(a *App) *cobra.Command {
		name, short := "unfreeze", "Lift the freeze set by freeze"
		if on {
			name, short = "freeze", "Stop every rollout start and advance until unfrozen (rollbacks and pauses still work)"
		}
		var reason string
		c := &cobra.Command{
			Use:   name,
			Short: short,
			Args:  noArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				if on && strings.TrimSpace(reason) == "" {
					return usagef("freeze needs --reason TEXT (shown with the freeze)")
				}
				if err := a.checkOutput(); err != nil {
					return err
				}
				return post(a, "/"+name, api.FreezeRequest{Reason: reason}, writeFreeze)
			},
		}
		help := "why (recorded with the change)"
		if on {
			help = "why (required; shown with the freeze)"
		}
		c.Flags().StringVar(&reason, "reason", "", help)
		return c
	}
}

func freezeStatusCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "freeze-status",
		Short: "The freeze and the catalog's freeze windows",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			return show(a, "/freeze", nil, writeFreeze)
		},
	}
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
