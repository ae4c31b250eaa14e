package xds

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Cache is octoroll's xDS resource cache. It implements go-control-plane's cachev3.Cache
// for state-of-the-world (ADS and per-type services) and delta streams. It is safe for
// concurrent use.
//
// It differs from go-control-plane's snapshot cache where measurements showed the stock
// cache misbehaving with real clients:
//
//   - Versions come from content, per resource and per type. A proxy is answered when a
//     resource it subscribes to has a version different from the one last returned to it
//     on the stream, so a weight change re-sends only the route, and only to the proxies
//     that watch that route.
//   - A request naming only some clusters is answered (gRPC subscribes only to the
//     clusters it needs); the ADS-mode snapshot cache waits for every cluster to be named.
//   - A NACK is never answered with the rejected content: the stream's returned versions
//     already record what was sent, so the NACK finds nothing new and the watch stays
//     open until a resource really changes. The proxy keeps its last good config.
//   - Each resource version is marshaled once, when it is published, and the marshaled
//     bytes are shared by every response. Publishing touches only the watchers of the
//     types that changed and sends without holding a lock over the fan-out.
//
// Every proxy gets the same resources: nothing is computed per node.
type Cache struct {
	pubMu    sync.Mutex // serializes publishers
	pubSince time.Time  // when pubMu was taken; guarded by pubMu
	seq      uint64     // publishes so far; guarded by pubMu
	types    map[string]*typeState

	// Longest hold of the publisher lock and of any type's lock.
	pubHold, typeHold lockHold

	// onPublish, when set, is told the names a publish changed, by type, once they are
	// served.
	onPublish func(typeURL string, changed []string)
}

// lockHold is the longest time a lock was held. Measuring costs two monotonic clock
// reads per critical section.
type lockHold struct{ max atomic.Int64 }

func (h *lockHold) observe(since time.Time) {
	d := int64(time.Since(since))
	for {
		cur := h.max.Load()
		if d <= cur || h.max.CompareAndSwap(cur, d) {
			return
		}
	}
}

func (h *lockHold) get() time.Duration { return time.Duration(h.max.Load()) }

func (c *Cache) pubLock() {
	c.pubMu.Lock()
	c.pubSince = time.Now()
}

func (c *Cache) pubUnlock() {
	c.pubHold.observe(c.pubSince)
	c.pubMu.Unlock()
}

// LockHolds returns the longest hold so far of the publisher lock (which serializes
// publishers and is held while a publish is built and its responses are enqueued) and
// of the per-type locks (which guard the served resources and the open watches, and
// are the ones a proxy's request waits for).
func (c *Cache) LockHolds() (publish, types time.Duration) {
	return c.pubHold.get(), c.typeHold.get()
}

// servedTypes are the resource types the cache serves, in make-before-break order.
var servedTypes = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

var _ cachev3.Cache = (*Cache)(nil)

// NewCache returns an empty cache serving listeners, routes, clusters and endpoints.
func NewCache() *Cache {
	c := &Cache{types: map[string]*typeState{}}
	for _, t := range servedTypes {
		ts := &typeState{hold: &c.typeHold, url: t}
		ts.pub = &typeSnapshot{typeURL: t}
		ts.snap.Store(ts.pub)
		for i := range ts.shards {
			ts.shards[i].sotw = map[*sotwWatch]struct{}{}
			ts.shards[i].named = map[string]map[*sotwWatch]struct{}{}
			ts.shards[i].delta = map[*deltaWatch]struct{}{}
		}
		c.types[t] = ts
	}
	return c
}

// watchShards is the number of independently locked sets of open watches per type. A
// proxy's request locks one shard (a few, for a watch on a few names); a publish locks
// each shard only to copy its watches, so no lock is held across a loop over every
// watch.
const watchShards = 64

// narrowNames is the most names a SotW watch may subscribe to and still be indexed by
// name: a publish tries it only when one of its names changed. A watch on more names
// (an Envoy sidecar routing to every service) or on every name is tried on every
// publish of its type, which costs one check instead of one registration per name.
const narrowNames = 16

// typeState holds the current resources of one type and the open watches on it.
type typeState struct {
	url  string
	hold *lockHold

	snap   atomic.Pointer[typeSnapshot] // served now; immutable once published
	pub    *typeSnapshot                // latest built, maybe not yet stored; guarded by Cache.pubMu
	seq    atomic.Uint64                // spreads watches over the shards
	shards [watchShards]watchShard
}

