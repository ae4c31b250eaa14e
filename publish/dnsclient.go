package publish

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Records is one name's answer: the addresses it stands for and how long they may be
// kept.
type Records struct {
	// Addrs are the addresses, sorted, each once: port 0 for an address name (A and
	// AAAA records; the endpoint gives the port), the target's port for an SRV name.
	Addrs []netip.AddrPort
	// TTL is the smallest TTL of the records that gave Addrs (CNAMEs, SRV records and
	// their targets' addresses included); NoTTL when the resolver does not tell.
	TTL time.Duration
}

// NoTTL is the TTL of an answer from a resolver that does not report TTLs (the Go
// standard library's): it is kept for the cache's longest TTL.
const NoTTL time.Duration = -1

// RecordResolver looks up address and SRV records with their TTLs. *DNSClient
// satisfies it; a HostResolver that does not is asked for addresses only, without
// TTLs.
type RecordResolver interface {
	// LookupAddrs returns the A and AAAA addresses of host.
	LookupAddrs(ctx context.Context, host string) (Records, error)
	// LookupSRV returns an address and port per target of name's SRV records of the
	// lowest priority (weights are not used: every target is one endpoint).
	LookupSRV(ctx context.Context, name string) (Records, error)
}

// DefaultDNSTimeout bounds one DNS query to one server; resolv.conf's "options timeout"
// replaces it when the system's configuration is used.
const DefaultDNSTimeout = 2 * time.Second

// DNSClient is a stub resolver speaking the DNS protocol (UDP, TCP when the answer is
// truncated) to recursive servers, reporting the records' TTLs. Queries go to Servers in
// order: a server that times out or answers other than NOERROR or NXDOMAIN is followed
// by the next one, Attempts rounds over the list. A name with fewer than Ndots dots is
// tried with each Search suffix first, as resolv.conf(5) says.
type DNSClient struct {
	Servers  []string // host:port
	Search   []string
	Ndots    int
	Timeout  time.Duration // of one query to one server; default DefaultDNSTimeout
	Attempts int           // rounds over Servers; default 1
}

var (
	_ RecordResolver = (*DNSClient)(nil)
	_ HostResolver   = (*DNSClient)(nil)
)

// NewDNSClient returns a client of server (host:port) or, when server is empty, of the
// servers, search list and options of resolvConf (/etc/resolv.conf).
func NewDNSClient(server, resolvConf string) (*DNSClient, error) {
	if server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			return nil, fmt.Errorf("dns server %q: %w", server, err)
		}
		return &DNSClient{Servers: []string{server}, Ndots: 1, Attempts: 2}, nil
	}
	conf, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", resolvConf, err)
	}
	if len(conf.Servers) == 0 {
		return nil, fmt.Errorf("%s names no nameserver", resolvConf)
	}
	c := &DNSClient{Search: conf.Search, Ndots: conf.Ndots, Attempts: max(conf.Attempts, 1)}
	for _, s := range conf.Servers {
		c.Servers = append(c.Servers, net.JoinHostPort(s, conf.Port))
	}
	if conf.Timeout > 0 {
		c.Timeout = time.Duration(conf.Timeout) * time.Second
	}
	return c, nil
}

// errNoSuchName is a name the servers say does not exist (NXDOMAIN).
var errNoSuchName = errors.New("no such name (NXDOMAIN)")

// errNoRecords is a name that exists with no record of the type asked for.
var errNoRecords = errors.New("no records")

// LookupNetIP returns host's addresses (HostResolver).
func (c *DNSClient) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	rec, err := c.LookupAddrs(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, len(rec.Addrs))
	for i, a := range rec.Addrs {
		out[i] = a.Addr()
	}
	return out, nil
}

// LookupAddrs returns host's A and AAAA addresses (RecordResolver).
func (c *DNSClient) LookupAddrs(ctx context.Context, host string) (Records, error) {
	return c.search(ctx, host, c.addrs)
}

// LookupSRV returns a target per SRV record of name (RecordResolver).
func (c *DNSClient) LookupSRV(ctx context.Context, name string) (Records, error) {
	return c.search(ctx, name, c.srv)
}

// search tries the names of host's search list in order until one has records.
func (c *DNSClient) search(ctx context.Context, host string, lookup func(context.Context, string) (Records, error)) (Records, error) {
	conf := dns.ClientConfig{Search: c.Search, Ndots: c.Ndots}
	var firstErr error
	for _, name := range conf.NameList(host) {
		rec, err := lookup(ctx, name)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, errNoSuchName) && !errors.Is(err, errNoRecords) {
			return Records{}, err // a failure, not an answer: keep what is known
		}
		if firstErr == nil || errors.Is(firstErr, errNoSuchName) && errors.Is(err, errNoRecords) {
			firstErr = err
		}
	}
	if errors.Is(firstErr, errNoRecords) {
		return Records{}, fmt.Errorf("%s: no addresses", host)
	}
	return Records{}, fmt.Errorf("%s: %w", host, errNoSuchName)
}

// addrs asks for the A and AAAA records of the fully qualified name, at once.
func (c *DNSClient) addrs(ctx context.Context, name string) (Records, error) {
	var (
		wg   sync.WaitGroup
		msgs [2]*dns.Msg
		errs [2]error
	)
	for i, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		wg.Go(func() { msgs[i], errs[i] = c.query(ctx, name, t) })
	}
	wg.Wait()
	if err := joinErrs(errs[:]); err != nil {
		return Records{}, err
	}
	rec := Records{TTL: NoTTL}
	nx := true
	for _, m := range msgs {
		if m.Rcode != dns.RcodeNameError {
			nx = false
		}
		addAnswer(&rec, m.Answer, 0)
	}
	return finish(rec, nx)
}

