package xds

import (
	"context"
	"errors"
	"fmt"
	"github.com/octoacme/octoroll/model"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/anypb"
)

// The tracker's reports are plain data in model, so the admin API's wire types and the
// CLI read them without importing the server.
type (
	ProxyStatus = model.ProxyStatus
	TypeStatus  = model.TypeStatus
	Nack        = model.Nack
	Stats       = model.XDSStats
	LockHolds   = model.LockHolds
)

// tracker follows every xDS stream and aggregates them per node id. It is safe for
// concurrent use; its work per request is constant apart from copying resource names.
type tracker struct {
	log *zap.Logger
	now func() time.Time

	mu      sync.Mutex
	since   time.Time // when mu was taken
	hold    lockHold
	streams map[streamKey]*streamState
	// byKey mirrors streams for lookups without mu: recording a response touches only
	// its stream's state, under the stream's own lock.
	byKey   sync.Map // streamKey -> *streamState
	proxies map[string]*proxyState
	changed chan struct{} // closed when an ACK, NACK or (dis)connect happens; nil when nobody waits

	// Kept up to date on every subscription change, ACK, NACK and (dis)connect, so that
	// a convergence check costs O(stragglers), not a pass over every proxy:
	// routes indexes the proxies that name a route in their RDS subscription by the
	// version of it they ACKed; wildRoutes are the proxies with a wildcard RDS watch;
	// routeNackers are the proxies whose latest NACK was of a route response.
	routes       map[string]*routeIndex
	wildRoutes   map[*proxyState]struct{}
	routeNackers map[*proxyState]struct{}

	// changes are the server's change watches; pending what the critical section under
	// way changed, handed to them when mu is released.
	changes *changeWatches
	pending routeChanges

	streamsOpened, pushes, acks, nacks atomic.Uint64
}

type streamKey struct {
	server int64 // the Serve call, since go-control-plane numbers streams per server
	delta  bool
	id     int64
}

// streamState is one stream's state. proxy, watched and names are written with t.mu
// held; pending, lastNonce and deltaKnown with mu held (and t.mu too when a request
// reads them).
type streamState struct {
	mu     sync.Mutex
	opened time.Time
	proxy  *proxyState
	// pending is the last response sent per type, the only one an ACK or NACK can
	// refer to (go-control-plane drops requests with a stale nonce).
	pending map[string]pendingResponse
	// watched per type: resource names, "*" for wildcard.
	watched map[string]map[string]struct{}
	// deltaKnown per type: what the proxy holds after the pending delta response.
	deltaKnown map[string]map[string]string
	// lastNonce per type: the nonce of the latest response. go-control-plane ignores a
	// SotW request carrying another (stale) nonce, and so does the tracker.
	lastNonce map[string]string
	// names per type: the resource names of the latest SotW request.
	names map[string][]string
	// sent per type: the latest response, answered or not, for the config dump.
	sent map[string]sentResponse
	// deltaHeld per type: the resources (with content) the proxy holds after the
	// pending delta response, as deltaKnown.
	deltaHeld map[string]heldResources
}

type pendingResponse struct {
	nonce     string
	version   string
	resources map[string]string
	// content finds the resources' content, for the config dump.
	content resourceSource
}

// sentResponse is a response as the config dump shows it; seq orders the responses of
// one proxy's streams.
type sentResponse struct {
	pendingResponse
	seq uint64
	at  time.Time
}

// resourceSource finds the marshaled content of a resource version that was sent. It is
// an immutable snapshot or set shared with the cache, so holding it per proxy costs a
// pointer, and a proxy holds at most two per type: the latest sent and the last ACKed.
type resourceSource interface {
	resource(name, version string) *anypb.Any
}

func (s *typeSnapshot) resource(name, version string) *anypb.Any {
	if s == nil {
		return nil
	}
	if e := s.byName.get(name); e != nil && e.version == version {
		return e.any
	}
	return nil
}

// heldResources is what a delta stream holds, by resource name. Never modified once
// recorded in a response.
type heldResources map[string]*discoveryv3.Resource

func (h heldResources) resource(name, version string) *anypb.Any {
	if r := h[name]; r != nil && r.GetVersion() == version {
		return r.GetResource()
	}
	return nil
}

