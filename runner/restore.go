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

// restoreLocked is the service's restore in progress, or its last one.
func (r *Runner) restoreLocked(service string) (Restore, bool) {
	if w, ok := r.restoring[service]; ok {
		return r.watchStateLocked(service, w), true
	}
	d, ok := r.restored[service]
	return d, ok
}

// watchStateLocked measures a restore watch against what is served and ACKed now.
func (r *Runner) watchStateLocked(service string, w restoreWatch) Restore {
	out := Restore{RolloutID: w.ro.ID, Version: w.ro.KnownGood(), Aborted: w.ro.Aborted,
		RolledBackAt: w.ro.EndedAt, Published: w.published}
	if !w.published {
		out.NotPublished = "not served yet"
		if st, ok := r.pub.Status(service); ok && !st.OK && st.Error != "" {
			out.NotPublished = st.Error
		} else if r.pubErr != nil {
			out.NotPublished = r.pubErr.Error()
		}
	}
	conv := r.opts.XDS.Convergence(service)
	out.Subscribed = conv.Subscribed
	if w.published && conv.RouteVersion == w.version {
		out.Acked, out.Stragglers = conv.Acked, conv.Stragglers
		optional := false
		if svc, ok := r.effectiveServiceLocked(service); ok {
			optional = svc.ProxiesOptional
		}
		switch {
		case conv.Done() && conv.NACK == nil:
			out.Done, out.RestoredAt = true, conv.AckedAt
		case conv.Subscribed == 0 && optional:
			out.Done, out.RestoredAt = true, w.publishedAt
		}
		if out.Done && out.RestoredAt.Before(out.RolledBackAt) {
			out.RestoredAt = out.RolledBackAt
		}
	}
	if r.pendingRollout(w.ro.ID) {
		out.NotPersisted = r.pathless(r.pendingErr)
	}
	return out
}

// confirmRestoresLocked records, for each rollback, when every proxy ACKed the
// known-good weights: the last proxy's ACK instant is the end of the time to restore.
// A restore not confirmed within the ACK timeout is recorded as such, once, and
// watched on.
func (r *Runner) confirmRestoresLocked(now time.Time) {
	for svc, w := range r.restoring {
		conv := r.opts.XDS.Convergence(svc)
		if w.published && conv.RouteVersion != w.version {
			r.endRestoreLocked(svc) // superseded by a newer publish (a new rollout)
			continue
		}
		st := r.watchStateLocked(svc, w)
		ev := controller.Event{
			Time: now, RolloutID: w.ro.ID, Service: svc,
			State: w.ro.State, Stage: w.ro.Stage, Weight: 0, Generation: w.ro.Generation,
		}
		switch {
		case st.Done:
			ev.Kind, ev.Time = controller.EventAcked, st.RestoredAt
			ev.Reason = fmt.Sprintf("%d of %d proxies serve 100%% %s, %s after the rollback",
				st.Acked, st.Subscribed, st.Version, model.FormatDuration(st.RestoredAt.Sub(st.RolledBackAt)))
			r.endRestoreLocked(svc)
			r.restored[svc] = st
		case !w.late && !now.Before(w.deadline):
			w.late = true
			r.restoring[svc] = w
			ev.Kind = controller.EventHold
			ev.Reason = fmt.Sprintf("restore not confirmed %s after the rollback, still waiting: %s",
				model.FormatDuration(now.Sub(st.RolledBackAt)), st.Summary())
			ev.Stragglers = st.Stragglers
		default:
			continue
		}
		sevs, err := storeEvents([]controller.Event{ev})
		if err == nil {
			err = r.persistLocked("restore event of "+svc, true, "", func() error {
				_, err := r.opts.Store.AppendEvents(sevs...)
				return err
			})
		}
		if err != nil && !errors.Is(err, ErrNotPersisted) {
			r.log.Error("record restore", zap.String("service", svc), zap.Error(err))
		}
		r.logEvent(ev)
	}
}

// restoreDoc is the persisted form of a restoreWatch, so that a restart between a
// rollback and the proxies' ACK still records the time to restore.
type restoreDoc struct {
	RolloutID string `json:"rolloutId,omitempty"`
}

func restoreKey(service string) string { return "restore/" + service }

// watchRestoreLocked starts waiting for every proxy to ACK a rollback's weights.
func (r *Runner) watchRestoreLocked(ro controller.Rollout, version string, published bool) {
	now := r.opts.Now()
	w := restoreWatch{ro: ro, version: version, published: published,
		deadline: now.Add(max(ro.Plan.AckTimeout.D(), time.Second))}
	if published {
		w.publishedAt = now
	}
	r.restoring[ro.Service] = w
	delete(r.restored, ro.Service)
	r.putRestore(ro.Service, restoreDoc{RolloutID: ro.ID})
}

// endRestoreLocked stops waiting.
func (r *Runner) endRestoreLocked(service string) {
	if _, ok := r.restoring[service]; !ok {
		return
	}
	delete(r.restoring, service)
	r.putRestore(service, restoreDoc{})
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
	st, _ := r.pub.Status(service)
	st.OK = st.OK && r.pubErr == nil
	now := r.opts.Now()
	w := restoreWatch{ro: ro, version: r.opts.XDS.Convergence(service).RouteVersion, published: st.OK,
		deadline: now.Add(max(ro.Plan.AckTimeout.D(), time.Second))}
	if st.OK {
		w.publishedAt = now
	}
	r.restoring[service] = w
	return nil
}
