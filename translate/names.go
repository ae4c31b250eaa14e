package translate

import (
	"strings"

	"github.com/octoacme/octoroll/model"
)

// The one naming scheme for every Envoy name octoroll generates. Logs, metrics, the admin
// API and the resources themselves all use these functions, so that a name seen in one
// place can be found in the others.
//
// The separator "|" cannot appear in a service or version name (model.ValidateName
// rejects it), so every generated name maps back to exactly one service and version.

// NameSeparator separates the parts of a generated name (model.NameSeparator).
const NameSeparator = model.NameSeparator

// PinHeader is the request header of the pin routes (model.PinHeader, where the reason
// for them is written): every version's cluster stays referenced by a route.
const PinHeader = model.PinHeader

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

// ServiceOfRoute is the service whose RouteConfiguration is named name (the inverse of
// RouteName).
func ServiceOfRoute(name string) string { return name }

// ServiceOfCluster is the service and version of the cluster named name (the inverse of
// ClusterName); ok is false for a name ClusterName does not make.
func ServiceOfCluster(name string) (service, version string, ok bool) {
	service, version, ok = strings.Cut(name, NameSeparator)
	return service, version, ok && service != "" && version != ""
}
