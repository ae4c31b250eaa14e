package publish

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/translate"
)

// DefaultDNSMinTTL and DefaultDNSMaxTTL bound how long an answer is kept before its
// name is looked up again: its records' TTL, raised to the floor (a TTL of 0 would mean
// a lookup on every tick) and lowered to the ceiling (a name whose TTL is a day still
// follows a pod that went away). An answer without TTLs is kept for the ceiling.
const (
	DefaultDNSMinTTL = 5 * time.Second
	DefaultDNSMaxTTL = 5 * time.Minute
)

// MinDNSRefresh is the shortest floor or ceiling octoroll accepts: names are refreshed
// on the runner's publication tick, which is a second.
const MinDNSRefresh = time.Second

// dnsParallel bounds the lookups of one Refresh or Prime that run at once.
const dnsParallel = 16

// DNS keeps the answers of the DNS names of the desired state (endpoint names, SRV
// names, metrics names), so that publication reads them without I/O (under the
// runner's lock) and a lookup failure (NXDOMAIN, SERVFAIL, a timeout) keeps the last
// good answer, reported stale. Lookups happen only in Refresh and Prime, which callers
// run outside their locks. It is safe for concurrent use.
type DNS struct {
	lookup         HostResolver
	now            func() time.Time
	minTTL, maxTTL time.Duration

	mu    sync.Mutex
	hosts map[string]*hostEntry // by NameOf
	gen   uint64                // answers changed so far (see Generation)
}

type hostEntry struct {
	addrs    []netip.AddrPort // the last good answer, nil before one
	at       time.Time        // when addrs was looked up
	keep     time.Duration    // how long addrs is kept: its TTL within the bounds
	err      error            // the last lookup's failure, nil when it succeeded
	errAt    time.Time
	lastUsed time.Time // when a publish last asked for the name
}

// DNSOptions configure a DNS cache. Zero values take the defaults.
type DNSOptions struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// MinTTL and MaxTTL bound how long an answer is kept (DefaultDNSMinTTL,
	// DefaultDNSMaxTTL); MinTTL is lowered to MaxTTL when above it.
	MinTTL, MaxTTL time.Duration
}

// NewDNS returns a DNS cache resolving through lookup, keeping answers for at most
// maxTTL (DefaultDNSMaxTTL when <= 0). See NewDNSCache.
func NewDNS(lookup HostResolver, now func() time.Time, maxTTL time.Duration) *DNS {
	return NewDNSCache(lookup, DNSOptions{Now: now, MaxTTL: maxTTL})
}

// NewDNSCache returns a DNS cache resolving through lookup. A name that resolved is
// looked up again when its answer's TTL, within the bounds, has passed (with a
// RecordResolver; other resolvers tell no TTL: MaxTTL); a name whose last lookup failed
// is looked up on every Refresh.
func NewDNSCache(lookup HostResolver, o DNSOptions) *DNS {
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultDNSMaxTTL
	}
	if o.MinTTL <= 0 {
		o.MinTTL = DefaultDNSMinTTL
	}
	o.MinTTL = min(o.MinTTL, o.MaxTTL)
	if o.Now == nil {
		o.Now = time.Now
	}
	return &DNS{lookup: lookup, now: o.Now, minTTL: o.MinTTL, maxTTL: o.MaxTTL, hosts: map[string]*hostEntry{}}
}

