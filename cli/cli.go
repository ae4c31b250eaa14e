// Package cli is the octoroll command line: the client commands (status, rollout,
// pause/resume/promote/abort/finish, wait, history, report, proxies, check) that talk to
// the admin API of a running `octoroll serve`, plus help, --version and shell
// completions. It owns argument parsing (github.com/spf13/cobra) and the human-readable
// output; the wire types are package admin/api's.
//
// It only speaks HTTP: it imports the API's wire types (admin/api) and plain data
// (model, controller), never the admin server, the runner, the store, the catalog
// loader or the xds server (asserted by internal/deps). What needs those (the daemon,
// offline lint) is handed in by the binary through Program.
//
// Adding a command is one file: a constructor func(*App) *cobra.Command registered in
// an init function with register.
package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// DefaultServer is the admin API address used without --server or OCTOROLL_SERVER.
const DefaultServer = "http://127.0.0.1:8080"

// Exit codes of every octoroll command (README, "Exit codes").
const (
	ExitOK         = 0
	ExitError      = 1 // the API refused or could not be reached; lint found problems
	ExitUsage      = 2 // a mistake in the command line
	ExitRolledBack = 3 // wait, status --watch: the rollout rolled back
	ExitPaused     = 4 // wait: the rollout paused
	ExitTimeout    = 5 // wait: --timeout passed first
)

// Program is what the binary adds to the client commands.
type Program struct {
	// Version is printed by --version and `octoroll version`.
	Version string
	// Serve runs the daemon with its own arguments (`octoroll serve …`); nil leaves
	// the serve command out.
	Serve func(ctx context.Context, args []string, stderr io.Writer) error
	// Lint validates one catalog or rollout spec file offline; nil leaves the lint
	// command out. It returns every problem found (errors.Join), each naming
	// FILE:LINE:COL where known.
	Lint func(name string, data []byte) error
	// Now is the clock for "time left" (time.Now when nil).
	Now func() time.Time
	// Interval is the polling interval of wait and status --watch when not given
	// (2s when zero).
	Interval time.Duration

	stdin io.Reader // os.Stdin when nil
}

// withStdin returns p reading -f - and lint - from r.
func (p Program) withStdin(r io.Reader) Program { p.stdin = r; return p }

// Main runs the client commands of a program without daemon or lint (the tests').
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	return Program{Version: "dev"}.Main(ctx, args, stdout, stderr, env)
}

// App is one run of the command line: the program, the global flags and the outputs.
// Commands read the global flags through it.
type App struct {
	Program
	ctx            context.Context
	stdout, stderr io.Writer
	stdin          io.Reader
	env            func(string) string

	server, token, tokenFile, actor, output string
}

// commandFuncs are the registered commands, in registration order.
var commandFuncs []func(*App) *cobra.Command

// register adds a command; call it from an init function.
func register(f func(*App) *cobra.Command) { commandFuncs = append(commandFuncs, f) }

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// exitError ends a command with a code other than 1, after the command printed why.
type exitError struct {
	code int
	msg  string // printed on stderr when not empty
}

func (e *exitError) Error() string { return e.msg }

// Main runs one command line (args without the program name) and returns the exit
// code (see the Exit constants). env reads the environment (os.Getenv).
func (p Program) Main(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Interval <= 0 {
		p.Interval = 2 * time.Second
	}
	stdin := p.stdin
	if stdin == nil {
		stdin = os.Stdin
	}
	a := &App{Program: p, ctx: ctx, stdout: stdout, stderr: stderr, stdin: stdin, env: env}
	root := a.root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if len(args) == 0 {
		root.InitDefaultHelpCmd()
		root.InitDefaultCompletionCmd()
		root.SetOut(stderr)
		root.Usage()
		return ExitUsage
	}
	cmd, err := root.ExecuteContextC(ctx)
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(stderr, "octoroll: %s\n", ee.msg)
		}
		return ee.code
	case errors.As(err, &ue) || isFlagError(err):
		msg := err.Error()
		if ue != nil {
			msg = ue.msg
		}
		fmt.Fprintf(stderr, "%s: %s\nRun \"%s --help\" for usage.\n", cmd.CommandPath(), msg, cmd.CommandPath())
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "octoroll: %v\n", err)
		return ExitError
	}
}

// isFlagError tells cobra's command-line errors (unknown flag or command, bad flag
// value, wrong number of arguments) from the errors of running a command.
func isFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "unknown command", "invalid argument", "flag needs an argument",
		"accepts ", "requires at least", "requires at most", "bad flag syntax", "if any flags in the group", "none of the others can be"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, " "+p) {
			return true
		}
	}
	return false
}

