package admin

import (
	"fmt"
	"sync"
	"time"

	"github.com/octoacme/octoroll/controller"
)

// maxHistory bounds the rollouts a service's history keeps in memory (newest first).
const maxHistory = 50

// pageIndex keeps, in memory, what the status page shows of the history: each
// service's rollouts (newest first), the events of each service's latest rollout, and
// the latest finished rollout of each service. It reads the event log incrementally
// (Backend.Events after its cursor): a page view costs the events appended since the
// last view, not a decode of every stored rollout and event.
type pageIndex struct {
	backend Backend

	mu       sync.Mutex
	cursor   uint64
	services map[string]*serviceHistory
	// finished caches the latest finished rollout of a service: it no longer changes.
	finished map[string]*controller.Rollout
}

// serviceHistory is one service's rollouts, newest first, and the events of the newest.
type serviceHistory struct {
	rollouts []historyEntry
	events   []controller.Event // of rollouts[0]
}

// historyEntry is one rollout in a service's history, as its events tell it.
type historyEntry struct {
	ID             string
	State          controller.State
	Started, Ended time.Time
	Weight         uint32
	Decision       controller.Decision
	Cause          controller.Cause
	Reason         string
	// Decided are the numbers of the check that rolled it back (nil otherwise).
	Decided *controller.Numbers
}

func newPageIndex(b Backend) *pageIndex {
	return &pageIndex{backend: b, services: map[string]*serviceHistory{}, finished: map[string]*controller.Rollout{}}
}

// sync reads the events appended since the last call.
func (x *pageIndex) sync() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for {
		page, next, err := x.backend.Events(EventQuery{After: x.cursor, Limit: MaxEventLimit})
		if err != nil {
			return fmt.Errorf("read events after %d: %w", x.cursor, err)
		}
		for _, ev := range page {
			x.add(ev.Event)
		}
		if len(page) == 0 || next <= x.cursor {
			return nil
		}
		x.cursor = next
	}
}

func (x *pageIndex) add(ev controller.Event) {
	if ev.Service == "" || ev.RolloutID == "" {
		return
	}
	h := x.services[ev.Service]
	if h == nil {
		h = &serviceHistory{}
		x.services[ev.Service] = h
	}
	var e *historyEntry
	switch {
	case len(h.rollouts) > 0 && h.rollouts[0].ID == ev.RolloutID:
		e = &h.rollouts[0]
	default:
		for i := range h.rollouts {
			if h.rollouts[i].ID == ev.RolloutID {
				e = &h.rollouts[i] // an event recorded late for an older rollout
			}
		}
		if e == nil {
			h.rollouts = append([]historyEntry{{ID: ev.RolloutID, Started: ev.Time}}, h.rollouts...)
			if len(h.rollouts) > maxHistory {
				h.rollouts = h.rollouts[:maxHistory]
			}
			h.events = nil
			delete(x.finished, ev.Service)
			e = &h.rollouts[0]
		}
	}
	if ev.State != "" {
		e.State = ev.State
	}
	e.Weight = ev.Weight
	if ev.Decision != "" {
		e.Decision, e.Cause, e.Reason = ev.Decision, ev.Cause, ev.Reason
		if ev.Decision == controller.DecisionRollback {
			e.Decided = ev.Numbers
		}
	}
	if ev.State.Terminal() && e.Ended.IsZero() {
		e.Ended = ev.Time
	}
	if e == &h.rollouts[0] && len(h.events) < maxTimelineEvents {
		h.events = append(h.events, ev)
	}
}

// rolledBack returns service's latest rollout when it ended rolled back.
func (x *pageIndex) rolledBack(service string) (historyEntry, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if h := x.services[service]; h != nil && len(h.rollouts) > 0 && h.rollouts[0].State == controller.StateRolledBack {
		return h.rollouts[0], true
	}
	return historyEntry{}, false
}

// history returns a copy of service's rollouts, newest first.
func (x *pageIndex) history(service string) []historyEntry {
	x.mu.Lock()
	defer x.mu.Unlock()
	if h := x.services[service]; h != nil {
		return append([]historyEntry(nil), h.rollouts...)
	}
	return nil
}

// latest returns the newest rollout of service with its events (oldest first); the
// rollout itself is active (given by the caller) or read once from the backend.
func (x *pageIndex) latest(service string, active *controller.Rollout) (*controller.Rollout, []controller.Event, error) {
	x.mu.Lock()
	h := x.services[service]
	if h == nil || len(h.rollouts) == 0 {
		x.mu.Unlock()
		return active, nil, nil
	}
	id := h.rollouts[0].ID
	events := h.events[:len(h.events):len(h.events)]
	if active != nil {
		x.mu.Unlock()
		if active.ID != id {
			return active, nil, nil // its first events are not read yet
		}
		return active, events, nil
	}
	ro := x.finished[service]
	x.mu.Unlock()
	if ro == nil || ro.ID != id {
		got, err := x.backend.Rollout(id)
		if err != nil {
			return nil, nil, fmt.Errorf("rollout %s of %s: %w", id, service, err)
		}
		ro = &got
		if ro.State.Terminal() {
			x.mu.Lock()
			if h := x.services[service]; h != nil && len(h.rollouts) > 0 && h.rollouts[0].ID == id {
				x.finished[service] = ro
			}
			x.mu.Unlock()
		}
	}
	return ro, events, nil
}

// events returns the events of rollout id when it is a service's latest, else false.
func (x *pageIndex) events(service, id string) ([]controller.Event, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if h := x.services[service]; h != nil && len(h.rollouts) > 0 && h.rollouts[0].ID == id {
		return h.events[:len(h.events):len(h.events)], true
	}
	return nil, false
}
