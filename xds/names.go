package xds

// The one naming scheme for every Envoy name octoroll generates. Logs, metrics, the admin
// API and the resources themselves all use these functions, so that a name seen in one
// place can be found in the others.
//
// The separator "|" cannot appear in a service or version name (Desired.Validate rejects
// it), so every generated name maps back to exactly one service and version.

// NameSeparator separates the parts of a generated name.
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
// operators may use it deliberately to reach one version (smoke tests).
const PinHeader = "x-octoroll-pin"

// ClusterName is the name of the Envoy cluster (and its ClusterLoadAssignment) of one
// version of a service, e.g. "checkout|stable".
func ClusterName(service, version string) string {
	return service + NameSeparator + version
}

// RouteName is the name of the RouteConfiguration of a service, e.g. "checkout".
func RouteName(service string) string {
	return service
}

// APIListenerName is the name of the api_listener Listener of a service, e.g. "checkout":
// a proxyless gRPC client that dials xds:///checkout asks for the Listener "checkout".
func APIListenerName(service string) string {
	return service
}

// SidecarListenerName is the name of the TCP Listener an Envoy sidecar opens for a
// service, e.g. "checkout|sidecar".
func SidecarListenerName(service string) string {
	return service + NameSeparator + "sidecar"
}
