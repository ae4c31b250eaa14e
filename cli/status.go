package cli

import (
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
)

func init() { register(statusCommand) }

func statusCommand(a *App) *cobra.Command {
	var watch bool
	var interval time.Duration
	c := &cobra.Command{
		Use:   "status [SERVICE]",
		Short: "Services, rollout progress and proxies; one service in depth (--watch: until its rollout ends)",
		Long: `Services, rollout progress and proxies, or one service in depth.

With --watch, status SERVICE prints the service again every --interval until its
active rollout ends: exit 0 when it completed, 3 when it rolled back, 4 when it is
paused (as wait does).`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("unexpected argument %q", args[1])
			}
			if watch && len(args) == 0 {
				return usagef("--watch needs a SERVICE")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			if len(args) == 0 {
				return show(a, "/services", nil, writeServicesResponse)
			}
			if interval <= 0 {
				interval = a.Interval
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			return watchService(a, cl, args[0], watch, interval)
		},
	}
	c.Flags().BoolVarP(&watch, "watch", "w", false, "print the service again every --interval until its rollout ends or pauses")
	c.Flags().DurationVar(&interval, "interval", 0, "how often --watch polls (default 2s)")
	return c
}

// serviceView is what status SERVICE prints: the service, the catalog's state and,
// while its rollout is in the monitoring window, the rollout.
type serviceView struct {
	api.ServiceDetail
	catalog *model.CatalogStatus
	rollout *api.RolloutDetail
	now     time.Time
}

func fetchService(a *App, cl *client, name string) (serviceView, []byte, error) {
	var v serviceView
	b, err := cl.getJSON(a.ctx, "/services/"+url.PathEscape(name), nil, &v.ServiceDetail)
	if err != nil {
		return v, nil, err
	}
	v.now = a.Now()
	if a.structured() {
		return v, b, nil
	}
	var st api.StatusResponse
	if _, err := cl.getJSON(a.ctx, "/status", nil, &st); err == nil {
		v.catalog = &st.Catalog
	}
	if r := v.Active; r != nil && r.State == controller.StateMonitoring {
		var d api.RolloutDetail
		if _, err := cl.getJSON(a.ctx, "/rollouts/"+url.PathEscape(r.ID), nil, &d); err == nil {
			v.rollout = &d
		}
	}
	return v, b, nil
}

// watchService prints the service once, or with watch until the rollout that is
// active (or the latest one) ends.
func watchService(a *App, cl *client, name string, watch bool, interval time.Duration) error {
	var following string
	for first := true; ; first = false {
		v, b, err := fetchService(a, cl, name)
		if err != nil {
			return err
		}
		if !first {
			fmt.Fprintf(a.stdout, "\n--- %s\n", v.now.UTC().Format("15:04:05Z"))
		}
		if a.structured() {
			if err := a.printData(b); err != nil {
				return err
			}
		} else {
			writeServiceView(a.stdout, v)
		}
		if !watch {
			return nil
		}
		if v.Active != nil {
			following = v.Active.ID
			if err := stopped(*v.Active); err != nil {
				return err // paused: a person has to act
			}
		} else if following != "" {
			// The rollout followed ended: say how.
			var d api.RolloutDetail
			if _, err := cl.getJSON(a.ctx, "/rollouts/"+url.PathEscape(following), nil, &d); err != nil {
				return err
			}
			return stopped(d.RolloutSummary)
		}
		select {
		case <-a.ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

func writeServiceView(w io.Writer, v serviceView) {
	writeServiceDetail(w, v.ServiceDetail)
	if r := v.rollout; r != nil {
		if line := monitoringLine(r.Rollout, v.now); line != "" {
			fmt.Fprintf(w, "Monitoring:    %s\n", line)
		}
	}
	if c := v.catalog; c != nil {
		writeCatalogProblem(w, c)
	}
}

// monitoringLine says which phase of the monitoring window a rollout is in and how
// long the window has left: "phase Short-term (2 of 4), 3h26m left of 72h0m0s".
func monitoringLine(r controller.Rollout, now time.Time) string {
	phases := r.Plan.Monitoring
	if r.State != controller.StateMonitoring || len(phases) == 0 {
		return ""
	}
	end := phases[len(phases)-1].Until
	if r.Progress.AckedAt.IsZero() {
		return fmt.Sprintf("waiting for the proxies to ACK 100%%; then a window of %s", end)
	}
	i := min(max(r.Phase, 0), len(phases)-1)
	left := r.Progress.AckedAt.Add(end.D()).Sub(now)
	if left < 0 {
		left = 0
	}
	return fmt.Sprintf("phase %s (%d of %d, until %s), %s left of %s", phases[i].Name, i+1, len(phases), phases[i].Until,
		model.FormatDuration(left.Round(time.Second)), end)
}
