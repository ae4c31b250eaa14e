package publish

import (
	"slices"
	"strings"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// A cluster leaves in two steps. Proxies get clusters before routes (make before
// break), so a publish that moves a route off a version and drops the version's cluster
// at once would let a proxy lose the cluster while its route still sends traffic to it
// (gRPC fails those RPCs: "unknown cluster"). The publish that drops a version from a
// service therefore serves the new route and keeps the version's CDS and EDS resources
// (no route names them: they carry no traffic); Retire removes them once every proxy
// watching the service's route has ACKed a route published since, or the ACK timeout
// passed. A publish that serves them again ends their retirement.

// retireKey names one resource: its type URL and name.
type retireKey struct{ typ, name string }

// retiring is a cluster resource its service's route no longer names.
type retiring struct {
	service string
	// since is when the route stopped naming it.
	since time.Time
	// routes are the versions of the service's route served since then: none names it.
	routes []string
}

// retireChanges collects what one publish does to the retiring resources, committed
// only when the server took the publish.
type retireChanges struct {
	p      *Publisher
	add    map[retireKey]string // the service whose route stopped naming it
	drop   map[retireKey]bool   // served again
	routes map[string]string    // the route version served now, per service with retiring resources
}

func (p *Publisher) retireChanges() *retireChanges {
	return &retireChanges{p: p, add: map[retireKey]string{}, drop: map[retireKey]bool{}, routes: map[string]string{}}
}

// served notes that the publish serves the resource: it no longer retires.
func (rt *retireChanges) served(typ, name string) {
	k := retireKey{typ, name}
	if _, ok := rt.p.retiring[k]; ok {
		rt.drop[k] = true
	}
	delete(rt.add, k)
}

// left notes that service no longer serves the resource, and reports whether it retires
// (is kept for now) rather than being removed at once: clusters and their endpoints do.
func (rt *retireChanges) left(service, typ, name string) bool {
	if typ != resource.ClusterType && typ != resource.EndpointType {
		return false
	}
	rt.add[retireKey{typ, name}] = service
	return true
}

// routed notes the resources service serves now: their route version counts for the
// service's retiring resources.
func (rt *retireChanges) routed(service string, serve translate.Resources) {
	has := false
	for _, s := range rt.add {
		has = has || s == service
	}
	for _, r := range rt.p.retiring {
		has = has || r.service == service
	}
	if !has {
		return
	}
	rt.routes[service] = serve.RouteVersion(service)
}

// commit records the changes; called once the server took the publish.
func (rt *retireChanges) commit(now time.Time) {
	for k := range rt.drop {
		delete(rt.p.retiring, k)
	}
	for k, svc := range rt.add {
		rt.p.retiring[k] = &retiring{service: svc, since: now}
	}
	for _, r := range rt.p.retiring {
		if v := rt.routes[r.service]; v != "" && !slices.Contains(r.routes, v) {
			r.routes = append(r.routes, v)
		}
	}
}

// Retired is what one Retire removed of one service.
type Retired struct {
	Service string
	// Versions are the versions whose clusters were removed, sorted.
	Versions []string
	// Late is true when they were removed because the ACK timeout passed while
	// Stragglers (node ids, sorted) had not ACKed a route without them.
	Late       bool
	Stragglers []string
}

// Stragglers returns the proxies watching service's route that have not ACKed one of
// routeVersions; (*xds.Server).RouteStragglers is one.
type Stragglers func(service string, routeVersions []string) []string

// Retire removes the retiring cluster resources whose service's proxies have all ACKed
// a route that does not name them, or that have retired for timeout or longer. It
// returns what it removed, per service and lateness; on the server's error nothing
// changes and the error is returned.
func (p *Publisher) Retire(stragglers Stragglers, timeout time.Duration) ([]Retired, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.retiring) == 0 {
		return nil, nil
	}
	now := p.now()
	type group struct {
		service string
		late    bool
	}
	found := map[group]*Retired{}
	byType := map[string]xds.Change{}
	var gone []retireKey
	for k, r := range p.retiring {
		left := stragglers(r.service, r.routes)
		late := len(left) > 0
		if late && now.Sub(r.since) < timeout {
			continue
		}
		gone = append(gone, k)
		ch := byType[k.typ]
		ch.Remove = append(ch.Remove, k.name)
		byType[k.typ] = ch
		g := group{r.service, late}
		out := found[g]
		if out == nil {
			out = &Retired{Service: r.service, Late: late}
			found[g] = out
		}
		v := strings.TrimPrefix(k.name, r.service+translate.NameSeparator)
		if !slices.Contains(out.Versions, v) {
			out.Versions = append(out.Versions, v)
		}
		for _, s := range left {
			if !slices.Contains(out.Stragglers, s) {
				out.Stragglers = append(out.Stragglers, s)
			}
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	if err := p.srv.Apply(byType); err != nil {
		return nil, err
	}
	for _, k := range gone {
		delete(p.retiring, k)
	}
	outs := make([]Retired, 0, len(found))
	for _, r := range found {
		slices.Sort(r.Versions)
		slices.Sort(r.Stragglers)
		outs = append(outs, *r)
	}
	slices.SortFunc(outs, func(a, b Retired) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		if a.Late == b.Late {
			return 0
		}
		if a.Late {
			return 1
		}
		return -1
	})
	return outs, nil
}
