package admin

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/octoacme/octoroll/admin/api"
)

// hostGuard decides which Host and Origin headers the admin server answers: a browser
// page of another site must not drive mutations (cross-site request forgery), and a
// site whose name was re-pointed at this server must not read it (DNS rebinding).
//
// A Host is allowed when it is a loopback name or address, the listen address's own
// host, any IP address when the server listens on every interface, or an entry of the
// allow-list (a host name, or "*.example.com" for its subdomains). A mutation that
// carries an Origin must come from the same origin as its Host or from an allowed
// host.
type hostGuard struct {
	mu       sync.RWMutex
	names    map[string]bool // configured host names, lower case
	ips      map[netip.Addr]bool
	wildcard bool // listening on every interface: any IP literal names this server
	allowed  []string
}

// newHostGuard returns the guard of a server configured with addr and allowed.
func newHostGuard(addr string, allowed []string) *hostGuard {
	g := &hostGuard{names: map[string]bool{}, ips: map[netip.Addr]bool{}}
	for _, a := range allowed {
		if a = normalizeHost(a); a != "" {
			g.allowed = append(g.allowed, a)
		}
	}
	g.addBind(addr)
	return g
}

// addBind adds the host of a listen address ("host:port" or a bare host).
func (g *hostGuard) addBind(addr string) {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = normalizeHost(host)
	g.mu.Lock()
	defer g.mu.Unlock()
	if host == "" {
		g.wildcard = true
		return
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() {
			g.wildcard = true
		}
		g.ips[ip.Unmap()] = true
		return
	}
	g.names[host] = true
}

// normalizeHost lower-cases h and strips a port, IPv6 brackets and a trailing dot.
func normalizeHost(h string) string {
	h = strings.TrimSpace(strings.ToLower(h))
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	if i := strings.IndexByte(h, '%'); i >= 0 { // IPv6 zone
		h = h[:i]
	}
	return h
}

// inAllowList reports whether host (normalized) matches the allow-list.
func (g *hostGuard) inAllowList(host string) bool {
	for _, a := range g.allowed {
		if a == host {
			return true
		}
		if suffix, ok := strings.CutPrefix(a, "*."); ok && strings.HasSuffix(host, "."+suffix) {
			return true
		}
	}
	return false
}

// hostAllowed reports whether a Host header ("host[:port]") names this server.
func (g *hostGuard) hostAllowed(hostport string) bool {
	host := normalizeHost(hostport)
	if host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		return ip.IsLoopback() || g.wildcard || g.ips[ip] || g.inAllowList(host)
	}
	return g.names[host] || g.inAllowList(host)
}

// originAllowed reports whether a mutation sent with Origin origin to Host host comes
// from this server's own pages or from an allowed host.
func (g *hostGuard) originAllowed(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return false // includes "null", sent by sandboxed frames and file: pages
	}
	if sameHostPort(u, host) {
		return true
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.inAllowList(normalizeHost(u.Host))
}

// sameHostPort reports whether origin u and a Host header name the same host and port,
// a missing port being the scheme's default.
func sameHostPort(u *url.URL, host string) bool {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		h, p = host, port // a Host without a port: the origin's default
	}
	return normalizeHost(u.Hostname()) == normalizeHost(h) && p == port
}

// unguarded are the paths answered whatever the Host: liveness and readiness probes
// (kubelets and load balancers send their own Host) that reveal nothing.
var unguarded = map[string]bool{"/healthz": true, "/readyz": true}

// guard refuses, with a JSON 403, requests whose Host does not name this server, and
// mutations from another origin. Browsers send Origin with every cross-origin POST
// (no-cors included); without it, Sec-Fetch-Site tells a cross-site request.
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if unguarded[r.URL.Path] && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			h.ServeHTTP(w, r)
			return
		}
		if !s.hosts.hostAllowed(r.Host) {
			s.log.Warn("admin request refused: Host not allowed", zap.String("host", clipHeader(r.Host)),
				zap.String("method", r.Method), zap.String("path", r.URL.Path))
			writeError(w, http.StatusForbidden, api.CodeForbiddenHost, fmt.Sprintf(
				"Host %q does not name this server: use its listen address or add the name to --admin-allowed-hosts (OCTOROLL_ADMIN_ALLOWED_HOSTS)",
				clipHeader(r.Host)))
			return
		}
		if isSafeMethod(r.Method) {
			h.ServeHTTP(w, r)
			return
		}
		origin := r.Header.Get("Origin")
		switch {
		case origin != "" && !s.hosts.originAllowed(origin, r.Host):
			s.log.Warn("admin mutation refused: cross-origin", zap.String("origin", clipHeader(origin)),
				zap.String("method", r.Method), zap.String("path", r.URL.Path))
			writeError(w, http.StatusForbidden, api.CodeForbiddenOrigin, fmt.Sprintf(
				"cross-origin request from %q refused: mutations are accepted from this server's own pages, the CLI and API clients, or origins in --admin-allowed-hosts",
				clipHeader(origin)))
			return
		case origin == "" && crossSiteFetch(r.Header.Get("Sec-Fetch-Site")):
			writeError(w, http.StatusForbidden, api.CodeForbiddenOrigin, "cross-site request refused")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func isSafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func crossSiteFetch(site string) bool { return site == "cross-site" || site == "same-site" }

// clipHeader bounds a header value quoted in a message or log.
func clipHeader(v string) string {
	if len(v) > 100 {
		return v[:100] + "…"
	}
	return v
}

// HostAllowed reports whether an admin API listening on addr, with the allow-list
// allowed, answers a request whose Host is hostport (recipes are checked with it).
func HostAllowed(addr string, allowed []string, hostport string) bool {
	return newHostGuard(addr, allowed).hostAllowed(hostport)
}
