// Package dnstest is a DNS server for tests: it speaks the DNS protocol over UDP and
// TCP on 127.0.0.1 (github.com/miekg/dns), answers from records the test changes while
// it runs, and can answer SERVFAIL or nothing at all. It must not import octoroll
// packages, so that any package's tests may use it.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Server is an authoritative server of the names the test sets. A name it has no
// records of is NXDOMAIN; a name with records of other types only answers NOERROR with
// none.
type Server struct {
	// Addr is the host:port of the UDP and TCP listeners.
	Addr string

	mu    sync.Mutex
	names map[string][]dns.RR // by lower-case fully qualified name

	rcode   atomic.Int32 // answered to every query when not RcodeSuccess
	drop    atomic.Bool  // when set, queries get no answer
	queries atomic.Int64
}

// Start starts a server on 127.0.0.1 (one port, UDP and TCP), stopped at the end of the
// test.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{names: map[string][]dns.RR{}}
	var pc net.PacketConn
	var lis net.Listener
	for range 10 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatalf("dnstest: %v", err)
		}
		if lis, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("dnstest: no port free for both UDP and TCP")
	}
	s.Addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: lis, Handler: s}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	t.Cleanup(func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	})
	return s
}

// SetA sets the A and AAAA records of name (replacing them) to ips, with ttl seconds.
// No ips removes them.
func (s *Server) SetA(name string, ttl uint32, ips ...string) {
	var rrs []dns.RR
	for _, ip := range ips {
		a := net.ParseIP(ip)
		h := dns.RR_Header{Name: fqdn(name), Class: dns.ClassINET, Ttl: ttl, Rrtype: dns.TypeA}
		if a4 := a.To4(); a4 != nil {
			rrs = append(rrs, &dns.A{Hdr: h, A: a4})
		} else {
			h.Rrtype = dns.TypeAAAA
			rrs = append(rrs, &dns.AAAA{Hdr: h, AAAA: a})
		}
	}
	s.set(name, rrs, dns.TypeA, dns.TypeAAAA)
}

// Target is one SRV record.
type Target struct {
	Host     string
	Port     uint16
	Priority uint16
	Weight   uint16
}

// SetSRV sets the SRV records of name (replacing them) to targets, with ttl seconds.
// The answers carry the targets' A and AAAA records in their additional section.
func (s *Server) SetSRV(name string, ttl uint32, targets ...Target) {
	var rrs []dns.RR
	for _, tg := range targets {
		rrs = append(rrs, &dns.SRV{Hdr: dns.RR_Header{Name: fqdn(name), Class: dns.ClassINET, Ttl: ttl, Rrtype: dns.TypeSRV},
			Target: fqdn(tg.Host), Port: tg.Port, Priority: tg.Priority, Weight: tg.Weight})
	}
	s.set(name, rrs, dns.TypeSRV)
}

func (s *Server) set(name string, rrs []dns.RR, types ...uint16) {
	k := fqdn(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	var keep []dns.RR
	for _, rr := range s.names[k] {
		replaced := false
		for _, t := range types {
			replaced = replaced || rr.Header().Rrtype == t
		}
		if !replaced {
			keep = append(keep, rr)
		}
	}
	keep = append(keep, rrs...)
	if len(keep) == 0 {
		delete(s.names, k)
		return
	}
	s.names[k] = keep
}

// Remove removes every record of name: it is NXDOMAIN.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	delete(s.names, fqdn(name))
	s.mu.Unlock()
}

// Fail makes every query get rcode (dns.RcodeServerFailure, say); dns.RcodeSuccess
// answers from the records again.
func (s *Server) Fail(rcode int) { s.rcode.Store(int32(rcode)) }

// Drop makes the server answer no query (the client times out) while on is set.
func (s *Server) Drop(on bool) { s.drop.Store(on) }

// Queries returns the number of queries received.
func (s *Server) Queries() int64 { return s.queries.Load() }

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	s.queries.Add(1)
	if s.drop.Load() || len(q.Question) != 1 {
		return
	}
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	m.RecursionAvailable = true
	if rc := int(s.rcode.Load()); rc != dns.RcodeSuccess {
		m.Rcode = rc
		_ = w.WriteMsg(m)
		return
	}
	qn := strings.ToLower(q.Question[0].Name)
	qt := q.Question[0].Qtype
	s.mu.Lock()
	rrs, ok := s.names[qn]
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	for _, rr := range rrs {
		if rr.Header().Rrtype != qt {
			continue
		}
		m.Answer = append(m.Answer, dns.Copy(rr))
		if srv, ok := rr.(*dns.SRV); ok {
			for _, a := range s.names[strings.ToLower(srv.Target)] {
				if t := a.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA {
					m.Extra = append(m.Extra, dns.Copy(a))
				}
			}
		}
	}
	s.mu.Unlock()
	// Over UDP, an answer larger than the client's buffer is truncated (TC set): the
	// client asks again over TCP.
	size := dns.MinMsgSize
	if o := q.IsEdns0(); o != nil {
		size = int(o.UDPSize())
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

func fqdn(name string) string { return strings.ToLower(dns.Fqdn(name)) }
