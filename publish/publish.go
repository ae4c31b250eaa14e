// Package publish serves each service's desired state on its own: for every service it
// resolves the DNS names (from a cache, see DNS), translates and checks the resources,
// and hands the resources of every service to the xds server. A service that fails keeps
// its last good resources while every other service publishes, and its failure is
// reported per service (Status, Change) until a later publish serves it.
//
// It does no I/O apart from what its Server does; DNS lookups happen in DNS.Refresh and
// DNS.Prime, which callers run outside their locks. It works on plain data (model,
// translate) and serves through xds; it must not import catalog (the file loader and
// its watcher), controller, runner, admin or any storage package (asserted by
// internal/deps).
package publish

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// Server serves the resources of every service; *xds.Server satisfies it.
type Server interface {
	// Apply serves changes keyed by resource type (resources added or replaced by
	// name, names no longer served), keeping every other resource; on error nothing
	// changes.
	Apply(changes map[string]xds.Change) error
}

var _ Server = (*xds.Server)(nil)

// Status is the publication state of one service.
type Status struct {
	Service string `json:"service"`
	// OK is true when the service's desired state is what is served.
	OK bool `json:"ok"`
	// Error says why the desired state is not served; the last good resources keep
	// serving (none when Serving is false).
	Error string `json:"error,omitempty"`
	// FailingSince is when the current failure began.
	FailingSince time.Time `json:"failingSince,omitzero"`
	// Serving is true when resources of the service are served (the desired state's
	// or, while failing, the last good one's).
	Serving bool `json:"serving"`
	// Stale names the DNS names served from an answer whose refresh failed.
	Stale []string `json:"stale,omitempty"`
	// Fallback is true while the service fails and what serves is its fallback state
	// (see PublishWithFallback): it had no last good resources.
	Fallback bool `json:"fallback,omitempty"`
}

// Change is a service's publication changing: a new failure (Err set; reported once per
// distinct failure, not on every retry) or its recovery (Err empty).
type Change struct {
	Service string
	Err     string
}

// Publisher translates and serves each service on its own. It is safe for concurrent
// use.
type Publisher struct {
	srv Server
	dns *DNS
	now func() time.Time

	mu     sync.Mutex
	svcs   map[string]*service
	lastID uint64 // translations so far, numbering them
	// retiring are the clusters (CDS and EDS resources) that left their service's
	// route, kept served until Retire removes them (see retire.go).
	retiring map[retireKey]*retiring
}

type service struct {
	// good is the last good translation, served while the desired state fails, and
	// goodIn the desired state (after DNS) it translates; goodID identifies it.
	good     translate.Resources
	goodIn   translate.Desired
	goodID   uint64
	goodPort uint32
	served   translate.Desired // the desired state (as given, before DNS) good translates
	serving  bool
	// badIn and badErr remember the last failed translation, so that a retry of the
	// same input does not translate it again.
	badIn  *translate.Desired
	badErr error
	// live is what the xds server serves for the service now (liveID identifies the
	// translation, 0 for nothing): a publish hands over only what differs from it.
	live   translate.Resources
	liveID uint64
	status Status
}

// New returns a Publisher serving through srv, resolving DNS names from dns.
func New(srv Server, dns *DNS, now func() time.Time) *Publisher {
	if now == nil {
		now = time.Now
	}
	return &Publisher{srv: srv, dns: dns, now: now, svcs: map[string]*service{}, retiring: map[retireKey]*retiring{}}
}

// Publish serves desired, one entry per service. A service whose names do not resolve
// from the DNS cache or whose resources do not translate or check keeps its last good
// resources (none if it never had any); the others are served. It returns the services
// whose publication changed. The error is the Server's: then nothing changed and every
// service is as before.
//
// The cost is proportional to the services whose desired state changed since the last
// Publish: the others keep their translated, checked resources.
func (p *Publisher) Publish(desired []translate.Desired) ([]Change, error) {
	return p.PublishWithFallback(desired, nil)
}

// PublishWithFallback is Publish where a service that fails and has no last good
// resources (after a restart with a persisted state that no longer translates) serves
// fallback(name) instead, when fallback has one for it and it publishes: its catalog
// state at its known-good version, say. The service is still reported failing (its
// desired state is not served) until its desired state publishes.
func (p *Publisher) PublishWithFallback(desired []translate.Desired, fallback func(service string) (translate.Desired, bool)) ([]Change, error) {
	return p.publish(desired, nil, fallback)
}