// watchShard is one set of open watches of a type.
type watchShard struct {
	mu    sync.Mutex
	since time.Time                          // when mu was taken
	sotw  map[*sotwWatch]struct{}            // tried on every publish
	named map[string]map[*sotwWatch]struct{} // tried when the name changes
	delta map[*deltaWatch]struct{}
	// unnamed is len(sotw)+len(delta), read without the lock: a publish skips a shard
	// with none without taking its lock.
	unnamed atomic.Int32
}

// counted updates sh.unnamed; called with sh.mu held after sotw or delta changed.
func (sh *watchShard) counted() {
	sh.unnamed.Store(int32(len(sh.sotw) + len(sh.delta)))
}

var shardSeed = maphash.MakeSeed()

// nameShard is the shard holding the watches of name.
func (ts *typeState) nameShard(name string) *watchShard {
	return &ts.shards[maphash.String(shardSeed, name)%watchShards]
}

// typeSnapshot is an immutable set of resources of one type. A snapshot is derived from
// the previous one by the resources that changed: the entries of the others are shared
// (see entries), the sorted names too while no name comes or goes, and the type version
// is updated from the changed entries' hashes, so a publish costs what it changes.
type typeSnapshot struct {
	seq     uint64 // publish order; a snapshot never replaces one with a higher seq
	typeURL string
	version string   // content hash over every (name, resource version): sum in hex
	sum     uint64   // sum of the entries' hashes
	names   []string // sorted; shared with the previous snapshot when the names are the same
	byName  *entries // shares the buckets no change touched with the previous snapshot
	// changed names the resources added, replaced or removed since the snapshot this
	// one was derived from: only their watchers (and those watching many names or
	// every name) can need it.
	changed []string
}

// entry is one marshaled resource version, shared by every response that carries it.
type entry struct {
	src     types.Resource // what was marshaled
	name    string
	version string
	hash    uint64 // version as a number, summed into the type version
	any     *anypb.Any
	delta   *discoveryv3.Resource
	mark    uint64 // the last derive call that saw it; guarded by Cache.pubMu
}

// ResourceVersion is the content version of one marshaled resource. It is the same hash
// as Resources.RouteVersion, so a route version from translation can be compared with
// what a proxy ACKed.
func ResourceVersion(name string, marshaled []byte) string {
	_, v := resourceHash(name, marshaled)
	return v
}

// resourceHash is ResourceVersion and the same hash as a number (the version's 16 hex
// digits), computed once.
func resourceHash(name string, marshaled []byte) (uint64, string) {
	h := sha256.New()
	// "len(name):name:len(marshaled):" and the bytes, written without fmt.
	var buf [24]byte
	h.Write(append(strconv.AppendInt(buf[:0], int64(len(name)), 10), ':'))
	io.WriteString(h, name)
	h.Write(append(strconv.AppendInt(append(buf[:0], ':'), int64(len(marshaled)), 10), ':'))
	h.Write(marshaled)
	var sum [sha256.Size]byte
	b := h.Sum(sum[:0])[:8]
	return binary.BigEndian.Uint64(b), hex.EncodeToString(b)
}

// typeVersion is the version of a type whose entries' hashes sum to sum. A resource
// version hashes its name with its content, so the sum changes with any resource's
// content, name, arrival or departure, and is updated per changed resource.
func typeVersion(sum uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], sum)
	return hex.EncodeToString(b[:])
}

// derives numbers the calls of derive, so that each marks entries with its own value.
var derives atomic.Uint64

// typeInput is what a publish gives for one type: resources to add or replace, names to
// remove, and with full set, res is every resource of the type (any other is removed).
type typeInput struct {
	res    []types.Resource
	remove []string
	full   bool
}

