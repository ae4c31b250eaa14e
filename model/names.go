package model

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
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
// and xds:///NAME targets.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("required")
	case len(name) > 63:
		return fmt.Errorf("%q: longer than 63 characters", name)
	case strings.Contains(name, NameSeparator):
		return fmt.Errorf("%q: '|' is reserved (it separates service and version in cluster names)", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%q: want a DNS label: lower-case letters, digits and '-'", name)
		}
	}
	if name[0] == '-' || name[len(name)-1] == '-' {
		return fmt.Errorf("%q: must start and end with a letter or digit", name)
	}
	return nil
}

// ValidateZone accepts a locality zone: empty (none) or any text without spaces or the
// separator '|'.
func ValidateZone(zone string) error {
	if strings.ContainsAny(zone, " \t\n"+NameSeparator) {
		return fmt.Errorf("%q: no spaces or '|'", zone)
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
