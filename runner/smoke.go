package runner

import (
	"context"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/smoke"
	"github.com/octoacme/octoroll/xds"
)

// HTTPChecker runs smoke tests and synthetics against a canary version (smoke.Runner).
type HTTPChecker interface {
	Run(ctx context.Context, checks []controller.HTTPCheck, target smoke.Target) []controller.CheckResult
}

var _ HTTPChecker = (*smoke.Runner)(nil)

// httpChecks runs the smoke tests and synthetics the rollout asks for at this check
// (controller.Rollout.Wants) against the canary's endpoints in svc, the effective
// service, and adds their results to obs: smoke tests to obs.Smoke, synthetics to
// obs.Checks next to the reported checks.
func (r *Runner) httpChecks(ctx context.Context, svc catalog.Service, ro controller.Rollout, obs *controller.Observation) {
	wantSmoke, wantSynth := ro.Wants(r.opts.Now())
	var checks []controller.HTTPCheck
	if wantSmoke {
		checks = append(checks, ro.Plan.SmokeTests...)
	}
	if wantSynth {
		checks = append(checks, ro.Plan.Synthetics...)
	}
	if len(checks) == 0 {
		return
	}
	target := smoke.Target{Version: ro.Canary, PinHeader: xds.PinHeader}
	if v, ok := svc.Version(ro.Canary); ok {
		for _, e := range v.Endpoints {
			target.Endpoints = append(target.Endpoints, e.String())
		}
	}
	// One run for both, so the requests go out concurrently.
	res := r.http.Run(ctx, checks, target)
	n := 0
	if wantSmoke {
		n = len(ro.Plan.SmokeTests)
		obs.Smoke = res[:n:n]
	}
	obs.Checks = append(obs.Checks, res[n:]...)
}