// derive returns the snapshot that follows prev with in applied, or prev itself when
// nothing changes. Its cost is that of in, plus one copy of prev's name index when
// something changes and a sort of the names when a name comes or goes. With immutable
// set, a resource that is the very value prev marshaled is not marshaled again. Called
// with the publisher lock held (entry.mark is written).
func derive(typeURL string, prev *typeSnapshot, in typeInput, immutable bool) (*typeSnapshot, error) {
	mark := derives.Add(1)
	opts := proto.MarshalOptions{Deterministic: true}
	var put []*entry
	var fresh map[string]struct{} // names new to prev, to find duplicates
	seen := 0                     // entries of prev named by in.res
	for _, r := range in.res {
		name := cachev3.GetResourceName(r)
		if name == "" {
			return nil, fmt.Errorf("%s resource without a name", typeURL)
		}
		old := prev.byName.get(name)
		if old != nil {
			if old.mark == mark {
				return nil, fmt.Errorf("duplicate %s resource %q", typeURL, name)
			}
			old.mark = mark
			seen++
			if immutable && old.src == r {
				continue
			}
		} else {
			if _, dup := fresh[name]; dup {
				return nil, fmt.Errorf("duplicate %s resource %q", typeURL, name)
			}
			if fresh == nil {
				fresh = map[string]struct{}{}
			}
			fresh[name] = struct{}{}
		}
		b, err := opts.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("marshal %s %q: %w", typeURL, name, err)
		}
		h, v := resourceHash(name, b)
		if old != nil && old.hash == h && old.version == v {
			continue
		}
		a := &anypb.Any{TypeUrl: typeURL, Value: b}
		put = append(put, &entry{
			src:     r,
			name:    name,
			version: v,
			hash:    h,
			any:     a,
			delta:   &discoveryv3.Resource{Name: name, Version: v, Resource: a},
		})
	}
	var gone []string
	if in.full && seen < len(prev.names) {
		for _, n := range prev.names {
			if prev.byName.get(n).mark != mark {
				gone = append(gone, n)
			}
		}
	}
	for _, n := range in.remove {
		// A name both given and removed stays; one removed twice goes once.
		if e := prev.byName.get(n); e != nil && e.mark != mark {
			e.mark = mark
			gone = append(gone, n)
		}
	}
	if len(put) == 0 && len(gone) == 0 {
		return prev, nil
	}
	s := &typeSnapshot{typeURL: typeURL, sum: prev.sum, names: prev.names, byName: prev.byName.with(put, gone)}
	s.changed = make([]string, 0, len(put)+len(gone))
	var added []string
	for _, e := range put {
		if old := prev.byName.get(e.name); old != nil {
			s.sum -= old.hash
		} else {
			added = append(added, e.name)
		}
		s.sum += e.hash
		s.changed = append(s.changed, e.name)
	}
	for _, n := range gone {
		s.sum -= prev.byName.get(n).hash
		s.changed = append(s.changed, n)
	}
	if len(added) > 0 || len(gone) > 0 {
		slices.Sort(added)
		s.names = withNames(prev.names, added, gone)
	}
	s.version = typeVersion(s.sum)
	return s, nil
}

// Set replaces all resources of every type present in byType (keyed by type URL) and
// notifies the watchers of the resources whose content changed. It returns the changed
// types once every watcher that needs a changed resource has been answered. Types absent
// from byType keep their resources. On error nothing is published.
//
// The publisher lock is held only while the new snapshots are built; the watchers are
// answered outside it, type by type in make-before-break order. A publish that overtakes
// one still answering its watchers wins: every watch is answered from the newest
// snapshot of its type, so a proxy never receives a version already superseded when its
// watch fires.
func (c *Cache) Set(byType map[string][]types.Resource) ([]string, error) {
	return c.set(fullInputs(byType), false)
}

// setImmutable is Set for resources that are never modified once passed in: a resource
// that is the same value as the one served is not marshaled again.
func (c *Cache) setImmutable(byType map[string][]types.Resource) ([]string, error) {
	return c.set(fullInputs(byType), true)
}

func fullInputs(byType map[string][]types.Resource) map[string]typeInput {
	in := make(map[string]typeInput, len(byType))
	for t, res := range byType {
		in[t] = typeInput{res: res, full: true}
	}
	return in
}

// Change is what one publish does to one resource type: resources added or replaced
// (by name) and names no longer served.
type Change struct {
	Upsert []types.Resource
	Remove []string
}

