package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// browser is a headless Chromium tab for one test, with helpers that read the
// rendered DOM.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromium(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(exe), chromedp.Flag("headless", true),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()))
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return &browser{t: t, ctx: ctx}
}

// open loads url and waits until sel is visible.
func (b *browser) open(url, sel string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("open %s, wait for %s: %v", url, sel, err)
	}
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

// texts returns the text of every element sel matches, in document order.
func (b *browser) texts(sel string) []string {
	b.t.Helper()
	s := b.eval(fmt.Sprintf(`JSON.stringify(Array.from(document.querySelectorAll(%q)).map(e => e.textContent.replace(/\s+/g, " ").trim()))`, sel))
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		b.t.Fatalf("texts of %s: %v", sel, err)
	}
	return out
}

// text is the text of the one element sel matches.
func (b *browser) text(sel string) string {
	b.t.Helper()
	got := b.texts(sel)
	if len(got) != 1 {
		b.t.Fatalf("%d elements match %s, want 1: %q", len(got), sel, got)
	}
	return got[0]
}

func wantIn(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q; it shows: %s", what, w, got)
		}
	}
}

// failingCanary is cleanTraffic except that one service's canary fails one request in five.
type failingCanary struct {
	cleanTraffic
	service, version string
}

func (f *failingCanary) VersionStats(ctx context.Context, svc catalog.Service, version string, w time.Duration, at time.Time) (metrics.Stats, error) {
	st, err := f.cleanTraffic.VersionStats(ctx, svc, version, w, at)
	if err == nil && svc.Name == f.service && version == f.version {
		st.Errors = st.Requests / 5
	}
	return st, err
}

// listening is a TCP address that accepts connections until the test ends; closed one
// that refuses them.
func listening(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return lis.Addr().String()
}

