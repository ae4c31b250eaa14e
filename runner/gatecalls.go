package runner

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/gate"
	"github.com/octoacme/octoroll/model"
)

// Blocking webhooks are asked in the background: a check never waits for a hook, so
// a hook that hangs (up to its attempts × timeout, with backoff) holds up only its own
// rollout, never the checks of other services nor their rollbacks.
//
// The loop starts at most one question per rollout and gate point at a time (every
// hook of the point asked at once, each with its own attempts and backoff). Each
// answer is handed to the engine once, as part of the observation of the first check
// after it came; a hook still being asked is named in Observation.GatesPending, which
// holds ("asking hook X"). A question is about one moment of the rollout (its weights
// generation, state and stage): once the rollout moved on, or no longer wants that
// point, the question is cancelled and its answers dropped. After a check that was
// handed the answers, the next question starts at once when the rollout will want the
// same point at its next check, so that an answer is ready for every check; a wait
// answer's retryAfter delays it (no question before then).

// gateCall is one question to the hooks of one gate point.
type gateCall struct {
	cancel context.CancelFunc
	// pending are the hooks not answered yet; answers those that did, in the order
	// they came.
	pending map[string]bool
	answers []model.GateAnswer
	// retryAt is the latest time a wait's retryAfter asks for, on the runner's clock.
	retryAt time.Time
}

// rolloutGates are the questions of one rollout.
type rolloutGates struct {
	// moment is the rollout's moment they are about (gateMoment).
	moment string
	calls  map[string]*gateCall // by point
	retry  map[string]time.Time // by point: no new question before
}

// gateCalls are the questions in the background, by rollout id.
type gateCalls struct {
	mu       sync.Mutex
	rollouts map[string]*rolloutGates
	wg       sync.WaitGroup
}

// gateMoment identifies what a question is about: the rollout's weights generation,
// state and stage.
func gateMoment(ro controller.Rollout) string {
	return fmt.Sprintf("%d/%s/%d", ro.Generation, ro.State, ro.Stage)
}

// forLocked returns ro's questions, cancelling those about an earlier moment.
func (c *gateCalls) forLocked(ro controller.Rollout) *rolloutGates {
	if c.rollouts == nil {
		c.rollouts = map[string]*rolloutGates{}
	}
	m := gateMoment(ro)
	g := c.rollouts[ro.ID]
	if g != nil && g.moment == m {
		return g
	}
	if g != nil {
		for _, call := range g.calls {
			call.cancel()
		}
	}
	g = &rolloutGates{moment: m, calls: map[string]*gateCall{}, retry: map[string]time.Time{}}
	c.rollouts[ro.ID] = g
	return g
}

// drop cancels every question of the rollout (it ended).
func (c *gateCalls) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.rollouts[id]; g != nil {
		for _, call := range g.calls {
			call.cancel()
		}
		delete(c.rollouts, id)
	}
}

// gateChecks hands obs the answers of the hooks of the gate point ro wants at this
// check that came since the last one, and names those still being asked; it starts
// the question when none is under way (unless a wait's retryAfter has not passed).
// It never waits for a hook.
func (r *Runner) gateChecks(ro controller.Rollout, obs *controller.Observation) {
	now := r.opts.Now()
	point := ro.GateWanted(now, obs.Freeze)
	c := &r.calls
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.forLocked(ro)
	for p, call := range g.calls {
		if p != point {
			// Not wanted now: its answer would be stale by the next time it is.
			call.cancel()
			delete(g.calls, p)
		}
	}
	if point == "" {
		return
	}
	hooks := ro.Plan.Gates.At(point)
	call := g.calls[point]
	if call == nil {
		if at := g.retry[point]; now.Before(at) {
			for _, h := range hooks {
				obs.GatesPending = append(obs.GatesPending, controller.GatePending{Hook: h.Name, Point: point, RetryAt: at})
			}
			return
		}
		call = r.askLocked(g, ro, point)
	}
	obs.Gates = append(obs.Gates, call.answers...)
	for _, h := range hooks {
		if call.pending[h.Name] {
			obs.GatesPending = append(obs.GatesPending, controller.GatePending{Hook: h.Name, Point: point})
		}
	}
	if len(call.pending) == 0 {
		// Handed once: the next check needs a new answer.
		delete(g.calls, point)
		if call.retryAt.After(now) {
			g.retry[point] = call.retryAt
		}
	}
}

