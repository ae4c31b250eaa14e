package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/octoacme/octoroll/admin/api"
)

func init() { register(rolloutCommand) }

func rolloutCommand(a *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout",
		Short: "Start, list and inspect rollouts",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown subcommand %q: want start, list or get", args[0])
			}
			return usagef("missing subcommand: start, list or get")
		},
	}
	c.AddCommand(rolloutStart(a), rolloutList(a), rolloutGet(a))
	return c
}

func rolloutStart(a *App) *cobra.Command {
	var file, overrideFreeze string
	c := &cobra.Command{
		Use:   "start -f SPEC.yaml|SPEC.json|-",
		Short: "Start a rollout (pre-flight runs on the server); -f - reads the spec from stdin",
		Example: `  octoroll rollout start -f examples/rollouts/demo-release-1.yaml
  render-spec | octoroll rollout start -f -`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("missing -f SPEC.yaml (or -f - for stdin)")
			}
			if err := a.checkOutput(); err != nil {
				return err
			}
			var body []byte
			var err error
			if file == "-" {
				body, err = io.ReadAll(io.LimitReader(a.stdin, maxResponse))
			} else {
				body, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("read rollout spec: %w", err)
			}
			ct := "application/yaml"
			if strings.EqualFold(filepath.Ext(file), ".json") || (file == "-" && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{"))) {
				ct = "application/json"
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			setIf(q, api.OverrideFreezeParam, overrideFreeze)
			b, err := cl.do(a.ctx, request{method: http.MethodPost, path: "/rollouts", query: q, body: body, contentType: ct})
			if err != nil {
				return err
			}
			if a.structured() {
				return a.printData(b)
			}
			var d api.RolloutDetail
			if err := json.Unmarshal(b, &d); err != nil {
				return fmt.Errorf("decode response of POST /rollouts: %w", err)
			}
			writeStarted(a.stdout, d)
			return nil
		},
	}
	c.Flags().StringVarP(&file, "filename", "f", "", "rollout spec file (YAML or JSON); - reads stdin")
	c.Flags().StringVar(&overrideFreeze, "override-freeze", "", "start during a freeze, with the reason (recorded)")
	return c
}

func rolloutList(a *App) *cobra.Command {
	var service, state string
	var active bool
	var limit int
	c := &cobra.Command{
		Use:   "list",
		Short: "List rollouts, newest first",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			q, err := pageQuery(limit)
			if err != nil {
				return err
			}
			if err := a.checkOutput(); err != nil {
				return err
			}
			setIf(q, "service", service)
			setIf(q, "state", state)
			if active {
				q.Set("active", "true")
			}
			return show(a, "/rollouts", q, func(w io.Writer, v api.RolloutsResponse) { writeRollouts(w, v.Rollouts) })
		},
	}
	f := c.Flags()
	f.StringVar(&service, "service", "", "only this service")
	f.StringVar(&state, "state", "", "only this state (pending, progressing, paused, monitoring, completed, rolled_back)")
	f.BoolVar(&active, "active", false, "only active rollouts")
	f.IntVar(&limit, "limit", 0, "at most this many")
	return c
}

func rolloutGet(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "get SERVICE|ROLLOUT",
		Short: "One rollout with its stage timeline: a service's latest, or a rollout id or unique id prefix",
		Args:  exactArgs("SERVICE or ROLLOUT id"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			id, body, err := resolveRollout(a, cl, args[0])
			if err != nil {
				return err
			}
			if body == nil {
				var d api.RolloutDetail
				if body, err = cl.getJSON(a.ctx, "/rollouts/"+url.PathEscape(id), nil, &d); err != nil {
					return err
				}
			}
			if a.structured() {
				return a.printData(body)
			}
			var d api.RolloutDetail
			if err := json.Unmarshal(body, &d); err != nil {
				return fmt.Errorf("decode rollout %s: %w", id, err)
			}
			writeRolloutDetail(a.stdout, d)
			return nil
		},
	}
}

// resolveRollout finds the rollout ref names: a rollout id, the latest rollout of a
// service of that name, or the one rollout whose id starts with ref. When ref is an id
// it returns the rollout's detail as read too.
func resolveRollout(a *App, cl *client, ref string) (string, []byte, error) {
	var d api.RolloutDetail
	b, err := cl.getJSON(a.ctx, "/rollouts/"+url.PathEscape(ref), nil, &d)
	var ae *apiError
	switch {
	case err == nil:
		return d.ID, b, nil
	case !errors.As(err, &ae) || ae.Status != http.StatusNotFound:
		return "", nil, err
	}
	id, err := findRollout(a, cl, ref)
	return id, nil, err
}

// findRollout finds the latest rollout of service ref, or the one whose id starts
// with ref.
func findRollout(a *App, cl *client, ref string) (string, error) {
	var latest api.RolloutsResponse
	if _, err := cl.getJSON(a.ctx, "/rollouts", url.Values{"service": {ref}, "limit": {"1"}}, &latest); err != nil {
		return "", err
	}
	if len(latest.Rollouts) > 0 {
		return latest.Rollouts[0].ID, nil
	}
	var all api.RolloutsResponse
	if _, err := cl.getJSON(a.ctx, "/rollouts", nil, &all); err != nil {
		return "", err
	}
	var matches []string
	for _, r := range all.Rollouts {
		if strings.HasPrefix(r.ID, ref) {
			matches = append(matches, r.ID)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return "", fmt.Errorf("no rollout %q: neither a rollout id, an id prefix nor a service with rollouts", ref)
	}
	if len(matches) > 5 {
		matches = append(matches[:5], "…")
	}
	return "", fmt.Errorf("rollout id prefix %q is ambiguous: %s", ref, strings.Join(matches, ", "))
}
