package xds

import (
	"context"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// adsServer serves state-of-the-world ADS streams itself and leaves every other
// service (delta ADS, the per-type services) to go-control-plane's server.
//
// A stream costs no goroutine beyond the one gRPC runs its handler on: the handler
// receives and processes the requests, and a response is sent by whoever finds the
// stream idle — the handler right after a request, or a goroutine that lives only
// while a publish's responses to that stream are being written. Per stream it keeps the
// protocol of go-control-plane's ordered ADS: one nonce sequence over every type,
// requests with a stale nonce ignored, a type's unsent responses dropped when its
// subscription changes, and responses written in the order the cache produced them
// (make-before-break across types).
type adsServer struct {
	serverv3.Server
	log   *zap.Logger
	cache *Cache
	cb    callbacks
	ids   atomic.Int64
}

// StreamAggregatedResources serves one SotW ADS stream until the proxy ends it, the
// connection breaks or the server shuts down (which cancels the stream's context, see
// streamsEnd).
func (a *adsServer) StreamAggregatedResources(gs discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	st := &adsStream{
		srv:     a,
		gs:      gs,
		id:      a.ids.Add(1),
		node:    &corev3.Node{},
		watches: make(map[string]*adsWatch, len(servedTypes)),
	}
	if err := a.cb.OnStreamOpen(gs.Context(), st.id, resource.AnyType); err != nil {
		return err
	}
	defer st.shutdown()
	for {
		req, err := gs.Recv()
		if err != nil {
			// The proxy went away or the server is stopping; either way the stream
			// ends without an error of its own, as with go-control-plane.
			return nil
		}
		if err := st.handle(req); err != nil {
			return err
		}
	}
}

// adsWatch is a stream's state of one resource type.
type adsWatch struct {
	// sub is read by the cache while a watch is open and by the stream's sender while
	// settling a response; it is modified with adsStream.mu held, only when no watch of
	// the type is open.
	sub   streamv3.Subscription
	nonce string // of the latest response sent; guarded by adsStream.mu
	// cancel ends the open watch; used by the handler goroutine only.
	cancel func()
}

type adsStream struct {
	srv  *adsServer
	gs   discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	id   int64
	node *corev3.Node // handler goroutine only

	mu      sync.Mutex
	watches map[string]*adsWatch
	// queue holds the responses not sent yet, in the order the cache produced them.
	queue []*sotwResponse
	// sending is set while one goroutine writes the queue to the stream; handling
	// while the handler processes a request (and will write the queue afterwards).
	sending, handling bool
	closed            bool
	sendErr           error
	idle              chan struct{} // closed when sending ends; made by shutdown
	nonce             uint64
}

// handle processes one request on the handler goroutine.
func (st *adsStream) handle(req *discoveryv3.DiscoveryRequest) error {
	if req == nil {
		return status.Errorf(codes.Unavailable, "empty request")
	}
	// Only the first request must carry the node.
	if req.GetNode() != nil {
		st.node = req.GetNode()
	} else {
		req.Node = st.node
	}
	typeURL := req.GetTypeUrl()
	if typeURL == "" {
		return status.Errorf(codes.InvalidArgument, "type URL is required for ADS")
	}
	if err := st.srv.cb.OnStreamRequest(st.id, req); err != nil {
		return err
	}

	st.mu.Lock()
	w := st.watches[typeURL]
	if w != nil && w.nonce != "" && req.GetResponseNonce() != w.nonce {
		// A request answering an older response: the proxy has a newer one on its
		// way and will answer that (xDS protocol, "resource updates").
		st.mu.Unlock()
		return nil
	}
	st.handling = true
	st.mu.Unlock()

	if w != nil && w.cancel != nil {
		// Cancelled outside mu: a firing watch holds its own lock while it hands its
		// response to push, which takes mu.
		w.cancel()
		w.cancel = nil
	}
	st.mu.Lock()
	if w == nil {
		w = &adsWatch{sub: streamv3.NewSotwSubscription(req.GetResourceNames(), true)}
		st.watches[typeURL] = w
	} else {
		// Responses of this type not sent yet answer the previous subscription.
		kept := st.queue[:0]
		for _, r := range st.queue {
			if r.req.GetTypeUrl() != typeURL {
				kept = append(kept, r)
			}
		}
		clear(st.queue[len(kept):])
		st.queue = kept
		// SetResourceSubscription deletes the names no longer subscribed from the
		// returned map, which the tracker shares (it is what the proxy holds): give the
		// subscription its own copy first.
		w.sub.SetReturnedResources(maps.Clone(w.sub.ReturnedResources()))
		w.sub.SetResourceSubscription(req.GetResourceNames())
	}
	st.mu.Unlock()

	w.cancel = st.srv.cache.watchSotw(req, &w.sub, st.push)

	st.mu.Lock()
	st.handling = false
	if len(st.queue) == 0 || st.sending || st.closed {
		err := st.sendErr
		st.mu.Unlock()
		return sendFailed(err)
	}
	st.sending = true
	st.mu.Unlock()
	return sendFailed(st.drain())
}

func sendFailed(err error) error {
	if err == nil {
		return nil
	}
	return status.Errorf(codes.Unavailable, "send: %v", err)
}

// push queues a response of a watch. It never blocks: when nobody is writing to the
// stream, it starts a goroutine that does until the queue is empty.
func (st *adsStream) push(r *sotwResponse) {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.queue = append(st.queue, r)
	if st.sending || st.handling {
		st.mu.Unlock()
		return
	}
	st.sending = true
	st.mu.Unlock()
	go st.drain()
}

// drain writes the queued responses in order. The caller has set sending. It returns
// the error of a failed write.
func (st *adsStream) drain() error {
	st.mu.Lock()
	for len(st.queue) > 0 && !st.closed && st.sendErr == nil {
		r := st.queue[0]
		st.queue[0] = nil
		st.queue = st.queue[1:]
		if len(st.queue) == 0 {
			st.queue = nil
		}
		out := st.prepare(r)
		st.mu.Unlock()
		err := st.gs.Send(out)
		st.mu.Lock()
		if err != nil {
			st.sendErr = err
			st.srv.log.Debug("ads send failed", zap.Int64("stream", st.id), zap.Error(err))
		}
	}
	err := st.sendErr
	st.sending = false
	if st.idle != nil {
		close(st.idle)
		st.idle = nil
	}
	st.mu.Unlock()
	return err
}

// prepare settles r, numbers it and records it as sent. Called with mu held.
func (st *adsStream) prepare(r *sotwResponse) *discoveryv3.DiscoveryResponse {
	r.settled()
	w := st.watches[r.req.GetTypeUrl()]
	st.nonce++
	out := r.out
	out.Nonce = strconv.FormatUint(st.nonce, 10)
	w.sub.SetReturnedResources(r.returned)
	w.nonce = out.Nonce
	st.srv.cb.OnStreamResponse(r.ctx, st.id, r.req, out)
	return out
}

// shutdown cancels the stream's watches and waits for a write in progress, so that
// nothing touches the stream once its handler returns.
func (st *adsStream) shutdown() {
	st.mu.Lock()
	st.closed = true
	st.queue = nil
	var idle chan struct{}
	if st.sending {
		st.idle = make(chan struct{})
		idle = st.idle
	}
	st.mu.Unlock()
	for _, w := range st.watches {
		if w.cancel != nil {
			w.cancel()
		}
	}
	if idle != nil {
		<-idle
	}
	st.srv.cb.OnStreamClosed(st.id, st.node)
}

// streamsEnd is a gRPC stats handler that cancels the context of every stream of a
// server when ctx ends, so that a handler blocked receiving returns and a graceful stop
// does not wait for proxies that never end their streams.
type streamsEnd struct{ ctx context.Context }

type connEndKey struct{}

var _ stats.Handler = streamsEnd{}

func (h streamsEnd) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.ctx, cancel)
	return context.WithValue(ctx, connEndKey{}, func() {
		stop()
		cancel()
	})
}

func (streamsEnd) HandleConn(ctx context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnEnd); ok {
		if end, ok := ctx.Value(connEndKey{}).(func()); ok {
			end()
		}
	}
}

func (streamsEnd) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (streamsEnd) HandleRPC(context.Context, stats.RPCStats)                       {}
