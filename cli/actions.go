package cli

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
)

func init() {
	register(action(controller.CmdPause, "Hold the canary weight; exits 0 when the rollout is paused already"))
	register(action(controller.CmdResume, "Resume a paused rollout; exits 0 when it is running already"))
	register(action(controller.CmdPromote, "Promote to the next stage (--full: straight to 100 %)"))
	register(action(controller.CmdAbort, "Roll back to the known-good version (--reason required)"))
	register(action(controller.CmdFinish, "Close the monitoring window early"))
}

// action builds pause, resume, promote [--full], abort and finish.
func action(kind controller.CommandKind, short string) func(*App) *cobra.Command {
	return func(a *App) *cobra.Command {
		var reason, overrideFreeze string
		var force, full bool
		c := &cobra.Command{
			Use:   string(kind) + " SERVICE",
			Short: short,
			Args:  exactArgs("SERVICE"),
			RunE: func(c *cobra.Command, args []string) error {
				if kind == controller.CmdAbort && strings.TrimSpace(reason) == "" {
					return usagef("abort needs --reason TEXT (recorded in the incident)")
				}
				if err := a.checkOutput(); err != nil {
					return err
				}
				path := string(kind)
				if full {
					path = string(controller.CmdPromoteFull)
				}
				cl, err := a.client()
				if err != nil {
					return err
				}
				service := args[0]
				var d api.RolloutDetail
				b, err := cl.postJSON(a.ctx, "/services/"+url.PathEscape(service)+"/"+path, api.ActionRequest{Reason: reason, Force: force, OverrideFreeze: overrideFreeze}, &d)
				var ae *apiError
				if errors.As(err, &ae) && ae.Code == api.CodeInvalidState && (kind == controller.CmdPause || kind == controller.CmdResume) {
					if done, derr := alreadyDone(a, cl, kind, service); derr == nil && done {
						return nil
					}
				}
				if err != nil {
					return err
				}
				if a.structured() {
					return a.printData(b)
				}
				writeActionResult(a.stdout, path, d)
				return nil
			},
		}
		f := c.Flags()
		help := "why (recorded with the command)"
		if kind == controller.CmdAbort {
			help = "why (required; recorded in the incident)"
		}
		f.StringVar(&reason, "reason", "", help)
		if kind == controller.CmdPromote || kind == controller.CmdFinish {
			f.BoolVar(&force, "force", false, "override a failing check or the deployment window")
		}
		if kind == controller.CmdPromote {
			f.BoolVar(&full, "full", false, "promote straight to 100 %")
			f.StringVar(&overrideFreeze, "override-freeze", "", "promote during a freeze, with the reason (recorded)")
		}
		return c
	}
}

// alreadyDone answers a pause of a paused rollout, or a resume of a running one, with
// what is: the request asked for the state the rollout is in. It prints the rollout
// (as the action would have) and reports true; false when the refusal had another
// cause.
func alreadyDone(a *App, cl *client, kind controller.CommandKind, service string) (bool, error) {
	var s api.ServiceDetail
	if _, err := cl.getJSON(a.ctx, "/services/"+url.PathEscape(service), nil, &s); err != nil {
		return false, err
	}
	r := s.Active
	if r == nil {
		return false, nil
	}
	paused := r.State == controller.StatePaused
	running := r.State == controller.StateProgressing || r.State == controller.StateMonitoring || r.State == controller.StatePending
	if (kind == controller.CmdPause && !paused) || (kind == controller.CmdResume && !running) {
		return false, nil
	}
	if a.structured() {
		var d api.RolloutDetail
		b, err := cl.getJSON(a.ctx, "/rollouts/"+url.PathEscape(r.ID), nil, &d)
		if err != nil {
			return false, err
		}
		return true, a.printData(b)
	}
	what := "already paused"
	if kind == controller.CmdResume {
		what = "not paused: already " + string(r.State)
	}
	fmt.Fprintf(a.stdout, "%s is %s (rollout %s)\n", service, what, r.ID)
	fmt.Fprintf(a.stdout, "State:  %s, stage %s\n", stateLabel(*r), stageLabel(*r))
	if r.Reason != "" {
		fmt.Fprintf(a.stdout, "Reason: %s\n", r.Reason)
	}
	return true, nil
}
