// Package store owns octoroll's durable state: the rollouts, the index of the
// active rollout per service, an append-only event history and a few small
// documents (known-good versions, last published weights). One replica keeps
// everything in one bbolt file, state.db, under the state directory (Store); several
// replicas share it in etcd (Etcd), where every write of the leader is fenced by its
// election key.
//
// The store is generic over JSON documents so that it does not depend on the
// rollout engine: it must not import controller, xds or any other octoroll
// package. Every write is one bbolt transaction that is fsynced before the
// call returns, so a caller may publish weights as soon as a Put returns.
//
// Every stored value carries a CRC-32C of its bytes. bbolt checksums only its
// meta pages; the per-value checksum lets Open refuse a file whose data pages
// were damaged instead of handing garbage to the rollout engine.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the state file inside the state directory.
const FileName = "state.db"

// SchemaVersion is the layout version this package writes and reads. A file
// with a newer version is refused rather than misread.
const SchemaVersion = 1

// DefaultLockTimeout is how long Open waits for another process to release
// the state file before giving up.
const DefaultLockTimeout = 5 * time.Second

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: no rollout, active rollout or state document under that key.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the arguments were rejected before anything was written.
	ErrInvalid = errors.New("invalid argument")
	// ErrConflict: the service already has a different active rollout.
	ErrConflict = errors.New("conflict")
	// ErrLocked: another process holds the state file.
	ErrLocked = errors.New("state file locked by another process")
	// ErrCorrupt: the state file is damaged or not an octoroll state file.
	ErrCorrupt = errors.New("state file corrupt")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// CorruptError reports a state file that octoroll refuses to use. The file is
// left exactly as it was found.
type CorruptError struct {
	Path   string // the state file
	Detail string // what is wrong, e.g. "bucket rollouts key r1: checksum mismatch"
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state file %s is corrupt or unreadable: %s; octoroll will not guess its contents: "+
		"restore it from a backup or move it aside to start with empty state", e.Path, e.Detail)
}

// Is makes errors.Is(err, ErrCorrupt) true for a *CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Options tune Open. The zero value is ready to use.
type Options struct {
	// LockTimeout is how long to wait for another process holding the state
	// file; zero means DefaultLockTimeout.
	LockTimeout time.Duration
}

// Bucket names. The layout is covered by SchemaVersion.
var (
	bucketMeta     = []byte("meta")     // "schema" -> decimal version
	bucketRollouts = []byte("rollouts") // id -> rolloutRecord
	bucketOrder    = []byte("order")    // be64 creation order -> id
	bucketActive   = []byte("active")   // service -> id of its active rollout
	bucketEvents   = []byte("events")   // be64 seq -> storedEvent
	bucketState    = []byte("state")    // key -> document
	keySchema      = []byte("schema")

	allBuckets = [][]byte{bucketMeta, bucketRollouts, bucketOrder, bucketActive, bucketEvents, bucketState}
)

// Store is the embedded state store. It is safe for concurrent use; writes are
// serialised by bbolt.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens (or creates) dir/state.db. dir is created with mode 0700 and the
// file with mode 0600. A file locked by another process fails after
// opts.LockTimeout with ErrLocked; a damaged file or one that is not an
// octoroll state file fails with a *CorruptError and is not modified.
//
// A new file is built under a temporary name and renamed into place, so an
// existing state.db is always one that was completely initialised, and an
// empty or partial state.db is reported as corrupt rather than recreated.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, fmt.Errorf("open state store: %w: empty state directory", ErrInvalid)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open state store: create state directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if err := checkLink(path); err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := create(dir, path, opts); err != nil {
			return nil, fmt.Errorf("open state store: create %s: %w", path, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}

	// Verify read-only first so that nothing is written to a damaged file
	// (a read-write open may commit a transaction on its own).
	if err := verify(path, opts.LockTimeout); err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		return nil, fmt.Errorf("open state store: %w", boltOpenError(path, opts.LockTimeout, err))
	}
	// Durability is the point of this store: a transition must be on disk
	// before its weights are published.
	db.NoSync = false
	return &Store{db: db, path: path}, nil
}

