package model

import (
	"encoding/json"
	"time"
)

// What the xds server reports of the proxies it serves: their ACK and NACK state, what
// each holds, and the server's counters. The server fills these in; the admin API and
// the CLI read them.

// ProxyStatus is what octoroll knows of one connected proxy (an Envoy sidecar or a
// proxyless gRPC client), keyed by its node id.
type ProxyStatus struct {
	NodeID  string `json:"nodeId"`
	Cluster string `json:"cluster,omitempty"`
	Zone    string `json:"zone,omitempty"`
	// ConnectedSince is when its oldest open stream opened.
	ConnectedSince time.Time `json:"connectedSince"`
	// Streams is the number of open xDS streams (1 over ADS).
	Streams int `json:"streams"`
	// Types is keyed by resource type URL.
	Types map[string]TypeStatus `json:"types"`
	// NACKs counts the rejected responses since it connected; LastNACK is the latest.
	NACKs    int   `json:"nacks"`
	LastNACK *Nack `json:"lastNack,omitempty"`
}

// TypeStatus is a proxy's view of one resource type.
type TypeStatus struct {
	// Watched are the subscribed resource names, sorted; ["*"] for a wildcard watch.
	Watched []string `json:"watched"`
	// AckedVersion is the type version of the last ACKed response ("" before any ACK).
	AckedVersion string `json:"ackedVersion,omitempty"`
	// Acked maps resource name to the resource version the proxy ACKed.
	Acked   map[string]string `json:"acked,omitempty"`
	AckedAt time.Time         `json:"ackedAt,omitzero"`
}

// Nack is one rejected response.
type Nack struct {
	NodeID  string `json:"nodeId"`
	TypeURL string `json:"typeUrl"`
	// Version is the type version of the rejected response.
	Version string `json:"version"`
	// Resources are the resources of the rejected response, name to resource version.
	Resources map[string]string `json:"resources,omitempty"`
	// Message is the proxy's error detail.
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// XDSStats are cumulative counters of the xDS server, for the admin layer to export.
type XDSStats struct {
	ConnectedProxies int `json:"connectedProxies"`
	OpenStreams      int `json:"openStreams"`
	// StreamsOpened counts every stream ever opened; unchanged across a weight change
	// means no proxy reconnected.
	StreamsOpened uint64 `json:"streamsOpened"`
	// Pushes counts responses sent to proxies.
	Pushes uint64 `json:"pushes"`
	ACKs   uint64 `json:"acks"`
	NACKs  uint64 `json:"nacks"`
	// Updates counts publishes that changed at least one resource type; UpdateErrors
	// counts rejected updates (the previous state kept serving).
	Updates      uint64 `json:"updates"`
	UpdateErrors uint64 `json:"updateErrors"`
	// PushDuration is the total time spent publishing changed resources to the open
	// watches (building and enqueuing responses), LastPushDuration the latest. Durations
	// are Go duration strings in JSON, as every duration of the API.
	PushDuration     Duration `json:"pushDuration"`
	LastPushDuration Duration `json:"lastPushDuration"`
	// LockHolds are the longest holds of the server's shared locks since it started.
	LockHolds LockHolds `json:"lockHolds"`
}

// LockHolds are the longest times the server's shared locks were held.
type LockHolds struct {
	// Publish serializes publishers; it is held while a publish is marshaled and its
	// responses are enqueued, never by a proxy's request.
	Publish Duration `json:"publish"`
	// Resources are the per-type locks over the served resources and the open
	// watches; proxy requests take them.
	Resources Duration `json:"resources"`
	// Tracker is the lock over the per-proxy ACK state; every request and response
	// takes it.
	Tracker Duration `json:"tracker"`
}

// Max is the longest of the holds.
func (l LockHolds) Max() time.Duration { return max(l.Publish, l.Resources, l.Tracker).D() }

// ProxyConfig is what octoroll sent to one proxy and what the proxy ACKed, per resource
// type, with the resources' content: the control plane's side of Envoy's config_dump.
type ProxyConfig struct {
	NodeID  string `json:"nodeId"`
	Cluster string `json:"cluster,omitempty"`
	Zone    string `json:"zone,omitempty"`
	// Types are in make-before-break order (clusters, endpoints, listeners, routes),
	// then any other type by URL.
	Types []TypeConfig `json:"types"`
}

// TypeConfig is one resource type of a ProxyConfig.
type TypeConfig struct {
	TypeURL string `json:"typeUrl"`
	// Sent is the latest response of this type, whether or not the proxy answered it.
	Sent *SentConfig `json:"sent,omitempty"`
	// Acked is what the proxy holds after its last ACK of this type.
	Acked *SentConfig `json:"acked,omitempty"`
	// LastNACK is the proxy's latest rejection of a response of this type.
	LastNACK *Nack `json:"lastNack,omitempty"`
}

// SentConfig is the content of one response: what the proxy holds if it ACKs it.
type SentConfig struct {
	// Version is the response's type version (version_info; system_version_info on a
	// delta stream).
	Version string `json:"version"`
	// At is when the response was sent, or for Acked when the ACK arrived.
	At        time.Time        `json:"at"`
	Resources []ConfigResource `json:"resources"`
}

// ConfigResource is one resource version held by a proxy.
type ConfigResource struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Resource is the resource in protojson, with its "@type". It is null for a resource
	// of a type without full state (routes, endpoints) that the proxy keeps after
	// octoroll stopped serving it: its content is no longer held.
	Resource json.RawMessage `json:"resource"`
	// Error says why Resource could not be rendered, if it could not.
	Error string `json:"error,omitempty"`
}
