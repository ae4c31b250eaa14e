package runner

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/gate"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/store"
)

// The onRollback hooks are told about a rollback in the background: the rollback never
// waits for them. Each notification is on disk before the rollback is (tellsKey), and
// leaves it once its hook answered go or no-go, or was asked onRollbackRounds times; a
// notification still pending when octoroll stops is told by the next process (or the
// next leader) with the same id (X-Octoroll-Gate-Id): a receiver gets each at least
// once, and drops a repeat by its id.

// tellsKey is the store key of the onRollback notifications not yet answered.
const tellsKey = "gates/onRollback"

// onRollbackRounds bounds how often an onRollback hook that answers wait or gives no
// answer is asked again, onRollbackPause apart (each round with the hook's own
// attempts and backoff).
const (
	onRollbackRounds = 5
	onRollbackPause  = 10 * time.Second
)

// pendingTell is one onRollback notification not yet answered.
type pendingTell struct {
	// ID is the request id: the same for every attempt, round and process.
	ID        string    `json:"id"`
	RolloutID string    `json:"rolloutId"`
	Hook      string    `json:"hook"`
	Since     time.Time `json:"since"`
	// Rounds counts the rounds asked so far.
	Rounds int `json:"rounds"`
}

// tells are the onRollback notifications of this process.
type tells struct {
	mu      sync.Mutex
	pending map[string]*pendingTell // by id
	running map[string]bool         // by id: being told by a goroutine
	// loaded says the persisted notifications were read since this replica leads.
	loaded bool
}

// tellID is the id of the notification of ro's rollback to hook.
func tellID(ro controller.Rollout, hook string) string {
	return gate.RequestID(ro.ID, model.GateOnRollback, hook, strconv.FormatUint(ro.Generation, 10))
}

// noteTells records the notifications of ro's rollback to its onRollback hooks, before
// the rollback itself is persisted. A failed write is logged: only the notification
// after a restart is at stake, never the rollback.
func (r *Runner) noteTells(ro controller.Rollout) {
	hooks := ro.Plan.Gates.OnRollback
	if len(hooks) == 0 {
		return
	}
	t := &r.tells
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range hooks {
		id := tellID(ro, h.Name)
		if _, ok := t.pending[id]; !ok {
			t.pending[id] = &pendingTell{ID: id, RolloutID: ro.ID, Hook: h.Name, Since: r.opts.Now()}
		}
	}
	r.saveTellsLocked()
}

// tellRollback tells ro's onRollback hooks about its rollback (noted by noteTells).
func (r *Runner) tellRollback(ro controller.Rollout) {
	t := &r.tells
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range ro.Plan.Gates.OnRollback {
		if p := t.pending[tellID(ro, h.Name)]; p != nil {
			r.startTellLocked(ro, h, p)
		}
	}
}

// resumeTells, on a replica that leads, tells the persisted notifications once after
// it started leading: those a stopped process (or a former leader) left.
func (r *Runner) resumeTells() {
	t := &r.tells
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.loaded {
		return
	}
	doc, err := r.opts.Store.GetState(tellsKey)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Warn("read the onRollback notifications", zap.Error(err))
		return
	}
	t.loaded = true
	var saved []pendingTell
	if len(doc) > 0 {
		if err := json.Unmarshal(doc, &saved); err != nil {
			r.log.Error("onRollback notifications in the store do not decode; dropped", zap.Error(err))
		}
	}
	changed := false
	for _, p := range saved {
		if t.running[p.ID] {
			continue
		}
		ro, err := r.Rollout(p.RolloutID)
		i := slices.IndexFunc(ro.Plan.Gates.OnRollback, func(w model.Webhook) bool { return w.Name == p.Hook })
		if err != nil || ro.State != controller.StateRolledBack || i < 0 {
			// Its rollback never happened (the process stopped before it was
			// persisted) or the rollout is gone: nothing to tell.
			delete(t.pending, p.ID)
			changed = true
			continue
		}
		pt := p
		t.pending[p.ID] = &pt
		r.log.Info("telling an onRollback hook after a restart", zap.String("rollout", p.RolloutID), zap.String("hook", p.Hook),
			zap.Int("rounds", p.Rounds))
		r.startTellLocked(ro, ro.Plan.Gates.OnRollback[i], &pt)
	}
	if changed {
		r.saveTellsLocked()
	}
}

// tellsFollowing forgets what was read: a replica that leads again reads them anew.
func (r *Runner) tellsFollowing() {
	r.tells.mu.Lock()
	r.tells.loaded = false
	r.tells.mu.Unlock()
}

// startTellLocked tells hook about ro's rollback in the background, round after round
// until it answers go or no-go or the rounds are used up; every answer that changed is
// recorded as a gate event of the rollout.
func (r *Runner) startTellLocked(ro controller.Rollout, h model.Webhook, p *pendingTell) {
	t := &r.tells
	if t.running[p.ID] {
		return
	}
	t.running[p.ID] = true
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		defer func() {
			t.mu.Lock()
			delete(t.running, p.ID)
			t.mu.Unlock()
		}()
		ctx := r.bgCtx
		last := ""
		for {
			req := gateRequest(ro, model.GateOnRollback)
			req.ID = p.ID
			a := r.gates.Ask(ctx, h, req)
			if ctx.Err() != nil {
				return // stopping: the next process tells it
			}
			r.logGate(ro, a)
			if seen := a.Answer + "|" + a.Reason + "|" + a.Error; seen != last {
				last = seen
				ev := controller.Event{Time: r.opts.Now(), Kind: controller.EventGate, RolloutID: ro.ID, Service: ro.Service,
					State: ro.State, Stage: ro.Stage, Generation: ro.Generation, Gate: &a, Reason: a.Summary()}
				if err := r.Record(ev); err != nil {
					r.log.Error("record onRollback answer", zap.String("rollout", ro.ID), zap.Error(err))
				}
			}
			answered := a.Answer == model.AnswerGo || a.Answer == model.AnswerNoGo
			t.mu.Lock()
			p.Rounds++
			over := answered || p.Rounds >= onRollbackRounds
			if over {
				delete(t.pending, p.ID)
			}
			r.saveTellsLocked()
			t.mu.Unlock()
			if over {
				if !answered {
					r.log.Warn("onRollback hook given up", zap.String("rollout", ro.ID), zap.String("hook", h.Name), zap.Int("rounds", p.Rounds))
				}
				return
			}
			timer := time.NewTimer(onRollbackPause)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
	}()
}

// saveTellsLocked writes the pending notifications, oldest first.
func (r *Runner) saveTellsLocked() {
	list := make([]pendingTell, 0, len(r.tells.pending))
	for _, p := range r.tells.pending {
		list = append(list, *p)
	}
	slices.SortFunc(list, func(a, b pendingTell) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	doc, err := json.Marshal(list)
	if err == nil {
		err = r.opts.Store.PutState(tellsKey, doc)
	}
	if err != nil {
		r.log.Warn("persist the onRollback notifications", zap.Error(err))
	}
}

// PendingTells returns the onRollback notifications not yet answered, by id.
func (r *Runner) PendingTells() []string {
	r.tells.mu.Lock()
	defer r.tells.mu.Unlock()
	out := make([]string, 0, len(r.tells.pending))
	for id := range r.tells.pending {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
