package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxCheckErrors bounds how many problems one CorruptError lists.
const maxCheckErrors = 5

// verify opens path read-only and checks it completely before the read-write
// open: bbolt's meta pages, that the file holds every page its meta page
// claims, the schema version, every value's checksum, the index invariants,
// and bbolt's own consistency check (tx.Check).
//
// bbolt reads pages through a memory map and trusts page numbers it finds in
// the file. A damaged page number can point outside the mapping, which the Go
// runtime treats as a fatal fault, not a panic. The walk therefore runs on its
// own goroutine with debug.SetPanicOnFault, so such a fault becomes an error
// naming the file instead of a crash.
func verify(path string, lockTimeout time.Duration) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return &CorruptError{Path: path, Detail: "not a regular file"}
	}
	if info.Size() == 0 {
		return &CorruptError{Path: path, Detail: "file is empty (octoroll never leaves an empty state file behind)"}
	}

	done := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		var db *bolt.DB
		defer func() {
			if r := recover(); r != nil {
				// The read-only handle is abandoned when bbolt panics inside
				// Open; it holds only a shared lock and octoroll refuses to
				// start with this file anyway.
				if db != nil {
					_ = db.Close()
				}
				done <- &CorruptError{Path: path, Detail: fmt.Sprintf("reading the file failed: %v", r)}
			}
		}()
		var err error
		db, err = bolt.Open(path, 0o400, &bolt.Options{
			ReadOnly:        true,
			Timeout:         lockTimeout,
			PreLoadFreelist: true,
		})
		if err != nil {
			done <- boltOpenError(path, lockTimeout, err)
			return
		}
		err = db.View(func(tx *bolt.Tx) error { return verifyTx(path, info.Size(), tx) })
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s after verification: %w", path, cerr)
		}
		done <- err
	}()
	return <-done
}

func verifyTx(path string, fileSize int64, tx *bolt.Tx) error {
	corrupt := func(format string, args ...any) error {
		return &CorruptError{Path: path, Detail: fmt.Sprintf(format, args...)}
	}
	// A truncated file: the meta page claims pages beyond the end of it.
	if tx.Size() > fileSize {
		return corrupt("file is %d bytes but its meta page records %d bytes of pages (truncated?)", fileSize, tx.Size())
	}

	if tx.Bucket(bucketMeta) == nil {
		return corrupt("no schema version: not an octoroll state file")
	}
	s := &Store{path: path}
	raw, err := s.get(tx, bucketMeta, keySchema)
	if errors.Is(err, ErrNotFound) {
		return corrupt("no schema version: not an octoroll state file")
	}
	if err != nil {
		return err
	}
	version, err := strconv.Atoi(string(raw))
	if err != nil {
		return corrupt("schema version %q is not a number", raw)
	}
	if version > SchemaVersion {
		return fmt.Errorf("state file %s has schema version %d; this octoroll reads up to %d: upgrade octoroll", path, version, SchemaVersion)
	}

	// Every value of every bucket: present, not a nested bucket, checksum ok.
	values := make(map[string]map[string][]byte, len(allBuckets))
	for _, name := range allBuckets {
		b := tx.Bucket(name)
		if b == nil {
			return corrupt("bucket %s missing", name)
		}
		m := make(map[string][]byte)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				return corrupt("bucket %s key %s: unexpected nested bucket", name, printable(k))
			}
			payload, err := decode(v)
			if err != nil {
				return corrupt("bucket %s key %s: %v", name, printable(k), err)
			}
			if bytes.Equal(name, bucketEvents) {
				// The history can be long: check events here rather than keep them.
				if len(k) != 8 {
					return corrupt("bucket events: key %s is not a sequence number", printable(k))
				}
				var ev Event
				if err := json.Unmarshal(payload, &ev); err != nil {
					return corrupt("event %s: %v", printable(k), err)
				}
				continue
			}
			m[string(k)] = payload
		}
		values[string(name)] = m
	}

	// Index invariants: order and active point at rollouts that agree.
	records := make(map[string]RolloutRecord, len(values[string(bucketRollouts)]))
	for id, payload := range values[string(bucketRollouts)] {
		var rec RolloutRecord
		if err := json.Unmarshal(payload, &rec); err != nil {
			return corrupt("rollout %q: %v", id, err)
		}
		if rec.ID != id {
			return corrupt("rollout %q: record names id %q", id, rec.ID)
		}
		records[id] = rec
	}
	for service, id := range values[string(bucketActive)] {
		rec, ok := records[string(id)]
		if !ok || !rec.Active || rec.Service != service {
			return corrupt("active rollout of service %q is %q, which is not an active rollout of that service", service, id)
		}
	}
	for k, id := range values[string(bucketOrder)] {
		rec, ok := records[string(id)]
		if len(k) != 8 || !ok || !bytes.Equal([]byte(k), be64(rec.Order)) {
			return corrupt("bucket order key %s: does not match rollout %q", printable([]byte(k)), id)
		}
	}
	if last, _ := tx.Bucket(bucketEvents).Cursor().Last(); last != nil && be64ToInt(last) > tx.Bucket(bucketEvents).Sequence() {
		return corrupt("event %d is above the event sequence %d", be64ToInt(last), tx.Bucket(bucketEvents).Sequence())
	}

	// bbolt's structural check: page types, reachability, free list.
	var problems []string
	n := 0
	for err := range tx.Check() {
		n++
		if len(problems) < maxCheckErrors {
			problems = append(problems, err.Error())
		}
	}
	if n > 0 {
		detail := strings.Join(problems, "; ")
		if n > len(problems) {
			detail += fmt.Sprintf("; and %d more", n-len(problems))
		}
		return corrupt("bbolt consistency check: %s", detail)
	}
	return nil
}