type proxyState struct {
	id, cluster, zone string
	streams           map[streamKey]*streamState
	acked             map[string]TypeStatus
	// ackedContent per type: the content of what acked records.
	ackedContent map[string]resourceSource
	nacks        int
	lastNack     *Nack
	// nackByType per type: the latest NACK of a response of that type.
	nackByType map[string]*Nack
	// routeSubs counts, per route name ("*" for a wildcard watch), the proxy's streams
	// whose RDS subscription holds it.
	routeSubs map[string]int
	// routeNodes holds p's place in the index of each route it names.
	routeNodes map[string]*routeNode
	// routeAckedAt per route name: when p ACKed the version of it that it holds (the
	// first ACK of that version, not a later ACK that left it unchanged).
	routeAckedAt map[string]time.Time
}

// ackedRoute is the version of the named route the proxy ACKed last ("" if none).
func (p *proxyState) ackedRoute(name string) string {
	return p.acked[resource.RouteType].Acked[name]
}

// subscribedRoute reports whether any stream of p watches the named route.
func (p *proxyState) subscribedRoute(name string) bool {
	return p.routeSubs[name] > 0 || p.routeSubs["*"] > 0
}

// routeIndex holds the proxies subscribed to one route by name, grouped by the version
// of it they ACKed ("" before any ACK). Each group is an intrusive list, so an ACK moves
// a proxy between groups in O(1) without allocating, and the proxies not at a version
// are listed in O(their number).
type routeIndex struct {
	groups map[string]*ackGroup
	count  int
}

// ackGroup is the list of subscribed proxies that ACKed one version of a route.
type ackGroup struct {
	version string
	head    *routeNode
	n       int
	// last is the latest ACK instant of the group's proxies unless stale (a proxy
	// holding it left the group); lastAck recomputes it then.
	last  time.Time
	stale bool
}

// lastAck is when the last of the group's proxies ACKed the group's version.
func (g *ackGroup) lastAck() time.Time {
	if g.stale {
		g.last, g.stale = time.Time{}, false
		for nd := g.head; nd != nil; nd = nd.next {
			if nd.at.After(g.last) {
				g.last = nd.at
			}
		}
	}
	return g.last
}

// routeNode is one proxy's place in a routeIndex.
type routeNode struct {
	p          *proxyState
	g          *ackGroup
	prev, next *routeNode
	// at is when p ACKed the version of its group (zero in the group of "").
	at time.Time
}

// place puts nd in the group of version, ACKed at at, taking it out of its current
// group.
func (ix *routeIndex) place(nd *routeNode, version string, at time.Time) {
	if nd.g != nil {
		if nd.g.version == version {
			return
		}
		ix.unlink(nd)
	}
	nd.at = at
	g := ix.groups[version]
	if g == nil {
		g = &ackGroup{version: version}
		ix.groups[version] = g
	}
	nd.g, nd.prev, nd.next = g, nil, g.head
	if g.head != nil {
		g.head.prev = nd
	}
	g.head = nd
	g.n++
	if !g.stale && nd.at.After(g.last) {
		g.last = nd.at
	}
}

func (ix *routeIndex) unlink(nd *routeNode) {
	g := nd.g
	if nd.prev != nil {
		nd.prev.next = nd.next
	} else {
		g.head = nd.next
	}
	if nd.next != nil {
		nd.next.prev = nd.prev
	}
	nd.g, nd.prev, nd.next = nil, nil, nil
	if !nd.at.Before(g.last) {
		g.stale = true
	}
	if g.n--; g.n == 0 {
		delete(ix.groups, g.version)
	}
}

// acked is the number of subscribed proxies that ACKed version.
func (ix *routeIndex) acked(version string) int {
	if g := ix.groups[version]; g != nil {
		return g.n
	}
	return 0
}

// subscribeRoute and unsubscribeRoute count one stream of p in or out of the RDS
// subscribers of name. Called with t.mu held.
func (t *tracker) subscribeRoute(p *proxyState, name string) {
	p.routeSubs[name]++
	if p.routeSubs[name] > 1 {
		return
	}
	t.pending.route(name)
	if name == "*" {
		t.wildRoutes[p] = struct{}{}
		return
	}
	ix := t.routes[name]
	if ix == nil {
		ix = &routeIndex{groups: map[string]*ackGroup{}}
		t.routes[name] = ix
	}
	nd := &routeNode{p: p}
	p.routeNodes[name] = nd
	ix.place(nd, p.ackedRoute(name), p.routeAckedAt[name])
	ix.count++
}

