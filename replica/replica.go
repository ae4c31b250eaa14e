// Package replica runs one octoroll replica among several on one etcd: the leader
// election (etcd's concurrency package, one lease per replica), the replica's record
// (its addresses, its proxies and how far they ACKed each service's route, kept under
// its lease so that it disappears with the replica), and the follower's watch of the
// persisted state.
//
// Only the leader decides: it is elected, loads the persisted state, and only then
// fences the store on its election key and starts deciding. A leader whose lease is
// gone (etcd unreachable for longer than the lease TTL, or the lease revoked) stops
// deciding at once; its writes would be refused by the fence anyway.
package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

// DefaultTTL is the lease TTL of a replica: how long a leader cut off from etcd may
// still be taken for the leader by the others.
const DefaultTTL = 5 * time.Second

// Info is one replica's record.
type Info struct {
	ID string `json:"id"`
	// Admin is the base URL of its admin API; XDS its xDS address.
	Admin string `json:"admin"`
	XDS   string `json:"xds,omitempty"`
	// Leader is set in the leader's record.
	Leader bool `json:"leader"`
	// Proxies is how many proxies are connected to it.
	Proxies int `json:"proxies"`
	// Routes are, by service, how far its proxies ACKed the route it serves.
	Routes map[string]xds.Convergence `json:"routes,omitempty"`
	// Clusters are, by service and version, how many of its proxies watching the
	// service's route hold the version's cluster (every version it serves a cluster of).
	Clusters map[string]map[string]xds.ClusterWarmth `json:"clusters,omitempty"`
	// Updated is when it wrote the record last.
	Updated time.Time `json:"updated"`
}

// Options configure a Replica.
type Options struct {
	Log *zap.Logger
	// Store is the shared store; the replica fences it while it leads.
	Store *store.Etcd
	// Self is this replica's id and addresses.
	Self Info
	// TTL is the lease TTL, whole seconds, at least 1s; default DefaultTTL.
	TTL time.Duration
	// Interval is how often the record is written when nothing in it changed (a
	// heartbeat); default 1s.
	Interval time.Duration
	// Coalesce is the shortest time between two writes of the record: the changes
	// (a proxy connected, an ACK) within it are written together; default
	// DefaultCoalesce.
	Coalesce time.Duration
	// Report is what this replica's proxies ACKed: it makes Proxies, Routes and
	// Clusters of the record, and says when they may have changed.
	Report *Report
	// Load loads the persisted state and publishes it: once elected, before deciding;
	// on a follower, after the leader changed the state; after stepping down.
	Load func(ctx context.Context) error
	// OnLeader is told every change of this replica's leadership.
	OnLeader func(leading bool)
}

// Replica is safe for concurrent use.
type Replica struct {
	opts    Options
	log     *zap.Logger
	cli     *clientv3.Client
	prefix  string // of the cluster keys
	leading atomic.Bool

	mu      sync.Mutex
	lease   clientv3.LeaseID
	peers   []Info
	leader  string // id of the leader, "" when unknown
	err     error  // why this replica cannot take part now (etcd unreachable)
	loadReq chan struct{}
	// peersReq asks for the records to be read again: one of them changed.
	peersReq chan struct{}
	// watched are the cluster keys whose values are handed to a function (watchKey).
	watched map[string]func([]byte)
	// leadChs are signalled on every change of this replica's leadership.
	leadChs []chan struct{}
	// eventsReq is signalled when an event is appended.
	eventsReq chan struct{}
	// recordReq is signalled when the record changed apart from its report (leadership).
	recordReq chan struct{}
	// loadMu keeps loads one at a time.
	loadMu sync.Mutex
}

// New returns a replica; Run takes part in the election.
func New(opts Options) *Replica {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Coalesce <= 0 {
		opts.Coalesce = DefaultCoalesce
	}
	return &Replica{
		opts:      opts,
		log:       opts.Log.Named("replica"),
		cli:       opts.Store.Client(),
		prefix:    opts.Store.Prefix() + "cluster/",
		loadReq:   make(chan struct{}, 1),
		peersReq:  make(chan struct{}, 1),
		watched:   map[string]func([]byte){},
		eventsReq: make(chan struct{}, 1),
		recordReq: make(chan struct{}, 1),
	}
}

// watchKey hands every value written to the cluster key name to fn (and the current
// one whenever the watch starts). Call it before Run.
func (r *Replica) watchKey(name string, fn func([]byte)) { r.watched[r.prefix+name] = fn }

