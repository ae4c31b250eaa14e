package xds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
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
		ts.pub = &typeSnapshot{typeURL: t, byName: map[string]*entry{}}
		ts.snap.Store(ts.pub)
		for i := range ts.shards {
			ts.shards[i].sotw = map[*sotwWatch]struct{}{}
			ts.shards[i].delta = map[*deltaWatch]struct{}{}
		}
		c.types[t] = ts
	}
	return c
}

// watchShards is the number of independently locked sets of open watches per type. A
// proxy's request locks one shard; a publish locks each shard only to copy its watches,
// so no lock is held across a loop over every watch.
const watchShards = 64

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
	since time.Time // when mu was taken
	sotw  map[*sotwWatch]struct{}
	delta map[*deltaWatch]struct{}
}

// typeSnapshot is an immutable set of resources of one type.
type typeSnapshot struct {
	seq     uint64 // publish order; a snapshot never replaces one with a higher seq
	typeURL string
	version string // content hash over every (name, resource version)
	names   []string
	byName  map[string]*entry
}

// entry is one marshaled resource version, shared by every response that carries it.
type entry struct {
	src     types.Resource // what was marshaled
	name    string
	version string
	any     *anypb.Any
	delta   *discoveryv3.Resource
	mark    uint64 // the last sameValues call that saw it; guarded by Cache.pubMu
}

