package runner

import (
	"encoding/json"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/store"
)

// A new canary version's warming (see warmedLocked) is persisted, so that every
// replica serves the same thing while it lasts: the followers load it with the rollout
// and serve the new cluster at weight 0 until the leader, which counts the proxies of
// every replica, ends it; a new leader resumes it.

// warmDoc is the persisted form of a warming: the rollout whose canary warms, "" when
// none does.
type warmDoc struct {
	RolloutID string `json:"rolloutId,omitempty"`
}

func warmKey(service string) string { return "warm/" + service }

// putWarmLocked persists that service's rollout id warms ("" when the warming ended).
// The start of a warming must be on disk before the rollout (queue false); its end is
// queued when the store fails.
func (r *Runner) putWarmLocked(service, id string, queue bool) error {
	doc, err := json.Marshal(warmDoc{RolloutID: id})
	if err != nil {
		return err
	}
	err = r.persistLocked("warming of "+service, queue, "", func() error {
		return r.opts.Store.PutState(warmKey(service), doc)
	})
	if errors.Is(err, ErrNotPersisted) {
		return nil
	}
	return err
}

// storedWarm reports whether the persisted warming of service is rollout id's.
func (r *Runner) storedWarm(service, id string) (bool, error) {
	doc, err := r.opts.Store.GetState(warmKey(service))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("warming of %s: %w", service, err)
	}
	var d warmDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return false, fmt.Errorf("warming of %s: %w", service, err)
	}
	return d.RolloutID == id, nil
}

// endWarmLocked persists the end of service's warming and reports whether it ends,
// which publishes the stage's weights. With one replica it always ends: the store's
// failure to take the write is logged and the write queued. With several it ends only
// once etcd took the write: the stage's weights are a move forward, which a replica
// publishes only under its fence; the end is tried again on the next tick.
func (r *Runner) endWarmLocked(service string) bool {
	err := r.putWarmLocked(service, "", r.rollbackFirst())
	if err != nil && !refused(err) {
		r.log.Warn("persist the end of a warming", zap.String("service", service), zap.Error(err))
	}
	return err == nil || r.rollbackFirst()
}
