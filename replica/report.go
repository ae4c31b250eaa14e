package replica

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/xds"
)

// Report is the part of this replica's record its proxies make: how many are connected,
// how far they ACKed each service's route, and how many of those watching a service's
// route hold each cluster of it that this replica serves. It follows the xDS server's
// change watch: an update recomputes only the services a proxy's subscription, ACK or
// NACK, or a publish touched since the last one, so that its cost is that of the
// changes, not services × proxies. Each service's entries are kept encoded, and a
// record is their concatenation.
type Report struct {
	xs      *xds.Server
	watch   *xds.ChangeWatch
	catalog func() *catalog.Catalog

	mu      sync.Mutex
	cat     *catalog.Catalog
	names   []string // the catalog's services, sorted
	keys    [][]byte // names encoded as JSON object keys, `"name":`
	size    int      // of the last record encoded
	inCat   map[string]bool
	proxies int
	// routes and clusters are, by service, the encoded xds.Convergence of its route and
	// map of version to xds.ClusterWarmth (absent when it serves no cluster).
	routes   map[string][]byte
	clusters map[string][]byte
}

// NewReport follows xs for the services of the catalog cat returns.
func NewReport(xs *xds.Server, cat func() *catalog.Catalog) *Report {
	return &Report{xs: xs, watch: xs.WatchChanges(), catalog: cat,
		routes: map[string][]byte{}, clusters: map[string][]byte{}}
}

// Changed is signalled when Update has something to recompute.
func (p *Report) Changed() <-chan struct{} { return p.watch.C() }

// Update recomputes the entries of the services that changed since the last Update (of
// every service after a catalog change), and reports whether any entry changed.
func (p *Report) Update() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := p.watch.Take()
	if cat := p.catalog(); cat != p.cat {
		p.cat, ch.All = cat, true
		p.names, p.keys, p.inCat = nil, nil, map[string]bool{}
		if cat != nil {
			for _, s := range cat.Services {
				p.names = append(p.names, s.Name)
				p.inCat[s.Name] = true
			}
		}
		slices.Sort(p.names)
		for _, s := range p.names {
			key, _ := json.Marshal(s)
			p.keys = append(p.keys, append(key, ':'))
		}
	}
	changed := false
	if ch.Proxies || ch.All {
		if n := p.xs.ProxyCount(); n != p.proxies {
			p.proxies, changed = n, true
		}
	}
	services := ch.Services
	if ch.All {
		services = p.names
		for s := range p.routes {
			if !p.inCat[s] {
				delete(p.routes, s)
				delete(p.clusters, s)
				changed = true
			}
		}
	}
	for _, s := range services {
		if p.service(s) {
			changed = true
		}
	}
	return changed
}

// service recomputes the entries of s, and reports whether they changed.
func (p *Report) service(s string) bool {
	if !p.inCat[s] {
		_, had := p.routes[s]
		delete(p.routes, s)
		delete(p.clusters, s)
		return had
	}
	route, _ := json.Marshal(p.xs.Convergence(s))
	var clusters []byte
	if versions := p.xs.ServedVersions(s); len(versions) > 0 {
		w := make(map[string]xds.ClusterWarmth, len(versions))
		for _, v := range versions {
			w[v] = p.xs.ClusterWarmth(s, v)
		}
		clusters, _ = json.Marshal(w)
	}
	changed := !bytes.Equal(route, p.routes[s]) || !bytes.Equal(clusters, p.clusters[s])
	p.routes[s] = route
	if clusters == nil {
		delete(p.clusters, s)
	} else {
		p.clusters[s] = clusters
	}
	return changed
}

// encode encodes info with the report's Proxies, Routes and Clusters (info's own are
// ignored): the record as written.
func (p *Report) encode(info Info) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	info.Proxies, info.Routes, info.Clusters = p.proxies, nil, nil
	head, _ := json.Marshal(info)
	out := make([]byte, 0, max(p.size, len(head))+64)
	out = append(out, head[:len(head)-1]...) // the object without its closing brace
	field := func(name string, m map[string][]byte) {
		out = append(out, `,"`+name+`":{`...)
		first := true
		for i, s := range p.names {
			b, ok := m[s]
			if !ok {
				continue
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = append(append(out, p.keys[i]...), b...)
		}
		out = append(out, '}')
	}
	field("routes", p.routes)
	field("clusters", p.clusters)
	out = append(out, '}')
	p.size = len(out)
	return out
}
