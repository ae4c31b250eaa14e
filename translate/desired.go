package translate

import "github.com/octoacme/octoroll/model"

// Desired is the desired routing state of one service: the plain data the controller
// decides and translation turns into Envoy resources.
type Desired struct {
	// Service is the catalog entry, including every version that must have a cluster
	// (a canary version not declared in the catalog is appended by the caller).
	Service model.Service
	// Weights maps version name to weight out of model.TotalWeight. Versions absent
	// from the map get 0 (their cluster stays defined). The weights must sum to
	// model.TotalWeight.
	Weights map[string]uint32
	// Matches are evaluated before the weighted split: a request carrying the header or
	// cookie goes to Version whatever the weights (breaking-change flag stages).
	Matches []Match
	// Unhealthy maps a version name to the endpoints ("host:port", as
	// model.Endpoint.String writes them) that active health checks found unhealthy.
	// Translation marks them UNHEALTHY in the version's EDS resource, so that Envoy and
	// gRPC clients send them no traffic; the other endpoints keep an unset health
	// status. An address that is not one of the version's endpoints is ignored (health
	// state may lag a catalog change by one publish). Marking every endpoint of a
	// version leaves its cluster with no usable host: gRPC-Go fails the requests routed
	// to it, Envoy (panic threshold) spreads them over all hosts anyway.
	Unhealthy map[string][]string
}

// Match routes flagged requests to one version.
type Match struct {
	// Header is the request header name to match (exclusive with Cookie).
	Header string `json:"header,omitempty" yaml:"header,omitempty"`
	// Cookie is the cookie name to match (exclusive with Header).
	Cookie string `json:"cookie,omitempty" yaml:"cookie,omitempty"`
	// Value is the exact value the header or cookie must have.
	Value string `json:"value" yaml:"value"`
	// Version receives the matching requests.
	Version string `json:"version" yaml:"version"`
}