// PublishChanged is PublishWithFallback for a caller that keeps each service's desired
// state and knows which ones changed: desired still lists every service, but a service
// not in changed whose desired state is served is taken as given before (the same
// values, its DNS answers unchanged) and costs no resolution, comparison or
// translation. A service that fails is tried again whether it changed or not.
func (p *Publisher) PublishChanged(desired []translate.Desired, changed map[string]bool, fallback func(service string) (translate.Desired, bool)) ([]Change, error) {
	if changed == nil {
		changed = map[string]bool{}
	}
	return p.publish(desired, changed, fallback)
}

// publish is PublishWithFallback, and PublishChanged when changed is not nil.
func (p *Publisher) publish(desired []translate.Desired, changed map[string]bool, fallback func(service string) (translate.Desired, bool)) ([]Change, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	byName := func(a, b translate.Desired) int { return strings.Compare(a.Service.Name, b.Service.Name) }
	if !slices.IsSortedFunc(desired, byName) {
		desired = slices.Clone(desired)
		slices.SortFunc(desired, byName)
	}

	// An outcome per service, kept small: a publish among many services allocates one
	// each.
	type fallbackOutcome struct {
		fb     translate.Desired
		fbIn   translate.Desired
		fbRes  translate.Resources
		fbID   uint64
		fbPort uint32
	}
	type outcome struct {
		d     *translate.Desired
		rd    *translate.Desired // d after DNS
		res   translate.Resources
		id    uint64 // identifies res
		port  uint32
		err   error
		stale []string
		fresh bool // res is a new translation of d
		// failed says d was translated and failed: err is remembered for it.
		failed bool
		// fb is the fallback state served in place of d, which failed (fbIn, fbRes,
		// fbID and fbPort are its translation).
		fb *fallbackOutcome
		// serve is what the service serves after this publish (serveID 0: nothing).
		serve   translate.Resources
		serveID uint64
	}
	outs := make([]outcome, 0, len(desired))
	ports := map[uint32]string{}
	seen := map[string]bool{}
	for i := range desired {
		d := &desired[i]
		name := d.Service.Name
		o := outcome{d: d}
		s := p.svcs[name]
		if s == nil {
			s = &service{}
		}
		dup := seen[name]
		switch {
		case dup:
			o.err = errors.New("duplicate service name")
		case changed != nil && !changed[name] && s.status.OK && s.goodID != 0 && s.liveID == s.goodID:
			// As given before, and served.
			seen[name] = true
			o.rd, o.stale = &s.goodIn, s.status.Stale
			o.res, o.id, o.port = s.good, s.goodID, s.goodPort
		default:
			seen[name] = true
			rd, stale, err := p.dns.Resolve(*d)
			o.stale = stale
			if err != nil {
				o.err = err
				break
			}
			o.rd = &rd
			switch {
			case s.goodID != 0 && reflect.DeepEqual(rd, s.goodIn):
				o.res, o.id, o.port = s.good, s.goodID, s.goodPort
			case s.badIn != nil && reflect.DeepEqual(rd, *s.badIn):
				o.err = s.badErr
			default:
				res, err := translate.TranslateService(rd)
				if err != nil {
					o.err, o.failed = err, true
					break
				}
				p.lastID++
				o.res, o.id, o.port, o.fresh = res, p.lastID, rd.Service.Port, true
			}
		}
		if o.err == nil {
			if other, ok := ports[o.port]; ok {
				o.err = fmt.Errorf("port %d already used by service %q", o.port, other)
			}
		}
		if o.err == nil {
			ports[o.port] = name
			o.serve, o.serveID = o.res, o.id
		} else if s.serving {
			if _, taken := ports[s.goodPort]; !taken {
				ports[s.goodPort] = name
				o.serve, o.serveID = s.good, s.goodID
			}
		} else if fallback != nil && !dup {
			if fd, ok := fallback(name); ok {
				if rd, _, err := p.dns.Resolve(fd); err == nil {
					if res, err := translate.TranslateService(rd); err == nil {
						if _, taken := ports[rd.Service.Port]; !taken {
							ports[rd.Service.Port] = name
							p.lastID++
							o.fb = &fallbackOutcome{fb: fd, fbIn: rd, fbRes: res, fbID: p.lastID, fbPort: rd.Service.Port}
							o.serve, o.serveID = res, p.lastID
						}
					}
				}
			}
		}
		outs = append(outs, o)
	}

	// Hand over only what changed: the resources of the services that serve another
	// translation than before, and the names of those that no longer serve them. A
	// cluster's resources the service no longer serves are not removed yet: a proxy may
	// still hold a route naming it, since clusters are sent before routes. They retire
	// (see Retire) once every proxy of the route ACKed one that does not.
	byType := map[string]xds.Change{}
	rt := p.retireChanges()
	diff := func(name string, live, serve translate.Resources) {
		for typ, rs := range serve.ByType() {
			if len(rs) > 0 {
				ch := byType[typ]
				ch.Upsert = append(ch.Upsert, rs...)
				byType[typ] = ch
			}
			for _, r := range rs {
				rt.served(typ, cachev3.GetResourceName(r))
			}
		}
		keep := map[retireKey]bool{}
		for typ, rs := range serve.ByType() {
			for _, r := range rs {
				keep[retireKey{typ, cachev3.GetResourceName(r)}] = true
			}
		}
		for typ, rs := range live.ByType() {
			for _, r := range rs {
				if n := cachev3.GetResourceName(r); !keep[retireKey{typ, n}] {
					if rt.left(name, typ, n) {
						continue
					}
					ch := byType[typ]
					ch.Remove = append(ch.Remove, n)
					byType[typ] = ch
				}
			}
		}
		rt.routed(name, serve)
	}
	kept := map[string]bool{}
	for _, o := range outs {
		name := o.d.Service.Name
		if kept[name] {
			continue // a duplicate: the first entry is the service
		}
		kept[name] = true
		s := p.svcs[name]
		if s == nil {
			s = &service{}
		}
		if o.serveID != s.liveID {
			diff(name, s.live, o.serve)
		}
	}
	for name, s := range p.svcs {
		if !kept[name] && s.liveID != 0 {
			diff(name, s.live, translate.Resources{})
		}
	}
	if len(byType) > 0 {
		if err := p.srv.Apply(byType); err != nil {
			return nil, err
		}
	}

	now := p.now()
	rt.commit(now)
	var changes []Change
	next := make(map[string]*service, len(outs))
	for _, o := range outs {
		name := o.d.Service.Name
		if next[name] != nil {
			continue // a duplicate: the first entry is the service
		}
		s := p.svcs[name]
		if s == nil {
			s = &service{}
		}
		next[name] = s
		s.live, s.liveID = o.serve, o.serveID
		wasOK, hadStatus := s.status.OK, s.status.Service != ""
		prevErr := s.status.Error
		s.status.Service, s.status.Stale = name, o.stale
		if o.err == nil {
			if o.fresh {
				s.good, s.goodIn, s.goodID, s.goodPort = o.res, *o.rd, o.id, o.port
			}
			s.served, s.serving = *o.d, true
			s.badIn, s.badErr = nil, nil
			s.status.OK, s.status.Error, s.status.FailingSince = true, "", time.Time{}
			s.status.Fallback = false
			if hadStatus && !wasOK {
				changes = append(changes, Change{Service: name})
			}
		} else {
			if o.fb != nil {
				f := o.fb
				s.good, s.goodIn, s.goodID, s.goodPort = f.fbRes, f.fbIn, f.fbID, f.fbPort
				s.served, s.serving = f.fb, true
				s.status.Fallback = true
			}
			if o.failed {
				in := *o.rd
				s.badIn, s.badErr = &in, o.err
			}
			msg := o.err.Error()
			if wasOK || !hadStatus {
				s.status.FailingSince = now
			}
			s.status.OK, s.status.Error = false, msg
			if msg != prevErr {
				changes = append(changes, Change{Service: name, Err: msg})
			}
		}
		s.status.Serving = s.serving
	}
	p.svcs = next
	return changes, nil
}

// Check reports whether desired would publish (its DNS names have answers in the cache,
// its resources translate and check) without serving it.
func (p *Publisher) Check(desired translate.Desired) error {
	rd, _, err := p.dns.Resolve(desired)
	if err != nil {
		return err
	}
	_, err = translate.TranslateService(rd)
	return err
}

// Status returns the publication state of service (false when it was never published).
func (p *Publisher) Status(service string) (Status, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.svcs[service]
	if s == nil {
		return Status{}, false
	}
	st := s.status
	st.Stale = slices.Clone(st.Stale)
	return st, true
}

// Failing returns the services whose desired state is not served, sorted.
func (p *Publisher) Failing() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name, s := range p.svcs {
		if !s.status.OK {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Served returns the desired state (as given to Publish, before DNS) whose resources
// serve for service: its last good one while it fails.
func (p *Publisher) Served(service string) (translate.Desired, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.svcs[service]
	if s == nil || !s.serving {
		return translate.Desired{}, false
	}
	return s.served, true
}
