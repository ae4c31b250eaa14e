// Package cli is the client side of the octoroll command: status, rollout start,
// pause/resume/promote/abort/finish, history, report, proxies and check, talking to the
// admin API of a running `octoroll serve`. It owns argument parsing and the
// human-readable output; the wire types are package admin/api's.
//
// It only speaks HTTP: it imports the API's wire types (admin/api) and plain data
// (model, controller), never the admin server, the runner, the store, the catalog
// loader or the xds server (asserted by internal/deps).
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/octoacme/octoroll/admin/api"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/octoacme/octoroll/controller"
)

// DefaultServer is the admin API address used without --server or OCTOROLL_SERVER.
const DefaultServer = "http://127.0.0.1:8080"

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1 // the API refused, or could not be reached
	ExitUsage = 2
)

// Usage is the help text of the client commands.
const Usage = `Client commands (talk to the admin API of a running "octoroll serve"):
  octoroll status [SERVICE]                       services, rollout progress and proxies
  octoroll rollout start -f SPEC.yaml|SPEC.json   start a rollout (pre-flight runs on the server)
  octoroll rollout list [--service S] [--state S] [--active] [--limit N]
  octoroll rollout get ROLLOUT                    one rollout with its stage timeline
  octoroll pause|resume SERVICE [--reason TEXT]
  octoroll promote SERVICE [--full] [--force] [--reason TEXT]
  octoroll abort SERVICE --reason TEXT            roll back to the known-good version
  octoroll finish SERVICE [--force] [--reason TEXT]  close the monitoring window early
  octoroll history [--service S] [--rollout ID] [--kind K] [--after SEQ] [--limit N]
  octoroll report ROLLOUT [-o md|json]            the release report
  octoroll proxies                                connected proxies and what they ACKed
  octoroll proxy-config NODE_ID                   resources sent to and ACKed by one proxy (JSON)
  octoroll check SERVICE NAME --pass|--fail [--detail TEXT]  report a smoke/synthetic check

Flags of every client command:
  --server URL   admin API address (OCTOROLL_SERVER, default ` + DefaultServer + `)
  --token TOKEN  bearer token (OCTOROLL_ADMIN_TOKEN; prefer the variable: a flag shows in ps)
  --token-file F file holding the bearer token (OCTOROLL_ADMIN_TOKEN_FILE)
  --actor NAME   who is acting, recorded with commands (OCTOROLL_ACTOR, default $USER)
  -o json        print the API's JSON instead of tables
`

// Commands lists the client command names, for a dispatcher.
var Commands = []string{"status", "rollout", "pause", "resume", "promote", "abort", "finish", "history", "report", "proxies", "proxy-config", "check"}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// Main runs one client command (args[0] is the command name, without the program
// name) and returns the exit code: 0, 1 when the API refused or could not be reached,
// 2 for a usage error. env reads the environment (os.Getenv).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return ExitUsage
	}
	cmd, rest := args[0], args[1:]
	run, ok := commands()[cmd]
	if !ok {
		if cmd == "help" || cmd == "-h" || cmd == "--help" {
			fmt.Fprint(stdout, Usage)
			return ExitOK
		}
		fmt.Fprintf(stderr, "octoroll: unknown command %q\n\n%s", cmd, Usage)
		return ExitUsage
	}
	inv := &invocation{name: cmd, stdout: stdout, stderr: stderr, env: env}
	err := run(ctx, inv, rest)
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, Usage)
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "octoroll %s: %s\nRun \"octoroll help\" for usage.\n", cmd, ue.msg)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "octoroll: %v\n", err)
		return ExitError
	}
}

type runFunc func(ctx context.Context, inv *invocation, args []string) error

func commands() map[string]runFunc {
	return map[string]runFunc{
		"status":       runStatus,
		"rollout":      runRollout,
		"pause":        action(controller.CmdPause),
		"resume":       action(controller.CmdResume),
		"promote":      action(controller.CmdPromote),
		"abort":        action(controller.CmdAbort),
		"finish":       action(controller.CmdFinish),
		"history":      runHistory,
		"report":       runReport,
		"proxies":      runProxies,
		"proxy-config": runProxyConfig,
		"check":        runCheck,
	}
}

// invocation is one command's parsed common flags and outputs.
type invocation struct {
	name           string
	stdout, stderr io.Writer
	env            func(string) string

	server, token, tokenFile, actor, output string
}