// Apply adds, replaces and removes resources of each type in byType, keeping every other
// resource, and notifies the watchers of the resources whose content changed. Its cost
// is proportional to the resources given (and the watchers of their names), not to the
// resources served. It returns the changed types; on error nothing is published. As with
// setImmutable, resources must not be modified once passed in. A name both upserted and
// removed is upserted.
func (c *Cache) Apply(byType map[string]Change) ([]string, error) {
	in := make(map[string]typeInput, len(byType))
	for t, ch := range byType {
		in[t] = typeInput{res: ch.Upsert, remove: ch.Remove}
	}
	return c.set(in, true)
}

func (c *Cache) set(byType map[string]typeInput, immutable bool) ([]string, error) {
	c.pubLock()
	next, err := c.build(byType, immutable)
	c.pubUnlock()
	if err != nil {
		return nil, err
	}
	return c.publish(next), nil
}

// build derives the snapshots of byType and returns those whose content changed, in
// make-before-break order. Called with pubMu held.
func (c *Cache) build(byType map[string]typeInput, immutable bool) ([]*typeSnapshot, error) {
	next := map[string]*typeSnapshot{}
	var errs []error
	for t, in := range byType {
		ts, ok := c.types[t]
		if !ok {
			errs = append(errs, fmt.Errorf("unsupported resource type %s", t))
			continue
		}
		s, err := derive(t, ts.pub, in, immutable)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// A type never published has version "": its first publish changes it, even
		// when empty.
		if s != ts.pub || ts.pub.version == "" {
			if s == ts.pub {
				s = &typeSnapshot{typeURL: t, names: s.names, byName: s.byName}
				s.version = typeVersion(0)
			}
			next[t] = s
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []*typeSnapshot
	for _, t := range servedTypes {
		if s, ok := next[t]; ok {
			c.seq++
			s.seq = c.seq
			c.types[t].pub = s
			out = append(out, s)
		}
	}
	return out, nil
}

// publish makes each snapshot current and answers the watchers of its changed
// resources, in order. It returns the changed types.
func (c *Cache) publish(next []*typeSnapshot) []string {
	changed := make([]string, 0, len(next))
	for _, s := range next {
		ts := c.types[s.typeURL]
		ts.store(s)
		if c.onPublish != nil {
			c.onPublish(s.typeURL, s.changed)
		}
		ts.wake(s.changed)
		changed = append(changed, s.typeURL)
	}
	return changed
}

// store makes s current unless a later publish already replaced it.
func (ts *typeState) store(s *typeSnapshot) {
	for {
		cur := ts.snap.Load()
		if cur.seq >= s.seq || ts.snap.CompareAndSwap(cur, s) {
			return
		}
	}
}

// Upsert adds or replaces the named resources of one type, keeping the others.
func (c *Cache) Upsert(typeURL string, res ...types.Resource) ([]string, error) {
	return c.set(map[string]typeInput{typeURL: {res: res}}, false)
}

func (sh *watchShard) lock() {
	sh.mu.Lock()
	sh.since = time.Now()
}

func (sh *watchShard) unlock(h *lockHold) {
	h.observe(sh.since)
	sh.mu.Unlock()
}

// shard picks the shard of a new watch.
func (ts *typeState) shard() *watchShard {
	return &ts.shards[ts.seq.Add(1)%watchShards]
}

// Version returns the content version of the named resource as currently served, or ""
// when it does not exist.
func (c *Cache) Version(typeURL, name string) string {
	ts, ok := c.types[typeURL]
	if !ok {
		return ""
	}
	if e := ts.snap.Load().byName.get(name); e != nil {
		return e.version
	}
	return ""
}

// TypeVersion returns the content version of every resource of a type as served.
func (c *Cache) TypeVersion(typeURL string) string {
	ts, ok := c.types[typeURL]
	if !ok {
		return ""
	}
	return ts.snap.Load().version
}

// wake answers the watchers of ts that need its current snapshot: those indexed under a
// name in changed, and every watch that is not indexed by name. Each shard's lock is held
// only to copy its watches and, afterwards, to remove the answered ones; responses are
// built and delivered outside every lock.
func (ts *typeState) wake(changed []string) {
	var sw, fired []*sotwWatch
	var dw, dfired []*deltaWatch
	for _, n := range changed {
		sh := ts.nameShard(n)
		sh.lock()
		for w := range sh.named[n] {
			sw = append(sw, w)
		}
		sh.unlock(ts.hold)
	}
	for _, w := range sw {
		// A watch on two changed names is listed twice; the second try finds it done.
		if w.try(ts) {
			w.unindex(ts)
		}
	}
	sw = sw[:0]
	for i := range ts.shards {
		sh := &ts.shards[i]
		if sh.unnamed.Load() == 0 {
			// A watch registered after this load sees the snapshot stored before it
			// (watchSotw and CreateDeltaWatch look again after registering).
			continue
		}
		sw, dw, fired, dfired = sw[:0], dw[:0], fired[:0], dfired[:0]
		sh.lock()
		if len(sh.sotw) == 0 && len(sh.delta) == 0 {
			sh.unlock(ts.hold)
			continue
		}
		for cap(sw) < len(sh.sotw) || cap(dw) < len(sh.delta) {
			// Grow outside the lock: an allocation may have to help the garbage
			// collector, which must not happen while proxies wait for the shard.
			ns, nd := len(sh.sotw), len(sh.delta)
			sh.unlock(ts.hold)
			sw, dw = make([]*sotwWatch, 0, 2*ns), make([]*deltaWatch, 0, 2*nd)
			sh.lock()
		}
		for w := range sh.sotw {
			sw = append(sw, w)
		}
		for w := range sh.delta {
			dw = append(dw, w)
		}
		sh.unlock(ts.hold)
		for _, w := range sw {
			if w.try(ts) {
				fired = append(fired, w)
			}
		}
		for _, w := range dw {
			if w.try(ts) {
				dfired = append(dfired, w)
			}
		}
		if len(fired) == 0 && len(dfired) == 0 {
			continue
		}
		sh.lock()
		for _, w := range fired {
			delete(sh.sotw, w)
		}
		for _, w := range dfired {
			delete(sh.delta, w)
		}
		sh.counted()
		sh.unlock(ts.hold)
	}
}

// sentKey carries a *sentInfo in a response's context, for the stream tracker.
type sentKey struct{}

// sentInfo is what one SotW response left the proxy with, if it ACKs it.
type sentInfo struct {
	version   string
	resources map[string]string // name -> resource version
	// snap is the snapshot the response was built from: it holds the content of every
	// resource version in resources, except one a non-full-state type keeps after it
	// stopped being served.
	snap *typeSnapshot
}

func sentFrom(ctx context.Context) *sentInfo {
	if ctx == nil {
		return nil
	}
	s, _ := ctx.Value(sentKey{}).(*sentInfo)
	return s
}

// ---- state of the world ----

type sotwWatch struct {
	req  *discoveryv3.DiscoveryRequest
	sub  cachev3.Subscription
	send func(*sotwResponse) // must not block
	// names are the names the watch is indexed under (nil: it is in one shard's sotw
	// set, tried on every publish); shard is that shard.
	names []string
	shard *watchShard

	mu   sync.Mutex
	done bool // answered or cancelled; sub must not be read any more
}

// try answers the watch from the current snapshot of ts if the proxy needs it. It
// reports whether the watch is finished.
func (w *sotwWatch) try(ts *typeState) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return true
	}
	resp := sotwRespond(w.req, w.sub, ts.snap.Load())
	if resp == nil {
		return false
	}
	w.done = true
	resp.ts = ts
	w.send(resp)
	return true
}

