package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/gate"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/store"
)

// GateAsker asks one blocking webhook (gate.Client).
type GateAsker interface {
	Ask(ctx context.Context, hook model.Webhook, req gate.Request) model.GateAnswer
}

var _ GateAsker = (*gate.Client)(nil)

// Freeze errors.
var (
	// ErrNotFrozen: unfreeze when no freeze set by a person is in force (a catalog
	// freeze window ends at its end, or with a catalog edit).
	ErrNotFrozen = errors.New("not frozen")
	// ErrReasonRequired: a freeze without a reason.
	ErrReasonRequired = errors.New("a reason is required")
)

// Event kinds of the freeze switch (recorded without a rollout, and notified).
const (
	EventFrozen   = model.EventFrozen
	EventUnfrozen = model.EventUnfrozen
)

// freezeKey is the store key of the freeze set by a person.
const freezeKey = "freeze"

// FreezeStatus is the freeze switch and the catalog's freeze windows.
type FreezeStatus struct {
	// Active are the freezes in force now: the one set by a person first, then the
	// catalog windows containing now. Empty: nothing is frozen.
	Active []model.Freeze `json:"active,omitempty"`
	// Manual is the freeze set by a person (octoroll freeze), nil when none.
	Manual *model.Freeze `json:"manual,omitempty"`
	// Windows are the catalog's freeze windows that have not ended.
	Windows []model.FreezeWindow `json:"windows,omitempty"`
}

// Frozen reports whether anything is frozen now.
func (s FreezeStatus) Frozen() bool { return len(s.Active) > 0 }

// loadFreeze reads the persisted freeze switch.
func (r *Runner) loadFreeze() error {
	doc, err := r.opts.Store.GetState(freezeKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load freeze: %w", err)
	}
	var f *model.Freeze
	if err := json.Unmarshal(doc, &f); err != nil {
		return fmt.Errorf("freeze in %s: %w", r.opts.Store.Path(), err)
	}
	r.freeze = f
	if f != nil {
		r.log.Warn("frozen: no rollout starts or advances until unfrozen", zap.String("reason", f.Reason), zap.String("by", f.By))
	}
	return nil
}

// activeFreezeLocked is the freeze in force at now (the one set by a person first), nil
// when none.
func (r *Runner) activeFreezeLocked(now time.Time) *model.Freeze {
	var windows []model.FreezeWindow
	if r.cat != nil {
		windows = r.cat.Freezes
	}
	if all := model.ActiveFreezes(r.freeze, windows, now); len(all) > 0 {
		return &all[0]
	}
	return nil
}

// FreezeStatus returns the freeze switch and the catalog's freeze windows.
func (r *Runner) FreezeStatus() FreezeStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.freezeStatusLocked(r.opts.Now())
}

func (r *Runner) freezeStatusLocked(now time.Time) FreezeStatus {
	var st FreezeStatus
	if r.freeze != nil {
		f := *r.freeze
		st.Manual = &f
	}
	if r.cat != nil {
		st.Active = model.ActiveFreezes(st.Manual, r.cat.Freezes, now)
		for _, w := range r.cat.Freezes {
			if now.Before(w.End) {
				st.Windows = append(st.Windows, w)
			}
		}
	}
	return st
}

