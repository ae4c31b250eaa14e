package model

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// NameSeparator separates the parts of a generated Envoy name ("service|version"). It
// cannot appear in a service or version name (ValidateName), so every generated name
// maps back to exactly one service and version.
const NameSeparator = "|"

// PinHeader is the request header of the pin routes: a request carrying
// "x-octoroll-pin: VERSION" goes to that version's cluster whatever the weights.
//
// The pin routes exist so that every version's cluster stays referenced by the route
// configuration even at weight 0. gRPC clients subscribe only to the clusters a route
// references; moving weight onto a cluster a client is not yet subscribed to fails RPCs
// with "unknown cluster selected for RPC" until the subscription completes. With a pin
// route per version, a rollback or promotion only changes weights between clusters every
// client already watches, and fails no request. Real traffic does not carry the header;
// operators may use it deliberately to reach one version (smoke tests). A flag match
// may therefore not use it (ValidateHeaderName).
const PinHeader = "x-octoroll-pin"

// ValidateName enforces the name rule for services and versions: a DNS label (lower-case
// letters, digits, '-', 1-63 characters, starting and ending with a letter or digit).
// It keeps names safe in Envoy cluster names (service|version), metric labels, URLs
// and xds:///NAME targets. The error quotes name: `"v|2" is not a valid name: ...`.
func ValidateName(name string) error {
	why := ""
	switch {
	case name == "":
		return errors.New("required")
	case len(name) > 63:
		why = "longer than 63 characters"
	case strings.Contains(name, NameSeparator):
		why = "'|' is reserved (it separates service and version in cluster names)"
	case strings.ContainsFunc(name, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }):
		why = "want a DNS label: lower-case letters, digits and '-'"
	case name[0] == '-' || name[len(name)-1] == '-':
		why = "must start and end with a letter or digit"
	default:
		return nil
	}
	return fmt.Errorf("%q is not a valid name: %s", name, why)
}

// ValidateZone accepts a locality zone: empty (none) or printable text without spaces
// or the separator '|', at most 63 characters.
func ValidateZone(zone string) error {
	switch {
	case strings.ContainsAny(zone, " "+NameSeparator) || strings.ContainsFunc(zone, unicode.IsSpace):
		return fmt.Errorf("%q is not a valid zone: no spaces or '|'", zone)
	case strings.ContainsFunc(zone, func(r rune) bool { return !unicode.IsPrint(r) }) || !utf8.ValidString(zone):
		return fmt.Errorf("%q is not a valid zone: control characters are not allowed", zone)
	case len(zone) > 63:
		return fmt.Errorf("%q is not a valid zone: longer than 63 characters", zone)
	}
	return nil
}

// ValidateFinite accepts a finite number: NaN and the infinities compare false with
// every bound (so they slip past range checks) and cannot be written as JSON.
func ValidateFinite(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%v: must be a finite number", v)
	}
	return nil
}

// ValidateDomain accepts a host name, optionally with one leading "*." or "*" wildcard
// or a trailing "*" (Envoy's virtual host domain forms), without a port: the sidecar
// port variant is added by octoroll.
func ValidateDomain(d string) error {
	if d == "" {
		return errors.New("empty domain")
	}
	if strings.Contains(d, ":") {
		return fmt.Errorf("%q: leave out the port (octoroll adds NAME:PORT itself)", d)
	}
	body := strings.TrimSuffix(strings.TrimPrefix(d, "*"), "*")
	if strings.HasPrefix(d, "*") && strings.HasSuffix(d, "*") {
		return fmt.Errorf("%q: at most one wildcard, at the start or the end", d)
	}
	body = strings.Trim(body, ".")
	if body == "" {
		return fmt.Errorf("%q: a wildcard alone matches everything; name the domains", d)
	}
	for _, l := range strings.Split(body, ".") {
		if !isHostLabel(l) {
			return fmt.Errorf("%q: want a DNS name (letters, digits, '-', '.'; optional leading or trailing '*')", d)
		}
	}
	return nil
}

// validToken is an HTTP header or cookie name (RFC 9110 token).
var validToken = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// ValidateHeaderName accepts the name of a request header a flag match may route on:
// an RFC 9110 token that is not reserved (PinHeader, which octoroll's own pin routes
// use, "cookie", "host" and the "grpc-" headers, which gRPC owns). Case does not matter.
func ValidateHeaderName(h string) error {
	if !validToken.MatchString(h) {
		return fmt.Errorf("%q is not a valid header name", h)
	}
	l := strings.ToLower(h)
	if l == PinHeader || l == "cookie" || l == "host" || strings.HasPrefix(l, "grpc-") {
		return fmt.Errorf("%q is reserved; use another header", h)
	}
	return nil
}

// ValidateCookieName accepts an RFC 9110 token as a cookie name.
func ValidateCookieName(c string) error {
	if !validToken.MatchString(c) {
		return fmt.Errorf("%q is not a valid cookie name", c)
	}
	return nil
}

// ValidateMatchValue accepts the value a header or cookie flag match compares with:
// not empty, no control characters, and for a cookie none of the characters that
// end or quote a cookie value (';', ',', space, '"', '\').
func ValidateMatchValue(value string, cookie bool) error {
	switch {
	case value == "":
		return errors.New("required")
	case strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
		return fmt.Errorf("%q: control characters are not allowed", value)
	case cookie && strings.ContainsAny(value, ";, \"\\"):
		return fmt.Errorf("%q is not a valid cookie value", value)
	}
	return nil
}
