package admin

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/xds"
)

func newLocalListener() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// fakeBackend is an in-memory Backend for tests of the HTTP layer alone: a checkout
// rollout at 25 % with one converged proxy and a short history.
type fakeBackend struct {
	mu       sync.Mutex
	ro       controller.Rollout
	events   []RunnerEvent
	commands []controller.Command
	panicOn  string
	err      error
}

var fakeStart = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

func newFakeBackend() *fakeBackend {
	thr := controller.DefaultThresholds()
	stages := []controller.Stage{
		{Name: "canary 5%", Weight: 500, MinWindow: catalog.Duration(15 * time.Minute), Thresholds: thr},
		{Name: "25%", Weight: 2500, MinWindow: catalog.Duration(30 * time.Minute), Thresholds: thr},
		{Name: "50%", Weight: 5000, MinWindow: catalog.Duration(30 * time.Minute), Thresholds: thr},
	}
	last := &controller.Numbers{CanaryRequests: 4000, CanaryErrors: 10, StableRequests: 12000, StableErrors: 12,
		CanaryErrorPct: 0.25, StableErrorPct: 0.1, CanaryP99: catalog.Duration(120 * time.Millisecond),
		StableP99: catalog.Duration(100 * time.Millisecond), LatencyRatio: 1.2,
		DeltaLowPP: 0.05, DeltaHighPP: 0.25, Window: catalog.Duration(10 * time.Minute),
		Verdict: controller.VerdictInconclusive, Reason: "error rate above baseline + 0.1 pp but not significant at 0.99 confidence"}
	ro := controller.Rollout{
		ID: "checkout-20250304-1", Service: "checkout", Stable: "v1", Canary: "v2",
		Spec:  controller.Spec{Service: "checkout", Release: controller.Release{Name: "2.0.0", Type: controller.Minor}},
		Plan:  controller.Plan{Type: controller.Minor, Stages: stages, Thresholds: thr},
		State: controller.StateProgressing, Stage: 1, Generation: 2,
		CreatedAt: fakeStart, UpdatedAt: fakeStart.Add(20 * time.Minute), StartedAt: fakeStart,
		Progress: controller.Progress{Last: last, LastDecision: controller.DecisionContinue},
	}
	ev := func(seq uint64, min int, kind string, stage int, w uint32, d controller.Decision, reason string) RunnerEvent {
		return RunnerEvent{Seq: seq, Event: controller.Event{Time: fakeStart.Add(time.Duration(min) * time.Minute),
			Kind: kind, RolloutID: ro.ID, Service: "checkout", State: controller.StateProgressing,
			Stage: stage, StageName: stages[stage].Name, Weight: w, Decision: d, Reason: reason}}
	}
	fb := &fakeBackend{ro: ro, events: []RunnerEvent{
		ev(1, 0, controller.EventStarted, 0, 500, "", ""),
		ev(2, 16, controller.EventDecision, 0, 500, controller.DecisionGo, "every check passed"),
		ev(3, 16, controller.EventStageAdvanced, 1, 2500, "", ""),
	}}
	fb.events[1].Numbers = last
	return fb
}

func (f *fakeBackend) check(method string) error {
	if f.panicOn == method {
		panic("fake backend: " + method)
	}
	return f.err
}

func (f *fakeBackend) view() ServiceView {
	ro := f.ro
	v := ServiceView{
		Service: catalog.Service{Name: "checkout", Port: 10000, Stable: "v1",
			Versions: []catalog.Version{{Name: "v1"}, {Name: "v2"}}},
		KnownGood:   "v1",
		Weights:     map[string]uint32{"v1": catalog.TotalWeight - ro.CanaryWeight(), "v2": ro.CanaryWeight()},
		Convergence: xds.Convergence{Service: "checkout", RouteVersion: "abc", Subscribed: 1, Acked: 1},
	}
	if !ro.State.Terminal() {
		v.Active = &ro
		v.LastObservation = ro.Progress.Last
	}
	return v
}

func (f *fakeBackend) Start(ctx context.Context, spec controller.Spec, actor string) (controller.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("Start"); err != nil {
		return controller.Rollout{}, err
	}
	return f.ro, nil
}

func (f *fakeBackend) Command(ctx context.Context, service string, cmd controller.Command) (controller.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("Command"); err != nil {
		return controller.Rollout{}, err
	}
	next, evs, err := f.ro.Apply(fakeStart.Add(25*time.Minute), cmd)
	if err != nil {
		return controller.Rollout{}, err
	}
	f.commands = append(f.commands, cmd)
	f.ro = next
	for _, e := range evs {
		f.events = append(f.events, RunnerEvent{Seq: uint64(len(f.events) + 1), Event: e})
	}
	return f.ro, nil
}

func (f *fakeBackend) Commands() []controller.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]controller.Command(nil), f.commands...)
}

func (f *fakeBackend) ReportCheck(ctx context.Context, service string, res controller.CheckResult) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.check("ReportCheck")
}

func (f *fakeBackend) Services() []ServiceView {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.check("Services")
	return []ServiceView{f.view()}
}

func (f *fakeBackend) Service(name string) (ServiceView, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.check("Service")
	if name != "checkout" {
		return ServiceView{}, false
	}
	return f.view(), true
}

func (f *fakeBackend) Rollout(id string) (controller.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("Rollout"); err != nil {
		return controller.Rollout{}, err
	}
	return f.ro, nil
}

func (f *fakeBackend) Rollouts(RolloutFilter) ([]controller.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("Rollouts"); err != nil {
		return nil, err
	}
	return []controller.Rollout{f.ro}, nil
}

func (f *fakeBackend) Events(q EventQuery) ([]RunnerEvent, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("Events"); err != nil {
		return nil, 0, err
	}
	var out []RunnerEvent
	next := q.After
	for _, e := range f.events {
		if e.Seq > q.After && (q.Limit == 0 || len(out) < q.Limit) {
			out = append(out, e)
			next = e.Seq
		}
	}
	return out, next, nil
}