func (t *tracker) unsubscribeRoute(p *proxyState, name string) {
	if p.routeSubs[name] == 0 {
		return
	}
	p.routeSubs[name]--
	if p.routeSubs[name] > 0 {
		return
	}
	delete(p.routeSubs, name)
	t.pending.route(name)
	if name == "*" {
		delete(t.wildRoutes, p)
		return
	}
	nd := p.routeNodes[name]
	delete(p.routeNodes, name)
	if ix := t.routes[name]; ix != nil && nd != nil {
		ix.unlink(nd)
		if ix.count--; ix.count == 0 {
			delete(t.routes, name)
		}
	}
}

// setWatched replaces what a stream watches of one type, keeping the route index in
// step. Called with t.mu held.
func (t *tracker) setWatched(st *streamState, typeURL string, w map[string]struct{}) {
	old := st.watched[typeURL]
	st.watched[typeURL] = w
	if typeURL != resource.RouteType || st.proxy == nil {
		return
	}
	for n := range old {
		if _, ok := w[n]; !ok {
			t.unsubscribeRoute(st.proxy, n)
		}
	}
	for n := range w {
		if _, ok := old[n]; !ok {
			t.subscribeRoute(st.proxy, n)
		}
	}
}

// ackRoutes records that p ACKed a route response at now leaving it with acked, keeping
// the route index and p's per-route ACK instants in step. A route whose version the
// response did not change keeps the instant of its first ACK. Called with t.mu held,
// before p.acked is updated.
func (t *tracker) ackRoutes(p *proxyState, acked map[string]string, now time.Time) {
	for n := range p.routeAckedAt {
		if _, ok := acked[n]; !ok {
			delete(p.routeAckedAt, n)
		}
	}
	for n, v := range acked {
		if p.ackedRoute(n) != v {
			p.routeAckedAt[n] = now
			t.pending.route(n)
		}
	}
	for n := range p.acked[resource.RouteType].Acked {
		if _, ok := acked[n]; !ok {
			t.pending.route(n)
		}
	}
	for n, nd := range p.routeNodes {
		if ix := t.routes[n]; ix != nil {
			ix.place(nd, acked[n], p.routeAckedAt[n])
		}
	}
}

func newTracker(log *zap.Logger) *tracker {
	return &tracker{
		log:     log,
		now:     time.Now,
		streams: map[streamKey]*streamState{},
		proxies: map[string]*proxyState{},

		routes:       map[string]*routeIndex{},
		wildRoutes:   map[*proxyState]struct{}{},
		routeNackers: map[*proxyState]struct{}{},
	}
}

func (t *tracker) lock() {
	t.mu.Lock()
	t.since = time.Now()
}

func (t *tracker) unlock() {
	t.hold.observe(t.since)
	var rc routeChanges
	if t.pending.all || t.pending.proxies || len(t.pending.routes) > 0 {
		rc, t.pending = t.pending, routeChanges{}
	}
	t.mu.Unlock()
	if t.changes != nil {
		rc.flush(t.changes)
	}
}

// notify wakes every waiter. Called with t.mu held. The channel is made by the first
// waiter after a change, so that a change nobody waits for allocates nothing.
func (t *tracker) notify() {
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}

func (t *tracker) open(k streamKey) {
	t.streamsOpened.Add(1)
	// Sized for the four served types, so that recording a stream's first requests
	// and responses under the lock does not grow them.
	const types = 4
	st := &streamState{
		opened:     t.now(),
		pending:    make(map[string]pendingResponse, types),
		watched:    make(map[string]map[string]struct{}, types),
		deltaKnown: map[string]map[string]string{},
		lastNonce:  make(map[string]string, types),
		names:      make(map[string][]string, types),
		sent:       make(map[string]sentResponse, types),
		deltaHeld:  map[string]heldResources{},
	}
	t.lock()
	defer t.unlock()
	t.streams[k] = st
	t.byKey.Store(k, st)
}

