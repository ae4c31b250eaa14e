package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/store"
)

// Restore is how far a rollback's known-good weights have reached the proxies (plain
// data in model, so the API's wire types carry it as it is).
type Restore = model.Restore

// The engine decides a restore (controller.Restore); the loop gathers what it is
// measured against, persists what it records and the watch itself, so that a restart
// between a rollback and the proxies' ACK still records the time to restore.

// restoreLocked is the service's restore in progress, or its last one.
func (r *Runner) restoreLocked(service string) (Restore, bool) {
	w, ok := r.restores[service]
	if !ok {
		return Restore{}, false
	}
	return w.Status(r.restoreObservationLocked(service, w)), true
}

// restoreObservationLocked gathers what a restore is measured against now: why its
// weights are not served (while they are not), the served route's ACKs, and whether
// the rollback is on disk yet.
func (r *Runner) restoreObservationLocked(service string, w controller.Restore) controller.RestoreObservation {
	obs := controller.RestoreObservation{Acks: r.routeAcks(service)}
	if !w.Published {
		if st, ok := r.pub.Status(service); ok && !st.OK && st.Error != "" {
			obs.NotPublished = st.Error
		} else if r.pubErr != nil {
			obs.NotPublished = r.pubErr.Error()
		}
	}
	if svc, ok := r.effectiveServiceLocked(service); ok {
		obs.ProxiesOptional = svc.ProxiesOptional
	}
	if r.pendingRollout(w.RolloutID) {
		obs.NotPersisted = r.pathless(r.pendingErr)
	}
	return obs
}

// routeAcks is the xds layer's report of the route service serves now.
func (r *Runner) routeAcks(service string) controller.RouteAcks {
	conv := r.opts.XDS.Convergence(service)
	a := controller.RouteAcks{RouteVersion: conv.RouteVersion, Subscribed: conv.Subscribed, Acked: conv.Acked,
		AckedAt: conv.AckedAt, Stragglers: conv.Stragglers}
	if n := conv.NACK; n != nil {
		a.NACK = fmt.Sprintf("%s rejected route %s: %s", n.NodeID, n.Version, n.Message)
	}
	return a
}

// confirmRestoresLocked steps every restore in progress and records its events: the
// last proxy's ACK of the known-good weights (the end of the time to restore), or, once,
// that it is not confirmed within the ACK timeout.
func (r *Runner) confirmRestoresLocked(now time.Time) {
	for svc, w := range r.restores {
		if !w.Watching() {
			continue
		}
		next, evs := w.Step(now, r.restoreObservationLocked(svc, w))
		switch {
		case next.Superseded:
			delete(r.restores, svc) // a newer publish (a new rollout)
		default:
			r.restores[svc] = next
		}
		if !next.Watching() {
			r.putRestore(svc, restoreDoc{})
		}
		if len(evs) == 0 {
			continue
		}
		sevs, err := storeEvents(evs)
		if err == nil {
			err = r.persistLocked("restore event of "+svc, true, "", func() error {
				_, err := r.opts.Store.AppendEvents(sevs...)
				return err
			})
		}
		if err != nil && !errors.Is(err, ErrNotPersisted) {
			r.log.Error("record restore", zap.String("service", svc), zap.Error(err))
		}
		for _, ev := range evs {
			r.logEvent(ev)
		}
	}
}

// restoreDoc is the persisted form of a restore in progress.
type restoreDoc struct {
	RolloutID string `json:"rolloutId,omitempty"`
}

func restoreKey(service string) string { return "restore/" + service }

// watchRestoreLocked starts waiting for every proxy to ACK a rollback's weights, served
// in route version version when published. The watch was persisted before the rollback
// (see commitLocked).
func (r *Runner) watchRestoreLocked(ro controller.Rollout, version string, published bool) {
	now := r.opts.Now()
	w := controller.NewRestore(now, ro)
	if published {
		w = w.Served(now, version)
	}
	r.restores[ro.Service] = w
}

func (r *Runner) putRestore(service string, d restoreDoc) {
	doc, err := json.Marshal(d)
	if err == nil {
		err = r.persistLocked("restore watch of "+service, true, "", func() error {
			return r.opts.Store.PutState(restoreKey(service), doc)
		})
	}
	if err != nil && !errors.Is(err, ErrNotPersisted) {
		// Only the record of the restore time is at stake, never the weights.
		r.log.Warn("persist restore watch", zap.String("service", service), zap.Error(err))
	}
}

// loadRestoreLocked resumes waiting for a rollback's ACK that was pending at a restart.
func (r *Runner) loadRestoreLocked(service string) error {
	doc, err := r.opts.Store.GetState(restoreKey(service))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore watch of %s: %w", service, err)
	}
	var d restoreDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return fmt.Errorf("restore watch of %s: %w", service, err)
	}
	if d.RolloutID == "" {
		return nil
	}
	ro, err := r.storedRollout(d.RolloutID)
	if err != nil {
		return fmt.Errorf("restore watch of %s: %w", service, err)
	}
	if ro.State != controller.StateRolledBack {
		return nil // the rollback it was written for did not reach the store
	}
	st, _ := r.pub.Status(service)
	now := r.opts.Now()
	w := controller.NewRestore(now, ro)
	if st.OK && r.pubErr == nil {
		w = w.Served(now, r.opts.XDS.Convergence(service).RouteVersion)
	}
	r.restores[service] = w
	return nil
}
