package xds

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/octoacme/octoroll/translate"
)

// ChangeWatch collects, between two Take calls, the services whose Convergence or
// ClusterWarmth may have changed: a proxy subscribed to or left a service's route,
// ACKed or NACKed a route, ACKed clusters or endpoints while watching a service's
// route, or a publish changed a service's route or its set of clusters. It also notes
// a change of the number of connected proxies. A consumer that follows every service
// recomputes only those named, instead of every service on a timer. It is safe for
// concurrent use; marking costs a map insert per service under the watch's lock.
type ChangeWatch struct {
	mu       sync.Mutex
	services map[string]struct{}
	all      bool
	proxies  bool
	c        chan struct{}
}

// Changes is what a ChangeWatch collected.
type Changes struct {
	// Services changed, sorted; with All, every service may have (a wildcard route
	// watch, or the first Take), and Services is empty.
	Services []string
	All      bool
	// Proxies says a proxy connected or left.
	Proxies bool
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool { return !c.All && !c.Proxies && len(c.Services) == 0 }

// C is signalled (capacity one, never closed) when a change is collected after the last
// Take.
func (w *ChangeWatch) C() <-chan struct{} { return w.c }

// Take returns what changed since the last Take and starts collecting anew.
func (w *ChangeWatch) Take() Changes {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := Changes{All: w.all, Proxies: w.proxies}
	if !w.all {
		out.Services = make([]string, 0, len(w.services))
		for s := range w.services {
			out.Services = append(out.Services, s)
		}
		slices.Sort(out.Services)
	}
	clear(w.services)
	w.all, w.proxies = false, false
	return out
}

func (w *ChangeWatch) add(services []string, all, proxies bool) {
	w.mu.Lock()
	switch {
	case all:
		w.all = true
		clear(w.services)
	case !w.all:
		for _, s := range services {
			w.services[s] = struct{}{}
		}
	}
	w.proxies = w.proxies || proxies
	w.mu.Unlock()
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// changeWatches are the watches of one server.
type changeWatches struct {
	list atomic.Pointer[[]*ChangeWatch]
	mu   sync.Mutex // serializes adding
}

func (cw *changeWatches) add(w *ChangeWatch) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	var next []*ChangeWatch
	if cur := cw.list.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, w)
	cw.list.Store(&next)
}

// any reports whether anybody watches: with no watch, changes are not even collected.
func (cw *changeWatches) any() bool {
	l := cw.list.Load()
	return l != nil && len(*l) > 0
}

func (cw *changeWatches) mark(services []string, all, proxies bool) {
	l := cw.list.Load()
	if l == nil || (len(services) == 0 && !all && !proxies) {
		return
	}
	for _, w := range *l {
		w.add(services, all, proxies)
	}
}

// WatchChanges returns a new ChangeWatch of s. Its first Take reports every service
// (All): what came before the watch is unknown to its consumer.
func (s *Server) WatchChanges() *ChangeWatch {
	w := &ChangeWatch{services: map[string]struct{}{}, all: true, proxies: true, c: make(chan struct{}, 1)}
	w.c <- struct{}{}
	s.changes.add(w)
	return w
}

// published marks the services of the routes and clusters a publish changed (added,
// replaced or removed).
func (cw *changeWatches) published(typeURL string, names []string) {
	if !cw.any() {
		return
	}
	var services []string
	switch typeURL {
	case resource.RouteType:
		for _, n := range names {
			services = append(services, translate.ServiceOfRoute(n))
		}
	case resource.ClusterType:
		for _, n := range names {
			if svc, _, ok := translate.ServiceOfCluster(n); ok {
				services = append(services, svc)
			}
		}
	}
	cw.mark(services, false, false)
}

// routeChanges collects, under the tracker's lock, the routes whose convergence or
// warmth a request changed; flush hands them to the watches once the lock is released.
type routeChanges struct {
	routes  []string
	all     bool
	proxies bool
}

func (rc *routeChanges) route(name string) {
	if name == "*" {
		rc.all = true
		return
	}
	rc.routes = append(rc.routes, name)
}

// subscribed adds every route p watches: its cluster warmth counts p.
func (rc *routeChanges) subscribed(p *proxyState) {
	for n := range p.routeSubs {
		rc.route(n)
	}
}

func (rc *routeChanges) flush(cw *changeWatches) {
	if rc.all || rc.proxies || len(rc.routes) > 0 {
		services := make([]string, len(rc.routes))
		for i, n := range rc.routes {
			services[i] = translate.ServiceOfRoute(n)
		}
		cw.mark(services, rc.all, rc.proxies)
	}
}
