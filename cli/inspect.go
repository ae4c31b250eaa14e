package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/octoacme/octoroll/admin/api"
)

func init() {
	register(historyCommand)
	register(reportCommand)
	register(proxiesCommand)
	register(proxyConfigCommand)
	register(checkCommand)
}

func historyCommand(a *App) *cobra.Command {
	var service, rollout, kind string
	var after uint64
	var limit int
	c := &cobra.Command{
		Use:   "history",
		Short: "Rollout events, oldest first (page with --after)",
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
			setIf(q, "rollout", rollout)
			setIf(q, "kind", kind)
			if after > 0 {
				q.Set("after", strconv.FormatUint(after, 10))
			}
			return show(a, "/events", q, writeEvents)
		},
	}
	f := c.Flags()
	f.StringVar(&service, "service", "", "only this service")
	f.StringVar(&rollout, "rollout", "", "only this rollout")
	f.StringVar(&kind, "kind", "", "only this event kind")
	f.Uint64Var(&after, "after", 0, "events after this sequence number")
	f.IntVar(&limit, "limit", 0, "at most this many events (server default 100)")
	return c
}

func reportCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "report SERVICE|ROLLOUT",
		Short: "The release report (Markdown; -o json): a service's latest rollout, or a rollout id or unique prefix",
		Args:  exactArgs("SERVICE or ROLLOUT id"),
		RunE: func(c *cobra.Command, args []string) error {
			if a.output == "md" {
				a.output = ""
			}
			if err := a.checkOutput(); err != nil {
				return usagef("-o %q: want md, json or yaml", a.output)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			id := args[0]
			if _, err := cl.getJSON(a.ctx, "/rollouts/"+url.PathEscape(id), nil, &json.RawMessage{}); err != nil {
				if id, err = findRollout(a, cl, args[0]); err != nil {
					return err
				}
			}
			req := request{method: http.MethodGet, path: "/rollouts/" + url.PathEscape(id) + "/report", accept: "text/markdown"}
			if a.structured() {
				req.accept = "application/json"
			}
			b, err := cl.do(a.ctx, req)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.printData(b)
			}
			if len(b) > 0 && b[len(b)-1] != '\n' {
				b = append(b, '\n')
			}
			_, err = a.stdout.Write(b)
			return err
		},
	}
}

func proxiesCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "proxies",
		Short: "Connected proxies and what they ACKed",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			return show(a, "/proxies", nil, func(w io.Writer, v api.ProxiesResponse) { writeProxies(w, v.Proxies) })
		},
	}
}

// proxyConfigCommand prints the config dump of one proxy: the API's data (the
// resources are JSON already, so there is no table form).
func proxyConfigCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "proxy-config NODE_ID",
		Short: "Resources sent to and ACKed by one proxy (JSON or YAML)",
		Args:  exactArgs("proxy NODE_ID"),
		RunE: func(c *cobra.Command, args []string) error {
			if a.output != "" && !a.structured() {
				return usagef("-o %q: want json or yaml", a.output)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			var v json.RawMessage
			b, err := cl.getJSON(a.ctx, "/proxies/"+url.PathEscape(args[0])+"/config", nil, &v)
			if err != nil {
				return err
			}
			return a.printData(b)
		},
	}
}

func checkCommand(a *App) *cobra.Command {
	var pass, fail bool
	var detail string
	c := &cobra.Command{
		Use:   "check SERVICE NAME --pass|--fail",
		Short: "Report the result of a smoke, synthetic or custom check",
		Args:  exactArgs("SERVICE", "check NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if pass == fail {
				return usagef("give exactly one of --pass or --fail")
			}
			if err := a.checkOutput(); err != nil {
				return err
			}
			return post(a, "/services/"+url.PathEscape(args[0])+"/checks",
				api.CheckRequest{Name: args[1], Passed: pass, Detail: detail}, func(w io.Writer, resp api.CheckResponse) {
					result := "failed"
					if resp.Passed {
						result = "passed"
					}
					fmt.Fprintf(w, "Recorded check %s of %s: %s\n", resp.Name, resp.Service, result)
				})
		},
	}
	f := c.Flags()
	f.BoolVar(&pass, "pass", false, "the check passed")
	f.BoolVar(&fail, "fail", false, "the check failed")
	f.StringVar(&detail, "detail", "", "what the check saw")
	return c
}
