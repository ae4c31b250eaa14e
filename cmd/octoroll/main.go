// Command octoroll is the octoroll daemon and its command-line client.
//
//	octoroll serve --config catalog.yaml    run the xDS control plane and rollout engine
//	octoroll status | rollout | wait | …    drive a running daemon (package cli)
//	octoroll lint FILE…                     validate catalogs and rollout specs offline
//	octoroll --version
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/octoacme/octoroll/cli"
	"github.com/octoacme/octoroll/lint"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	p := cli.Program{Version: version, Serve: serve, Lint: lint.File}
	return p.Main(ctx, args, stdout, stderr, os.Getenv)
}
