package replica

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/octoacme/octoroll/internal/etcdtest"
	"github.com/octoacme/octoroll/store"
)

// member is one replica on its own etcd client, through its own proxy.
type member struct {
	rep   *Replica
	st    *store.Etcd
	proxy *etcdtest.Proxy
}

func startMember(t *testing.T, etcd *etcdtest.Server, prefix, id string) *member {
	t.Helper()
	px := etcd.Proxy(t)
	st := openStore(t, px.Endpoint, prefix)
	rep := New(Options{Store: st, Self: Info{ID: id, Admin: "http://" + id}, TTL: time.Second,
		Load: func(context.Context) error { return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = rep.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &member{rep: rep, st: st, proxy: px}
}

func openStore(t *testing.T, endpoint, prefix string) *store.Etcd {
	t.Helper()
	st, err := store.OpenEtcd(store.EtcdOptions{Endpoints: []string{endpoint}, Prefix: prefix, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	st.Fenced(nil)
	return st
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A leader cut off from etcd (its client's bytes held by a proxy, as in a partition)
// still takes itself for the leader for up to its lease TTL; a write it makes then is
// held too. Meanwhile its lease expires and the other replica leads. When the held
// bytes reach etcd, the write is refused by the fence, changes nothing, and the old
// leader stops leading.
func TestPartitionedLeaderIsFenced(t *testing.T) {
	etcd := etcdtest.Start(t)
	const prefix = "/partition/"
	a := startMember(t, etcd, prefix, "a")
	waitFor(t, "a leads", a.rep.Leading)
	b := startMember(t, etcd, prefix, "b")
	if err := a.st.PutState("owner", []byte(`"a"`)); err != nil {
		t.Fatal(err)
	}

	a.proxy.PauseTx()
	written := make(chan error, 1)
	go func() { written <- a.st.PutState("owner", []byte(`"a, after the partition"`)) }()
	waitFor(t, "b leads", b.rep.Leading)
	if err := b.st.PutState("owner", []byte(`"b"`)); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
	a.proxy.UnpauseTx()
	if err := <-written; !errors.Is(err, store.ErrFenced) {
		t.Fatalf("the partitioned leader's write = %v, want it refused by the fence", err)
	}
	waitFor(t, "a steps down", func() bool { return !a.rep.Leading() })
	if doc, err := b.st.GetState("owner"); err != nil || string(doc) != `"b"` {
		t.Fatalf("owner after the refused write = %s, %v; want the new leader's", doc, err)
	}
	if l, ok := a.rep.Leader(); a.rep.Leading() || (ok && l.ID == "a") {
		t.Errorf("the old leader still names itself the leader: %+v", l)
	}
}