// clusterKey is the store key (under the store's prefix) of the cluster key name.
func (r *Replica) clusterKey(name string) string {
	return strings.TrimPrefix(r.prefix, r.opts.Store.Prefix()) + name
}

// leaderChanges returns a channel signalled on every change of this replica's
// leadership, and once at once.
func (r *Replica) leaderChanges() <-chan struct{} {
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	r.mu.Lock()
	r.leadChs = append(r.leadChs, ch)
	r.mu.Unlock()
	return ch
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// DefaultCoalesce is the default Options.Coalesce: the leader learns a follower's
// proxies' ACKs within it (plus one etcd round trip).
const DefaultCoalesce = 50 * time.Millisecond

// Leading reports whether this replica leads and decides.
func (r *Replica) Leading() bool { return r.leading.Load() }

// Self is this replica's id and addresses.
func (r *Replica) Self() Info { return r.opts.Self }

// Leader is the record of the leader, if one is known.
func (r *Replica) Leader() (Info, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.peers {
		if p.ID == r.leader {
			return p, true
		}
	}
	if r.leader == r.opts.Self.ID {
		return r.opts.Self, true
	}
	return Info{}, false
}

// Replicas are the records of every live replica (this one included), by id.
func (r *Replica) Replicas() []Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.peers)
}

// Err says why this replica cannot take part in the election now (etcd unreachable,
// its lease lost); nil while it can.
func (r *Replica) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *Replica) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Run campaigns, leads when elected and keeps the record until ctx is done; then it
// resigns.
func (r *Replica) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.watchState(ctx) })
	wg.Go(func() { r.loadLoop(ctx) })
	for ctx.Err() == nil {
		if err := r.term(ctx); err != nil && ctx.Err() == nil {
			r.setErr(err)
			r.log.Warn("not taking part in the election", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return nil
}

// term is one session: campaign, lead until the session ends.
func (r *Replica) term(ctx context.Context) error {
	sess, err := concurrency.NewSession(r.cli, concurrency.WithTTL(max(1, int(r.opts.TTL/time.Second))), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("etcd: cannot get a lease: %w", err)
	}
	defer func() {
		// Resigning (revoking the lease) lets another replica lead at once.
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _ = r.cli.Revoke(cctx, sess.Lease())
		sess.Orphan()
	}()
	r.mu.Lock()
	r.lease, r.err = sess.Lease(), nil
	r.mu.Unlock()

	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
		case <-tctx.Done():
		}
		cancel()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.records(tctx, sess.Lease()) })

	el := concurrency.NewElection(sess, r.prefix+"election")
	if err := el.Campaign(tctx, r.opts.Self.ID); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("etcd: campaign: %w", err)
	}
	fence := store.Fence{Key: el.Key(), Rev: el.Rev()}
	if err := r.load(tctx); err != nil {
		return fmt.Errorf("elected, but the persisted state does not load: %w", err)
	}
	r.opts.Store.Fenced(&fence)
	r.setLeading(true)
	r.log.Info("leading", zap.String("id", r.opts.Self.ID), zap.String("electionKey", fence.Key), zap.Int64("revision", fence.Rev))
	<-tctx.Done()
	r.setLeading(false)
	r.opts.Store.Fenced(nil)
	if ctx.Err() == nil {
		r.log.Warn("lease lost: no longer leading", zap.String("id", r.opts.Self.ID))
		r.setErr(errors.New("etcd: lease lost; campaigning again"))
		r.requestLoad()
	}
	return nil
}

func (r *Replica) setLeading(on bool) {
	r.leading.Store(on)
	r.mu.Lock()
	if on {
		r.leader = r.opts.Self.ID
	} else if r.leader == r.opts.Self.ID {
		r.leader = ""
	}
	r.mu.Unlock()
	if r.opts.OnLeader != nil {
		r.opts.OnLeader(on)
	}
	r.mu.Lock()
	chs := slices.Clone(r.leadChs)
	r.mu.Unlock()
	for _, ch := range chs {
		signal(ch)
	}
	signal(r.recordReq)
}