func closed(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// TestStatusPageStatesInChromium drives the real runner, the real health prober and
// the real xDS server into the states an operator must read off the page, and checks
// each in the DOM headless Chromium renders: endpoint health per version, a proxy that
// NACKed, "0 of 0 proxies" as a warning, the monitoring phase with the time left, and
// the numbers that decided a rollback kept after it.
func TestStatusPageStatesInChromium(t *testing.T) {
	b := newBrowser(t)
	alive1, alive2, dead := listening(t), listening(t), closed(t)
	doc := fmt.Sprintf(`
services:
  - name: cart
    port: 10001
    stable: v1
    healthCheck: {interval: 100ms, timeout: 50ms, unhealthyThreshold: 1}
    versions:
      - name: v1
        endpoints: [%q]
      - name: v2
        endpoints: [%q, %q]
  - name: checkout
    port: 10000
    stable: v1
    proxiesOptional: true
    versions:
      - name: v1
        endpoints: ["127.0.0.1:9001"]
      - name: v2
        endpoints: ["127.0.0.1:9002"]
  - name: payments
    port: 10002
    stable: v1
    proxiesOptional: true
    versions:
      - name: v1
        endpoints: ["127.0.0.1:9003"]
      - name: v2
        endpoints: ["127.0.0.1:9004"]
`, alive1, alive2, dead)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	cat, err := catalog.Parse("catalog.yaml", []byte(doc))
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
	prober := healthcheck.New(log, healthcheck.Options{})
	traffic := &failingCanary{service: "payments", version: "v2"}
	run, err := runner.New(context.Background(), cat, runner.Options{Log: log, Store: st, XDS: xs, Now: clk.Now, Metrics: traffic, Health: prober})
	if err != nil {
		t.Fatal(err)
	}
	traffic.run = run
	t.Cleanup(run.Close)
	ctx, cancel := context.WithCancel(context.Background())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proberDone, xdsDone := make(chan error, 1), make(chan error, 1)
	go func() { proberDone <- prober.Run(ctx) }()
	go func() { xdsDone <- xs.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		<-proberDone
		if err := <-xdsDone; err != nil {
			t.Errorf("xds Serve: %v", err)
		}
	})
	a := New(log, Options{Backend: run, Proxies: xs.Proxies, ProxyConfig: xs.ProxyConfig, XDSStats: xs.Stats,
		Registry: prometheus.NewRegistry(), Now: clk.Now, Version: "test"})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)

	// A proxy subscribes to cart's route and rejects it.
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	route := []string{translate.RouteName("cart")}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "edge-7"}, TypeUrl: resource.RouteType, ResourceNames: route}); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.RouteType, ResourceNames: route, ResponseNonce: first.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: "unknown cluster cart-v3"}}); err != nil {
		t.Fatal(err)
	}

	// checkout: promoted to 100 %, its monitoring window open for 10 minutes.
	spec := func(service string) controller.Spec {
		var s controller.Spec
		if err := json.Unmarshal([]byte(strings.NewReplacer(`"checkout"`, `"`+service+`"`,
			`"smokeChecks":["smoke"]`, `"waivers":[{"item":"smokeTests","reason":"page test","by":"qa"}]`).Replace(testSpecJSON)), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	bg := context.Background()
	full := clk.Now()
	if _, err := run.Start(bg, spec("checkout"), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Command(bg, "checkout", controller.Command{Kind: controller.CmdPromoteFull, Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	// payments: its canary fails one request in five until the runner rolls it back.
	ro, err := run.Start(bg, spec("payments"), "bob")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		clk.Add(controller.DefaultCheckInterval)
		run.Evaluate(bg)
		if got, _ := run.Rollout(ro.ID); got.State.Terminal() {
			break
		}
	}
	if got, _ := run.Rollout(ro.ID); got.State != controller.StateRolledBack {
		t.Fatalf("payments: %s at stage %d (%s), want rolled back", got.State, got.Stage, got.Reason)
	}
	// Wait for the prober's verdicts and the NACK before the page is read.
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, _ := run.Service("cart")
		h1, h2 := v.Health["v1"], v.Health["v2"]
		nacked := false
		for _, p := range xs.Proxies() {
			nacked = nacked || p.LastNACK != nil
		}
		if h1.Healthy == 1 && h2.Healthy == 1 && len(h2.Unhealthy) == 1 && nacked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cart health %+v, NACK seen %v", v.Health, nacked)
		}
		time.Sleep(20 * time.Millisecond)
	}

	b.open(srv.URL+"/", `section.service[data-service="payments"]`)

	// Endpoint health per version: v1 healthy, v2 with its unhealthy endpoint named.
	health := b.texts(`section.service[data-service="cart"] .health span`)
	if len(health) != 2 {
		t.Fatalf("cart health rows %q, want one per version", health)
	}
	wantIn(t, "cart v1 health", health[0], "v1: 1 of 1 endpoints healthy")
	wantIn(t, "cart v2 health", health[1], "v2: 1 of 2 endpoints healthy", "unhealthy: "+dead)
	if cls := b.eval(`Array.from(document.querySelectorAll('section.service[data-service="cart"] .health span')).map(e => e.className).join(",")`); cls != "ok,bad" {
		t.Errorf("cart health classes %q, want ok,bad", cls)
	}

	// The proxy that NACKed: listed on top with its message, and on cart's card.
	wantIn(t, "NACK table", b.text(`#nacks tr.nack`), "edge-7", "1", "RouteConfiguration", "unknown cluster cart-v3")
	wantIn(t, "cart proxies", b.text(`section.service[data-service="cart"] .proxies.bad`), "rejected", "edge-7", "unknown cluster cart-v3")

	// No proxy for checkout's weights: a warning, never green.
	if n := b.eval(`String(document.querySelectorAll('section.service[data-service="checkout"] .proxies.ok').length)`); n != "0" {
		t.Errorf("checkout's 0 of 0 proxies shown green")
	}
	wantIn(t, "checkout proxies", b.text(`section.service[data-service="checkout"] .proxies.warn`), "0 of 0", "no proxy serves these weights")

	// The monitoring phase and the time left.
	wantIn(t, "checkout phase", b.text(`section.service[data-service="checkout"] .phase`),
		fmt.Sprintf("monitoring phase Immediate (1 of 4) until 30m0s after 100%%: %s left of it, %s left of the monitoring window",
			roundDur(30*time.Minute-clk.Now().Sub(full)), roundDur(72*time.Hour-clk.Now().Sub(full))))
	// The numbers that decided the rollback, kept on the card after it.
	wantIn(t, "payments decided", b.text(`section.service[data-service="payments"] .decided`), "rolled back on: canary 20.000%", "vs stable 0.100%")
	wantIn(t, "payments checks", b.text(`section.service[data-service="payments"] table.checks`), "20.000%", "0.100%")
	if n := b.eval(`String(document.querySelectorAll('section.service[data-service="payments"] table.checks td.bad').length)`); n == "0" {
		t.Errorf("the canary's error rate that decided the rollback is not marked bad")
	}
	// And in the service's history.
	b.open(srv.URL+"/?service=payments", `#history tr.rollout`)
	wantIn(t, "payments history", b.text(`#history tr.rollout`), "rolled_back", "canary 20.000%", "stable 0.100%")
}

// TestStatusPageSummaryAndPagingInChromium: with 24 services, 22 of them rolling out
// (one paused) and one rolled back by an abort on the real runner, the page opens with a
// summary table of every service that is rolling out or was rolled back, lists the idle
// ones by name, and gives cards a page at a time, the paused rollout first, then the
// restoring one; the page 2 link shows the rest.
func TestStatusPageSummaryAndPagingInChromium(t *testing.T) {
	b := newBrowser(t)
	var cat strings.Builder
	cat.WriteString("services:\n")
	for i := range 24 {
		fmt.Fprintf(&cat, "  - name: svc-%02d\n    port: %d\n    stable: v1\n    versions:\n      - name: v1\n        endpoints: [\"127.0.0.1:%d\"]\n      - name: v2\n        endpoints: [\"127.0.0.1:%d\"]\n",
			i, 11000+i, 12000+i, 13000+i)
	}
	f := newFixture(t, fixtureOpts{catalog: cat.String()})
	bg := context.Background()
	for i := range 23 {
		var spec controller.Spec
		doc := strings.NewReplacer(`"checkout"`, fmt.Sprintf(`"svc-%02d"`, i),
			`"smokeChecks":["smoke"]`, `"waivers":[{"item":"smokeTests","reason":"page test","by":"qa"}]`).Replace(testSpecJSON)
		if err := json.Unmarshal([]byte(doc), &spec); err != nil {
			t.Fatal(err)
		}
		if _, err := f.runner.Start(bg, spec, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.runner.Command(bg, "svc-22", controller.Command{Kind: controller.CmdAbort, Actor: "alice", Reason: "wrong build"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.runner.Command(bg, "svc-15", controller.Command{Kind: controller.CmdPause, Actor: "alice", Reason: "looking"}); err != nil {
		t.Fatal(err)
	}

	b.open(f.srv.URL+"/", `#summary table.summary`)
	wantIn(t, "summary heading", b.text(`#summary h3`), "24 services: 2 idle, 21 progressing, 1 paused")
	rows := b.texts(`#summary table.summary tr[data-service]`)
	if len(rows) != 23 {
		t.Fatalf("%d summary rows, want the 22 services rolling out and the one rolled back: %q", len(rows), rows)
	}
	wantIn(t, "summary row of svc-22", rows[22], "svc-22", "idle", "last rollout rolled back", "wrong build")
	wantIn(t, "summary row of svc-00", rows[0], "svc-00", "progressing", "5%", "v1 → v2", "(1 of 4)", "0 of 0")
	wantIn(t, "summary row of svc-15", rows[15], "svc-15", "paused", "looking")
	wantIn(t, "idle list", b.text(`#summary p.idle`), "idle: svc-23")
	// The proxies column warns: nobody serves these weights.
	if n := b.eval(`String(document.querySelectorAll('#summary td.proxies.warn').length)`); n != "23" {
		t.Errorf("%s summary proxies cells warn, want 23", n)
	}
	cards := func() []string {
		return strings.Split(b.eval(`Array.from(document.querySelectorAll('section.service[data-service]')).map(e => e.dataset.service).join(",")`), ",")
	}
	page1 := cards()
	if len(page1) != cardsPerPage || page1[0] != "svc-15" || page1[1] != "svc-22" {
		t.Errorf("page 1 cards %q, want %d, svc-15 (paused) first, then svc-22 (restoring: no proxy ACKed)", page1, cardsPerPage)
	}
	// A row with a card on this page links to it; one without, to the service's page.
	links := b.eval(`Array.from(document.querySelectorAll('#summary tr[data-service] a')).map(a => a.getAttribute("href")).join(" ")`)
	wantIn(t, "summary links", links, "#svc-svc-15", "/?service=svc-21")
	if n := b.eval(`String(Array.from(document.querySelectorAll('#summary a[href^="#"]')).filter(a => !document.getElementById(a.getAttribute("href").slice(1))).length)`); n != "0" {
		t.Errorf("%s summary links point at no card", n)
	}
	wantIn(t, "page links", b.text(`nav.pages`), "page 1", "page 2")

	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`nav.pages a[href="/?page=2"]`)),
		chromedp.WaitVisible(chromedp.CSS(`nav.pages a[href="/?page=1"]`))); err != nil {
		t.Fatalf("click page 2: %v", err)
	}
	if cur := b.text(`nav.pages b`); cur != "page 2" {
		t.Errorf("after the click the current page is %q", cur)
	}
	page2 := cards()
	if len(page2) != 3 {
		t.Errorf("page 2 cards %q, want the 3 left", page2)
	}
	seen := map[string]bool{}
	for _, n := range append(page1, page2...) {
		if seen[n] {
			t.Errorf("%s has a card on both pages", n)
		}
		seen[n] = true
	}
	if len(seen) != 23 || seen["svc-23"] {
		t.Errorf("cards over both pages %v, want each of the 22 rolling out and the one restoring once", seen)
	}
	if rows := b.texts(`#summary table.summary tr[data-service]`); len(rows) != 23 {
		t.Errorf("page 2 summary has %d rows, want 23", len(rows))
	}
	if r := f.do(t, req{method: "GET", path: "/?page=3"}); r.status != 404 {
		t.Errorf("GET /?page=3: %d %s", r.status, r.body)
	}
}