// flags returns a flag set with the common flags.
func (inv *invocation) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("octoroll "+name, flag.ContinueOnError)
	// Parse errors are reported once, by Main; so is the usage for -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	server := inv.env("OCTOROLL_SERVER")
	if server == "" {
		server = DefaultServer
	}
	actor := inv.env("OCTOROLL_ACTOR")
	if actor == "" {
		actor = inv.env("USER")
	}
	fs.StringVar(&inv.server, "server", server, "admin API address")
	fs.StringVar(&inv.token, "token", inv.env("OCTOROLL_ADMIN_TOKEN"), "bearer token")
	fs.StringVar(&inv.tokenFile, "token-file", inv.env("OCTOROLL_ADMIN_TOKEN_FILE"), "file holding the bearer token")
	fs.StringVar(&inv.actor, "actor", actor, "who is acting")
	fs.StringVar(&inv.output, "o", "", "output format (json)")
	return fs
}

// parse parses args allowing flags after positional arguments ("abort checkout
// --reason x") and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// client builds the API client from the parsed flags.
func (inv *invocation) client() (*client, error) {
	base := strings.TrimRight(inv.server, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server %q: want http://host:port or https://host:port", inv.server)
	}
	token := inv.token
	if token == "" && inv.tokenFile != "" {
		b, err := os.ReadFile(inv.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &client{base: base, token: token, actor: inv.actor, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// checkOutput accepts "" (tables) and json; allowed adds command-specific formats.
func (inv *invocation) checkOutput(allowed ...string) error {
	if inv.output == "" || inv.output == "json" {
		return nil
	}
	for _, a := range allowed {
		if inv.output == a {
			return nil
		}
	}
	return usagef("-o %q: want json%s", inv.output, strings.Join(append([]string{""}, allowed...), " or "))
}

// printJSON prints an API response body as indented JSON.
func (inv *invocation) printJSON(b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		buf.Reset()
		buf.Write(b)
	}
	buf.WriteByte('\n')
	_, err := inv.stdout.Write(buf.Bytes())
	return err
}

func positional(pos []string, want int, what string) error {
	if len(pos) < want {
		return usagef("missing %s", what)
	}
	if len(pos) > want {
		return usagef("unexpected argument %q", pos[want])
	}
	return nil
}

func runStatus(ctx context.Context, inv *invocation, args []string) error {
	fs := inv.flags("status")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("unexpected argument %q", pos[1])
	}
	if err := inv.checkOutput(); err != nil {
		return err
	}
	if len(pos) == 1 {
		return show(ctx, inv, "/services/"+url.PathEscape(pos[0]), nil, writeServiceDetail)
	}
	return show(ctx, inv, "/services", nil, writeServicesResponse)
}

func runRollout(ctx context.Context, inv *invocation, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: start, list or get")
	}
	sub, args := args[0], args[1:]
	fs := inv.flags("rollout " + sub)
	switch sub {
	case "start":
		file := fs.String("f", "", "rollout spec file (YAML or JSON)")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if err := positional(pos, 0, ""); err != nil {
			return err
		}
		if *file == "" {
			return usagef("missing -f SPEC.yaml")
		}
		if err := inv.checkOutput(); err != nil {
			return err
		}
		body, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("read rollout spec: %w", err)
		}
		ct := "application/yaml"
		if strings.EqualFold(filepath.Ext(*file), ".json") {
			ct = "application/json"
		}
		c, err := inv.client()
		if err != nil {
			return err
		}
		b, err := c.do(ctx, request{method: http.MethodPost, path: "/rollouts", body: body, contentType: ct})
		if err != nil {
			return err
		}
		if inv.output == "json" {
			return inv.printJSON(b)
		}
		var d api.RolloutDetail
		if err := json.Unmarshal(b, &d); err != nil {
			return fmt.Errorf("decode response of POST /rollouts: %w", err)
		}
		writeStarted(inv.stdout, d)
		return nil
	case "list":
		service := fs.String("service", "", "only this service")
		state := fs.String("state", "", "only this state")
		active := fs.Bool("active", false, "only active rollouts")
		limit := fs.Int("limit", 0, "at most this many (newest first)")
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
		q := url.Values{}
		setIf(q, "service", *service)
		setIf(q, "state", *state)
		if *active {
			q.Set("active", "true")
		}
		if *limit > 0 {
			q.Set("limit", strconv.Itoa(*limit))
		}
		return show(ctx, inv, "/rollouts", q, func(w io.Writer, v api.RolloutsResponse) { writeRollouts(w, v.Rollouts) })
	case "get":
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if err := positional(pos, 1, "ROLLOUT id"); err != nil {
			return err
		}
		if err := inv.checkOutput(); err != nil {
			return err
		}
		return show(ctx, inv, "/rollouts/"+url.PathEscape(pos[0]), nil, writeRolloutDetail)
	}
	return usagef("unknown subcommand %q: want start, list or get", sub)
}

