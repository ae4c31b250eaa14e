package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Endpoint is a host:port address (IP or DNS name), or a DNS name whose SRV records
// give the addresses and ports. In YAML and JSON it is the string "host:port", with an
// IPv6 address in brackets ("[::1]:8080"), or "srv:NAME" (SRVPrefix, no port).
type Endpoint struct {
	Host string
	Port uint32 // 1-65535; 0 for an SRV name
	// SRV marks Host as the name of SRV records: every target of the records (host and
	// port) is an endpoint.
	SRV bool
}

// SRVPrefix starts an endpoint written as the name of SRV records,
// "srv:_grpc._tcp.v2.shop.svc.cluster.local".
const SRVPrefix = "srv:"

// ParseEndpoint parses "host:port" or "srv:NAME". host is an IP address (IPv6 in
// brackets) or a DNS name; port is 1-65535. NAME is a DNS name whose labels may start
// with an underscore (RFC 2782's _service._proto.name); its SRV records give the ports,
// so it has none. Errors quote s.
func ParseEndpoint(s string) (Endpoint, error) {
	if name, ok := strings.CutPrefix(s, SRVPrefix); ok {
		e := Endpoint{Host: name, SRV: true}
		if err := checkSRVName(name); err != nil {
			return Endpoint{}, fmt.Errorf("%q: %w", s, err)
		}
		return e, nil
	}
	host, portStr, err := splitHostPort(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%q: want host:port (IPv6 in brackets): %s", s, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 64)
	if err != nil || portStr == "" {
		return Endpoint{}, fmt.Errorf("%q: port %q is not a number", s, portStr)
	}
	if port < 1 || port > 65535 {
		return Endpoint{}, fmt.Errorf("%q: port out of range 1-65535", s)
	}
	e := Endpoint{Host: host, Port: uint32(port)}
	if err := checkHost(host); err != nil {
		return Endpoint{}, fmt.Errorf("%q: %w", s, err)
	}
	return e, nil
}

// splitHostPort splits "host:port", "[host]:port" or "[host%zone]:port" like
// net.SplitHostPort (with its error texts), without importing net.
func splitHostPort(hostport string) (host, port string, err error) {
	const (
		missingPort   = "missing port in address"
		tooManyColons = "too many colons in address"
	)
	j, k := 0, 0
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		return "", "", errors.New(missingPort)
	}
	if hostport[0] == '[' {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", "", errors.New("missing ']' in address")
		}
		switch end + 1 {
		case len(hostport):
			return "", "", errors.New(missingPort)
		case i:
		default:
			if hostport[end+1] == ':' {
				return "", "", errors.New(tooManyColons)
			}
			return "", "", errors.New(missingPort)
		}
		host = hostport[1:end]
		j, k = 1, end+1
	} else {
		host = hostport[:i]
		if strings.IndexByte(host, ':') >= 0 {
			return "", "", errors.New(tooManyColons)
		}
	}
	if strings.IndexByte(hostport[j:], '[') >= 0 {
		return "", "", errors.New("unexpected '[' in address")
	}
	if strings.IndexByte(hostport[k:], ']') >= 0 {
		return "", "", errors.New("unexpected ']' in address")
	}
	return host, hostport[i+1:], nil
}

// String formats e as host:port, with an IPv6 address in brackets, or srv:NAME.
func (e Endpoint) String() string {
	if e.SRV {
		return SRVPrefix + e.Host
	}
	port := strconv.FormatUint(uint64(e.Port), 10)
	if strings.IndexByte(e.Host, ':') >= 0 {
		return "[" + e.Host + "]:" + port
	}
	return e.Host + ":" + port
}

// Validate reports what is wrong with e, if anything: the rules ParseEndpoint applies,
// for an Endpoint built in code.
func (e Endpoint) Validate() error {
	if e.SRV {
		if e.Port != 0 {
			return fmt.Errorf("%q: an SRV endpoint takes its ports from the SRV records; port %d must be unset", e.String(), e.Port)
		}
		if err := checkSRVName(e.Host); err != nil {
			return fmt.Errorf("%q: %w", e.String(), err)
		}
		return nil
	}
	if e.Port < 1 || e.Port > 65535 {
		return fmt.Errorf("%q: port out of range 1-65535", e.String())
	}
	if err := checkHost(e.Host); err != nil {
		return fmt.Errorf("%q: %w", e.String(), err)
	}
	return nil
}

// Key is e with its host lower-cased: two endpoints with equal keys reach the same
// instances (DNS names are case-insensitive).
func (e Endpoint) Key() Endpoint {
	return Endpoint{Host: strings.ToLower(e.Host), Port: e.Port, SRV: e.SRV}
}

// DuplicateEndpoint returns the index of the first endpoint in eps before i that
// reaches the same instances as eps[i] (equal Key), or -1. A version listing one
// instance twice would give it twice its share.
func DuplicateEndpoint(eps []Endpoint, i int) int {
	k := eps[i].Key()
	for j := range i {
		if eps[j].Key() == k {
			return j
		}
	}
	return -1
}

// IsIP reports whether e's host is an IP address rather than a DNS name.
func (e Endpoint) IsIP() bool {
	if e.SRV {
		return false
	}
	_, err := netip.ParseAddr(e.Host)
	return err == nil
}

// checkSRVName accepts a DNS name whose labels follow the host name rules, except that
// a label may start with an underscore (_grpc._tcp.v2.shop.svc.cluster.local).
func checkSRVName(h string) error {
	if h == "" {
		return errors.New("empty SRV name: want srv:NAME, e.g. srv:_grpc._tcp.v2.shop.svc.cluster.local")
	}
	if strings.Contains(h, ":") {
		return errors.New("an SRV endpoint takes its ports from the SRV records: write srv:NAME without a port")
	}
	if len(h) > 253 {
		return fmt.Errorf("SRV name longer than 253 characters")
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if !isHostLabel(strings.TrimPrefix(l, "_")) {
			return fmt.Errorf("invalid SRV name %q: want a DNS name (labels may start with an underscore)", h)
		}
	}
	return nil
}

// checkHost accepts an IP address or an RFC 1123 host name.
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if strings.Contains(h, ":") {
		if _, err := netip.ParseAddr(h); err != nil {
			return fmt.Errorf("invalid IPv6 address %q", h)
		}
		return nil
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("host name longer than 253 characters")
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	for _, l := range labels {
		if !isHostLabel(l) {
			return fmt.Errorf("invalid host %q: want an IP address or a DNS name", h)
		}
	}
	// "10.0.0.300" passes the label rules but is a mistyped address, not a name.
	if isDigits(labels[len(labels)-1]) {
		return fmt.Errorf("invalid IP address %q", h)
	}
	return nil
}

func isHostLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// MarshalText writes "host:port"; yaml.v3's encoder uses it.
func (e Endpoint) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText reads "host:port"; yaml.v3's decoder uses it.
func (e *Endpoint) UnmarshalText(b []byte) error {
	v, err := ParseEndpoint(string(b))
	if err != nil {
		return err
	}
	*e = v
	return nil
}

// MarshalJSON writes "host:port".
func (e Endpoint) MarshalJSON() ([]byte, error) { return json.Marshal(e.String()) }

// UnmarshalJSON reads "host:port".
func (e *Endpoint) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("endpoint: want a \"host:port\" string: %w", err)
	}
	v, err := ParseEndpoint(s)
	if err != nil {
		return err
	}
	*e = v
	return nil
}