func (t *tracker) closed(k streamKey) {
	var gone string
	defer func() {
		if gone != "" {
			t.log.Info("proxy disconnected", zap.String("node", gone))
		}
	}()
	t.lock()
	defer t.unlock()
	st := t.streams[k]
	delete(t.streams, k)
	t.byKey.Delete(k)
	if st == nil || st.proxy == nil {
		return
	}
	p := st.proxy
	for n := range st.watched[resource.RouteType] {
		t.unsubscribeRoute(p, n)
	}
	delete(p.streams, k)
	if len(p.streams) == 0 {
		delete(t.proxies, p.id)
		delete(t.routeNackers, p)
		gone = p.id
		t.pending.proxies = true
	}
	t.notify()
}

// attach binds a stream to its node on the first request that names one. It returns the
// proxy when it is new.
func (t *tracker) attach(k streamKey, st *streamState, node *corev3.Node) *proxyState {
	if st.proxy != nil || node.GetId() == "" {
		return nil
	}
	var added *proxyState
	p := t.proxies[node.GetId()]
	if p == nil {
		p = &proxyState{
			id:           node.GetId(),
			cluster:      node.GetCluster(),
			zone:         node.GetLocality().GetZone(),
			streams:      map[streamKey]*streamState{},
			acked:        map[string]TypeStatus{},
			ackedContent: map[string]resourceSource{},
			nackByType:   map[string]*Nack{},
			routeSubs:    map[string]int{},
			routeNodes:   map[string]*routeNode{},
			routeAckedAt: map[string]time.Time{},
		}
		t.proxies[p.id] = p
		added = p
		t.pending.proxies = true
	}
	p.streams[k] = st
	st.proxy = p
	for n := range st.watched[resource.RouteType] {
		t.subscribeRoute(p, n)
	}
	t.notify()
	return added
}

// request records a request. For SotW, names are the requested resource names: when they
// repeat the previous request's (an ACK), the subscription is kept as it is. watch
// returns the new subscription from the previous one without modifying it.
func (t *tracker) request(k streamKey, node *corev3.Node, typeURL, nonce string, errDetail string, isNack bool, names []string, watch func(map[string]struct{}) map[string]struct{}) {
	// Logging happens after the lock is released.
	var connected *proxyState
	var nack *Nack
	defer func() {
		if p := connected; p != nil {
			t.log.Info("proxy connected", zap.String("node", p.id), zap.String("cluster", p.cluster), zap.String("zone", p.zone))
		}
		if nack != nil {
			t.log.Warn("proxy rejected configuration (NACK)",
				zap.String("node", nack.NodeID), zap.String("type", nack.TypeURL),
				zap.String("version", nack.Version), zap.String("error", nack.Message))
		}
	}()
	t.lock()
	defer t.unlock()
	st := t.streams[k]
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if last := st.lastNonce[typeURL]; !k.delta && last != "" && nonce != last {
		return
	}
	connected = t.attach(k, st, node)
	if prev, ok := st.watched[typeURL]; !ok || k.delta || !slices.Equal(st.names[typeURL], names) {
		t.setWatched(st, typeURL, watch(prev))
		if !k.delta {
			st.names[typeURL] = names
		}
	}
	p := st.proxy
	pend := st.pending[typeURL]
	if p == nil || nonce == "" || pend.nonce == "" || pend.nonce != nonce {
		return
	}
	st.pending[typeURL] = pendingResponse{} // answered; keeps the map from shrinking and growing
	if isNack {
		t.nacks.Add(1)
		p.nacks++
		if _, was := t.routeNackers[p]; was || typeURL == resource.RouteType {
			// The NACK a route's convergence names is of a proxy watching it.
			t.pending.subscribed(p)
		}
		p.lastNack = &Nack{
			NodeID:    p.id,
			TypeURL:   typeURL,
			Version:   pend.version,
			Resources: pend.resources,
			Message:   errDetail,
			At:        t.now(),
		}
		if typeURL == resource.RouteType {
			t.routeNackers[p] = struct{}{}
		} else {
			delete(t.routeNackers, p)
		}
		p.nackByType[typeURL] = p.lastNack
		nack = p.lastNack
	} else {
		t.acks.Add(1)
		now := t.now()
		switch typeURL {
		case resource.RouteType:
			t.ackRoutes(p, pend.resources, now)
		case resource.ClusterType, resource.EndpointType:
			t.pending.subscribed(p) // the clusters it holds count in its routes' warmth
		}
		p.acked[typeURL] = TypeStatus{AckedVersion: pend.version, Acked: pend.resources, AckedAt: now}
		p.ackedContent[typeURL] = pend.content
	}
	t.notify()
}

