package admin

import (
	"errors"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/octoacme/octoroll/controller"
)

// Metrics are the counters the runner and the notifier increment. A nil *Metrics is
// valid and counts nothing. Safe for concurrent use.
type Metrics struct {
	decisions    *prometheus.CounterVec
	rollbacks    *prometheus.CounterVec
	notifyFails  *prometheus.CounterVec
	sourceUp     *prometheus.GaugeVec
	pushDuration prometheus.Histogram
	publishFails *prometheus.CounterVec
	publishOK    *prometheus.GaugeVec
}

// NewMetrics creates the counters and registers them on reg (nil: not registered). A
// metric already registered on reg is reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "octoroll_decisions_total",
			Help: "Decisions recorded in rollout events (go, continue, hold, pause, rollback; a decision repeated with the same reason on consecutive checks is recorded once), by service, decision and reason (the decision's cause).",
		}, []string{"service", "decision", "reason"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "octoroll_rollbacks_total",
			Help: "Rollbacks to the known-good version, by service and reason (the decision's cause); a service's series start at 0 when one of its rollouts starts.",
		}, []string{"service", "reason"}),
		notifyFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "octoroll_notification_failures_total",
			Help: "Notification deliveries that failed after every retry (or were dropped), by sink.",
		}, []string{"sink"}),
		sourceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "octoroll_metrics_source_up",
			Help: "1 when the last query of the metrics source succeeded, 0 when it failed.",
		}, []string{"source"}),
		publishFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "octoroll_publish_failures_total",
			Help: "Distinct publication failures of a service's desired state (its last good resources kept serving), by service.",
		}, []string{"service"}),
		publishOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "octoroll_service_publish_ok",
			Help: "1 when the service's desired state is what is served, 0 while its publication fails.",
		}, []string{"service"}),
		pushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "octoroll_xds_push_duration_seconds",
			Help:    "Time to publish changed resources to the open xDS watches, per publish.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	if reg == nil {
		return m
	}
	m.decisions = register(reg, m.decisions)
	m.rollbacks = register(reg, m.rollbacks)
	m.notifyFails = register(reg, m.notifyFails)
	m.sourceUp = register(reg, m.sourceUp)
	m.pushDuration = register(reg, m.pushDuration)
	m.publishFails = register(reg, m.publishFails)
	m.publishOK = register(reg, m.publishOK)
	return m
}

// register registers c on reg, returning the collector already registered under the
// same description if there is one.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// Event counts what a rollout event records: its decision in
// octoroll_decisions_total, a rollback in octoroll_rollbacks_total, a publication
// failure or recovery; a rollout's creation initialises its service's rollback series
// at 0, so that the first rollback is an increase Prometheus sees.
func (m *Metrics) Event(ev controller.Event) {
	if m == nil {
		return
	}
	if ev.Decision != "" {
		m.decisions.WithLabelValues(ev.Service, string(ev.Decision), string(ev.Cause)).Inc()
	}
	switch ev.Kind {
	case controller.EventCreated:
		for _, c := range controller.RollbackCauses {
			m.rollbacks.WithLabelValues(ev.Service, string(c))
		}
	case controller.EventRolledBack:
		m.rollbacks.WithLabelValues(ev.Service, string(ev.Cause)).Inc()
	case controller.EventPublishFailed:
		m.Publication(ev.Service, false)
	case controller.EventPublished:
		m.Publication(ev.Service, true)
	}
}

// NotificationFailure counts one failed notification delivery to sink.
func (m *Metrics) NotificationFailure(sink string) {
	if m == nil {
		return
	}
	m.notifyFails.WithLabelValues(sink).Inc()
}

// SourceUp records whether the last query of the metrics source named source succeeded.
func (m *Metrics) SourceUp(source string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.sourceUp.WithLabelValues(source).Set(v)
}

// ObservePush records the duration of one xDS publish (xds.Server.Update) in the
// octoroll_xds_push_duration_seconds histogram.
func (m *Metrics) ObservePush(d time.Duration) {
	if m == nil {
		return
	}
	m.pushDuration.Observe(d.Seconds())
}

// stateNames are the values of octoroll_rollout_state's state label; idle is a service
// without an active rollout.
var stateNames = []string{"idle", string(controller.StatePending), string(controller.StateProgressing),
	string(controller.StatePaused), string(controller.StateMonitoring)}

// collector reads the backend and the xds server at scrape time.
type collector struct {
	s *Server

	canaryWeight, stage, state, errRate, p99, connected, subscribed, converged *prometheus.Desc
	buildInfo, rolloutInfo, pausedSince                                        *prometheus.Desc
	pushes, nacks, updates, updateErrs, pushSeconds, reloadErrs, refused       *prometheus.Desc
}

