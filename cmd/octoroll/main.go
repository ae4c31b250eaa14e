// Command octoroll is the octoroll daemon and its command-line client.
//
//	octoroll serve --config catalog.yaml    run the xDS control plane and rollout engine
//	octoroll status | rollout | pause | …   drive a running daemon (package cli)
//	octoroll version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/octoacme/octoroll/cli"
)

var version = "dev"

var usage = `octoroll: progressive delivery for Envoy, as an xDS control plane.

Usage:
  octoroll serve [flags]     run the control plane (xDS, rollout engine, admin API)
  octoroll version           print the version

Run "octoroll serve -h" for the daemon's flags; every flag has an OCTOROLL_ environment variable.

` + cli.Usage

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "version":
		fmt.Fprintln(stdout, "octoroll", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		if slices.Contains(cli.Commands, args[0]) {
			return cli.Main(ctx, args, stdout, stderr, os.Getenv)
		}
		fmt.Fprintf(stderr, "octoroll: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "octoroll %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