// srv asks for the SRV records of the fully qualified name and the addresses of their
// targets (from the answer's additional section, else looked up).
func (c *DNSClient) srv(ctx context.Context, name string) (Records, error) {
	m, err := c.query(ctx, name, dns.TypeSRV)
	if err != nil {
		return Records{}, err
	}
	rec := Records{TTL: NoTTL}
	var srvs []*dns.SRV
	for _, rr := range m.Answer {
		switch r := rr.(type) {
		case *dns.SRV:
			srvs = append(srvs, r)
			rec.TTL = minTTL(rec.TTL, r.Hdr.Ttl)
		case *dns.CNAME:
			rec.TTL = minTTL(rec.TTL, r.Hdr.Ttl)
		}
	}
	if len(srvs) > 0 {
		best := slices.MinFunc(srvs, func(a, b *dns.SRV) int { return int(a.Priority) - int(b.Priority) }).Priority
		srvs = slices.DeleteFunc(srvs, func(s *dns.SRV) bool { return s.Priority != best || s.Target == "." })
	}
	for _, s := range srvs {
		var extra []dns.RR
		for _, rr := range m.Extra {
			if strings.EqualFold(rr.Header().Name, s.Target) {
				extra = append(extra, rr)
			}
		}
		n := len(rec.Addrs)
		addAnswer(&rec, extra, s.Port)
		if len(rec.Addrs) > n {
			continue
		}
		t, err := c.addrs(ctx, s.Target)
		if err == nil && len(t.Addrs) == 0 {
			err = fmt.Errorf("%s: no addresses", s.Target)
		}
		if err != nil {
			return Records{}, fmt.Errorf("SRV target of %s: %w", name, err)
		}
		for _, a := range t.Addrs {
			rec.Addrs = append(rec.Addrs, netip.AddrPortFrom(a.Addr(), s.Port))
		}
		if t.TTL != NoTTL {
			rec.TTL = lowerTTL(rec.TTL, t.TTL)
		}
	}
	return finish(rec, m.Rcode == dns.RcodeNameError)
}

// addAnswer adds the addresses of rrs, with port, to rec, and lowers rec's TTL to
// theirs (and to that of the CNAMEs that led to them).
func addAnswer(rec *Records, rrs []dns.RR, port uint16) {
	for _, rr := range rrs {
		var ip []byte
		switch r := rr.(type) {
		case *dns.A:
			ip = r.A.To4()
		case *dns.AAAA:
			ip = r.AAAA.To16()
		case *dns.CNAME:
			rec.TTL = minTTL(rec.TTL, r.Hdr.Ttl)
			continue
		default:
			continue
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			rec.Addrs = append(rec.Addrs, netip.AddrPortFrom(a.Unmap(), port))
			rec.TTL = minTTL(rec.TTL, rr.Header().Ttl)
		}
	}
}

func minTTL(have time.Duration, ttl uint32) time.Duration {
	return lowerTTL(have, time.Duration(ttl)*time.Second)
}

func lowerTTL(have, d time.Duration) time.Duration {
	if have == NoTTL {
		return d
	}
	return min(have, d)
}

// finish sorts rec's addresses, or says why there are none.
func finish(rec Records, nxdomain bool) (Records, error) {
	if len(rec.Addrs) == 0 {
		if nxdomain {
			return Records{}, errNoSuchName
		}
		return Records{}, errNoRecords
	}
	slices.SortFunc(rec.Addrs, netip.AddrPort.Compare)
	rec.Addrs = slices.Compact(rec.Addrs)
	return rec, nil
}

// query sends one question to the servers in turn until one answers NOERROR or
// NXDOMAIN, over UDP with EDNS0, again over TCP when the answer is truncated.
func (c *DNSClient) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultDNSTimeout
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(1232, false)
	var errs []error
	for range max(c.Attempts, 1) {
		for _, server := range c.Servers {
			m, err := exchange(ctx, q, server, timeout)
			if err == nil {
				switch m.Rcode {
				case dns.RcodeSuccess, dns.RcodeNameError:
					return m, nil
				}
				err = fmt.Errorf("%s answered %s", server, dns.RcodeToString[m.Rcode])
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	return nil, fmt.Errorf("%s %s: %w", dns.TypeToString[qtype], strings.TrimSuffix(name, "."), joinErrs(errs))
}

// joinErrs joins the errors that are not nil on one line (a status shows it), or
// returns nil.
func joinErrs(errs []error) error {
	var msgs []string
	var first error
	for _, err := range errs {
		if err != nil {
			if first == nil {
				first = err
			}
			msgs = append(msgs, err.Error())
		}
	}
	switch len(msgs) {
	case 0:
		return nil
	case 1:
		return first
	}
	return fmt.Errorf("%w (and: %s)", first, strings.Join(msgs[1:], "; "))
}

func exchange(ctx context.Context, q *dns.Msg, server string, timeout time.Duration) (*dns.Msg, error) {
	c := dns.Client{Net: "udp", Timeout: timeout, UDPSize: 1232}
	m, _, err := c.ExchangeContext(ctx, q, server)
	if err == nil && m.Truncated {
		c.Net = "tcp"
		m, _, err = c.ExchangeContext(ctx, q, server)
	}
	return m, err
}
