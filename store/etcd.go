package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors of a replicated store; test with errors.Is.
var (
	// ErrNotLeader: a write was refused because this replica does not lead.
	ErrNotLeader = errors.New("not the leader: only the leader writes rollouts and service state")
	// ErrFenced: a write was refused because the leadership it was made under is gone
	// (the election key it is conditioned on was deleted or replaced): another replica
	// may lead now.
	ErrFenced = errors.New("fenced: the leadership this write was made under is gone")
)

// Defaults of EtcdOptions.
const (
	DefaultEtcdPrefix         = "/octoroll/"
	DefaultEtcdDialTimeout    = 5 * time.Second
	DefaultEtcdRequestTimeout = 5 * time.Second
)

// EtcdOptions tune OpenEtcd.
type EtcdOptions struct {
	// Endpoints are the etcd client URLs (http://host:2379).
	Endpoints []string
	// Prefix is the key prefix of every key octoroll writes; default DefaultEtcdPrefix.
	Prefix string
	// DialTimeout bounds the first connection; default DefaultEtcdDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds every read and write; default DefaultEtcdRequestTimeout.
	RequestTimeout time.Duration
	// Log receives the client's warnings; default none.
	Log *zap.Logger
}

// Fence is what every write of a leader is conditioned on: its election key, which
// must still exist with the revision it was created at.
type Fence struct {
	Key string
	Rev int64
}

// Etcd is the state store kept in etcd, shared by every replica. It has the same
// contract as *Store (same documents, same sequence numbers, same errors), plus
// fencing: once Fenced is called, a write commits only if the fence's election key is
// unchanged in the same transaction, and a replica that does not lead (Unfence) writes
// nothing.
type Etcd struct {
	cli    *clientv3.Client
	prefix string
	opts   EtcdOptions

	mu     sync.Mutex
	fenced bool   // writes need a fence
	fence  *Fence // nil while fenced: this replica does not lead
}

// Layout under the prefix (covered by SchemaVersion):
//
//	meta/schema         decimal version
//	rollouts/<id>       RolloutRecord
//	order/<%020d>       id, by creation order
//	active/<service>    id of its active rollout
//	events/<%020d>      Event, by sequence number
//	state/<key>         document
//	seq/rollouts, seq/events   the last number given
const (
	etcdSchema      = "meta/schema"
	etcdRollouts    = "rollouts/"
	etcdOrder       = "order/"
	etcdActive      = "active/"
	etcdEvents      = "events/"
	etcdState       = "state/"
	etcdSeqRollouts = "seq/rollouts"
	etcdSeqEvents   = "seq/events"
)

// OpenEtcd connects to etcd and checks (or writes, on an empty prefix) the schema
// version. A prefix written by a newer octoroll is refused.
func OpenEtcd(opts EtcdOptions) (*Etcd, error) {
	if len(opts.Endpoints) == 0 {
		return nil, fmt.Errorf("open etcd store: %w: no etcd endpoints", ErrInvalid)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultEtcdPrefix
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultEtcdDialTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultEtcdRequestTimeout
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		DialTimeout: opts.DialTimeout,
		Logger:      opts.Log.Named("etcd"),
		// A dead connection is noticed within a few seconds, not minutes.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("open etcd store %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	s := &Etcd{cli: cli, prefix: opts.Prefix, opts: opts}
	if err := s.init(); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("open etcd store %s: %w", s.Path(), err)
	}
	return s, nil
}

func (s *Etcd) init() error {
	ctx, cancel := s.ctx()
	defer cancel()
	key := s.prefix + etcdSchema
	want := strconv.Itoa(SchemaVersion)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, want)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return &CorruptError{Path: s.Path(), Detail: "schema version missing"}
	}
	v, err := strconv.Atoi(string(kvs[0].Value))
	switch {
	case err != nil:
		return &CorruptError{Path: s.Path(), Detail: fmt.Sprintf("schema version %q: %v", kvs[0].Value, err)}
	case v > SchemaVersion:
		return &CorruptError{Path: s.Path(), Detail: fmt.Sprintf("schema version %d is newer than this octoroll's %d", v, SchemaVersion)}
	}
	return nil
}

