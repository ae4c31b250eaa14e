package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// The argument checks and the event encoding that the bbolt Store and the Etcd store
// share, so that both accept and reject the same calls with the same errors.

// checkRollout checks the arguments of PutRollout before anything is read or written.
func checkRollout(id, service string, doc []byte) error {
	if err := errors.Join(checkName("rollout id", id), checkName("service", service)); err != nil {
		return fmt.Errorf("put rollout %q: %w", id, err)
	}
	if !json.Valid(doc) {
		return fmt.Errorf("put rollout %q: %w: document is not valid JSON", id, ErrInvalid)
	}
	return nil
}

// checkState checks the arguments of PutState before anything is written.
func checkState(key string, doc []byte) error {
	if err := checkName("state key", key); err != nil {
		return fmt.Errorf("put state %q: %w", key, err)
	}
	if !json.Valid(doc) {
		return fmt.Errorf("put state %q: %w: document is not valid JSON", key, ErrInvalid)
	}
	return nil
}

// rolloutEvents is a copy of the events of PutRollout(id, service) with an empty
// RolloutID or Service set to id and service; an event of another rollout or service
// is ErrInvalid.
func rolloutEvents(id, service string, events []Event) ([]Event, error) {
	events = slices.Clone(events)
	for i := range events {
		ev := &events[i]
		if ev.RolloutID == "" {
			ev.RolloutID = id
		}
		if ev.Service == "" {
			ev.Service = service
		}
		if ev.RolloutID != id || ev.Service != service {
			return nil, fmt.Errorf("%w: event %d belongs to rollout %q of service %q", ErrInvalid, i, ev.RolloutID, ev.Service)
		}
	}
	return events, nil
}

// putEvents numbers events with next and writes each one's JSON with put, in order,
// and returns the last number (0 without events). An event without a Kind is
// ErrInvalid.
func putEvents(events []Event, next func() (uint64, error), put func(seq uint64, raw []byte) error) (uint64, error) {
	var seq uint64
	for i, ev := range events {
		if ev.Kind == "" {
			return 0, fmt.Errorf("%w: event %d has no kind", ErrInvalid, i)
		}
		var err error
		if ev.Seq, err = next(); err != nil {
			return 0, err
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			return 0, fmt.Errorf("%w: event %d: %v", ErrInvalid, i, err)
		}
		if err := put(ev.Seq, raw); err != nil {
			return 0, err
		}
		seq = ev.Seq
	}
	return seq, nil
}

// pageLimit is the page size of an EventQuery with limit: DefaultEventLimit for 0 or
// less, at most MaxEventLimit.
func pageLimit(limit int) int {
	if limit <= 0 {
		limit = DefaultEventLimit
	}
	return min(limit, MaxEventLimit)
}
