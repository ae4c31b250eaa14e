package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/octoacme/octoroll/internal/etcdtest"
)

func openEtcdT(t *testing.T, prefix string) *Etcd {
	t.Helper()
	s, err := OpenEtcd(EtcdOptions{Endpoints: []string{etcdtest.Shared(t).Endpoint}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// campaign makes a new session win the election under prefix and returns its fence.
func campaign(t *testing.T, cli *clientv3.Client, prefix string) (*concurrency.Session, Fence) {
	t.Helper()
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	e := concurrency.NewElection(sess, prefix+"leader")
	if err := e.Campaign(context.Background(), "replica"); err != nil {
		t.Fatal(err)
	}
	return sess, Fence{Key: e.Key(), Rev: e.Rev()}
}

// A leader's writes are conditioned on its election key: once its session is gone
// and another replica leads, its late writes fail with ErrFenced and change nothing;
// a replica that does not lead writes nothing.
func TestEtcdFencedWrites(t *testing.T) {
	const prefix = "/fence/"
	old := openEtcdT(t, prefix)
	sess, fence := campaign(t, old.Client(), prefix)
	old.Fenced(&fence)
	put(t, old, "r1", "checkout", true, `{"stage":1}`)

	// The old leader's lease ends (as when it is cut off from etcd beyond its TTL);
	// another replica wins the election.
	if _, err := old.Client().Revoke(context.Background(), sess.Lease()); err != nil {
		t.Fatal(err)
	}
	next := openEtcdT(t, prefix)
	_, nextFence := campaign(t, next.Client(), prefix)
	next.Fenced(&nextFence)

	_, err := old.PutRollout("r1", "checkout", true, []byte(`{"stage":2}`), []Event{{Kind: "stage"}})
	if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), fence.Key) {
		t.Fatalf("deposed leader's PutRollout = %v, want ErrFenced naming %s", err, fence.Key)
	}
	if err := old.PutState("service/checkout", []byte(`{}`)); !errors.Is(err, ErrFenced) {
		t.Errorf("deposed leader's PutState = %v, want ErrFenced", err)
	}
	if _, err := old.AppendEvents(Event{Kind: "x"}); !errors.Is(err, ErrFenced) {
		t.Errorf("deposed leader's AppendEvents = %v, want ErrFenced", err)
	}
	if doc, _ := next.GetRollout("r1"); string(doc) != `{"stage":1}` {
		t.Errorf("rollout after the refused write = %s", doc)
	}
	if evs, _, _ := next.Events(EventQuery{}); len(evs) != 0 {
		t.Errorf("refused writes appended events: %+v", evs)
	}
	put(t, next, "r1", "checkout", true, `{"stage":2}`)

	next.Fenced(nil)
	if err := next.PutState("k", []byte(`{}`)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("PutState without leadership = %v, want ErrNotLeader", err)
	}
}

func TestEtcdNewerSchemaIsRefused(t *testing.T) {
	s := openEtcdT(t, "/schema/")
	if _, err := s.Client().Put(context.Background(), "/schema/meta/schema", "99"); err != nil {
		t.Fatal(err)
	}
	_, err := OpenEtcd(EtcdOptions{Endpoints: []string{etcdtest.Shared(t).Endpoint}, Prefix: "/schema/"})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("OpenEtcd of a newer schema = %v", err)
	}
}