func (w *sotwWatch) cancel() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// index registers w where publishes find it: under each of its names when it subscribes
// to a few, else in one shard's set of watches tried on every publish.
func (w *sotwWatch) index(ts *typeState) {
	if sub := w.sub.SubscribedResources(); !w.sub.IsWildcard() && len(sub) > 0 && len(sub) <= narrowNames {
		w.names = slices.Collect(maps.Keys(sub))
		for _, n := range w.names {
			sh := ts.nameShard(n)
			sh.lock()
			set := sh.named[n]
			if set == nil {
				set = map[*sotwWatch]struct{}{}
				sh.named[n] = set
			}
			set[w] = struct{}{}
			sh.unlock(ts.hold)
		}
		return
	}
	w.shard = ts.shard()
	w.shard.lock()
	w.shard.sotw[w] = struct{}{}
	w.shard.counted()
	w.shard.unlock(ts.hold)
}

// unindex removes w from where index put it. It may run more than once.
func (w *sotwWatch) unindex(ts *typeState) {
	if w.shard != nil {
		w.shard.lock()
		delete(w.shard.sotw, w)
		w.shard.counted()
		w.shard.unlock(ts.hold)
		return
	}
	for _, n := range w.names {
		sh := ts.nameShard(n)
		sh.lock()
		if set := sh.named[n]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(sh.named, n)
			}
		}
		sh.unlock(ts.hold)
	}
}

