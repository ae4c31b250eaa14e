// Package catalog owns the service catalog: the services octoroll routes, their
// versions and endpoints, health-check settings and metric queries, as declared by an
// operator in a YAML file: the model, strict parsing and validation (Parse, Load) and
// reloading (Watcher). The types of a service and its versions are model's (aliased
// here), so that the engine and translation share them without importing catalog.
//
// Import rule (asserted by internal/deps): catalog does not import controller, xds,
// translate or runner. See README.md in this directory for the file format.
package catalog

import "github.com/octoacme/octoroll/model"

// TotalWeight is the denominator of every traffic weight (model.TotalWeight).
const TotalWeight = model.TotalWeight

// Defaults applied by Parse (and ApplyDefaults) to fields left empty; see model.
const (
	DefaultHealthCheckProtocol = model.DefaultHealthCheckProtocol
	DefaultHealthCheckPath     = model.DefaultHealthCheckPath
	DefaultHealthCheckInterval = model.DefaultHealthCheckInterval
	DefaultHealthCheckTimeout  = model.DefaultHealthCheckTimeout
	DefaultHealthyThreshold    = model.DefaultHealthyThreshold
	DefaultUnhealthyThreshold  = model.DefaultUnhealthyThreshold
	DefaultExpectedStatuses    = model.DefaultExpectedStatuses

	DefaultConsecutive5xx     = model.DefaultConsecutive5xx
	DefaultOutlierInterval    = model.DefaultOutlierInterval
	DefaultBaseEjectionTime   = model.DefaultBaseEjectionTime
	DefaultMaxEjectionPercent = model.DefaultMaxEjectionPercent

	DefaultScrapePath      = model.DefaultScrapePath
	DefaultEnvoyScrapePath = model.DefaultEnvoyScrapePath
	DefaultConvention      = model.DefaultConvention
	DefaultAlerts          = model.DefaultAlerts

	DefaultSinkFormat = FormatJSON
)

// Metric conventions (MetricQueries.Convention); see model.
const (
	ConventionEnvoy = model.ConventionEnvoy
	ConventionApp   = model.ConventionApp
)

// Health-check protocols.
const (
	ProtocolTCP  = model.ProtocolTCP
	ProtocolHTTP = model.ProtocolHTTP
	ProtocolGRPC = model.ProtocolGRPC
)

// Notification payload formats.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
)

// Rollout event names (model's), for the sink filters of the catalog (Sink.Events).
const (
	EventStarted          = model.EventStarted
	EventStageAdvanced    = model.EventStageAdvanced
	EventPaused           = model.EventPaused
	EventResumed          = model.EventResumed
	EventRolledBack       = model.EventRolledBack
	EventCompleted        = model.EventCompleted
	EventMonitoringClosed = model.EventMonitoringClosed
	EventPublishFailed    = model.EventPublishFailed
	EventPublished        = model.EventPublished
	EventFrozen           = model.EventFrozen
	EventUnfrozen         = model.EventUnfrozen
)

// EventNames returns every rollout event name, in lifecycle order (model.EventNames).
func EventNames() []string { return model.EventNames() }

// IsEventName reports whether name is one of EventNames.
func IsEventName(name string) bool { return model.IsEventName(name) }

// The model of one service, declared in model so that the engine and translation
// share it; see there.
type (
	Service       = model.Service
	Version       = model.Version
	Endpoint      = model.Endpoint
	HealthCheck   = model.HealthCheck
	StatusRange   = model.StatusRange
	Outlier       = model.Outlier
	MetricQueries = model.MetricQueries
	MetricCheck   = model.MetricCheck
	Duration      = model.Duration
	Gates         = model.Gates
	Webhook       = model.Webhook
	FreezeWindow  = model.FreezeWindow
)

// ParseEndpoint parses "host:port" (model.ParseEndpoint).
func ParseEndpoint(s string) (Endpoint, error) { return model.ParseEndpoint(s) }

// ParseDuration parses a positive Go duration string (model.ParseDuration).
func ParseDuration(s string) (Duration, error) { return model.ParseDuration(s) }

// Catalog is the whole declared configuration.
type Catalog struct {
	Services      []Service `yaml:"services" json:"services"`
	Notifications []Sink    `yaml:"notifications,omitempty" json:"notifications,omitempty"`
	// Freezes are periods when no rollout starts or advances on any service (holidays,
	// sales events); rollbacks and pauses still work.
	Freezes []FreezeWindow `yaml:"freezes,omitempty" json:"freezes,omitempty"`
}

// Sink is a notification webhook.
type Sink struct {
	// Name identifies the sink in logs; unique among sinks.
	Name string `yaml:"name" json:"name"`
	// URL is the http or https address the events are POSTed to.
	URL string `yaml:"url" json:"url"`
	// Format is json (default) or slack.
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
	// Events filters which events are delivered (see EventNames); empty means all.
	Events []string `yaml:"events,omitempty" json:"events,omitempty"`
}

// Service returns the service named name.
func (c *Catalog) Service(name string) (Service, bool) {
	if c == nil {
		return Service{}, false
	}
	for _, s := range c.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}
