package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Paging limits for Events.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 1000
)

// Event is one entry of the append-only history. Seq is assigned by the store:
// global, starting at 1, strictly increasing in commit order.
type Event struct {
	Seq       uint64          `json:"seq"`
	Time      time.Time       `json:"time"`
	RolloutID string          `json:"rolloutID,omitempty"`
	Service   string          `json:"service,omitempty"`
	Kind      string          `json:"kind"`
	Data      json.RawMessage `json:"data,omitempty"`
	// Rollout is the rollout's document as written with the event (the rollout as it
	// was after it), kept with the events a notification is sent for: a notification
	// sent later (by the next leader) describes the rollout as at the event.
	Rollout json.RawMessage `json:"rollout,omitempty"`
}

// EventQuery selects a page of events. Empty filters match everything.
type EventQuery struct {
	After     uint64 // only events with Seq > After; pass the previous page's cursor
	Limit     int    // page size; 0 means DefaultEventLimit, capped at MaxEventLimit
	RolloutID string
	Service   string
	Kind      string
}

// AppendEvents appends events in one fsynced transaction and returns the
// sequence number of the last one (0 without events). Every event needs a
// Kind; Data, if set, must be JSON.
func (s *Store) AppendEvents(events ...Event) (lastSeq uint64, err error) {
	err = s.db.Update(func(tx *bolt.Tx) (err error) {
		lastSeq, err = appendEvents(tx, events)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("append events: %w", s.txError(err))
	}
	return lastSeq, nil
}

func appendEvents(tx *bolt.Tx, events []Event) (uint64, error) {
	b := tx.Bucket(bucketEvents)
	return putEvents(events, b.NextSequence, func(seq uint64, raw []byte) error {
		return b.Put(be64(seq), encode(raw))
	})
}

// Events returns up to q.Limit events matching q with Seq > q.After, oldest
// first, and the cursor for the next call: the Seq of the last event examined
// (matching or not), or q.After if there was none. Polling with the returned
// cursor never misses or repeats an event.
func (s *Store) Events(q EventQuery) (events []Event, next uint64, err error) {
	limit := pageLimit(q.Limit)
	next = q.After
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(be64(q.After + 1)); k != nil && len(events) < limit; k, v = c.Next() {
			payload, err := decode(v)
			if err != nil {
				return &CorruptError{Path: s.path, Detail: fmt.Sprintf("event %s: %v", printable(k), err)}
			}
			var ev Event
			if err := json.Unmarshal(payload, &ev); err != nil {
				return &CorruptError{Path: s.path, Detail: fmt.Sprintf("event %s: %v", printable(k), err)}
			}
			next = ev.Seq
			if (q.RolloutID == "" || ev.RolloutID == q.RolloutID) &&
				(q.Service == "" || ev.Service == q.Service) &&
				(q.Kind == "" || ev.Kind == q.Kind) {
				events = append(events, ev)
			}
		}
		return nil
	})
	if err != nil {
		return nil, q.After, fmt.Errorf("read events: %w", s.txError(err))
	}
	return events, next, nil
}

func be64ToInt(k []byte) uint64 { return binary.BigEndian.Uint64(k) }
