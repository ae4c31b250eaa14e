// Command demo shows octoroll end to end on one machine with nothing but Go: it starts
// octoroll with its embedded store and scrape source, three versions of the example
// app and a proxyless gRPC load generator whose traffic goes through octoroll's xDS,
// then runs release 1 (v1 → v2) to 100 % and through its monitoring window, and
// release 2 (v2 → v3, a canary failing about 8 % of requests), which the no-go rule
// rolls back. It prints a live view and both release reports, and stops everything it
// started, also on Ctrl-C.
//
//	make demo                 # builds bin/ and runs: go run ./examples/demo --bin bin
//	go run ./examples/demo --fast --bin bin
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var o options
	flag.StringVar(&o.Bin, "bin", "bin", "directory holding the octoroll, example-app and loadgen binaries")
	flag.StringVar(&o.Catalog, "catalog", "examples/catalog.yaml", "catalog template (ports are replaced by free ones)")
	flag.StringVar(&o.Release1, "release1", "examples/rollouts/demo-release-1.yaml", "rollout spec of release 1")
	flag.StringVar(&o.Release2, "release2", "examples/rollouts/demo-release-2.yaml", "rollout spec of release 2")
	flag.BoolVar(&o.Fast, "fast", false, "halve every window (the test suite runs the demo this way)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the work directory (logs, state) afterwards")
	flag.Parse()
	o.Out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if !res.OK() {
		fmt.Fprintln(os.Stderr, "demo: the releases did not end as expected")
		os.Exit(1)
	}
}