func (t *tracker) response(k streamKey, typeURL, nonce, version string, resources map[string]string, content resourceSource) {
	seq := t.pushes.Add(1)
	if st := t.stream(k); st != nil {
		pend := pendingResponse{nonce: nonce, version: version, resources: resources, content: content}
		at := t.now()
		st.mu.Lock()
		st.pending[typeURL] = pend
		st.sent[typeURL] = sentResponse{pendingResponse: pend, seq: seq, at: at}
		st.lastNonce[typeURL] = nonce
		st.mu.Unlock()
	}
}

// stream returns the open stream k, or nil.
func (t *tracker) stream(k streamKey) *streamState {
	if v, ok := t.byKey.Load(k); ok {
		return v.(*streamState)
	}
	return nil
}

// callbacks adapts the tracker to go-control-plane for one Serve call.
type callbacks struct {
	t      *tracker
	server int64
}

var _ serverv3.Callbacks = callbacks{}

func (c callbacks) OnStreamOpen(_ context.Context, id int64, _ string) error {
	c.t.open(streamKey{server: c.server, id: id})
	return nil
}

func (c callbacks) OnStreamClosed(id int64, _ *corev3.Node) {
	c.t.closed(streamKey{server: c.server, id: id})
}

func (c callbacks) OnDeltaStreamOpen(_ context.Context, id int64, _ string) error {
	c.t.open(streamKey{server: c.server, delta: true, id: id})
	return nil
}

func (c callbacks) OnDeltaStreamClosed(id int64, _ *corev3.Node) {
	c.t.closed(streamKey{server: c.server, delta: true, id: id})
}

func (c callbacks) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	names := req.GetResourceNames()
	c.t.request(streamKey{server: c.server, id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(),
		req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil, names,
		func(map[string]struct{}) map[string]struct{} {
			w := make(map[string]struct{}, len(names))
			for _, n := range names {
				w[n] = struct{}{}
			}
			if len(w) == 0 && (req.GetTypeUrl() == resource.ListenerType || req.GetTypeUrl() == resource.ClusterType) {
				w["*"] = struct{}{}
			}
			return w
		})
	return nil
}

func (c callbacks) OnStreamResponse(ctx context.Context, id int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	var res map[string]string
	var content resourceSource
	if info := sentFrom(ctx); info != nil {
		res = info.resources
		if info.snap != nil {
			content = info.snap
		}
	}
	c.t.response(streamKey{server: c.server, id: id}, req.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo(), res, content)
}

func (c callbacks) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	k := streamKey{server: c.server, delta: true, id: id}
	c.t.request(k, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(),
		req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil, nil,
		func(prev map[string]struct{}) map[string]struct{} {
			if prev != nil && len(req.GetResourceNamesSubscribe()) == 0 && len(req.GetResourceNamesUnsubscribe()) == 0 {
				return prev
			}
			w := maps.Clone(prev)
			if w == nil {
				w = map[string]struct{}{}
				if len(req.GetResourceNamesSubscribe()) == 0 {
					w["*"] = struct{}{}
				}
			}
			for _, n := range req.GetResourceNamesSubscribe() {
				w[n] = struct{}{}
			}
			for _, n := range req.GetResourceNamesUnsubscribe() {
				delete(w, n)
			}
			return w
		})
	return nil
}

func (c callbacks) OnStreamDeltaResponse(id int64, req *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	k := streamKey{server: c.server, delta: true, id: id}
	t := c.t
	st := t.stream(k)
	var known map[string]string
	var held heldResources
	if st != nil {
		st.mu.Lock()
		known = maps.Clone(st.deltaKnown[req.GetTypeUrl()])
		if known == nil {
			known = map[string]string{}
		}
		held = maps.Clone(st.deltaHeld[req.GetTypeUrl()])
		if held == nil {
			held = heldResources{}
		}
		for _, r := range resp.GetResources() {
			known[r.GetName()] = r.GetVersion()
			held[r.GetName()] = r
		}
		for _, n := range resp.GetRemovedResources() {
			delete(known, n)
			delete(held, n)
		}
		st.deltaKnown[req.GetTypeUrl()] = known
		st.deltaHeld[req.GetTypeUrl()] = held
		st.mu.Unlock()
	}
	t.response(k, req.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo(), maps.Clone(known), held)
}

