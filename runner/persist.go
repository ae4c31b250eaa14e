package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/store"
)

// ErrNotPersisted is matched (errors.Is) by the error of a command whose transition was
// applied and published but not yet persisted: a move to known-good while the store
// fails, with one replica only (rollbackFirst). The rollout returned with it is the new state; the write is retried on every
// tick until the store takes it.
var ErrNotPersisted = errors.New("not yet persisted")

// NotPersistedError is the error of a transition published before it was persisted.
type NotPersistedError struct {
	// Err is the store's failure; Reason says it without the state file's path.
	Err    error
	Reason string
}

func (e *NotPersistedError) Error() string {
	return "not yet persisted: " + e.Reason + " (published; the write is retried every tick)"
}

// Is makes errors.Is(err, ErrNotPersisted) true.
func (e *NotPersistedError) Is(target error) bool { return target == ErrNotPersisted }

func (e *NotPersistedError) Unwrap() error { return e.Err }

// pendingWrite is one store write waiting for the store to work again.
type pendingWrite struct {
	what  string
	write func() error
	// rollout is the id of the rollout whose document the write carries, if any.
	rollout string
}

// persistLocked runs write after the writes still pending. When the store fails (now,
// or still for the pending ones) and queue is set, the write joins the queue and a
// *NotPersistedError is returned: the caller goes on as if it were persisted. Without
// queue the store's error is returned and nothing is queued: the transition must not
// happen before it is on disk. On a replicated store a write the fence refused, or one
// that failed while the lease may be gone, says that this replica does not lead
// (leaseErrLocked).
func (r *Runner) persistLocked(what string, queue bool, rollout string, write func() error) error {
	if err := r.flushLocked(); err != nil {
		if !queue {
			return r.leaseErrLocked(fmt.Errorf("%s: earlier writes are not persisted yet: %w", what, err))
		}
		r.pending = append(r.pending, pendingWrite{what: what, write: write, rollout: rollout})
		return &NotPersistedError{Err: err, Reason: r.pathless(err)}
	}
	if err := write(); err != nil {
		if !queue || refused(err) {
			return r.leaseErrLocked(err)
		}
		r.pending = append(r.pending, pendingWrite{what: what, write: write, rollout: rollout})
		r.pendingErr = err
		r.log.Error("store write failed; the transition is published and its write retried on every tick",
			zap.String("write", what), zap.Error(err))
		return &NotPersistedError{Err: err, Reason: r.pathless(err)}
	}
	return nil
}

// flushLocked retries the pending writes in order, stopping at the first that fails.
func (r *Runner) flushLocked() error {
	for len(r.pending) > 0 {
		w := r.pending[0]
		if err := w.write(); err != nil {
			r.pendingErr = err
			return err
		}
		r.pending = r.pending[1:]
		if w.rollout != "" && !r.pendingRollout(w.rollout) {
			delete(r.unpersisted, w.rollout)
		}
		r.log.Info("store write persisted", zap.String("write", w.what), zap.Int("stillPending", len(r.pending)))
	}
	r.pending, r.pendingErr = nil, nil
	return nil
}

// pendingRollout reports whether a write of rollout id's document is still pending.
func (r *Runner) pendingRollout(id string) bool {
	for _, w := range r.pending {
		if w.rollout == id {
			return true
		}
	}
	return false
}

// StoreError is nil while every transition is persisted; otherwise it says why not
// ("store: write failing: …"), for readiness. It names no file path.
func (r *Runner) StoreError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return nil
	}
	return fmt.Errorf("store: write failing: %s (%d writes not yet persisted, retried every tick)",
		r.pathless(r.pendingErr), len(r.pending))
}

// pathless is err's text without the state file's path.
func (r *Runner) pathless(err error) string {
	if err == nil {
		return "unknown error"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	msg := err.Error()
	if p := r.opts.Store.Path(); p != "" {
		msg = strings.ReplaceAll(msg, p, store.FileName)
	}
	return msg
}

// retryPersist retries the pending writes (the republish tick).
func (r *Runner) retryPersist() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 || !r.leading() {
		return
	}
	if err := r.flushLocked(); err != nil {
		r.log.Warn("store still failing", zap.Int("pending", len(r.pending)), zap.Error(err))
	}
}

// unpersistedLocked returns the rollout's state when it is newer than the store's.
func (r *Runner) unpersistedRollout(id string) (controller.Rollout, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ro, ok := r.unpersisted[id]
	return ro, ok
}
