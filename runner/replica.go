package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/store"
)

// ErrNotLeader is matched (errors.Is) by the error of a command sent to a replica that
// does not lead: only the leader decides and writes.
var ErrNotLeader = errors.New("this replica does not lead")

// Leadership says whether this replica decides. With several replicas on one shared
// store only the leader runs the checks and the operators' commands; the others
// (followers) serve xDS from the persisted state, which they load again with Reload
// whenever the leader changes it.
type Leadership interface {
	Leading() bool
}

// leading reports whether this replica decides (always, with no Leadership).
func (r *Runner) leading() bool { return r.opts.Leader == nil || r.opts.Leader.Leading() }

// refused reports whether err is the store refusing a write because this replica
// does not lead (any more): such a write is never queued, and the transition it
// carried does not happen here.
func refused(err error) bool {
	return errors.Is(err, store.ErrFenced) || errors.Is(err, store.ErrNotLeader)
}

// rollbackFirst reports whether a move to known-good (a rollback, an abort) is
// published before its write is on the store. With one replica it is: a rollback never
// waits on the disk, its write is queued and retried on every tick. With several
// (a Leadership) it is not: a replica whose write etcd did not take cannot tell
// whether it still leads, and another replica may have decided otherwise (promoted,
// completed, rolled back under its own rules). Nothing such a replica decided reaches
// its proxies, rollbacks included: the leader decides the rollback again at the next
// check, or the next leader decides from the persisted state and the same metrics.
func (r *Runner) rollbackFirst() bool { return r.opts.Leader == nil }

// leaseErrLocked is the error of a write that failed on a replicated store: when the
// fence refused it, when the lease ran out meanwhile, or when etcd did not answer (the
// lease may be gone), it says that this replica does not lead (ErrNotLeader, 503
// not_leader from the API) and that nothing was published. Other errors are err.
func (r *Runner) leaseErrLocked(err error) error {
	if r.rollbackFirst() || err == nil {
		return err
	}
	switch {
	case refused(err):
		return fmt.Errorf("%w (%w): nothing was published; the leader decides", ErrNotLeader, err)
	case !r.leading():
		return fmt.Errorf("%w: its lease ran out while the write was pending (%w): nothing was published; the leader decides", ErrNotLeader, err)
	case store.Unanswered(err):
		return fmt.Errorf("%w, or cannot tell: etcd did not take the write (%w) and its lease may be gone: nothing was published", ErrNotLeader, err)
	}
	return err
}

// notLeaderLocked is the error of a command while this replica does not lead.
func (r *Runner) notLeaderLocked() error {
	if r.leading() {
		return nil
	}
	return fmt.Errorf("%w: commands are taken by the leader", ErrNotLeader)
}

// Reload loads the persisted state again and publishes exactly it, as New does after a
// restart: the active rollouts' persisted weights (a new canary cluster still warming
// at weight 0) and every idle service's known-good
// version. A follower calls it when the leader changed the store; a replica that has
// just been elected calls it before it decides anything, and one that stopped leading
// to forget what it had not persisted. Writes still queued are dropped: the store
// refuses them now, and the state they carried is the new leader's to decide.
func (r *Runner) Reload(ctx context.Context) error {
	st := r.opts.Store
	recs, err := st.ListRollouts(store.ListFilter{ActiveOnly: true})
	if err != nil {
		return fmt.Errorf("load active rollouts: %w", err)
	}
	active := map[string]controller.Rollout{}
	checks := map[string]map[string]controller.CheckResult{}
	warm := map[string]bool{}
	for _, rec := range recs {
		var ro controller.Rollout
		if err := json.Unmarshal(rec.Doc, &ro); err != nil {
			return fmt.Errorf("rollout %s in %s: %w", rec.ID, st.Path(), err)
		}
		active[ro.Service] = ro
		if warm[ro.Service], err = r.storedWarm(ro.Service, ro.ID); err != nil {
			return err
		}
		if doc, err := st.GetState(checksKey(ro.ID)); err == nil {
			var c map[string]controller.CheckResult
			if err := json.Unmarshal(doc, &c); err != nil {
				return fmt.Errorf("check results of rollout %s: %w", ro.ID, err)
			}
			checks[ro.Service] = c
		} else if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("check results of rollout %s: %w", ro.ID, err)
		}
	}
	cat := r.Catalog()
	services := map[string]controller.ServiceState{}
	for _, svc := range cat.Services {
		s, ok, err := r.storedService(svc.Name)
		if err != nil {
			return err
		}
		if ok {
			services[svc.Name] = s
		}
	}
	var hosts []string
	for _, ro := range active {
		hosts = append(hosts, canaryHosts(ro.Spec)...)
	}
	if len(hosts) > 0 {
		r.dns.Prime(ctx, hosts)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) > 0 {
		r.log.Warn("dropping store writes not persisted before the reload", zap.Int("writes", len(r.pending)))
	}
	r.pending, r.pendingErr = nil, nil
	clear(r.unpersisted)
	now := r.opts.Now()
	next := map[string]*entry{}
	for svc, ro := range active {
		e, ok := r.active[svc]
		if !ok || e.r.ID != ro.ID {
			e = &entry{}
		}
		e.r = ro
		e.warm = nil
		if warm[svc] {
			// Its new canary cluster is still warming: defined at weight 0 until the
			// leader ends the warming.
			e.warm = &warming{until: now.Add(ro.Plan.AckTimeout.D())}
		}
		e.nextCheck = ro.Progress.LastCheck.Add(interval(ro))
		if e.nextCheck.Before(now) {
			e.nextCheck = now
		}
		next[svc] = e
	}
	r.active, r.checks, r.services = next, checks, services
	r.changedAllLocked()
	r.publishLocked()
	for _, svc := range cat.Services {
		if _, busy := r.active[svc.Name]; busy {
			continue
		}
		delete(r.restores, svc.Name)
		if err := r.loadRestoreLocked(svc.Name); err != nil {
			return err
		}
	}
	return nil
}

// storedService reads a service's persisted state, leaving out the versions that
// cannot be translated.
func (r *Runner) storedService(name string) (controller.ServiceState, bool, error) {
	doc, err := r.opts.Store.GetState(serviceKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return controller.ServiceState{}, false, nil
	}
	if err != nil {
		return controller.ServiceState{}, false, fmt.Errorf("load state of service %s: %w", name, err)
	}
	var st controller.ServiceState
	if err := json.Unmarshal(doc, &st); err != nil {
		return controller.ServiceState{}, false, fmt.Errorf("state of service %s in %s: %w", name, r.opts.Store.Path(), err)
	}
	st, _ = st.Translatable()
	return st, true, nil
}
