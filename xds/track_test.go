package xds

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
)

// scanConvergence is the definition of Convergence, computed by a pass over every
// proxy. The tracker's incremental index must always agree with it.
func scanConvergence(t *tracker, service, routeName, version string) Convergence {
	t.lock()
	defer t.unlock()
	c := Convergence{Service: service, RouteVersion: version}
	for _, p := range t.proxies {
		subscribed := false
		for _, st := range p.streams {
			w := st.watched[resource.RouteType]
			if _, ok := w[routeName]; ok {
				subscribed = true
			} else if _, ok := w["*"]; ok {
				subscribed = true
			}
		}
		if !subscribed {
			continue
		}
		c.Subscribed++
		if p.acked[resource.RouteType].Acked[routeName] == version {
			c.Acked++
			if at := p.routeAckedAt[routeName]; version != "" && at.After(c.AckedAt) {
				c.AckedAt = at
			}
			continue
		}
		c.Stragglers = append(c.Stragglers, p.id)
		if n := p.lastNack; n != nil && n.TypeURL == resource.RouteType && n.Resources[routeName] == version {
			if c.NACK == nil || n.At.After(c.NACK.At) {
				cp := *n
				cp.Resources = maps.Clone(n.Resources)
				c.NACK = &cp
			}
		}
	}
	slices.Sort(c.Stragglers)
	return c
}

// TestTrackerConvergenceIndex drives the tracker through random sequences of stream
// opens and closes, SotW and delta subscriptions (named and wildcard), responses, ACKs,
// NACKs and stale requests, and checks after every step that the incremental
// convergence equals the full scan for every route and version, and that the change
// watch named every route whose convergence changed (and a change of the proxies).
func TestTrackerConvergenceIndex(t *testing.T) {
	routes := []string{"a", "b", "c"}
	versions := []string{"", "v1", "v2", "v3"}
	for seed := range uint64(20) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			tr := newTracker(zap.NewNop())
			// Every instant the tracker records is a distinct one, so that the latest
			// ACK instant of a version is tested.
			var tick time.Duration
			tr.now = func() time.Time { tick++; return time.Unix(0, 0).Add(tick) }
			cb := callbacks{t: tr, server: 1}
			tr.changes = &changeWatches{}
			watch := &ChangeWatch{services: map[string]struct{}{}, c: make(chan struct{}, 1)}
			tr.changes.add(watch)
			seen := map[string]Convergence{}
			proxies := 0
			type stream struct {
				id    int64
				delta bool
				node  string
				nonce int
				last  string // last nonce sent for RDS
				res   map[string]string
				names []string // of the last SotW request
			}
			var open []*stream
			var next int64
			for step := range 400 {
				switch op := rng.IntN(10); {
				case op == 0 || len(open) == 0:
					next++
					s := &stream{id: next, delta: rng.IntN(4) == 0, node: fmt.Sprintf("n%d", rng.IntN(6))}
					if s.delta {
						_ = cb.OnDeltaStreamOpen(t.Context(), s.id, "")
					} else {
						_ = cb.OnStreamOpen(t.Context(), s.id, "")
					}
					open = append(open, s)
				case op == 1:
					i := rng.IntN(len(open))
					s := open[i]
					open = slices.Delete(open, i, i+1)
					if s.delta {
						cb.OnDeltaStreamClosed(s.id, nil)
					} else {
						cb.OnStreamClosed(s.id, nil)
					}
				case op < 5: // a new subscription, ACK or NACK of the last response
					s := open[rng.IntN(len(open))]
					var names []string
					for _, r := range routes {
						if rng.IntN(2) == 0 {
							names = append(names, r)
						}
					}
					nonce := s.last
					if rng.IntN(5) == 0 {
						nonce = "stale"
					}
					var detail *statuspb.Status
					if rng.IntN(4) == 0 {
						detail = &statuspb.Status{Message: "rejected"}
					}
					node := &corev3.Node{Id: s.node}
					if rng.IntN(4) == 0 {
						node = nil // only the first request must carry the node
					}
					if s.delta {
						req := &discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.RouteType, ResponseNonce: nonce}
						if rng.IntN(2) == 0 {
							req.ResourceNamesSubscribe = names
						} else {
							req.ResourceNamesUnsubscribe = names
						}
						if detail != nil {
							req.ErrorDetail = detail
						}
						_ = cb.OnStreamDeltaRequest(s.id, req)
					} else {
						if rng.IntN(3) == 0 {
							names = s.names // an ACK repeats the names
						}
						req := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.RouteType, ResponseNonce: nonce, ResourceNames: names}
						if detail != nil {
							req.ErrorDetail = detail
						}
						_ = cb.OnStreamRequest(s.id, req)
						s.names = names
					}
				default: // a response
					s := open[rng.IntN(len(open))]
					s.nonce++
					s.last = strconv.Itoa(s.nonce)
					res := map[string]string{}
					for _, r := range routes {
						if rng.IntN(3) > 0 {
							res[r] = versions[1+rng.IntN(len(versions)-1)]
						}
					}
					if s.delta {
						var rs []*discoveryv3.Resource
						for n, v := range res {
							rs = append(rs, &discoveryv3.Resource{Name: n, Version: v})
						}
						cb.OnStreamDeltaResponse(s.id, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.RouteType},
							&discoveryv3.DeltaDiscoveryResponse{TypeUrl: resource.RouteType, Nonce: s.last, Resources: rs})
					} else {
						tr.response(streamKey{server: 1, id: s.id}, resource.RouteType, s.last, "tv"+s.last, res, nil)
					}
					s.res = res
				}
				ch := watch.Take()
				if n := len(tr.proxies); n != proxies && !ch.Proxies {
					t.Fatalf("step %d: %d proxies, %d before, and the change watch says nothing", step, n, proxies)
				}
				proxies = len(tr.proxies)
				for _, r := range routes {
					for _, v := range versions {
						want := scanConvergence(tr, "svc", r, v)
						k := r + "/" + v
						if prev, ok := seen[k]; ok && !cmp.Equal(prev, want) && !ch.All && !slices.Contains(ch.Services, r) {
							t.Fatalf("step %d route %s version %q: convergence changed and the change watch names only %v:\n%s", step, r, v, ch.Services, cmp.Diff(prev, want))
						}
						seen[k] = want
						got, _ := tr.convergence("svc", r, v, true)
						if diff := cmp.Diff(want, got); diff != "" {
							t.Fatalf("step %d route %s version %q: convergence differs from a full scan (-scan +index):\n%s", step, r, v, diff)
						}
						fast, _ := tr.convergence("svc", r, v, false)
						if fast.Subscribed != want.Subscribed || fast.Acked != want.Acked || (fast.NACK == nil) != (want.NACK == nil) {
							t.Fatalf("step %d route %s version %q: counts %d/%d, scan %d/%d", step, r, v, fast.Acked, fast.Subscribed, want.Acked, want.Subscribed)
						}
					}
				}
			}
		})
	}
}