// Hosts returns the DNS names (NameOf) of desired's endpoints, metrics endpoints and
// scrape targets.
func Hosts(desired ...translate.Desired) []string {
	var out []string
	for _, d := range desired {
		out = append(out, ServiceHosts(d.Service)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ServiceHosts returns the DNS names (NameOf) among svc's endpoints, its versions'
// metrics endpoints and its scrape targets.
func ServiceHosts(svc model.Service) []string {
	var out []string
	add := func(eps []model.Endpoint) {
		for _, ep := range eps {
			if n := NameOf(ep); n != "" {
				out = append(out, n)
			}
		}
	}
	for _, v := range svc.Versions {
		add(v.Endpoints)
		add(v.Metrics)
	}
	add(svc.Metrics.Targets)
	return out
}

// Prime marks hosts (NameOf's form) in use and looks up, now, those that have no answer
// yet (a new catalog, a rollout's canary endpoints), so that the publish that follows
// finds them. It reports whether any answer changed.
func (d *DNS) Prime(ctx context.Context, hosts []string) bool {
	d.mu.Lock()
	var todo []string
	for _, h := range hosts {
		e := d.hosts[h]
		if e == nil {
			e = &hostEntry{}
			d.hosts[h] = e
		}
		e.lastUsed = d.now()
		if e.addrs == nil {
			todo = append(todo, h)
		}
	}
	d.mu.Unlock()
	return d.resolve(ctx, todo)
}

// Use marks hosts (NameOf's form) in use, so that Refresh keeps refreshing them; a new
// one is looked up on the next Refresh. It does no I/O.
func (d *DNS) Use(hosts []string) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range hosts {
		e := d.hosts[h]
		if e == nil {
			e = &hostEntry{}
			d.hosts[h] = e
		}
		e.lastUsed = now
	}
}

// Refresh looks up every known name whose answer is older than its TTL (within the
// bounds) or whose last lookup failed, and forgets names nothing asked for over ten
// times the longest TTL. It reports whether any answer changed (the caller republishes).
func (d *DNS) Refresh(ctx context.Context) bool {
	now := d.now()
	d.mu.Lock()
	var todo []string
	for h, e := range d.hosts {
		if now.Sub(e.lastUsed) > 10*d.maxTTL {
			delete(d.hosts, h)
			continue
		}
		if e.addrs == nil || e.err != nil || now.Sub(e.at) >= e.keep {
			todo = append(todo, h)
		}
	}
	d.mu.Unlock()
	slices.Sort(todo)
	return d.resolve(ctx, todo)
}

// NextRefresh returns when Refresh next has a lookup to make: the earliest expiry of a
// good answer, or now when a name has none (zero when no name is known).
func (d *DNS) NextRefresh() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var next time.Time
	for _, e := range d.hosts {
		due := e.at.Add(e.keep)
		if e.addrs == nil || e.err != nil {
			due = d.now()
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// resolve looks hosts up, dnsParallel at a time, and stores the answers.
func (d *DNS) resolve(ctx context.Context, hosts []string) bool {
	var changed atomic.Bool
	sem := make(chan struct{}, dnsParallel)
	var wg sync.WaitGroup
	for _, h := range hosts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if d.resolveOne(ctx, h) {
				changed.Store(true)
			}
		})
	}
	wg.Wait()
	return changed.Load()
}

func (d *DNS) resolveOne(ctx context.Context, h string) bool {
	rec, err := lookupRecords(ctx, d.lookup, h)
	keep := d.maxTTL
	if rec.TTL != NoTTL {
		keep = min(max(rec.TTL, d.minTTL), d.maxTTL)
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.hosts[h]
	if e == nil {
		e = &hostEntry{lastUsed: now}
		d.hosts[h] = e
	}
	changed := false
	if err != nil {
		if e.err == nil || e.err.Error() != err.Error() {
			changed = true // a new failure changes what the status says
		}
		e.err, e.errAt = err, now
	} else {
		if e.err != nil || !slices.Equal(e.addrs, rec.Addrs) {
			changed = true
		}
		e.addrs, e.at, e.keep, e.err = rec.Addrs, now, keep, nil
	}
	if changed {
		d.gen++
	}
	return changed
}

// Generation changes whenever an answer changes (Refresh or Prime reports it): a
// caller that keeps what it derived from the answers derives it again when the
// generation moved.
func (d *DNS) Generation() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gen
}

// Resolve returns desired with every DNS name replaced by its cached addresses and
// every SRV name by its cached targets (as ResolveEndpoints does), and a note for each
// name served from an answer whose refresh failed. A name with no good answer fails the
// service; the name is then looked up on the next Refresh. It does no I/O.
func (d *DNS) Resolve(desired translate.Desired) (translate.Desired, []string, error) {
	var stale []string
	out, err := resolveDesired(desired, func(ep model.Endpoint) ([]model.Endpoint, error) {
		addrs, note, err := d.cached(NameOf(ep))
		if err != nil {
			return nil, fmt.Errorf("resolve %q: %w", NameOf(ep), err)
		}
		if note != "" {
			stale = append(stale, note)
		}
		return endpointsOf(ep, addrs), nil
	})
	return out, stale, err
}

// Expand returns svc with each endpoint, metrics endpoint and scrape target that is a
// DNS or SRV name replaced by the addresses its cached answer holds (a name without
// one stays as it is), for the health prober and the scrape source to reach every
// instance behind a name, each on its own. It does no I/O.
func (d *DNS) Expand(svc model.Service) model.Service {
	expand := func(eps []model.Endpoint) []model.Endpoint {
		if !slices.ContainsFunc(eps, func(ep model.Endpoint) bool { return NameOf(ep) != "" }) {
			return eps
		}
		out := make([]model.Endpoint, 0, len(eps))
		for _, ep := range eps {
			if n := NameOf(ep); n != "" {
				if addrs, _, err := d.cached(n); err == nil {
					out = append(out, endpointsOf(ep, addrs)...)
					continue
				}
			}
			out = append(out, ep)
		}
		slices.SortStableFunc(out, func(a, b model.Endpoint) int { return strings.Compare(a.String(), b.String()) })
		return slices.Compact(out)
	}
	svc.Versions = slices.Clone(svc.Versions)
	for i := range svc.Versions {
		svc.Versions[i].Endpoints = expand(svc.Versions[i].Endpoints)
		svc.Versions[i].Metrics = expand(svc.Versions[i].Metrics)
	}
	svc.Metrics.Targets = expand(svc.Metrics.Targets)
	return svc
}

// Cached returns the addresses the cache holds for name (NameOf's form; the last good
// answer, even when its refresh failed), or why it holds none. It does no I/O.
func (d *DNS) Cached(name string) ([]netip.Addr, error) {
	addrs, _, err := d.cached(name)
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.Addr())
	}
	return slices.Compact(out), err
}

// cached answers name from the cache only, with a note when the answer is stale.
func (d *DNS) cached(name string) ([]netip.AddrPort, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.hosts[name]
	if e == nil {
		e = &hostEntry{}
		d.hosts[name] = e
	}
	e.lastUsed = d.now()
	switch {
	case e.addrs == nil && e.err != nil:
		return nil, "", e.err
	case e.addrs == nil:
		return nil, "", fmt.Errorf("not resolved yet (looked up on the next refresh)")
	case e.err != nil:
		return slices.Clone(e.addrs), fmt.Sprintf("%s: lookup failed at %s (%v); serving the answer of %s",
			name, e.errAt.UTC().Format(time.RFC3339), e.err, e.at.UTC().Format(time.RFC3339)), nil
	}
	return slices.Clone(e.addrs), "", nil
}