// Client is the etcd client, shared with leader election and replica records.
func (s *Etcd) Client() *clientv3.Client { return s.cli }

// Prefix is the key prefix of the store.
func (s *Etcd) Prefix() string { return s.prefix }

// Path names the store in messages: its endpoints and prefix.
func (s *Etcd) Path() string {
	return "etcd " + strings.Join(s.opts.Endpoints, ",") + s.prefix
}

// Close closes the client.
func (s *Etcd) Close() error { return s.cli.Close() }

// Ping reads the schema version; it fails while etcd is unreachable or has no quorum.
func (s *Etcd) Ping() error {
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.cli.Get(ctx, s.prefix+etcdSchema); err != nil {
		return fmt.Errorf("ping etcd store: %w", s.clientError(err))
	}
	return nil
}

// Fenced makes every later write conditioned on f (this replica leads under f); nil
// refuses every write with ErrNotLeader (it does not lead).
func (s *Etcd) Fenced(f *Fence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fenced = true
	s.fence = f
}

func (s *Etcd) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.RequestTimeout)
}

func (s *Etcd) clientError(err error) error {
	if errors.Is(err, context.Canceled) && s.cli.Ctx().Err() != nil {
		return ErrClosed
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("etcd did not answer within %s: %w", s.opts.RequestTimeout, err)
	}
	return err
}

// Unanswered reports whether err is etcd not answering: the request timed out or no
// etcd member was reachable. The write may or may not have been applied, and a
// replica that sees it cannot tell whether its lease is still alive.
func Unanswered(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		switch se.GRPCStatus().Code() {
		case codes.DeadlineExceeded, codes.Unavailable:
			return true
		}
	}
	return false
}

// update runs apply in one etcd transaction (retried on a conflicting write), with
// the fence's check in the same transaction.
func (s *Etcd) update(apply func(stm concurrency.STM) error) error {
	s.mu.Lock()
	fenced, fence := s.fenced, s.fence
	s.mu.Unlock()
	if fenced && fence == nil {
		return ErrNotLeader
	}
	ctx, cancel := s.ctx()
	defer cancel()
	_, err := concurrency.NewSTM(s.cli, func(stm concurrency.STM) error {
		if fence != nil {
			// The key's revision is compared again when the transaction commits.
			if rev := stm.Rev(fence.Key); rev != fence.Rev {
				return fmt.Errorf("%w: election key %s is at revision %d, this replica led at %d", ErrFenced, fence.Key, rev, fence.Rev)
			}
		}
		return apply(stm)
	}, concurrency.WithAbortContext(ctx))
	if err != nil {
		return s.clientError(err)
	}
	return nil
}

func seqKey(n uint64) string { return fmt.Sprintf("%020d", n) }

// nextSeq returns the number after the one stored under key and stores it.
func (s *Etcd) nextSeq(stm concurrency.STM, key string) (uint64, error) {
	var n uint64
	if v := stm.Get(s.prefix + key); v != "" {
		var err error
		if n, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, &CorruptError{Path: s.Path(), Detail: fmt.Sprintf("%s: %q", key, v)}
		}
	}
	n++
	stm.Put(s.prefix+key, strconv.FormatUint(n, 10))
	return n, nil
}

