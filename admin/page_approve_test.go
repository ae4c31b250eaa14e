package admin

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

// cleanTraffic is a metrics source where a service's 20,000 requests of every window
// are split by the weights of its active rollout, one in a thousand failing.
type cleanTraffic struct{ run *runner.Runner }

func (c *cleanTraffic) VersionStats(_ context.Context, svc catalog.Service, version string, _ time.Duration, _ time.Time) (metrics.Stats, error) {
	v, ok := c.run.Service(svc.Name)
	if !ok || v.Active == nil {
		return metrics.Stats{}, metrics.ErrNoData
	}
	n := 2 * float64(v.Active.Weights()[version])
	return metrics.Stats{Requests: n, Errors: n / 1000, P99: 50 * time.Millisecond}, nil
}

// TestApproveButtonInChromium: a stage with approval: required, driven by the real
// runner on a test clock, waits for a person; the status page in headless Chromium
// shows an enabled Approve button, a click with the token approves it (recorded with
// the page's actor), and the next check advances the stage.
func TestApproveButtonInChromium(t *testing.T) {
	exe := chromium(t)
	log := zaptest.NewLogger(t)
	cat, err := catalog.Parse("catalog.yaml", []byte(strings.Replace(testCatalog, "    stable: v1\n", "    stable: v1\n    proxiesOptional: true\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clk := &clock{t: time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)}
	xs := xds.NewServer(log, xds.Options{})
	traffic := &cleanTraffic{}
	run, err := runner.New(context.Background(), cat, runner.Options{Log: log, Store: st, XDS: xs, Now: clk.Now, Metrics: traffic})
	if err != nil {
		t.Fatal(err)
	}
	traffic.run = run
	t.Cleanup(run.Close)
	a := New(log, Options{Backend: run, Proxies: xs.Proxies, ProxyConfig: xs.ProxyConfig, XDSStats: xs.Stats,
		Token: "tok-123", Addr: "0.0.0.0:8080", Registry: prometheus.NewRegistry(), Now: clk.Now, Version: "test"})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)

	var spec controller.Spec
	doc := strings.Replace(testSpecJSON, `"smokeChecks"`, `"checkInterval":"10s","stages":[{"percent":5,"minWindow":"1m","approval":"required"},{"percent":50,"minWindow":"1m"}],"smokeChecks"`, 1)
	if err := json.Unmarshal([]byte(doc), &spec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ro, err := run.Start(ctx, spec, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := run.ReportCheck(ctx, "checkout", controller.CheckResult{Name: "smoke", Passed: true}); err != nil {
		t.Fatal(err)
	}
	awaiting := false
	for i := 0; i < 30 && !awaiting; i++ {
		clk.Add(10 * time.Second)
		run.Evaluate(ctx)
		got, err := run.Rollout(ro.ID)
		if err != nil {
			t.Fatal(err)
		}
		awaiting = got.AwaitingApproval()
	}
	if !awaiting {
		got, _ := run.Rollout(ro.ID)
		t.Fatalf("not awaiting approval: %s stage %d (%s)", got.State, got.Stage, got.Reason)
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(exe), chromedp.Flag("headless", true),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()))
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancelTimeout := context.WithTimeout(bctx, 30*time.Second)
	defer cancelTimeout()
	approve := `button[data-action="approve"][data-service="checkout"]`
	if err := chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(approve+`:not([disabled])`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "tok-123"),
		chromedp.SendKeys(chromedp.CSS(`#actor`), "carol"),
		chromedp.Click(chromedp.CSS(approve)),
		chromedp.WaitVisible(chromedp.CSS(`#flash.ok`)),
	); err != nil {
		t.Fatalf("click Approve: %v", err)
	}
	got, err := run.Rollout(ro.ID)
	if err != nil || got.Progress.Approved == nil || !strings.Contains(got.Progress.Approved.By, "carol (status page)") {
		t.Fatalf("approval after the click: %+v, %v", got.Progress.Approved, err)
	}
	clk.Add(10 * time.Second)
	run.Evaluate(ctx)
	if got, _ := run.Rollout(ro.ID); got.Stage != 1 || got.CanaryWeight() != 5000 {
		t.Fatalf("after the approval: stage %d at %d (%s)", got.Stage, got.CanaryWeight(), got.Reason)
	}
}
