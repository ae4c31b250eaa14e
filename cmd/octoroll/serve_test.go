package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/admin"
	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/notify"
)

// TestPublicationEventsReachMetricsAndSinks: the runner's publish_failed and published
// events, as the daemon wires them, count in octoroll_publish_failures_total, set
// octoroll_service_publish_ok, and reach a sink that asks for them.
func TestPublicationEventsReachMetricsAndSinks(t *testing.T) {
	got := make(chan string, 4)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p notify.Payload
		if err := json.Unmarshal(b, &p); err != nil {
			t.Errorf("sink: %v", err)
		}
		got <- p.Event + " " + p.Service
	}))
	t.Cleanup(sink.Close)
	n := notify.New(zaptest.NewLogger(t), []catalog.Sink{{Name: "ops", URL: sink.URL,
		Events: []string{catalog.EventPublishFailed, catalog.EventPublished}}}, notify.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	reg := prometheus.NewRegistry()
	ev := events{metrics: admin.NewMetrics(reg), notifier: n}
	ev.Notify(controller.Event{Time: time.Now(), Kind: controller.EventPublishFailed, Service: "search",
		Reason: "not published, the last good resources keep serving: no such host"}, controller.Rollout{})
	if v := metricValue(t, reg, "octoroll_publish_failures_total", "search"); v != 1 {
		t.Errorf("octoroll_publish_failures_total{service=search} %g, want 1", v)
	}
	if v := metricValue(t, reg, "octoroll_service_publish_ok", "search"); v != 0 {
		t.Errorf("octoroll_service_publish_ok{service=search} %g, want 0", v)
	}
	ev.Notify(controller.Event{Time: time.Now(), Kind: controller.EventPublished, Service: "search"}, controller.Rollout{})
	if v := metricValue(t, reg, "octoroll_service_publish_ok", "search"); v != 1 {
		t.Errorf("octoroll_service_publish_ok{service=search} after recovery %g, want 1", v)
	}
	for _, want := range []string{"publish_failed search", "published search"} {
		select {
		case g := <-got:
			if g != want {
				t.Errorf("sink got %q, want %q", g, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("sink did not get %q", want)
		}
	}
}

// metricValue is the value of the counter or gauge name with label service in reg (-1
// when absent).
func metricValue(t *testing.T, reg *prometheus.Registry, name, service string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == service {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}