// PutRollout is (*Store).PutRollout on etcd: one transaction.
func (s *Etcd) PutRollout(id, service string, active bool, doc []byte, events []Event) (lastSeq uint64, err error) {
	if err := checkRollout(id, service, doc); err != nil {
		return 0, err
	}
	events, err = rolloutEvents(id, service, events)
	if err != nil {
		return 0, fmt.Errorf("put rollout %q: %w", id, err)
	}
	err = s.update(func(stm concurrency.STM) error {
		rec := RolloutRecord{ID: id, Service: service, Active: active, Doc: doc}
		prev, err := s.decodeRollout(id, stm.Get(s.prefix+etcdRollouts+id))
		switch {
		case errors.Is(err, ErrNotFound):
			if rec.Order, err = s.nextSeq(stm, etcdSeqRollouts); err != nil {
				return err
			}
			stm.Put(s.prefix+etcdOrder+seqKey(rec.Order), id)
		case err != nil:
			return err
		case prev.Service != service:
			return fmt.Errorf("%w: rollout belongs to service %q, not %q", ErrInvalid, prev.Service, service)
		default:
			rec.Order = prev.Order
		}
		activeKey := s.prefix + etcdActive + service
		switch current := stm.Get(activeKey); {
		case active && current != "" && current != id:
			return fmt.Errorf("%w: service %q already has active rollout %q", ErrConflict, service, current)
		case active && current == "":
			stm.Put(activeKey, id)
		case !active && current == id:
			stm.Del(activeKey)
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode rollout: %w", err)
		}
		stm.Put(s.prefix+etcdRollouts+id, string(raw))
		lastSeq, err = s.appendEvents(stm, events)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("put rollout %q: %w", id, err)
	}
	return lastSeq, nil
}

func (s *Etcd) appendEvents(stm concurrency.STM, events []Event) (uint64, error) {
	next := func() (uint64, error) { return s.nextSeq(stm, etcdSeqEvents) }
	return putEvents(events, next, func(seq uint64, raw []byte) error {
		stm.Put(s.prefix+etcdEvents+seqKey(seq), string(raw))
		return nil
	})
}

func (s *Etcd) decodeRollout(id, raw string) (RolloutRecord, error) {
	if raw == "" {
		return RolloutRecord{}, ErrNotFound
	}
	var rec RolloutRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return RolloutRecord{}, &CorruptError{Path: s.Path(), Detail: fmt.Sprintf("rollout %q: %v", id, err)}
	}
	return rec, nil
}

// get reads one key; a missing key is ErrNotFound.
func (s *Etcd) get(key string, opts ...clientv3.OpOption) ([]byte, int64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+key, opts...)
	if err != nil {
		return nil, 0, s.clientError(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, resp.Header.Revision, ErrNotFound
	}
	return resp.Kvs[0].Value, resp.Header.Revision, nil
}

// GetRollout returns the document of rollout id, or ErrNotFound.
func (s *Etcd) GetRollout(id string) ([]byte, error) {
	raw, _, err := s.get(etcdRollouts + id)
	if err == nil {
		var rec RolloutRecord
		if rec, err = s.decodeRollout(id, string(raw)); err == nil {
			return rec.Doc, nil
		}
	}
	return nil, fmt.Errorf("get rollout %q: %w", id, err)
}

// ActiveRollout returns the active rollout of service, or ErrNotFound.
func (s *Etcd) ActiveRollout(service string) (string, []byte, error) {
	id, rev, err := s.get(etcdActive + service)
	if err != nil {
		return "", nil, fmt.Errorf("active rollout of %q: %w", service, err)
	}
	raw, _, err := s.get(etcdRollouts+string(id), clientv3.WithRev(rev))
	if errors.Is(err, ErrNotFound) {
		err = &CorruptError{Path: s.Path(), Detail: fmt.Sprintf("active rollout %q of service %q is missing", id, service)}
	}
	if err != nil {
		return "", nil, fmt.Errorf("active rollout of %q: %w", service, err)
	}
	rec, err := s.decodeRollout(string(id), string(raw))
	if err != nil {
		return "", nil, fmt.Errorf("active rollout of %q: %w", service, err)
	}
	return rec.ID, rec.Doc, nil
}