func (c callbacks) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error { return nil }
func (c callbacks) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {
}

// proxies returns the status of every connected proxy, sorted by node id.
func (t *tracker) proxyStatuses() []ProxyStatus {
	t.lock()
	defer t.unlock()
	out := make([]ProxyStatus, 0, len(t.proxies))
	for _, p := range t.proxies {
		ps := ProxyStatus{
			NodeID:  p.id,
			Cluster: p.cluster,
			Zone:    p.zone,
			Streams: len(p.streams),
			Types:   map[string]TypeStatus{},
			NACKs:   p.nacks,
		}
		if p.lastNack != nil {
			n := *p.lastNack
			n.Resources = maps.Clone(n.Resources)
			ps.LastNACK = &n
		}
		for _, st := range p.streams {
			if ps.ConnectedSince.IsZero() || st.opened.Before(ps.ConnectedSince) {
				ps.ConnectedSince = st.opened
			}
			for typ, w := range st.watched {
				ts := ps.Types[typ]
				ts.Watched = slices.Sorted(maps.Keys(w))
				ps.Types[typ] = ts
			}
		}
		for typ, a := range p.acked {
			ts := ps.Types[typ]
			ts.AckedVersion, ts.Acked, ts.AckedAt = a.AckedVersion, maps.Clone(a.Acked), a.AckedAt
			ps.Types[typ] = ts
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}

// Convergence is how far the route of one service has reached the proxies.
type Convergence struct {
	Service string `json:"service"`
	// RouteVersion is the route version the counts refer to.
	RouteVersion string `json:"routeVersion"`
	// Subscribed proxies watch the service's RouteConfiguration; Acked of them have
	// ACKed RouteVersion.
	Subscribed int `json:"subscribed"`
	Acked      int `json:"acked"`
	// Stragglers are the node ids of subscribed proxies that have not ACKed, sorted.
	Stragglers []string `json:"stragglers,omitempty"`
	// NACK is the latest rejection of RouteVersion by a subscribed proxy, if any.
	NACK *Nack `json:"nack,omitempty"`
	// AckedAt is the instant the last of the Acked proxies ACKed RouteVersion (as the
	// tracker saw it); once Done, the instant the route reached every proxy.
	AckedAt time.Time `json:"ackedAt,omitzero"`
}

// Done reports whether every subscribed proxy has ACKed, and at least one subscribed:
// with no proxy, nobody serves the route, which is not "every proxy ACKed".
func (c Convergence) Done() bool { return c.Subscribed > 0 && c.Acked == c.Subscribed }

// convergence computes Convergence for the route routeName at version, and returns the
// channel that is closed on the next change. With stragglers false it leaves
// Convergence.Stragglers empty and costs O(1) plus the proxies with a wildcard route
// watch or a route NACK (normally none); the straggler list costs O(stragglers).
func (t *tracker) convergence(service, routeName, version string, stragglers bool) (Convergence, <-chan struct{}) {
	t.lock()
	defer t.unlock()
	c := Convergence{Service: service, RouteVersion: version}
	if ix := t.routes[routeName]; ix != nil {
		c.Subscribed = ix.count
		c.Acked = ix.acked(version)
		if g := ix.groups[version]; g != nil && version != "" {
			c.AckedAt = g.lastAck()
		}
		if stragglers && c.Acked < c.Subscribed {
			for v, g := range ix.groups {
				if v == version {
					continue
				}
				for nd := g.head; nd != nil; nd = nd.next {
					c.Stragglers = append(c.Stragglers, nd.p.id)
				}
			}
		}
	}
	for p := range t.wildRoutes {
		if p.routeSubs[routeName] > 0 {
			continue // counted in the index
		}
		c.Subscribed++
		if p.ackedRoute(routeName) == version {
			c.Acked++
			if at := p.routeAckedAt[routeName]; at.After(c.AckedAt) {
				c.AckedAt = at
			}
		} else if stragglers {
			c.Stragglers = append(c.Stragglers, p.id)
		}
	}
	for p := range t.routeNackers {
		n := p.lastNack
		if !p.subscribedRoute(routeName) || p.ackedRoute(routeName) == version || n.Resources[routeName] != version {
			continue
		}
		if c.NACK == nil || n.At.After(c.NACK.At) {
			cp := *n
			cp.Resources = maps.Clone(n.Resources)
			c.NACK = &cp
		}
	}
	slices.Sort(c.Stragglers)
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	return c, t.changed
}

// ErrNotAcked is matched (errors.Is) by the error of WaitAcked when proxies have not
// ACKed in time; ErrNACKed when a proxy rejected the route.
var (
	ErrNotAcked = errors.New("route not acknowledged by every subscribed proxy")
	ErrNACKed   = errors.New("route rejected by a proxy")
)

// AckError is returned by WaitAcked. It names the proxies that have not ACKed.
type AckError struct {
	Convergence
	Timeout time.Duration
}

func (e *AckError) Error() string {
	if e.NACK != nil {
		return fmt.Sprintf("service %q route version %s: rejected by proxy %s: %s (stragglers: %s)",
			e.Service, e.RouteVersion, e.NACK.NodeID, e.NACK.Message, strings.Join(e.Stragglers, ", "))
	}
	return fmt.Sprintf("service %q route version %s: %d of %d subscribed proxies have not ACKed after %s: %s",
		e.Service, e.RouteVersion, e.Subscribed-e.Acked, e.Subscribed, model.Duration(e.Timeout), strings.Join(e.Stragglers, ", "))
}

func (e *AckError) Unwrap() error {
	if e.NACK != nil {
		return ErrNACKed
	}
	return ErrNotAcked
}

// ClusterWarmth is how far new clusters of a service have reached the proxies that
// watch its route, before any route gives them traffic.
type ClusterWarmth struct {
	// Subscribed proxies watch the service's RouteConfiguration; Holding of them have
	// ACKed CDS and EDS responses holding every one of the clusters.
	Subscribed int `json:"subscribed"`
	Holding    int `json:"holding"`
	// Stragglers are the node ids of subscribed proxies that do not hold them yet, sorted.
	Stragglers []string `json:"stragglers,omitempty"`
}

// Done reports whether every subscribed proxy holds the clusters (true with none
// subscribed: nobody would route to them).
func (w ClusterWarmth) Done() bool { return w.Holding == w.Subscribed }

// clusterWarmth computes ClusterWarmth for the proxies subscribed to routeName. A proxy
// holds a cluster when the last CDS and EDS responses it ACKed carry it (an EDS
// resource is named as its cluster). It costs a pass over the route's subscribers (and
// the proxies with a wildcard route watch), through the route index.
func (t *tracker) clusterWarmth(routeName string, clusters []string) ClusterWarmth {
	t.lock()
	defer t.unlock()
	var w ClusterWarmth
	count := func(p *proxyState) {
		w.Subscribed++
		for _, c := range clusters {
			if p.acked[resource.ClusterType].Acked[c] == "" || p.acked[resource.EndpointType].Acked[c] == "" {
				w.Stragglers = append(w.Stragglers, p.id)
				return
			}
		}
		w.Holding++
	}
	if ix := t.routes[routeName]; ix != nil {
		for _, g := range ix.groups {
			for nd := g.head; nd != nil; nd = nd.next {
				count(nd.p)
			}
		}
	}
	for p := range t.wildRoutes {
		if p.routeSubs[routeName] == 0 { // else counted through the index
			count(p)
		}
	}
	slices.Sort(w.Stragglers)
	return w
}

// routeStragglers returns the ids of the proxies subscribed to routeName whose last
// ACKed version of it is none of versions (a proxy that ACKed none counts: it may hold
// an older one), sorted. It costs O(the versions ACKed) plus the proxies listed and the
// proxies with a wildcard route watch.
func (t *tracker) routeStragglers(routeName string, versions []string) []string {
	t.lock()
	defer t.unlock()
	var out []string
	if ix := t.routes[routeName]; ix != nil {
		for v, g := range ix.groups {
			if v != "" && slices.Contains(versions, v) {
				continue
			}
			for nd := g.head; nd != nil; nd = nd.next {
				out = append(out, nd.p.id)
			}
		}
	}
	for p := range t.wildRoutes {
		if p.routeSubs[routeName] > 0 {
			continue // listed through the index
		}
		if v := p.ackedRoute(routeName); v == "" || !slices.Contains(versions, v) {
			out = append(out, p.id)
		}
	}
	slices.Sort(out)
	return out
}
