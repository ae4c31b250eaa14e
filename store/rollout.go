package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode"

	bolt "go.etcd.io/bbolt"
)

// maxNameLen bounds rollout ids, service names and state keys.
const maxNameLen = 256

// RolloutRecord is one stored rollout.
type RolloutRecord struct {
	ID      string          `json:"id"`
	Service string          `json:"service"`
	Active  bool            `json:"active"`
	Order   uint64          `json:"order"` // creation order, 1 for the first rollout ever stored
	Doc     json.RawMessage `json:"doc"`   // the caller's document, as given to PutRollout
}

// ListFilter selects rollouts for ListRollouts. The zero value lists all.
type ListFilter struct {
	Service    string // only this service's rollouts, if set
	ActiveOnly bool   // only rollouts that are active
	Limit      int    // at most this many; 0 means no limit
}

// PutRollout stores doc as the current state of rollout id of service, keeps
// the active-rollout index of the service in step (active sets it, inactive
// clears it if it pointed at id) and appends events, all in one fsynced
// transaction: either all of it is durable when PutRollout returns, or none of
// it is written. Events with an empty RolloutID or Service get id and service.
//
// It fails with ErrConflict if the service already has a different active
// rollout, and with ErrInvalid for an empty or malformed id or service, for a
// doc that is not JSON, for an event of another rollout or service, or when
// the rollout exists under another service. It returns the sequence number of
// the last appended event (0 without events); the events got consecutive
// numbers ending there.
func (s *Store) PutRollout(id, service string, active bool, doc []byte, events []Event) (lastSeq uint64, err error) {
	if err := checkRollout(id, service, doc); err != nil {
		return 0, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		rollouts, order, index := tx.Bucket(bucketRollouts), tx.Bucket(bucketOrder), tx.Bucket(bucketActive)

		rec := RolloutRecord{ID: id, Service: service, Active: active, Doc: doc}
		prev, err := s.getRollout(tx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			if rec.Order, err = rollouts.NextSequence(); err != nil {
				return err
			}
			if err := order.Put(be64(rec.Order), encode([]byte(id))); err != nil {
				return err
			}
		case err != nil:
			return err
		case prev.Service != service:
			return fmt.Errorf("%w: rollout belongs to service %q, not %q", ErrInvalid, prev.Service, service)
		default:
			rec.Order = prev.Order
		}

		current, err := s.get(tx, bucketActive, []byte(service))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		err = nil
		switch {
		case active && current != nil && string(current) != id:
			return fmt.Errorf("%w: service %q already has active rollout %q", ErrConflict, service, current)
		case active && current == nil:
			err = index.Put([]byte(service), encode([]byte(id)))
		case !active && string(current) == id:
			err = index.Delete([]byte(service))
		}
		if err != nil {
			return err
		}

		raw, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode rollout: %w", err)
		}
		if err := rollouts.Put([]byte(id), encode(raw)); err != nil {
			return err
		}

		events, err := rolloutEvents(id, service, events)
		if err != nil {
			return err
		}
		lastSeq, err = appendEvents(tx, events)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("put rollout %q: %w", id, s.txError(err))
	}
	return lastSeq, nil
}

// GetRollout returns the document of rollout id, or ErrNotFound.
func (s *Store) GetRollout(id string) ([]byte, error) {
	var rec RolloutRecord
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		rec, err = s.getRollout(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get rollout %q: %w", id, s.txError(err))
	}
	return rec.Doc, nil
}

// ActiveRollout returns the active rollout of service, or ErrNotFound.
func (s *Store) ActiveRollout(service string) (id string, doc []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		raw, err := s.get(tx, bucketActive, []byte(service))
		if err != nil {
			return err
		}
		rec, err := s.getRollout(tx, string(raw))
		if errors.Is(err, ErrNotFound) {
			return &CorruptError{Path: s.path, Detail: fmt.Sprintf("active rollout %q of service %q is missing", raw, service)}
		}
		id, doc = rec.ID, rec.Doc
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("active rollout of %q: %w", service, s.txError(err))
	}
	return id, doc, nil
}

// ListRollouts returns the rollouts that match f, newest first.
func (s *Store) ListRollouts(f ListFilter) ([]RolloutRecord, error) {
	var out []RolloutRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		add := func(id []byte) (bool, error) {
			rec, err := s.getRollout(tx, string(id))
			if err != nil {
				return false, err
			}
			if (f.Service == "" || rec.Service == f.Service) && (!f.ActiveOnly || rec.Active) {
				out = append(out, rec)
			}
			return f.Limit > 0 && len(out) >= f.Limit, nil
		}
		if f.ActiveOnly {
			// Few services: read the whole index, then order it.
			c := tx.Bucket(bucketActive).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				id, err := decode(v)
				if err != nil {
					return &CorruptError{Path: s.path, Detail: fmt.Sprintf("bucket active key %s: %v", printable(k), err)}
				}
				if _, err := add(id); err != nil {
					return err
				}
			}
			slices.SortFunc(out, func(a, b RolloutRecord) int { return cmpDesc(a.Order, b.Order) })
			if f.Limit > 0 && len(out) > f.Limit {
				out = out[:f.Limit]
			}
			return nil
		}
		c := tx.Bucket(bucketOrder).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			id, err := decode(v)
			if err != nil {
				return &CorruptError{Path: s.path, Detail: fmt.Sprintf("bucket order key %s: %v", printable(k), err)}
			}
			if done, err := add(id); err != nil || done {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", s.txError(err))
	}
	return out, nil
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

func (s *Store) getRollout(tx *bolt.Tx, id string) (RolloutRecord, error) {
	raw, err := s.get(tx, bucketRollouts, []byte(id))
	if err != nil {
		return RolloutRecord{}, err
	}
	var rec RolloutRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return RolloutRecord{}, &CorruptError{Path: s.path, Detail: fmt.Sprintf("rollout %q: %v", id, err)}
	}
	return rec, nil
}

// PutState stores doc (JSON) under key, fsynced before it returns.
func (s *Store) PutState(key string, doc []byte) error {
	if err := checkState(key, doc); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketState).Put([]byte(key), encode(doc))
	})
	if err != nil {
		return fmt.Errorf("put state %q: %w", key, s.txError(err))
	}
	return nil
}

// GetState returns the document under key, or ErrNotFound.
func (s *Store) GetState(key string) ([]byte, error) {
	var doc []byte
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		doc, err = s.get(tx, bucketState, []byte(key))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get state %q: %w", key, s.txError(err))
	}
	return doc, nil
}

// checkName rejects empty, overlong and non-printable names.
func checkName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	case len(name) > maxNameLen:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, what, maxNameLen)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%w: %s %q has a non-printable character", ErrInvalid, what, name)
		}
	}
	return nil
}
