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
        labels: {severity: critical, service: checkout}
      - alert: CheckoutSlowish
        expr: vector(1)
        labels: {severity: warning, service: checkout}
      - alert: PaymentsDown
        expr: vector(1)
        labels: {severity: critical, service: payments}
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
}