// deliver sends without blocking the publisher: the server gives each watch a buffered
// channel and reads at most one response per watch, so the fallback never runs in
// practice.
func deliver[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
		go func() {
			// The stream may have ended and closed its channel meanwhile.
			defer func() { _ = recover() }()
			ch <- v
		}()
	}
}

// sotwRespond builds the response the subscription needs from s, or nil when the proxy
// already has every subscribed resource at its current version.
func sotwRespond(req *discoveryv3.DiscoveryRequest, sub cachev3.Subscription, s *typeSnapshot) *sotwResponse {
	typeURL := req.GetTypeUrl()
	returned := sub.ReturnedResources()
	full := cachev3.ResourceRequiresFullStateInSotw(typeURL)
	first := req.GetResponseNonce() == ""

	if !first && !sub.IsWildcard() && !namedChanged(sub.SubscribedResources(), returned, s, full) {
		return nil // the common case of a watcher a publish does not concern, without allocating
	}
	// A full-state wildcard walks the snapshot's sorted names (it sends every one); any
	// other walks the entries or its names in no order and sorts what it sends (usually
	// far fewer) by name afterwards.
	changed := first
	var send []*entry
	visit := func(n string) {
		e := s.byName.get(n)
		if e == nil {
			if _, had := returned[n]; had && full {
				changed = true // a full-state response tells the proxy it is gone
			}
			return
		}
		if v, ok := returned[n]; !ok || v != e.version {
			changed = true
			send = append(send, e)
		} else if full {
			send = append(send, e)
		}
	}
	switch {
	case sub.IsWildcard() && full:
		for _, n := range s.names {
			visit(n)
		}
	case sub.IsWildcard():
		// Only what changed is sent: walk the entries as stored, sort what is sent.
		for e := range s.byName.all() {
			if v, ok := returned[e.name]; !ok || v != e.version {
				changed = true
				send = append(send, e)
			}
		}
		slices.SortFunc(send, func(a, b *entry) int { return strings.Compare(a.name, b.name) })
	default:
		for n := range sub.SubscribedResources() {
			visit(n)
		}
		slices.SortFunc(send, func(a, b *entry) int { return strings.Compare(a.name, b.name) })
	}
	if full && sub.IsWildcard() && !changed {
		for n := range returned {
			if s.byName.get(n) == nil {
				changed = true
				break
			}
		}
	}
	if !changed {
		return nil
	}
	next := make(map[string]string, len(send)+len(returned))
	if !full {
		maps.Copy(next, returned)
	}
	anys := make([]*anypb.Any, len(send))
	for i, e := range send {
		anys[i] = e.any
		next[e.name] = e.version
	}
	// next is never modified once returned: the stream keeps it as what it returned,
	// the tracker as what the proxy holds if it ACKs.
	info := &sentInfo{version: s.version, resources: next, snap: s}
	return &sotwResponse{
		req: req,
		out: &discoveryv3.DiscoveryResponse{
			VersionInfo: s.version,
			Resources:   anys,
			TypeUrl:     typeURL,
		},
		returned: next,
		ctx:      context.WithValue(context.Background(), sentKey{}, info),
		sub:      sub,
		snap:     s,
	}
}

// namedChanged reports whether sotwRespond would find something to send to a
// non-wildcard subscription: a subscribed resource the proxy lacks or holds at another
// version, or (full-state types) one it holds that is gone.
func namedChanged(subscribed map[string]struct{}, returned map[string]string, s *typeSnapshot, full bool) bool {
	for n := range subscribed {
		e := s.byName.get(n)
		v, had := returned[n]
		if e == nil {
			if had && full {
				return true
			}
			continue
		}
		if !had || v != e.version {
			return true
		}
	}
	return false
}