// records writes this replica's record under its lease when it changed, at most once
// every Coalesce (the changes meanwhile written together), and every Interval at
// least; and reads every replica's record and the leader whenever one changed (the
// watch says so) and every Interval. A change is told by the report's change watch:
// only the services it names are recomputed.
func (r *Replica) records(ctx context.Context, lease clientv3.LeaseID) {
	heartbeat := time.NewTicker(r.opts.Interval)
	defer heartbeat.Stop()
	var changed <-chan struct{}
	if r.opts.Report != nil {
		changed = r.opts.Report.Changed()
	}
	// retry is set while a write failed: it is tried again after Coalesce.
	var retry <-chan time.Time
	var written time.Time
	dirty, lastLeader := true, false
	for {
		if r.opts.Report != nil && r.opts.Report.Update() {
			dirty = true
		}
		if l := r.Leading(); l != lastLeader {
			lastLeader, dirty = l, true
		}
		if dirty || time.Since(written) >= r.opts.Interval {
			retry = nil
			if r.writeRecord(ctx, lease, r.record(lastLeader)) {
				dirty, written = false, time.Now()
			} else {
				retry = time.After(r.opts.Coalesce)
			}
			r.readRecords(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
		case <-retry:
		case <-r.recordReq:
		case <-changed:
			// The changes of the next Coalesce are written with this one.
			if wait := r.opts.Coalesce - time.Since(written); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		case <-r.peersReq:
			r.readRecords(ctx)
		}
	}
}

// record is this replica's record as written now.
func (r *Replica) record(leading bool) []byte {
	info := r.opts.Self
	info.Leader = leading
	info.Updated = time.Now().UTC()
	if r.opts.Report != nil {
		return r.opts.Report.encode(info)
	}
	raw, _ := json.Marshal(info)
	return raw
}

func (r *Replica) writeRecord(ctx context.Context, lease clientv3.LeaseID, rec []byte) bool {
	cctx, cancel := context.WithTimeout(ctx, r.opts.Interval+time.Second)
	defer cancel()
	if _, err := r.cli.Put(cctx, r.prefix+"replicas/"+r.opts.Self.ID, string(rec), clientv3.WithLease(lease)); err != nil {
		if ctx.Err() == nil {
			r.log.Debug("write replica record", zap.Error(err))
		}
		return false
	}
	return true
}

func (r *Replica) readRecords(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, r.opts.Interval+time.Second)
	defer cancel()
	resp, err := r.cli.Txn(cctx).Then(
		clientv3.OpGet(r.prefix+"replicas/", clientv3.WithPrefix()),
		clientv3.OpGet(r.prefix+"election", clientv3.WithFirstCreate()...),
	).Commit()
	if err != nil {
		return
	}
	var peers []Info
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var info Info
		if json.Unmarshal(kv.Value, &info) == nil {
			peers = append(peers, info)
		}
	}
	slices.SortFunc(peers, func(a, b Info) int { return strings.Compare(a.ID, b.ID) })
	leader := ""
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		leader = string(kvs[0].Value)
	}
	r.mu.Lock()
	r.peers, r.leader = peers, leader
	r.mu.Unlock()
}

// watchState asks for a load whenever the persisted state changes while this replica
// follows, and for the records to be read again when one of them changes. A watch that ends (etcd restarted, history compacted) is started again,
// with a load, since changes may have been missed.
func (r *Replica) watchState(ctx context.Context) {
	prefix := r.opts.Store.Prefix()
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := r.cli.Watch(wctx, prefix, clientv3.WithPrefix())
		r.readWatched(wctx)
		for resp := range ch {
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				k := string(ev.Kv.Key)
				if fn := r.watched[k]; fn != nil {
					if ev.Type == clientv3.EventTypePut {
						fn(ev.Kv.Value)
					}
					continue
				}
				if strings.HasPrefix(k, r.prefix) {
					select {
					case r.peersReq <- struct{}{}:
					default:
					}
					continue
				}
				if strings.HasPrefix(k, prefix+"events/") {
					signal(r.eventsReq)
					continue
				}
				if !r.Leading() {
					r.requestLoad()
				}
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		r.requestLoad()
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readWatched hands the current value of every watched key to its function.
func (r *Replica) readWatched(ctx context.Context) {
	for k, fn := range r.watched {
		cctx, cancel := context.WithTimeout(ctx, r.opts.Interval+time.Second)
		resp, err := r.cli.Get(cctx, k)
		cancel()
		if err == nil && len(resp.Kvs) == 1 {
			fn(resp.Kvs[0].Value)
		}
	}
}

func (r *Replica) requestLoad() {
	select {
	case r.loadReq <- struct{}{}:
	default:
	}
}

// loadLoop runs the requested loads one at a time, never while leading (the leader's
// state is the store's), retrying a load that failed.
func (r *Replica) loadLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.loadReq:
		}
		if r.Leading() {
			continue
		}
		if err := r.load(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("loading the persisted state failed; retrying", zap.Error(err))
			time.AfterFunc(500*time.Millisecond, r.requestLoad)
		}
	}
}

func (r *Replica) load(ctx context.Context) error {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	return r.opts.Load(ctx)
}
