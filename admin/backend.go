package admin

import (
	"context"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/runner"
)

// Backend is the rollout runner as the admin API drives it; *runner.Runner satisfies it.
// Every method must be safe for concurrent use.
type Backend interface {
	// Start runs pre-flight and starts a rollout of spec.
	Start(ctx context.Context, spec controller.Spec, actor string) (controller.Rollout, error)
	// Command applies an operator command to the service's active rollout.
	Command(ctx context.Context, service string, cmd controller.Command) (controller.Rollout, error)
	// ReportCheck records the latest result of a named check for the service's active
	// rollout.
	ReportCheck(ctx context.Context, service string, res controller.CheckResult) error
	Services() []ServiceView
	Service(name string) (ServiceView, bool)
	Rollout(id string) (controller.Rollout, error)
	// Rollouts lists rollouts, newest first.
	Rollouts(f RolloutFilter) ([]controller.Rollout, error)
	// Events returns a page of events after a cursor and the cursor of the next page.
	Events(q EventQuery) ([]RunnerEvent, uint64, error)
}

// The runner's types, under the names the admin package uses.
type (
	ServiceView   = runner.ServiceView
	RolloutFilter = runner.RolloutFilter
	EventQuery    = runner.EventQuery
	RunnerEvent   = runner.EventRecord
)

var _ Backend = (*runner.Runner)(nil)
