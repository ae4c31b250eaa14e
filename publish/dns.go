package publish

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/octoacme/octoroll/model"
	"github.com/octoacme/octoroll/translate"
)

// DefaultDNSRefresh is how often a name that resolved is resolved again.
const DefaultDNSRefresh = 30 * time.Second

// MinDNSRefresh is the shortest refresh interval octoroll accepts: names are refreshed
// on the runner's publication tick, which is a second.
const MinDNSRefresh = time.Second

// DNS keeps the answers of the DNS endpoint names of the desired state, so that
// publication reads them without I/O (under the runner's lock) and a lookup failure
// keeps the last good answer. Lookups happen only in Refresh and Prime, which callers
// run outside their locks. It is safe for concurrent use.
type DNS struct {
	lookup  HostResolver
	now     func() time.Time
	refresh time.Duration

	mu    sync.Mutex
	hosts map[string]*hostEntry
}

type hostEntry struct {
	addrs    []netip.Addr // the last good answer, nil before one
	at       time.Time    // when addrs was looked up
	err      error        // the last lookup's failure, nil when it succeeded
	errAt    time.Time
	lastUsed time.Time // when a publish last asked for the name
}

// NewDNS returns a DNS cache resolving through lookup. refresh is how often a name
// that resolved is looked up again (DefaultDNSRefresh when <= 0); a name whose last
// lookup failed is looked up on every Refresh.
func NewDNS(lookup HostResolver, now func() time.Time, refresh time.Duration) *DNS {
	if refresh <= 0 {
		refresh = DefaultDNSRefresh
	}
	if now == nil {
		now = time.Now
	}
	return &DNS{lookup: lookup, now: now, refresh: refresh, hosts: map[string]*hostEntry{}}
}

// Hosts returns the DNS names (endpoint hosts that are not IP addresses) of desired.
func Hosts(desired ...translate.Desired) []string {
	var out []string
	for _, d := range desired {
		out = append(out, ServiceHosts(d.Service)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ServiceHosts returns the DNS names among svc's endpoint hosts.
func ServiceHosts(svc model.Service) []string {
	var out []string
	for _, v := range svc.Versions {
		for _, ep := range v.Endpoints {
			if _, err := netip.ParseAddr(ep.Host); err != nil && ep.Host != "" {
				out = append(out, ep.Host)
			}
		}
	}
	return out
}

// Prime looks up, now, the names of hosts that have no answer yet (a new catalog, a
// rollout's canary endpoints), so that the publish that follows finds them. It
// reports whether any answer changed.
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

// Refresh looks up every known name whose answer is older than the refresh interval
// or whose last lookup failed, and forgets names no publish asked for over ten
// refresh intervals. It reports whether any answer changed (the caller republishes).
func (d *DNS) Refresh(ctx context.Context) bool {
	now := d.now()
	d.mu.Lock()
	var todo []string
	for h, e := range d.hosts {
		if now.Sub(e.lastUsed) > 10*d.refresh {
			delete(d.hosts, h)
			continue
		}
		if e.addrs == nil || e.err != nil || now.Sub(e.at) >= d.refresh {
			todo = append(todo, h)
		}
	}
	d.mu.Unlock()
	slices.Sort(todo)
	return d.resolve(ctx, todo)
}

func (d *DNS) resolve(ctx context.Context, hosts []string) bool {
	changed := false
	for _, h := range hosts {
		addrs, err := d.lookup.LookupNetIP(ctx, "ip", h)
		if err == nil && len(addrs) == 0 {
			err = fmt.Errorf("no addresses")
		}
		ips := make([]netip.Addr, 0, len(addrs))
		for _, a := range addrs {
			ips = append(ips, a.Unmap())
		}
		slices.SortFunc(ips, netip.Addr.Compare)
		ips = slices.Compact(ips)
		now := d.now()
		d.mu.Lock()
		e := d.hosts[h]
		if e == nil {
			e = &hostEntry{lastUsed: now}
			d.hosts[h] = e
		}
		if err != nil {
			if e.err == nil || e.err.Error() != err.Error() {
				changed = true // a new failure changes what the status says
			}
			e.err, e.errAt = err, now
		} else {
			if e.err != nil || !slices.Equal(e.addrs, ips) {
				changed = true
			}
			e.addrs, e.at, e.err = ips, now, nil
		}
		d.mu.Unlock()
	}
	return changed
}

// Resolve returns desired with every DNS name replaced by its cached addresses (as
// ResolveEndpoints does), and a note for each name served from an answer whose
// refresh failed. A name with no good answer fails the service; the name is then looked
// up on the next Refresh. It does no I/O.
func (d *DNS) Resolve(desired translate.Desired) (translate.Desired, []string, error) {
	c := cached{d: d}
	out, err := ResolveEndpoints(context.Background(), &c, desired)
	return out, c.stale, err
}

// Cached returns the answer the cache holds for host (the last good one, even when its
// refresh failed), or why it holds none. It does no I/O.
func (d *DNS) Cached(host string) ([]netip.Addr, error) {
	c := cached{d: d}
	return c.LookupNetIP(context.Background(), "ip", host)
}

// cached answers lookups from the DNS cache only.
type cached struct {
	d     *DNS
	stale []string
}

func (c *cached) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.hosts[host]
	if e == nil {
		e = &hostEntry{}
		d.hosts[host] = e
	}
	e.lastUsed = d.now()
	switch {
	case e.addrs == nil && e.err != nil:
		return nil, e.err
	case e.addrs == nil:
		return nil, fmt.Errorf("not resolved yet (looked up on the next refresh)")
	case e.err != nil:
		c.stale = append(c.stale, fmt.Sprintf("%s: lookup failed at %s (%v); serving the answer of %s",
			host, e.errAt.UTC().Format(time.RFC3339), e.err, e.at.UTC().Format(time.RFC3339)))
	}
	return slices.Clone(e.addrs), nil
}
