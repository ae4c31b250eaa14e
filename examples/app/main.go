// Command app is octoroll's example service. It reports its service and version over
// gRPC (the grpc.testing.TestService interop service, plus grpc.health.v1) and HTTP
// (/ as JSON, /healthz, /metrics), and can be told to fail a fraction of requests and
// to answer slowly, so that a rollout has something to judge. Its metrics follow
// octoroll's application metrics convention (see catalog.MetricQueries).
//
// Settings come from APP_* environment variables, overridden by flags of the same name;
// run with -h for the list.
package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/octoacme/octoroll/internal/logging"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := loadConfig("app", args)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen grpc: %w", err)
	}
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		_ = grpcLis.Close()
		return fmt.Errorf("listen http: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	app := NewApp(cfg, log.Named("app"), rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
	return app.Serve(ctx, grpcLis, httpLis)
}
