package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/octoacme/octoroll/internal/logging"
)

// config is the app's settings: environment variables (prefix APP_) first, then flags
// of the same name override them.
type config struct {
	Service  string `env:"SERVICE" envDefault:"example"`
	Version  string `env:"VERSION" envDefault:"v1"`
	GRPCAddr string `env:"GRPC_ADDR" envDefault:":50051"`
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8090"`
	// ErrorRate is the fraction (0..1) of served requests that fail on purpose: gRPC
	// Unavailable, HTTP 503.
	ErrorRate float64 `env:"ERROR_RATE" envDefault:"0"`
	// Latency is the median delay added to a served request. With LatencySigma 0 every
	// request gets exactly Latency; otherwise the delay is lognormal, Latency ×
	// e^(σ·Z) with Z standard normal: the long right tail real services have (σ 0.6
	// puts the P99 at about 4 × the median). LatencyJitter adds a further uniform random
	// delay in [0, LatencyJitter).
	Latency       time.Duration `env:"LATENCY" envDefault:"0s"`
	LatencySigma  float64       `env:"LATENCY_SIGMA" envDefault:"0"`
	LatencyJitter time.Duration `env:"LATENCY_JITTER" envDefault:"0s"`
	// Seed seeds the random source of the error and jitter knobs; 0 picks a random seed.
	Seed      uint64 `env:"SEED" envDefault:"0"`
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
}

// maxLatencySigma bounds the lognormal's σ: at 3 the P99 is already 1,000 × the median.
const maxLatencySigma = 3

// loadConfig reads the environment, then args as flags.
func loadConfig(name string, args []string) (config, error) {
	var c config
	if err := env.ParseWithOptions(&c, env.Options{Prefix: "APP_"}); err != nil {
		return c, fmt.Errorf("environment: %w", err)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.Service, "service", c.Service, "service name reported in replies and metrics (APP_SERVICE)")
	fs.StringVar(&c.Version, "version", c.Version, "version reported in replies and metrics (APP_VERSION)")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address (APP_GRPC_ADDR)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address: /, /healthz, /metrics (APP_HTTP_ADDR)")
	fs.Float64Var(&c.ErrorRate, "error-rate", c.ErrorRate, "fraction 0..1 of requests that fail: gRPC Unavailable, HTTP 503 (APP_ERROR_RATE)")
	fs.DurationVar(&c.Latency, "latency", c.Latency, "latency added to every request, e.g. 20ms (APP_LATENCY)")
	fs.Float64Var(&c.LatencySigma, "latency-sigma", c.LatencySigma, "σ of the lognormal latency around its median --latency; 0 is constant (APP_LATENCY_SIGMA)")
	fs.DurationVar(&c.LatencyJitter, "latency-jitter", c.LatencyJitter, "further uniform random latency in [0, jitter) (APP_LATENCY_JITTER)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the error and jitter randomness; 0 is random (APP_SEED)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or console (APP_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (APP_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, c.Validate()
}

// Validate reports every invalid setting.
func (c config) Validate() error {
	var errs []error
	if c.Service == "" {
		errs = append(errs, errors.New("service: must not be empty"))
	}
	if c.Version == "" {
		errs = append(errs, errors.New("version: must not be empty"))
	}
	for _, a := range []struct{ name, addr string }{{"grpc-addr", c.GRPCAddr}, {"http-addr", c.HTTPAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", a.name, a.addr, err))
		}
	}
	// The negated form also rejects NaN.
	if !(c.ErrorRate >= 0 && c.ErrorRate <= 1) {
		errs = append(errs, fmt.Errorf("error-rate: %v is outside 0..1", c.ErrorRate))
	}
	if c.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency: %s is negative", c.Latency))
	}
	if !(c.LatencySigma >= 0 && c.LatencySigma <= maxLatencySigma) {
		errs = append(errs, fmt.Errorf("latency-sigma: %v is outside 0..%v", c.LatencySigma, maxLatencySigma))
	}
	if c.LatencyJitter < 0 {
		errs = append(errs, fmt.Errorf("latency-jitter: %s is negative", c.LatencyJitter))
	}
	if err := logging.Validate(c.LogFormat, c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