// askAhead starts the question ro will want at its next check, at, unless one is under
// way or a wait's retryAfter has not passed: its answer is then ready for that check.
// Called after a check committed ro.
func (r *Runner) askAhead(ro controller.Rollout, at time.Time, freeze *model.Freeze) {
	if ro.State.Terminal() {
		return
	}
	point := ro.GateWanted(at, freeze)
	if point == "" {
		return
	}
	c := &r.calls
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.forLocked(ro)
	if g.calls[point] != nil || r.opts.Now().Before(g.retry[point]) {
		return
	}
	r.askLocked(g, ro, point)
}

// askLocked starts asking every hook of ro at point in the background.
func (r *Runner) askLocked(g *rolloutGates, ro controller.Rollout, point string) *gateCall {
	ctx, cancel := context.WithCancel(r.bgCtx)
	call := &gateCall{cancel: cancel, pending: map[string]bool{}}
	g.calls[point] = call
	req := gateRequest(ro, point)
	started := r.opts.Now().UTC().Format(time.RFC3339Nano)
	c := &r.calls
	for _, h := range ro.Plan.Gates.At(point) {
		call.pending[h.Name] = true
		q := req
		q.ID = gate.RequestID(ro.ID, point, h.Name, strconv.FormatUint(ro.Generation, 10), strconv.Itoa(ro.Stage), started)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			a := r.gates.Ask(ctx, h, q)
			if ctx.Err() != nil {
				return // cancelled: nobody waits for this answer
			}
			r.logGate(ro, a)
			c.mu.Lock()
			delete(call.pending, h.Name)
			call.answers = append(call.answers, a)
			if a.Answer == model.AnswerWait && a.RetryAfter > 0 {
				if at := r.opts.Now().Add(a.RetryAfter.D()); at.After(call.retryAt) {
					call.retryAt = at
				}
			}
			decided := a.Answer == model.AnswerNoGo || (len(call.pending) == 0 && allGo(call.answers))
			c.mu.Unlock()
			if decided {
				// A no-go, or the last go: the rollout acts on it now rather than at
				// its next interval. Waits and failures keep the interval.
				r.checkSoon(ro.Service, ro.ID)
			}
		}()
	}
	return call
}

// allGo reports whether every answer is a go.
func allGo(answers []model.GateAnswer) bool {
	for _, a := range answers {
		if a.Answer != model.AnswerGo {
			return false
		}
	}
	return true
}

// checkSoon makes the service's rollout id due for a check now and wakes the loop.
func (r *Runner) checkSoon(service, id string) {
	r.mu.Lock()
	if e, ok := r.active[service]; ok && e.r.ID == id {
		e.answered = true
		if now := r.opts.Now(); e.nextCheck.After(now) {
			e.nextCheck = now
		}
	}
	r.mu.Unlock()
	r.poke()
}

// GatesAsking reports how many hooks are being asked in the background now.
func (r *Runner) GatesAsking() int {
	c := &r.calls
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, g := range c.rollouts {
		for _, call := range g.calls {
			n += len(call.pending)
		}
	}
	return n
}

// WaitGates waits until the hooks asked in the background answered (or were
// cancelled). Tests call it between checks; no check may run meanwhile.
func (r *Runner) WaitGates() { r.calls.wg.Wait() }

// Close cancels the hooks being asked or told in the background and waits for them
// (an onRollback hook not told yet is told after the next start: it is persisted).
// The runner must not be used afterwards. Run calls it when it returns.
func (r *Runner) Close() {
	r.bgCancel()
	r.calls.wg.Wait()
	r.bg.Wait()
}
