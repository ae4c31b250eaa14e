package runner

import (
	"context"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/smoke"
	"github.com/octoacme/octoroll/translate"
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
	// One run for both, so the requests go out concurrently.
	res := r.http.Run(ctx, checks, r.canaryTarget(svc, ro))
	n := 0
	if wantSmoke {
		n = len(ro.Plan.SmokeTests)
		obs.Smoke = res[:n:n]
	}
	obs.Checks = append(obs.Checks, res[n:]...)
}

// canaryTarget is where ro's HTTP checks go: the canary's endpoints in svc, the
// effective service, less those the health checks found unhealthy (proxies send them no
// traffic, and the health rule, not a smoke test, judges a partial loss) — unless that
// leaves none.
func (r *Runner) canaryTarget(svc catalog.Service, ro controller.Rollout) smoke.Target {
	target := smoke.Target{Version: ro.Canary, PinHeader: translate.PinHeader}
	// Each address behind a DNS or SRV name is tested, as it is probed.
	v, ok := r.dns.Expand(svc).Version(ro.Canary)
	if !ok {
		return target
	}
	down := map[string]bool{}
	if r.opts.Health != nil {
		for _, u := range r.opts.Health.Status(svc.Name, ro.Canary).Unhealthy {
			down[u.Endpoint] = true
		}
	}
	var all []string
	for _, e := range v.Endpoints {
		all = append(all, e.String())
		if !down[e.String()] {
			target.Endpoints = append(target.Endpoints, e.String())
		}
	}
	if len(target.Endpoints) == 0 {
		target.Endpoints = all
	}
	return target
}

// promoteToCheck is, when cmd is an operator's promote that is not forced, the
// service's active rollout and its effective catalog entry, read under the lock: what
// the smoke tests and the confirmPromotion hooks run on, outside the lock, before such
// a promote is applied. ok is false for any other command or without an active
// rollout.
func (r *Runner) promoteToCheck(service string, cmd controller.Command) (ro controller.Rollout, svc catalog.Service, ok bool) {
	if cmd.Force || (cmd.Kind != controller.CmdPromote && cmd.Kind != controller.CmdPromoteFull) {
		return ro, svc, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.active[service]
	if !ok {
		return ro, svc, false
	}
	svc, _ = r.effectiveServiceLocked(service)
	return e.r, svc, true
}

// smokeBeforePromote runs the rollout's smoke tests for an operator's promote (not
// forced), outside the lock, and returns cmd with their results.
func (r *Runner) smokeBeforePromote(ctx context.Context, service string, cmd controller.Command) controller.Command {
	ro, svc, ok := r.promoteToCheck(service, cmd)
	if !ok || len(ro.Plan.SmokeTests) == 0 {
		return cmd
	}
	cmd.Smoke = r.http.Run(ctx, ro.Plan.SmokeTests, r.canaryTarget(svc, ro))
	if ctx.Err() != nil {
		// The caller went away mid-request: no verdict on the canary.
		cmd.Smoke = nil
	}
	return cmd
}