func (a *App) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "octoroll",
		Short: "Progressive delivery for Envoy, as an xDS control plane",
		Long: `octoroll: progressive delivery for Envoy, as an xDS control plane.

"octoroll serve" runs the control plane; the other commands drive a running one
through its admin API (--server, OCTOROLL_SERVER).`,
		Version:       a.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Flags may come before or after the command and its arguments.
		TraverseChildren: false,
	}
	root.SetVersionTemplate("octoroll {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	// Defaults come from the environment when a command runs (App.client), so that
	// help never prints a token.
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", "", "admin API address (OCTOROLL_SERVER, default "+DefaultServer+")")
	pf.StringVar(&a.token, "token", "", "bearer token (OCTOROLL_ADMIN_TOKEN; prefer the variable or --token-file: a flag shows in ps)")
	pf.StringVar(&a.tokenFile, "token-file", "", "file holding the bearer token (OCTOROLL_ADMIN_TOKEN_FILE)")
	pf.StringVar(&a.actor, "actor", "", "who is acting, recorded with commands (OCTOROLL_ACTOR, default $USER)")
	pf.StringVarP(&a.output, "output", "o", "", "output format: table (default), json or yaml")
	for _, f := range commandFuncs {
		if c := f(a); c != nil {
			root.AddCommand(c)
		}
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(c *cobra.Command, _ []string) { fmt.Fprintf(a.stdout, "octoroll %s\n", a.Version) },
	})
	if a.Serve != nil {
		root.AddCommand(&cobra.Command{
			Use:                "serve [flags]",
			Short:              "Run the control plane (xDS, rollout engine, admin API); see octoroll serve -h",
			DisableFlagParsing: true, // the daemon's own flags and OCTOROLL_ variables
			RunE: func(c *cobra.Command, args []string) error {
				err := a.Serve(a.ctx, args, a.stderr)
				if err != nil && !errors.Is(err, flag.ErrHelp) {
					fmt.Fprintf(a.stderr, "octoroll serve: %v\n", err)
					return &exitError{code: ExitError}
				}
				return nil
			},
		})
	}
	return root
}

// client builds the API client from the global flags and the environment.
func (a *App) client() (*client, error) {
	a.server = cmp.Or(a.server, a.env("OCTOROLL_SERVER"), DefaultServer)
	a.token = cmp.Or(a.token, a.env("OCTOROLL_ADMIN_TOKEN"))
	a.tokenFile = cmp.Or(a.tokenFile, a.env("OCTOROLL_ADMIN_TOKEN_FILE"))
	if a.token == "" && a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		a.token = strings.TrimSpace(string(b))
	}
	a.actor = cmp.Or(a.actor, a.env("OCTOROLL_ACTOR"), a.env("USER"))
	base := strings.TrimRight(a.server, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server %q: want http://host:port or https://host:port", a.server)
	}
	return &client{base: base, token: a.token, actor: a.actor, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// checkOutput accepts table (or empty), json and yaml; allowed adds command-specific
// formats.
func (a *App) checkOutput(allowed ...string) error {
	if a.output == "table" {
		a.output = ""
	}
	ok := append([]string{"json", "yaml"}, allowed...)
	if a.output == "" || slices.Contains(ok, a.output) {
		return nil
	}
	return usagef("-o %q: want table, %s", a.output, strings.Join(ok, " or "))
}

// structured reports whether the output is the API's data (json or yaml) rather than
// text for people.
func (a *App) structured() bool { return a.output == "json" || a.output == "yaml" }

// printData prints an API response body as indented JSON, or as YAML with -o yaml.
func (a *App) printData(b []byte) error {
	if a.output == "yaml" {
		out, err := jsonToYAML(b)
		if err != nil {
			return err
		}
		_, err = a.stdout.Write(out)
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		buf.Reset()
		buf.Write(b)
	}
	buf.WriteByte('\n')
	_, err := a.stdout.Write(buf.Bytes())
	return err
}

// jsonToYAML re-writes a JSON document as block YAML with the same keys in the same
// order and the same values.
func jsonToYAML(b []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("convert the response to YAML: %w", err)
	}
	var plain func(*yaml.Node)
	plain = func(n *yaml.Node) {
		n.Style = 0
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && needsQuotes(n.Value) {
			n.Style = yaml.DoubleQuotedStyle
		}
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("convert the response to YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// needsQuotes reports whether a string would read back as another type unquoted.
func needsQuotes(s string) bool {
	var v any
	if yaml.Unmarshal([]byte(s), &v) != nil {
		return true
	}
	_, isString := v.(string)
	return !isString || v != s
}

// show GETs path into a T and prints it: the API's own data with -o json or yaml,
// otherwise the text write renders.
func show[T any](a *App, path string, query url.Values, write func(io.Writer, T)) error {
	return render(a, func(c *client, v any) ([]byte, error) { return c.getJSON(a.ctx, path, query, v) }, write)
}

// exactArgs is cobra.ExactArgs naming what is missing.
func exactArgs(what ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < len(what) {
			return usagef("missing %s", strings.Join(what[len(args):], " and "))
		}
		if len(args) > len(what) {
			return usagef("unexpected argument %q", args[len(what)])
		}
		return nil
	}
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}