// Freeze stops every rollout start and advance on every service until Unfreeze: the
// rollouts hold where they are (rollbacks, pauses and aborts still work). It is
// persisted first, and recorded as an event. Freezing again replaces the reason.
func (r *Runner) Freeze(_ context.Context, reason, actor string) (FreezeStatus, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return FreezeStatus{}, fmt.Errorf("freeze: reason: %w", ErrReasonRequired)
	}
	if err := model.CheckLength("reason", reason, model.MaxReasonLen); err != nil {
		return FreezeStatus{}, fmt.Errorf("freeze: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	f := model.Freeze{Reason: reason, By: actor, Since: now}
	if r.freeze != nil {
		f.Since = r.freeze.Since
	}
	if err := r.putFreezeLocked(&f); err != nil {
		return FreezeStatus{}, err
	}
	r.freeze = &f
	r.recordFreeze(controller.Event{Time: now, Kind: EventFrozen, Actor: actor, Freeze: &f, Reason: f.Summary()})
	r.log.Warn("frozen: no rollout starts or advances until unfrozen", zap.String("reason", reason), zap.String("by", actor))
	return r.freezeStatusLocked(now), nil
}

// Unfreeze lifts the freeze set by a person (ErrNotFrozen when there is none); the
// catalog's freeze windows stay in force until they end.
func (r *Runner) Unfreeze(_ context.Context, reason, actor string) (FreezeStatus, error) {
	if err := model.CheckLength("reason", strings.TrimSpace(reason), model.MaxReasonLen); err != nil {
		return FreezeStatus{}, fmt.Errorf("unfreeze: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	if r.freeze == nil {
		msg := "no freeze set by a person is in force"
		if st := r.freezeStatusLocked(now); st.Frozen() {
			msg += "; the catalog freeze window " + st.Active[0].Window + " ends at " + st.Active[0].Until.UTC().Format(time.RFC3339)
		}
		return FreezeStatus{}, fmt.Errorf("unfreeze: %s: %w", msg, ErrNotFrozen)
	}
	if err := r.putFreezeLocked(nil); err != nil {
		return FreezeStatus{}, err
	}
	was := *r.freeze
	r.freeze = nil
	why := fmt.Sprintf("unfrozen by %s after %s (was: %s)", actor, model.FormatDuration(now.Sub(was.Since)), was.Reason)
	if reason = strings.TrimSpace(reason); reason != "" {
		why += ": " + reason
	}
	r.recordFreeze(controller.Event{Time: now, Kind: EventUnfrozen, Actor: actor, Freeze: &was, Reason: why})
	r.log.Info("unfrozen", zap.String("by", actor))
	// The held rollouts may move now.
	for _, e := range r.active {
		if e.nextCheck.After(now) {
			e.nextCheck = now
		}
	}
	r.poke()
	return r.freezeStatusLocked(now), nil
}

func (r *Runner) putFreezeLocked(f *model.Freeze) error {
	doc, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return r.persistLocked("freeze", false, "", func() error {
		if err := r.opts.Store.PutState(freezeKey, doc); err != nil {
			return fmt.Errorf("persist freeze: %w", err)
		}
		return nil
	})
}

// recordFreeze records a freeze or an unfreeze and notifies it (with several
// replicas the leader notifies it from the event log).
func (r *Runner) recordFreeze(ev controller.Event) {
	if err := r.Record(ev); err != nil {
		r.log.Error("record freeze event", zap.String("kind", ev.Kind), zap.Error(err))
	}
	if r.opts.Notify != nil {
		r.opts.Notify.Notify(ev, controller.Rollout{})
	}
}

// gateRequest is the request of ro's hooks at point.
func gateRequest(ro controller.Rollout, point string) gate.Request {
	req := gate.Request{
		Point: point, RolloutID: ro.ID, Service: ro.Service, Stable: ro.Stable, Canary: ro.Canary,
		Release: gate.Release{Name: ro.Spec.Release.Name, Type: string(ro.Plan.Type)},
		State:   string(ro.State), Stage: ro.Stage, CanaryWeight: ro.CanaryWeight(),
	}
	if st, ok := ro.CurrentStage(); ok {
		req.StageName = st.Name
	} else if ro.State != controller.StatePending {
		req.StageName = "100%"
	}
	switch point {
	case model.GatePreRollout:
		req.NextStage = "100%"
		if len(ro.Plan.Stages) > 0 {
			req.NextStage = ro.Plan.Stages[0].Name
		}
	case model.GateConfirmPromotion:
		req.NextStage = "100%"
		if ro.Stage+1 < len(ro.Plan.Stages) {
			req.NextStage = ro.Plan.Stages[ro.Stage+1].Name
		}
	case model.GateOnRollback:
		req.Reason = ro.Reason
	}
	return req
}

// askGates asks every hook of ro's plan at point at once and returns their answers.
func (r *Runner) askGates(ctx context.Context, ro controller.Rollout, point string) []model.GateAnswer {
	hooks := ro.Plan.Gates.At(point)
	out := make([]model.GateAnswer, len(hooks))
	var wg sync.WaitGroup
	for i, h := range hooks {
		wg.Go(func() {
			out[i] = r.gates.Ask(ctx, h, gateRequest(ro, point))
			r.logGate(ro, out[i])
		})
	}
	wg.Wait()
	return out
}

func (r *Runner) logGate(ro controller.Rollout, a model.GateAnswer) {
	f := []zap.Field{zap.String("service", ro.Service), zap.String("rollout", ro.ID), zap.String("point", a.Point),
		zap.String("hook", a.Hook), zap.String("answer", a.Answer), zap.Int("status", a.Status), zap.Int("attempts", a.Attempts)}
	if a.Error != "" {
		r.log.Warn("gate hook gave no answer", append(f, zap.String("error", a.Error))...)
		return
	}
	r.log.Info("gate hook answered", append(f, zap.String("reason", a.Reason))...)
}

// gatesBeforePromote asks the confirmPromotion hooks for an operator's promote (not
// forced), outside the lock, and returns cmd with their answers.
func (r *Runner) gatesBeforePromote(ctx context.Context, service string, cmd controller.Command) controller.Command {
	ro, _, ok := r.promoteToCheck(service, cmd)
	if !ok || len(ro.Plan.Gates.ConfirmPromotion) == 0 {
		return cmd
	}
	cmd.Gates = r.askGates(ctx, ro, model.GateConfirmPromotion)
	return cmd
}

// WaitHooks waits until the onRollback hooks told in the background are done.
func (r *Runner) WaitHooks() { r.bg.Wait() }