// ResourceVersion is the content version of one marshaled resource. It is the same hash
// as Resources.RouteVersion, so a route version from translation can be compared with
// what a proxy ACKed.
func ResourceVersion(name string, marshaled []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s:%d:", len(name), name, len(marshaled))
	h.Write(marshaled)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func snapshotVersion(names []string, byName map[string]*entry) string {
	h := sha256.New()
	var buf []byte
	for _, n := range names {
		// The bytes of fmt.Fprintf(h, "%d:%s:%s;", len(n), n, version), without fmt.
		buf = strconv.AppendInt(buf[:0], int64(len(n)), 10)
		buf = append(buf, ':')
		buf = append(buf, n...)
		buf = append(buf, ':')
		buf = append(buf, byName[n].version...)
		buf = append(buf, ';')
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// sameMarks numbers the calls of sameValues, so that each marks entries with its own
// value.
var sameMarks atomic.Uint64

// sameValues reports whether res are exactly the values prev marshaled, each once, one
// for each of its resources: then the type is unchanged and nothing needs building.
// Called with the publisher lock held (entry.mark is written).
func sameValues(res []types.Resource, prev *typeSnapshot) bool {
	if len(res) != len(prev.names) {
		return false
	}
	mark := sameMarks.Add(1)
	for _, r := range res {
		old := prev.byName[cachev3.GetResourceName(r)]
		if old == nil || old.src != r || old.mark == mark {
			return false // changed, new, or listed twice
		}
		old.mark = mark
	}
	return true
}

// buildSnapshot marshals res, reusing the entries of prev whose content is unchanged.
// With immutable set, a resource that is the very value prev marshaled is not marshaled
// again.
func buildSnapshot(typeURL string, res []types.Resource, prev *typeSnapshot, immutable bool) (*typeSnapshot, error) {
	if immutable && sameValues(res, prev) {
		return prev, nil
	}
	s := &typeSnapshot{byName: make(map[string]*entry, len(res))}
	opts := proto.MarshalOptions{Deterministic: true}
	for _, r := range res {
		name := cachev3.GetResourceName(r)
		if name == "" {
			return nil, fmt.Errorf("%s resource without a name", typeURL)
		}
		if _, dup := s.byName[name]; dup {
			return nil, fmt.Errorf("duplicate %s resource %q", typeURL, name)
		}
		if old := prev.byName[name]; immutable && old != nil && old.src == r {
			s.byName[name] = old
			s.names = append(s.names, name)
			continue
		}
		b, err := opts.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("marshal %s %q: %w", typeURL, name, err)
		}
		v := ResourceVersion(name, b)
		if old := prev.byName[name]; old != nil && old.version == v {
			s.byName[name] = old
		} else {
			a := &anypb.Any{TypeUrl: typeURL, Value: b}
			s.byName[name] = &entry{
				src:     r,
				name:    name,
				version: v,
				any:     a,
				delta:   &discoveryv3.Resource{Name: name, Version: v, Resource: a},
			}
		}
		s.names = append(s.names, name)
	}
	slices.Sort(s.names)
	s.version = snapshotVersion(s.names, s.byName)
	return s, nil
}

// Set replaces all resources of every type present in byType (keyed by type URL) and
// notifies the watchers of the types whose content changed. It returns the changed types
// once every watcher that needs a changed resource has been answered. Types absent from
// byType keep their resources. On error nothing is published.
//
// The publisher lock is held only while the new snapshots are built; the watchers are
// answered outside it, type by type in make-before-break order. A publish that overtakes
// one still answering its watchers wins: every watch is answered from the newest
// snapshot of its type, so a proxy never receives a version already superseded when its
// watch fires.
func (c *Cache) Set(byType map[string][]types.Resource) ([]string, error) {
	return c.set(byType, false)
}

// setImmutable is Set for resources that are never modified once passed in: a resource
// that is the same value as the one served is not marshaled again.
func (c *Cache) setImmutable(byType map[string][]types.Resource) ([]string, error) {
	return c.set(byType, true)
}

func (c *Cache) set(byType map[string][]types.Resource, immutable bool) ([]string, error) {
	c.pubLock()
	next, err := c.build(byType, immutable)
	c.pubUnlock()
	if err != nil {
		return nil, err
	}
	return c.publish(next), nil
}

// build marshals the resources of byType and returns the snapshots whose content
// changed, in make-before-break order. Called with pubMu held.
func (c *Cache) build(byType map[string][]types.Resource, immutable bool) ([]*typeSnapshot, error) {
	next := map[string]*typeSnapshot{}
	var errs []error
	for t, res := range byType {
		ts, ok := c.types[t]
		if !ok {
			errs = append(errs, fmt.Errorf("unsupported resource type %s", t))
			continue
		}
		s, err := buildSnapshot(t, res, ts.pub, immutable)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s.version != ts.pub.version {
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
			s.seq, s.typeURL = c.seq, t
			c.types[t].pub = s
			out = append(out, s)
		}
	}
	return out, nil
}

// publish makes each snapshot current and answers its type's watchers, in order. It
// returns the changed types.
func (c *Cache) publish(next []*typeSnapshot) []string {
	changed := make([]string, 0, len(next))
	for _, s := range next {
		ts := c.types[s.typeURL]
		ts.store(s)
		ts.wake()
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
	ts, ok := c.types[typeURL]
	if !ok {
		return nil, fmt.Errorf("unsupported resource type %s", typeURL)
	}
	c.pubLock()
	cur := ts.pub
	merged := map[string]types.Resource{}
	for _, n := range cur.names {
		m, err := cur.byName[n].unmarshal()
		if err != nil {
			c.pubUnlock()
			return nil, err
		}
		merged[n] = m
	}
	for _, r := range res {
		merged[cachev3.GetResourceName(r)] = r
	}
	next, err := c.build(map[string][]types.Resource{typeURL: slices.Collect(maps.Values(merged))}, false)
	c.pubUnlock()
	if err != nil {
		return nil, err
	}
	return c.publish(next), nil
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

func (e *entry) unmarshal() (types.Resource, error) {
	m, err := e.any.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("unmarshal %q: %w", e.name, err)
	}
	return m, nil
}

// Version returns the content version of the named resource as currently served, or ""
// when it does not exist.
func (c *Cache) Version(typeURL, name string) string {
	ts, ok := c.types[typeURL]
	if !ok {
		return ""
	}
	if e := ts.snap.Load().byName[name]; e != nil {
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

// wake answers the watchers of ts that need its current snapshot. Each shard's lock is
// held only to copy its watches and, afterwards, to remove the answered ones; responses
// are built and delivered outside every lock.
func (ts *typeState) wake() {
	var sw, fired []*sotwWatch
	var dw, dfired []*deltaWatch
	for i := range ts.shards {
		sh := &ts.shards[i]
		sw, dw, fired, dfired = sw[:0], dw[:0], fired[:0], dfired[:0]
		sh.lock()
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

	var names []string
	if sub.IsWildcard() {
		names = s.names
	} else {
		names = slices.Sorted(maps.Keys(sub.SubscribedResources()))
	}
	changed := first
	var send []*entry
	for _, n := range names {
		e := s.byName[n]
		if e == nil {
			if _, had := returned[n]; had && full {
				changed = true // a full-state response tells the proxy it is gone
			}
			continue
		}
		if v, ok := returned[n]; !ok || v != e.version {
			changed = true
			send = append(send, e)
		} else if full {
			send = append(send, e)
		}
	}
	if full && sub.IsWildcard() && !changed {
		for n := range returned {
			if s.byName[n] == nil {
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
	sh := ts.shard()
	sh.lock()
	sh.sotw[w] = struct{}{}
	sh.unlock(ts.hold)
	cancel := func() {
		w.cancel()
		sh.lock()
		delete(sh.sotw, w)
		sh.unlock(ts.hold)
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
		if e := s.byName[n]; e != nil {
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
		if e := s.byName[n]; e != nil {
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
	sh.unlock(ts.hold)
	cancel := func() {
		w.cancel()
		sh.lock()
		delete(sh.delta, w)
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
