package xds

import (
	"fmt"
	"github.com/octoacme/octoroll/model"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
)

// The config dump's types are plain data in model (see ProxyStatus).
type (
	ProxyConfig    = model.ProxyConfig
	TypeConfig     = model.TypeConfig
	SentConfig     = model.SentConfig
	ConfigResource = model.ConfigResource
)

// heldConfig is a response as the tracker keeps it: versions and where the content is.
type heldConfig struct {
	version   string
	at        time.Time
	resources map[string]string
	content   resourceSource
}

// proxyConfig collects, under the tracker's lock, what the config dump of one proxy
// needs; the resources are rendered afterwards, outside the lock.
func (t *tracker) proxyConfig(id string) (ProxyConfig, map[string][2]*heldConfig, bool) {
	t.lock()
	defer t.unlock()
	p := t.proxies[id]
	if p == nil {
		return ProxyConfig{}, nil, false
	}
	out := ProxyConfig{NodeID: p.id, Cluster: p.cluster, Zone: p.zone}
	held := map[string][2]*heldConfig{} // type URL -> {sent, acked}
	nacks := map[string]*Nack{}
	seq := map[string]uint64{} // of the latest response per type, over p's streams
	for _, st := range p.streams {
		st.mu.Lock()
		for typ, s := range st.sent {
			if s.nonce == "" || s.seq <= seq[typ] {
				continue
			}
			seq[typ] = s.seq
			h := held[typ]
			h[0] = &heldConfig{version: s.version, at: s.at, resources: s.resources, content: s.content}
			held[typ] = h
		}
		st.mu.Unlock()
	}
	for typ, a := range p.acked {
		h := held[typ]
		h[1] = &heldConfig{version: a.AckedVersion, at: a.AckedAt, resources: a.Acked, content: p.ackedContent[typ]}
		held[typ] = h
	}
	for typ, n := range p.nackByType {
		cp := *n
		cp.Resources = maps.Clone(n.Resources)
		nacks[typ] = &cp
		if _, ok := held[typ]; !ok {
			held[typ] = [2]*heldConfig{}
		}
	}
	for _, typ := range orderTypes(slices.Collect(maps.Keys(held))) {
		out.Types = append(out.Types, TypeConfig{TypeURL: typ, LastNACK: nacks[typ]})
	}
	return out, held, true
}

// orderTypes sorts type URLs in make-before-break order, unknown types last by URL.
func orderTypes(typs []string) []string {
	rank := func(t string) int {
		if i := slices.Index(servedTypes, t); i >= 0 {
			return i
		}
		return len(servedTypes)
	}
	slices.SortFunc(typs, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return typs
}

// render turns a held response into its SentConfig, resources sorted by name.
func (h *heldConfig) render() *SentConfig {
	if h == nil {
		return nil
	}
	sc := &SentConfig{Version: h.version, At: h.at, Resources: []ConfigResource{}}
	for _, n := range slices.Sorted(maps.Keys(h.resources)) {
		r := ConfigResource{Name: n, Version: h.resources[n]}
		var a *anypb.Any
		if h.content != nil {
			a = h.content.resource(n, r.Version)
		}
		if a != nil {
			b, err := protojson.Marshal(a)
			if err != nil {
				r.Error = fmt.Sprintf("render %s: %v", a.GetTypeUrl(), err)
			} else {
				r.Resource = b
			}
		}
		sc.Resources = append(sc.Resources, r)
	}
	return sc
}

// ProxyConfig returns what was sent to and ACKed by the proxy with node id id, with the
// resources' content, or false when no such proxy is connected.
func (s *Server) ProxyConfig(id string) (ProxyConfig, bool) {
	out, held, ok := s.track.proxyConfig(id)
	if !ok {
		return ProxyConfig{}, false
	}
	for i := range out.Types {
		h := held[out.Types[i].TypeURL]
		out.Types[i].Sent, out.Types[i].Acked = h[0].render(), h[1].render()
	}
	if out.Types == nil {
		out.Types = []TypeConfig{}
	}
	return out, true
}