// checkLink refuses a state file that is a symbolic link to nothing (a volume not
// mounted, a moved disk): creating a new store in its place would replace the link
// and lose the history it points to. A link to an existing file is followed.
func checkLink(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return nil // absent (created below) or a plain file; Stat reports other errors
	}
	target, err := os.Readlink(path)
	if err != nil {
		return fmt.Errorf("state file %s is a symbolic link that cannot be read: %w", path, err)
	}
	if _, err := os.Stat(path); err != nil {
		resolved := target
		if !filepath.IsAbs(resolved) {
			resolved = filepath.Join(filepath.Dir(path), resolved)
		}
		return fmt.Errorf("%w: state file %s is a symbolic link to %s, which cannot be opened (%v); "+
			"octoroll will not create an empty store in its place: make the target available "+
			"(mount its volume, restore it) or remove the link to start with empty state",
			ErrInvalid, path, resolved, errors.Unwrap(err))
	}
	return nil
}

// create builds a fresh state file next to path and renames it into place.
func create(dir, path string, opts Options) error {
	tmp := path + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, encode([]byte(strconv.Itoa(SchemaVersion))))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// boltOpenError turns bbolt's open errors into the store's. The file is known
// to exist, so anything but a lock timeout or a permission problem means its
// contents could not be read as a bbolt file.
func boltOpenError(path string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%w: %s is held by another process (is another octoroll running with the same state directory?); gave up after %s",
			ErrLocked, path, timeout)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: %w", path, err)
	}
	return &CorruptError{Path: path, Detail: "not a readable bbolt file: " + err.Error()}
}

// Path returns the state file's path.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock. Further calls fail with ErrClosed.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state store %s: %w", s.path, err)
	}
	return nil
}

// Ping reads the schema version in a read transaction; it fails once the store
// is closed. Meant for /readyz.
func (s *Store) Ping() error {
	err := s.db.View(func(tx *bolt.Tx) error {
		_, err := s.get(tx, bucketMeta, keySchema)
		return err
	})
	if err != nil {
		return fmt.Errorf("ping state store: %w", s.txError(err))
	}
	return nil
}

// txError maps bbolt's errors after Open to the store's sentinels.
func (s *Store) txError(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Value encoding: 4-byte big-endian CRC-32C of the payload, then the payload.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encode(payload []byte) []byte {
	out := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(out, crc32.Checksum(payload, castagnoli))
	copy(out[4:], payload)
	return out
}

// decode checks and strips the checksum. The returned slice is a copy, safe to
// use after the transaction ends.
func decode(v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, fmt.Errorf("value of %d bytes is shorter than its checksum", len(v))
	}
	payload := v[4:]
	if got, want := crc32.Checksum(payload, castagnoli), binary.BigEndian.Uint32(v); got != want {
		return nil, fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	return append([]byte(nil), payload...), nil
}

// get reads and checks one value; a missing key is ErrNotFound, a bad value a
// *CorruptError.
func (s *Store) get(tx *bolt.Tx, bucket, key []byte) ([]byte, error) {
	b := tx.Bucket(bucket)
	if b == nil {
		return nil, &CorruptError{Path: s.path, Detail: fmt.Sprintf("bucket %s missing", bucket)}
	}
	v := b.Get(key)
	if v == nil {
		return nil, ErrNotFound
	}
	payload, err := decode(v)
	if err != nil {
		return nil, &CorruptError{Path: s.path, Detail: fmt.Sprintf("bucket %s key %s: %v", bucket, printable(key), err)}
	}
	return payload, nil
}

func printable(key []byte) string {
	if len(key) == 8 {
		for _, c := range key {
			if c < 0x20 || c > 0x7e {
				return strconv.FormatUint(binary.BigEndian.Uint64(key), 10)
			}
		}
	}
	return strconv.Quote(string(key))
}

func be64(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}