// action runs pause, resume, promote [--full], abort and finish.
func action(kind controller.CommandKind) runFunc {
	return func(ctx context.Context, inv *invocation, args []string) error {
		fs := inv.flags(string(kind))
		reason := fs.String("reason", "", "why (required for abort)")
		var force, full *bool
		if kind == controller.CmdPromote || kind == controller.CmdFinish {
			force = fs.Bool("force", false, "override a failing check or the deployment window")
		}
		if kind == controller.CmdPromote {
			full = fs.Bool("full", false, "promote straight to 100 %")
		}
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if err := positional(pos, 1, "SERVICE"); err != nil {
			return err
		}
		if kind == controller.CmdAbort && strings.TrimSpace(*reason) == "" {
			return usagef("abort needs --reason TEXT (recorded in the incident)")
		}
		if err := inv.checkOutput(); err != nil {
			return err
		}
		path := string(kind)
		if full != nil && *full {
			path = string(controller.CmdPromoteFull)
		}
		req := api.ActionRequest{Reason: *reason}
		if force != nil {
			req.Force = *force
		}
		c, err := inv.client()
		if err != nil {
			return err
		}
		var d api.RolloutDetail
		b, err := c.postJSON(ctx, "/services/"+url.PathEscape(pos[0])+"/"+path, req, &d)
		if err != nil {
			return err
		}
		if inv.output == "json" {
			return inv.printJSON(b)
		}
		writeActionResult(inv.stdout, path, d)
		return nil
	}
}

func runHistory(ctx context.Context, inv *invocation, args []string) error {
	fs := inv.flags("history")
	service := fs.String("service", "", "only this service")
	rollout := fs.String("rollout", "", "only this rollout")
	kind := fs.String("kind", "", "only this event kind")
	after := fs.Uint64("after", 0, "events after this sequence number")
	limit := fs.Int("limit", 0, "at most this many events (server default 100)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := positional(pos, 0, ""); err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("--limit %d: want a positive number", *limit)
	}
	if err := inv.checkOutput(); err != nil {
		return err
	}
	q := url.Values{}
	setIf(q, "service", *service)
	setIf(q, "rollout", *rollout)
	setIf(q, "kind", *kind)
	if *after > 0 {
		q.Set("after", strconv.FormatUint(*after, 10))
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	return show(ctx, inv, "/events", q, writeEvents)
}

func runReport(ctx context.Context, inv *invocation, args []string) error {
	fs := inv.flags("report")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := positional(pos, 1, "ROLLOUT id"); err != nil {
		return err
	}
	if err := inv.checkOutput("md"); err != nil {
		return err
	}
	c, err := inv.client()
	if err != nil {
		return err
	}
	req := request{method: http.MethodGet, path: "/rollouts/" + url.PathEscape(pos[0]) + "/report", accept: "text/markdown"}
	if inv.output == "json" {
		req.accept = "application/json"
	}
	b, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	if inv.output == "json" {
		return inv.printJSON(b)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	_, err = inv.stdout.Write(b)
	return err
}

func runProxies(ctx context.Context, inv *invocation, args []string) error {
	fs := inv.flags("proxies")
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
	return show(ctx, inv, "/proxies", nil, func(w io.Writer, v api.ProxiesResponse) { writeProxies(w, v.Proxies) })
}

// runProxyConfig prints the config dump of one proxy: the API's JSON (the resources are
// JSON already, so there is no table form).
func runProxyConfig(ctx context.Context, inv *invocation, args []string) error {
	fs := inv.flags("proxy-config")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := positional(pos, 1, "proxy NODE_ID"); err != nil {
		return err
	}
	if err := inv.checkOutput(); err != nil {
		return err
	}
	c, err := inv.client()
	if err != nil {
		return err
	}
	var v json.RawMessage
	b, err := c.getJSON(ctx, "/proxies/"+url.PathEscape(pos[0])+"/config", nil, &v)
	if err != nil {
		return err
	}
	return inv.printJSON(b)
}

func runCheck(ctx context.Context, inv *invocation, args []string) error {
	fs := inv.flags("check")
	pass := fs.Bool("pass", false, "the check passed")
	fail := fs.Bool("fail", false, "the check failed")
	detail := fs.String("detail", "", "what the check saw")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := positional(pos, 2, "SERVICE and check NAME"); err != nil {
		return err
	}
	if *pass == *fail {
		return usagef("give exactly one of --pass or --fail")
	}
	if err := inv.checkOutput(); err != nil {
		return err
	}
	c, err := inv.client()
	if err != nil {
		return err
	}
	var resp api.CheckResponse
	b, err := c.postJSON(ctx, "/services/"+url.PathEscape(pos[0])+"/checks",
		api.CheckRequest{Name: pos[1], Passed: *pass, Detail: *detail}, &resp)
	if err != nil {
		return err
	}
	if inv.output == "json" {
		return inv.printJSON(b)
	}
	result := "failed"
	if resp.Passed {
		result = "passed"
	}
	fmt.Fprintf(inv.stdout, "Recorded check %s of %s: %s\n", resp.Name, resp.Service, result)
	return nil
}

func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}