func newCollector(s *Server) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{
		s:            s,
		canaryWeight: d("octoroll_canary_weight", "Published canary weight out of 10000 (0 when idle).", "service"),
		stage:        d("octoroll_rollout_stage", "Stage index of the active rollout (the number of stages once at 100 %).", "service"),
		state:        d("octoroll_rollout_state", "1 for the current state of the service's rollout (idle when none is active).", "service", "state"),
		errRate:      d("octoroll_check_error_ratio", "Error ratio (0-1) of a version in the last judged check.", "service", "version"),
		buildInfo:    d("octoroll_build_info", "1, labelled with the version octoroll was built as (stamped with -ldflags) and its Go version.", "version", "goversion"),
		rolloutInfo:  d("octoroll_rollout_info", "1 for each active rollout, labelled with its id, versions, release and type.", "service", "rollout", "stable", "canary", "release", "type"),
		pausedSince:  d("octoroll_rollout_paused_since_seconds", "Unix time the service's rollout was paused; absent unless paused.", "service"),
		p99:          d("octoroll_check_p99_seconds", "P99 latency of a version in the last judged check.", "service", "version"),
		connected:    d("octoroll_proxies_connected", "Proxies connected to the xDS server."),
		subscribed:   d("octoroll_proxies_subscribed", "Proxies subscribed to the service's route.", "service"),
		converged:    d("octoroll_proxies_converged", "Subscribed proxies that ACKed the service's current route.", "service"),
		pushes:       d("octoroll_xds_pushes_total", "xDS responses sent to proxies."),
		nacks:        d("octoroll_xds_nacks_total", "xDS responses rejected by proxies (type=all: the server does not count per type).", "type"),
		updates:      d("octoroll_xds_updates_total", "Publishes that changed at least one resource type."),
		updateErrs:   d("octoroll_xds_update_errors_total", "Publishes rejected by the xDS server (the previous state kept serving)."),
		pushSeconds:  d("octoroll_xds_push_seconds_total", "Total time spent publishing changed resources to the open watches."),
		reloadErrs:   d("octoroll_config_reload_errors_total", "Catalog reloads that left the catalog in use unchanged since start: invalid files and refused catalogs, each distinct one once."),
		refused:      d("octoroll_config_refused", "1 while a valid catalog on disk is refused (it would take away what an active rollout serves) and the previous one serves."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.buildInfo, c.rolloutInfo, c.pausedSince, c.canaryWeight, c.stage, c.state, c.errRate, c.p99, c.connected,
		c.subscribed, c.converged, c.pushes, c.nacks, c.updates, c.updateErrs, c.pushSeconds, c.reloadErrs, c.refused} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	o := c.s.opts
	version := o.Version
	if version == "" {
		version = "unknown"
	}
	gauge(c.buildInfo, 1, version, runtime.Version())
	if o.Backend != nil {
		for _, v := range o.Backend.Services() {
			name := v.Service.Name
			var weight uint32
			cur := "idle"
			if a := v.Active; a != nil {
				weight = a.CanaryWeight()
				if w, ok := v.Weights[a.Canary]; ok {
					weight = w
				}
				cur = string(a.State)
				gauge(c.stage, float64(a.Stage), name)
				gauge(c.rolloutInfo, 1, name, a.ID, a.Stable, a.Canary, a.Spec.Release.Name, string(a.Plan.Type))
				if a.State == controller.StatePaused && !a.PausedAt.IsZero() {
					gauge(c.pausedSince, float64(a.PausedAt.UnixMilli())/1000, name)
				}
				last := v.LastObservation
				if last == nil {
					last = a.Progress.Last
				}
				if last != nil {
					gauge(c.errRate, last.CanaryErrorPct/100, name, a.Canary)
					gauge(c.errRate, last.StableErrorPct/100, name, a.Stable)
					gauge(c.p99, last.CanaryP99.D().Seconds(), name, a.Canary)
					gauge(c.p99, last.StableP99.D().Seconds(), name, a.Stable)
				}
			}
			gauge(c.canaryWeight, float64(weight), name)
			for _, st := range stateNames {
				val := 0.0
				if st == cur {
					val = 1
				}
				gauge(c.state, val, name, st)
			}
			gauge(c.subscribed, float64(v.Convergence.Subscribed), name)
			gauge(c.converged, float64(v.Convergence.Acked), name)
		}
	}
	if o.XDSStats != nil {
		st := o.XDSStats()
		gauge(c.connected, float64(st.ConnectedProxies))
		counter(c.pushes, float64(st.Pushes))
		counter(c.nacks, float64(st.NACKs), "all")
		counter(c.updates, float64(st.Updates))
		counter(c.updateErrs, float64(st.UpdateErrors))
		counter(c.pushSeconds, st.PushDuration.D().Seconds())
	}
	if o.CatalogStatus != nil {
		st := o.CatalogStatus()
		counter(c.reloadErrs, float64(st.ReloadErrors))
		refused := 0.0
		if st.Refused != "" {
			refused = 1
		}
		gauge(c.refused, refused)
	}
}

// registerCollectors registers the scrape-time collector and the Go and process
// collectors on reg; ones already registered are kept.
func registerCollectors(reg *prometheus.Registry, s *Server) {
	for _, c := range []prometheus.Collector{
		newCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		register(reg, c)
	}
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{
		ErrorLog:      zapPromLogger{s},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      s.opts.Registry,
	})
}

type zapPromLogger struct{ s *Server }

func (l zapPromLogger) Println(v ...any) { l.s.log.Sugar().Warn(v...) }

// Publication records a service's publication state: ok false counts one failure
// (call it once per distinct failure, as the publish_failed event is).
func (m *Metrics) Publication(service string, ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.publishOK.WithLabelValues(service).Set(1)
		return
	}
	m.publishFails.WithLabelValues(service).Inc()
	m.publishOK.WithLabelValues(service).Set(0)
}

// PublicationState sets a service's publication gauge without counting a failure (the
// state found at start or after a catalog change).
func (m *Metrics) PublicationState(service string, ok bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	m.publishOK.WithLabelValues(service).Set(v)
}
