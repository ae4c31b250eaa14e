package replica

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/store"
)

// EventSink receives the events to notify (*notify.Notifier).
type EventSink interface {
	Notify(ev controller.Event, r controller.Rollout)
}

// notifiedKey holds the sequence number of the last event handed to the notifier, the
// cursor a new leader resumes from.
const notifiedKey = "notified"

// notifyBatch is the number of events read at a time.
const notifyBatch = 100

// RunNotifications hands every persisted event to sink once across the replicas, until
// ctx ends: only the leader does, in the order of the event log, from the cursor its
// predecessor recorded, and records the cursor (under its fence) after each batch. A
// leader that dies between handing events and recording the cursor has its successor
// hand them again; the notifier sends them with the same event id (notify.EventID),
// by which a receiver drops the repeat. The first leader ever starts at the end of the
// log: history is not notified.
func (r *Replica) RunNotifications(ctx context.Context, sink EventSink) error {
	lead := r.leaderChanges()
	tick := time.NewTicker(r.opts.Interval)
	defer tick.Stop()
	var cursor uint64
	loaded := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-lead:
		case <-r.eventsReq:
		}
		if !r.Leading() {
			loaded = false
			continue
		}
		if !loaded {
			var err error
			if cursor, err = r.notifiedCursor(ctx); err != nil {
				r.log.Warn("read the notification cursor", zap.Error(err))
				continue
			}
			loaded = true
		}
		next, err := r.notifyFrom(cursor, sink)
		if next != cursor {
			if werr := r.opts.Store.PutShared(r.clusterKey(notifiedKey), []byte(strconv.FormatUint(next, 10))); werr != nil {
				// Deposed: the next leader resumes from the last cursor recorded.
				r.log.Warn("record the notification cursor", zap.Error(werr))
				loaded = false
				continue
			}
			cursor = next
		}
		if err != nil {
			r.log.Warn("read the events to notify", zap.Error(err))
		}
	}
}

// notifiedCursor reads the recorded cursor; with none, the end of the log.
func (r *Replica) notifiedCursor(ctx context.Context) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, r.opts.Interval+time.Second)
	defer cancel()
	resp, err := r.cli.Get(cctx, r.prefix+notifiedKey)
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 1 {
		return strconv.ParseUint(string(resp.Kvs[0].Value), 10, 64)
	}
	return r.opts.Store.LastEventSeq()
}

// notifyFrom hands the events after cursor to sink, and returns the new cursor.
func (r *Replica) notifyFrom(cursor uint64, sink EventSink) (uint64, error) {
	st := r.opts.Store
	rollouts := map[string]controller.Rollout{}
	for {
		evs, next, err := st.Events(store.EventQuery{After: cursor, Limit: notifyBatch})
		if err != nil || next == cursor {
			return cursor, err
		}
		for _, sev := range evs {
			var ev controller.Event
			if err := json.Unmarshal(sev.Data, &ev); err != nil {
				r.log.Warn("event not notified: it does not decode", zap.Uint64("seq", sev.Seq), zap.Error(err))
				continue
			}
			if len(sev.Rollout) > 0 {
				// The rollout as it was at the event.
				var at controller.Rollout
				if err := json.Unmarshal(sev.Rollout, &at); err == nil {
					sink.Notify(ev, at)
					continue
				}
			}
			// An event recorded without its rollout: the rollout as it is now.
			ro, ok := rollouts[ev.RolloutID]
			if !ok && ev.RolloutID != "" {
				doc, err := st.GetRollout(ev.RolloutID)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return cursor, err
				}
				if err == nil {
					_ = json.Unmarshal(doc, &ro)
				}
				rollouts[ev.RolloutID] = ro
			}
			sink.Notify(ev, ro)
		}
		cursor = next
	}
}
