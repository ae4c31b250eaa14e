package metrics_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/metrics/promtest"
)

// TestFiringAlertsRealServer loads alerting rules into a real Prometheus: a critical
// alert of checkout fires, a warning and another service's alert do not count.
func TestFiringAlertsRealServer(t *testing.T) {
	a := newApp(t)
	a.touch("checkout", "v1", "200")
	rules := `groups:
  - name: test
    rules:
      - alert: CheckoutQueueStuck
        expr: vector(1)
        labels: {severity: critical, service: checkout, team: payments, app: checkout-api}
      - alert: CheckoutSlowish
        expr: vector(1)
        labels: {severity: warning, service: checkout}
      - alert: PaymentsDown
        expr: vector(1)
        labels: {severity: critical, service: payments, team: payments, app: payments-api}
`
	url := promtest.StartWith(t, []string{a.addr}, promtest.Options{Rules: rules})
	src, err := metrics.NewPrometheus(zaptest.NewLogger(t), metrics.PrometheusConfig{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	eventually(t, 30*time.Second, "the critical alert firing", func() error {
		got, err = src.FiringAlerts(t.Context(), catalog.Service{Name: "checkout"}, time.Now())
		if err != nil {
			return err
		}
		if len(got) == 0 {
			return errors.New("no alert firing yet")
		}
		return nil
	})
	if !slices.Equal(got, []string{"CheckoutQueueStuck"}) {
		t.Fatalf("FiringAlerts(checkout) = %v, want [CheckoutQueueStuck]", got)
	}
	none, err := src.FiringAlerts(t.Context(), catalog.Service{Name: "search"}, time.Now())
	if err != nil || len(none) != 0 {
		t.Fatalf("FiringAlerts(search) = %v, %v; want none", none, err)
	}
	// Per-service selectors pick alerts by other labels.
	for _, tc := range []struct {
		selector string
		want     []string
	}{
		{`team="payments",app=~"{{.Service}}.*"`, []string{"CheckoutQueueStuck"}},
		{`team="payments"`, []string{"CheckoutQueueStuck", "PaymentsDown"}},
		{`team="search"`, nil},
	} {
		svc := catalog.Service{Name: "checkout", Metrics: catalog.MetricQueries{Alerts: tc.selector}}
		got, err := src.FiringAlerts(t.Context(), svc, time.Now())
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("FiringAlerts with %s = %v, %v; want %v", tc.selector, got, err, tc.want)
		}
	}
	bad := catalog.Service{Name: "checkout", Metrics: catalog.MetricQueries{Alerts: `service="{{.Version}}"`}}
	if _, err := src.FiringAlerts(t.Context(), bad, time.Now()); err == nil {
		t.Error("selector with an unknown field: no error")
	}
}

func TestAlertsQueryFor(t *testing.T) {
	for _, tc := range []struct {
		alerts, want string
	}{
		{"", `ALERTS{alertstate="firing",severity="critical",service="checkout"}`},
		{`team="payments",app=~"{{.Service}}.*"`, `ALERTS{alertstate="firing",severity="critical",team="payments",app=~"checkout.*"}`},
	} {
		got, err := metrics.AlertsQueryFor(catalog.Service{Name: "checkout", Metrics: catalog.MetricQueries{Alerts: tc.alerts}})
		if err != nil || got != tc.want {
			t.Errorf("AlertsQueryFor(%q) = %q, %v; want %q", tc.alerts, got, err, tc.want)
		}
	}
}