// ListRollouts returns the rollouts that match f, newest first, as of one revision.
func (s *Etcd) ListRollouts(f ListFilter) ([]RolloutRecord, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	index := etcdOrder
	if f.ActiveOnly {
		index = etcdActive
	}
	// The index and the records are read at one revision: a consistent view.
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.prefix+index, clientv3.WithPrefix()),
		clientv3.OpGet(s.prefix+etcdRollouts, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", s.clientError(err))
	}
	recs := map[string]RolloutRecord{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		id := strings.TrimPrefix(string(kv.Key), s.prefix+etcdRollouts)
		rec, err := s.decodeRollout(id, string(kv.Value))
		if err != nil {
			return nil, fmt.Errorf("list rollouts: %w", err)
		}
		recs[id] = rec
	}
	var out []RolloutRecord
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		rec, ok := recs[string(kv.Value)]
		if !ok {
			return nil, fmt.Errorf("list rollouts: %w", &CorruptError{Path: s.Path(),
				Detail: fmt.Sprintf("%s names rollout %q, which is missing", strings.TrimPrefix(string(kv.Key), s.prefix), kv.Value)})
		}
		if (f.Service == "" || rec.Service == f.Service) && (!f.ActiveOnly || rec.Active) {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b RolloutRecord) int { return cmpDesc(a.Order, b.Order) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// PutState stores doc (JSON) under key.
func (s *Etcd) PutState(key string, doc []byte) error {
	if err := checkState(key, doc); err != nil {
		return err
	}
	err := s.update(func(stm concurrency.STM) error {
		stm.Put(s.prefix+etcdState+key, string(doc))
		return nil
	})
	if err != nil {
		return fmt.Errorf("put state %q: %w", key, err)
	}
	return nil
}

// GetState returns the document under key, or ErrNotFound.
func (s *Etcd) GetState(key string) ([]byte, error) {
	doc, _, err := s.get(etcdState + key)
	if err != nil {
		return nil, fmt.Errorf("get state %q: %w", key, err)
	}
	return doc, nil
}

// AppendEvents appends events in one transaction; see (*Store).AppendEvents.
func (s *Etcd) AppendEvents(events ...Event) (lastSeq uint64, err error) {
	err = s.update(func(stm concurrency.STM) (err error) {
		lastSeq, err = s.appendEvents(stm, events)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("append events: %w", err)
	}
	return lastSeq, nil
}

// Events pages through the history; see (*Store).Events.
func (s *Etcd) Events(q EventQuery) (events []Event, next uint64, err error) {
	limit := pageLimit(q.Limit)
	next = q.After
	from := s.prefix + etcdEvents + seqKey(q.After+1)
	end := clientv3.GetPrefixRangeEnd(s.prefix + etcdEvents)
	var rev int64
	for len(events) < limit {
		ctx, cancel := s.ctx()
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(limit))}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		cancel()
		if err != nil {
			return nil, q.After, fmt.Errorf("read events: %w", s.clientError(err))
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			if len(events) == limit {
				break
			}
			var ev Event
			if err := json.Unmarshal(kv.Value, &ev); err != nil {
				return nil, q.After, fmt.Errorf("read events: %w", &CorruptError{Path: s.Path(),
					Detail: fmt.Sprintf("event %s: %v", strings.TrimPrefix(string(kv.Key), s.prefix+etcdEvents), err)})
			}
			next = ev.Seq
			if (q.RolloutID == "" || ev.RolloutID == q.RolloutID) &&
				(q.Service == "" || ev.Service == q.Service) &&
				(q.Kind == "" || ev.Kind == q.Kind) {
				events = append(events, ev)
			}
		}
		if !resp.More {
			break
		}
		from = s.prefix + etcdEvents + seqKey(next+1)
	}
	return events, next, nil
}

// PutShared stores value under the prefix at key (outside the documents of the Store
// contract: a replica's shared state, such as the leader's health-check results),
// with the same fence as every other write.
func (s *Etcd) PutShared(key string, value []byte) error {
	err := s.update(func(stm concurrency.STM) error {
		stm.Put(s.prefix+key, string(value))
		return nil
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// LastEventSeq is the sequence number of the last event appended, 0 with none.
func (s *Etcd) LastEventSeq() (uint64, error) {
	raw, _, err := s.get(etcdSeqEvents)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last event: %w", err)
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, &CorruptError{Path: s.Path(), Detail: fmt.Sprintf("%s: %q", etcdSeqEvents, raw)}
	}
	return n, nil
}