// CreateWatch implements cachev3.ConfigWatcher. It answers at once when the proxy lacks
// something, and otherwise waits for a publish that changes what it subscribes to.
func (c *Cache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, out chan cachev3.Response) (func(), error) {
	return c.watchSotw(req, sub, func(r *sotwResponse) { deliver(out, cachev3.Response(r)) }), nil
}

// watchSotw is CreateWatch delivering to a function instead of a channel. send is
// called at most once, possibly before watchSotw returns, from the caller's or a
// publisher's goroutine, and must not block. The returned function cancels the watch;
// once it returns, send is not called any more.
func (c *Cache) watchSotw(req *cachev3.Request, sub cachev3.Subscription, send func(*sotwResponse)) func() {
	ts, ok := c.types[req.GetTypeUrl()]
	if !ok {
		// Types octoroll does not serve (secrets, runtime) stay unanswered.
		return func() {}
	}
	s := ts.snap.Load()
	if resp := sotwRespond(req, sub, s); resp != nil {
		resp.ts = ts
		send(resp)
		return func() {}
	}
	w := &sotwWatch{req: req, sub: sub, send: send}
	w.index(ts)
	cancel := func() {
		w.cancel()
		w.unindex(ts)
	}
	// A publish between the load above and the registration may have missed w.
	if ts.snap.Load() != s && w.try(ts) {
		cancel()
		return func() {}
	}
	return cancel
}

// Fetch implements cachev3.ConfigFetcher (REST): the subscribed resources as served now.
func (c *Cache) Fetch(_ context.Context, req *cachev3.Request) (cachev3.Response, error) {
	ts, ok := c.types[req.GetTypeUrl()]
	if !ok {
		return nil, fmt.Errorf("unsupported resource type %s", req.GetTypeUrl())
	}
	s := ts.snap.Load()
	if req.GetVersionInfo() == s.version {
		return nil, &types.SkipFetchError{}
	}
	names := req.GetResourceNames()
	if len(names) == 0 {
		names = s.names
	}
	resp := &sotwResponse{
		req:      req,
		out:      &discoveryv3.DiscoveryResponse{VersionInfo: s.version, TypeUrl: req.GetTypeUrl()},
		returned: map[string]string{},
		ctx:      context.Background(),
	}
	for _, n := range names {
		if e := s.byName.get(n); e != nil {
			resp.out.Resources = append(resp.out.Resources, e.any)
			resp.returned[n] = e.version
		}
	}
	return resp, nil
}

// sotwResponse is one prepared SotW response. Its DiscoveryResponse belongs to one
// stream (the server writes the nonce into it); the resources inside are shared.
//
// A response of a watch is settled when the stream first reads it, just before sending:
// if a publish made a newer snapshot current meanwhile, the response is rebuilt from it,
// so a push still queued is superseded (a rollback overtakes the change it undoes)
// instead of being sent and immediately followed by the newer one. When the newer
// snapshot holds nothing the proxy lacks, the prepared response is sent as it was.
type sotwResponse struct {
	req      *discoveryv3.DiscoveryRequest
	out      *discoveryv3.DiscoveryResponse
	returned map[string]string
	ctx      context.Context

	ts     *typeState // nil: never rebuilt
	sub    cachev3.Subscription
	snap   *typeSnapshot // what out was built from
	settle sync.Once
}

var _ cachev3.Response = (*sotwResponse)(nil)

func (r *sotwResponse) settled() *sotwResponse {
	r.settle.Do(func() {
		if r.ts == nil {
			return
		}
		cur := r.ts.snap.Load()
		if cur == r.snap {
			return
		}
		if n := sotwRespond(r.req, r.sub, cur); n != nil {
			r.out, r.returned, r.ctx, r.snap = n.out, n.returned, n.ctx, cur
		}
	})
	return r
}

func (r *sotwResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	return r.settled().out, nil
}
func (r *sotwResponse) GetRequest() *discoveryv3.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error) {
	return r.settled().out.GetVersionInfo(), nil
}
func (r *sotwResponse) GetResponseVersion() string { return r.settled().out.GetVersionInfo() }

// GetReturnedResources is a copy: go-control-plane's server keeps it in the stream's
// subscription and deletes from it when the subscription shrinks, while the tracker keeps
// the original as what the proxy holds. (octoroll's ADS handler reads returned itself.)
func (r *sotwResponse) GetReturnedResources() map[string]string {
	return maps.Clone(r.settled().returned)
}
func (r *sotwResponse) GetContext() context.Context { return r.settled().ctx }

