package catalog

import (
	"encoding"
	"fmt"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// decodeScalar decodes the model types that are written as one YAML scalar (Endpoint,
// Duration, StatusRange) into v, a pointer to one of them. ok is false for any other
// type. The strict rules are model's; the node checks (a string, not a mapping or a
// bare number where a unit is needed) are YAML's and live here.
func decodeScalar(n *yaml.Node, v any) (ok bool, err error) {
	switch p := v.(type) {
	case *Endpoint:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			return true, fmt.Errorf("want a \"host:port\" string, got %s", describe(n))
		}
		e, err := ParseEndpoint(n.Value)
		if err != nil {
			return true, err
		}
		*p = e
		return true, nil
	case *Duration:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
				return true, fmt.Errorf("%s: a duration needs a unit, such as %ss", n.Value, n.Value)
			}
			return true, fmt.Errorf("want a duration string such as 30s, got %s", describe(n))
		}
		d, err := ParseDuration(n.Value)
		if err != nil {
			return true, err
		}
		*p = d
		return true, nil
	case *time.Time:
		// RFC 3339, quoted or not (YAML reads an unquoted one as a timestamp).
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!timestamp") {
			return true, fmt.Errorf("want an RFC 3339 time such as 2026-12-24T00:00:00Z, got %s", describe(n))
		}
		t, err := time.Parse(time.RFC3339, n.Value)
		if err != nil {
			return true, fmt.Errorf("%q: want an RFC 3339 time such as 2026-12-24T00:00:00Z", n.Value)
		}
		*p = t
		return true, nil
	case *StatusRange:
		// Validation checks the value.
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!int") {
			return true, fmt.Errorf("want a status code such as 200 or a range such as \"200-299\", got %s", describe(n))
		}
		*p = StatusRange(n.Value)
		return true, nil
	case encoding.TextUnmarshaler:
		// Other types written as one scalar ("1%" or 100 for a traffic share).
		if n.Kind != yaml.ScalarNode || isNull(n) || n.ShortTag() == "!!bool" {
			return true, fmt.Errorf("want a single value, got %s", describe(n))
		}
		return true, p.UnmarshalText([]byte(n.Value))
	}
	return false, nil
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
