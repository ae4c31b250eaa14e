package cli

import (
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

func init() { register(waitCommand) }

// Targets of wait --for.
const (
	waitCompleted  = "completed"
	waitMonitoring = "monitoring"
)

func waitCommand(a *App) *cobra.Command {
	var target, rollout string
	var timeout, interval time.Duration
	c := &cobra.Command{
		Use:   "wait SERVICE --for completed|monitoring [--timeout D]",
		Short: "Block until the service's latest rollout completes or reaches 100 % (for CI); non-zero on a rollback or pause",
		Long: `Block until the service's latest rollout (or --rollout ID) reaches a state, printing
each change of state or stage.

  --for monitoring   at 100 %, in the post-release monitoring window (or completed)
  --for completed    the monitoring window closed without a no-go

Exit codes: 0 reached, 1 API error, 2 usage, 3 rolled back, 4 paused, 5 --timeout passed.`,
		Example: `  octoroll rollout start -f release.yaml && octoroll wait checkout --for monitoring --timeout 2h`,
		Args:    exactArgs("SERVICE"),
		RunE: func(c *cobra.Command, args []string) error {
			if target != waitCompleted && target != waitMonitoring {
				return usagef("--for %q: want completed or monitoring", target)
			}
			if timeout < 0 {
				return usagef("--timeout %s: want a positive duration", timeout)
			}
			if interval <= 0 {
				interval = a.Interval
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			id := rollout
			if id == "" {
				var latest api.RolloutsResponse
				if _, err := cl.getJSON(a.ctx, "/rollouts", url.Values{"service": {args[0]}, "limit": {"1"}}, &latest); err != nil {
					return err
				}
				if len(latest.Rollouts) == 0 {
					return fmt.Errorf("service %q has no rollout to wait for", args[0])
				}
				id = latest.Rollouts[0].ID
			}
			return waitFor(a, cl, id, target, timeout, interval)
		},
	}
	f := c.Flags()
	f.StringVar(&target, "for", waitCompleted, "completed or monitoring")
	f.DurationVar(&timeout, "timeout", 0, "give up after this long (exit 5); 0 waits as long as it takes")
	f.StringVar(&rollout, "rollout", "", "wait for this rollout rather than the service's latest")
	f.DurationVar(&interval, "interval", 0, "how often to poll (default 2s)")
	return c
}

func waitFor(a *App, cl *client, id, target string, timeout, interval time.Duration) error {
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	last := ""
	for {
		var d api.RolloutDetail
		if _, err := cl.getJSON(a.ctx, "/rollouts/"+url.PathEscape(id), nil, &d); err != nil {
			return err
		}
		r := d.RolloutSummary
		line := fmt.Sprintf("%s %s: %s, stage %s, canary %s", r.Service, r.ID, stateLabel(r), stageLabel(r), pct(r.CanaryPercent))
		if line != last {
			fmt.Fprintf(a.stdout, "%s  %s\n", a.Now().UTC().Format("15:04:05Z"), line)
			last = line
		}
		switch r.State {
		case controller.StateCompleted:
			return nil
		case controller.StateMonitoring:
			if target == waitMonitoring {
				return nil
			}
		}
		if err := stopped(r); err != nil {
			return err
		}
		select {
		case <-a.ctx.Done():
			return a.ctx.Err()
		case <-deadline:
			return &exitError{code: ExitTimeout, msg: fmt.Sprintf("rollout %s of %s is %s after %s, not %s", r.ID, r.Service, r.State,
				model.FormatDuration(timeout), target)}
		case <-time.After(interval):
		}
	}
}

// stopped is the exit of a wait on r, and of status --watch: a rolled back rollout ends
// it with ExitRolledBack, a paused one (waiting for a person) with ExitPaused; nil while
// the rollout may still get where it is going.
func stopped(r api.RolloutSummary) error {
	switch r.State {
	case controller.StateRolledBack:
		return &exitError{code: ExitRolledBack, msg: fmt.Sprintf("rollout %s of %s rolled back: %s", r.ID, r.Service, r.Reason)}
	case controller.StatePaused:
		return &exitError{code: ExitPaused, msg: fmt.Sprintf("rollout %s of %s is paused: %s", r.ID, r.Service, r.Reason)}
	}
	return nil
}