// ---- delta ----

type deltaWatch struct {
	req *discoveryv3.DeltaDiscoveryRequest
	sub cachev3.Subscription
	out chan cachev3.DeltaResponse

	mu   sync.Mutex
	done bool
}

func (w *deltaWatch) try(ts *typeState) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return true
	}
	resp := deltaRespond(w.req, w.sub, ts.snap.Load())
	if resp == nil {
		return false
	}
	w.done = true
	deliver(w.out, cachev3.DeltaResponse(resp))
	return true
}

func (w *deltaWatch) cancel() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// deltaRespond returns the resources that changed and the names that went away since
// what was last returned on the stream, or nil when there is nothing to send.
func deltaRespond(req *discoveryv3.DeltaDiscoveryRequest, sub cachev3.Subscription, s *typeSnapshot) *deltaResponse {
	returned := sub.ReturnedResources()
	subscribed := sub.SubscribedResources()
	next := maps.Clone(returned)
	if next == nil {
		next = map[string]string{}
	}
	var send []*discoveryv3.Resource
	var removed []string
	consider := func(n string) {
		if e := s.byName.get(n); e != nil {
			if v, ok := returned[n]; !ok || v != e.version {
				send = append(send, e.delta)
				next[n] = e.version
			}
		} else if _, ok := returned[n]; ok {
			removed = append(removed, n)
			delete(next, n)
		}
	}
	candidates := maps.Clone(subscribed)
	if candidates == nil {
		candidates = map[string]struct{}{}
	}
	if sub.IsWildcard() {
		for _, n := range s.names {
			candidates[n] = struct{}{}
		}
		for n := range returned {
			candidates[n] = struct{}{}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(candidates)) {
		consider(n)
	}
	if len(send) == 0 && len(removed) == 0 && req.GetResponseNonce() != "" {
		return nil
	}
	if len(send) == 0 && len(removed) == 0 && !sub.IsWildcard() {
		// A first request for names that do not exist: nothing to say yet.
		return nil
	}
	return &deltaResponse{
		req: req,
		out: &discoveryv3.DeltaDiscoveryResponse{
			SystemVersionInfo: s.version,
			Resources:         send,
			RemovedResources:  removed,
			TypeUrl:           req.GetTypeUrl(),
		},
		returned: next,
	}
}

// CreateDeltaWatch implements cachev3.ConfigWatcher for incremental xDS.
func (c *Cache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, out chan cachev3.DeltaResponse) (func(), error) {
	ts, ok := c.types[req.GetTypeUrl()]
	if !ok {
		return func() {}, nil
	}
	s := ts.snap.Load()
	if resp := deltaRespond(req, sub, s); resp != nil {
		deliver(out, cachev3.DeltaResponse(resp))
		return func() {}, nil
	}
	w := &deltaWatch{req: req, sub: sub, out: out}
	sh := ts.shard()
	sh.lock()
	sh.delta[w] = struct{}{}
	sh.counted()
	sh.unlock(ts.hold)
	cancel := func() {
		w.cancel()
		sh.lock()
		delete(sh.delta, w)
		sh.counted()
		sh.unlock(ts.hold)
	}
	// A publish between the load above and the registration may have missed w.
	if ts.snap.Load() != s && w.try(ts) {
		cancel()
		return func() {}, nil
	}
	return cancel, nil
}

type deltaResponse struct {
	req      *discoveryv3.DeltaDiscoveryRequest
	out      *discoveryv3.DeltaDiscoveryResponse
	returned map[string]string
}

var _ cachev3.DeltaResponse = (*deltaResponse)(nil)

func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	return r.out, nil
}
func (r *deltaResponse) GetDeltaRequest() *discoveryv3.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error) {
	return r.out.GetSystemVersionInfo(), nil
}
func (r *deltaResponse) GetResponseVersion() string              { return r.out.GetSystemVersionInfo() }
func (r *deltaResponse) GetNextVersionMap() map[string]string    { return r.returned }
func (r *deltaResponse) GetReturnedResources() map[string]string { return r.returned }
func (r *deltaResponse) GetContext() context.Context             { return context.Background() }
