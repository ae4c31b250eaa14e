package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ParseEndpoint parses "host:port". host is an IP address (IPv6 in brackets) or a DNS
// name; port is 1-65535. Errors quote s.
func ParseEndpoint(s string) (Endpoint, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return Endpoint{}, fmt.Errorf("%q: want host:port (IPv6 in brackets): %s", s, ae.Err)
		}
		return Endpoint{}, fmt.Errorf("%q: want host:port: %w", s, err)
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

// String formats e as host:port, with an IPv6 address in brackets.
func (e Endpoint) String() string {
	return net.JoinHostPort(e.Host, strconv.FormatUint(uint64(e.Port), 10))
}

// check reports what is wrong with e, if anything.
func (e Endpoint) check() error {
	if e.Port < 1 || e.Port > 65535 {
		return fmt.Errorf("%q: port out of range 1-65535", e.String())
	}
	if err := checkHost(e.Host); err != nil {
		return fmt.Errorf("%q: %w", e.String(), err)
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

// UnmarshalYAML reads "host:port".
func (e *Endpoint) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return fmt.Errorf("want a \"host:port\" string, got %s", describe(n))
	}
	v, err := ParseEndpoint(n.Value)
	if err != nil {
		return err
	}
	*e = v
	return nil
}

// MarshalYAML writes "host:port".
func (e Endpoint) MarshalYAML() (any, error) { return e.String(), nil }

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

// ParseDuration parses a positive Go duration string such as "30s" or "1m30s".
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration such as 500ms, 30s or 5m", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: must be positive", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML reads a positive Go duration string. A bare number is rejected: its
// unit would be a guess.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
			return fmt.Errorf("%s: a duration needs a unit, such as %ss", n.Value, n.Value)
		}
		return fmt.Errorf("want a duration string such as 30s, got %s", describe(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string; unlike YAML it accepts "0s", since JSON
// written by MarshalJSON from an unset Duration carries it.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML reads a status code or range: a string ("200", "200-299") or a whole
// number (200). Validation checks the value.
func (r *StatusRange) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!int") {
		return fmt.Errorf("want a status code such as 200 or a range such as \"200-299\", got %s", describe(n))
	}
	*r = StatusRange(n.Value)
	return nil
}

// UnmarshalJSON reads a status code or range as a string or a number.
func (r *StatusRange) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*r = StatusRange(s)
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("status: want a code such as 200 or a range such as \"200-299\": %w", err)
	}
	*r = StatusRange(strconv.Itoa(n))
	return nil
}

// describe names the kind of a node for error messages: "a mapping", "!!int 3".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return n.ShortTag() + " " + n.Value
	}
	return "nothing"
}
