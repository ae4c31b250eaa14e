package store

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octoacme/octoroll/internal/etcdtest"
)

// contract is what both stores promise: the bbolt file (*Store) and etcd (*Etcd). The
// contract tests run against each.
type contract interface {
	PutRollout(id, service string, active bool, doc []byte, events []Event) (uint64, error)
	GetRollout(id string) ([]byte, error)
	ActiveRollout(service string) (string, []byte, error)
	ListRollouts(f ListFilter) ([]RolloutRecord, error)
	PutState(key string, doc []byte) error
	GetState(key string) ([]byte, error)
	AppendEvents(events ...Event) (uint64, error)
	Events(q EventQuery) ([]Event, uint64, error)
	Path() string
	Ping() error
	Close() error
}

// backend opens a store of one kind at a location: a directory for bbolt, a key
// prefix of the test binary's etcd server for etcd.
type backend struct {
	name string
	// where returns a new empty location.
	where func(t *testing.T) string
	// open opens the store at where; it is closed when the test ends.
	open func(t *testing.T, where string) contract
}

var etcdPrefixes atomic.Int64

func backends() []backend {
	return []backend{
		{
			name:  "bbolt",
			where: func(t *testing.T) string { return t.TempDir() },
			open: func(t *testing.T, dir string) contract {
				t.Helper()
				s, err := Open(dir, Options{LockTimeout: 10 * time.Second})
				if err != nil {
					t.Fatalf("Open(%s): %v", dir, err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			},
		},
		{
			name:  "etcd",
			where: func(t *testing.T) string { return fmt.Sprintf("/contract/%d/", etcdPrefixes.Add(1)) },
			open: func(t *testing.T, prefix string) contract {
				t.Helper()
				s, err := OpenEtcd(EtcdOptions{Endpoints: []string{etcdtest.Shared(t).Endpoint}, Prefix: prefix})
				if err != nil {
					t.Fatalf("OpenEtcd(%s): %v", prefix, err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			},
		},
	}
}

// eachStore runs test once per store kind.
func eachStore(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// openNew opens an empty store of kind b.
func (b backend) openNew(t *testing.T) contract {
	t.Helper()
	return b.open(t, b.where(t))
}
