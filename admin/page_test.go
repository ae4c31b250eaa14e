package admin

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/octoacme/octoroll/controller"
)

// chromium returns the path of the Chromium binary, skipping the test when it is
// missing (failing under CI=true).
func chromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium not found (CI=true): %v", err)
		}
		t.Skipf("chromium not installed (apt-get install chromium): %v", err)
	}
	return p
}

// TestStatusPageInChromium loads the status page in headless Chromium and checks what a
// person sees, then clicks Pause with a token.
func TestStatusPageInChromium(t *testing.T) {
	exe := chromium(t)
	fb := newFakeBackend()
	f := newFixture(t, fixtureOpts{backend: fb, token: "tok-123", addr: "0.0.0.0:8080"})

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 30*time.Second)
	defer cancelTimeout()

	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int]("document.querySelectorAll('"+sel+"').length"))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}

	run("load", chromedp.Navigate(f.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`section.service[data-service="checkout"]`)))
	card := text(`section.service[data-service="checkout"]`)
	for _, want := range []string{"checkout", "progressing", "25%", "canary 5%", "50%", "100%",
		"proxies converged 1 of 1", "stage_advanced", "v1 → v2", "0.250%", "120ms", "Pause", "Resume", "Promote", "Abort",
		"Promote to 100%", "Finish", "release report", "history",
		"last check: inconclusive over 10m0s", "interval [+0.050, +0.250] pp", "not significant at 0.99 confidence"} {
		if !strings.Contains(card, want) {
			t.Errorf("page lacks %q; it shows:\n%s", want, card)
		}
	}
	if cur := text(`ol.steps li.current`); !strings.Contains(cur, "25%") {
		t.Errorf("current step %q, want the 25%% stage", cur)
	}
	// The weight, the error rate and the P99 of both versions with the thresholds.
	if n := count(`svg.chart`); n != 3 {
		t.Errorf("%d charts, want weight, error rate and P99", n)
	}
	for _, sel := range []string{`svg.chart polyline.weight`, `svg.chart polyline.canary`, `svg.chart polyline.stable`,
		`svg.chart polyline.pause`, `svg.chart polyline.rollback`} {
		if count(sel) == 0 {
			t.Errorf("no %s", sel)
		}
	}
	points, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`svg.chart polyline.weight`), "points"))
	if err != nil {
		t.Fatalf("chart: %v", err)
	}
	if n := len(strings.Fields(points.Value)); n < 4 {
		t.Errorf("chart polyline has %d points: %q", n, points.Value)
	}
	// Buttons by state: progressing allows pause, promote, promote-full and abort.
	enabled := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('section.service button[data-action]:not([disabled])')).map(b => b.dataset.action).join(",")`))
		if err != nil {
			t.Fatalf("buttons: %v", err)
		}
		return s
	}
	if b, s, e := count(`section.service button[data-action]`), count(`ol.steps li`), count(`table.events tr.event`); b != 6 || s != 4 || e != 3 {
		t.Errorf("buttons %d (want 6), steps %d (want 4), event rows %d (want 3)", b, s, e)
	}
	if got := enabled(); got != "pause,promote,promote-full,abort" {
		t.Errorf("enabled buttons %q", got)
	}

	// The token is typed once into the masked field, with an actor; Pause sends both.
	if typ, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#token`), "type")); err != nil || typ.Value != "password" {
		t.Errorf("token field type %q (%v), want password", typ.Value, err)
	}
	run("click pause",
		chromedp.SendKeys(chromedp.CSS(`#token`), "tok-123"),
		chromedp.SendKeys(chromedp.CSS(`#actor`), "ana"),
		chromedp.Click(chromedp.CSS(`button[data-action="pause"][data-service="checkout"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash.ok`)),
		chromedp.WaitVisible(chromedp.CSS(`section.service .badge.paused`)))
	cmds := fb.Commands()
	if len(cmds) != 1 || cmds[0].Kind != controller.CmdPause || cmds[0].Actor != "admin (note: ana (status page))" {
		// The recorded actor is the token's name; the actor typed on the page a note.
		t.Fatalf("backend commands %+v, want one pause by the admin token noting ana", cmds)
	}
	if flash := text(`#flash`); !strings.Contains(flash, "paused") {
		t.Errorf("flash %q", flash)
	}
	if stored, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("octoroll.token")`)); stored != "tok-123" {
		t.Errorf("token in sessionStorage %q", stored)
	}
	if got := enabled(); got != "resume,promote,promote-full,abort" {
		t.Errorf("enabled buttons when paused %q", got)
	}

	// A wrong token is refused and shown.
	run("click resume",
		chromedp.SetValue(chromedp.CSS(`#token`), "wrong"),
		chromedp.Click(chromedp.CSS(`button[data-action="resume"][data-service="checkout"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash.error`)))
	if flash := text(`#flash`); !strings.Contains(flash, "invalid bearer token") || len(fb.Commands()) != 1 {
		t.Errorf("wrong token: flash %q, commands %d", flash, len(fb.Commands()))
	}
}

func TestRolloutPage(t *testing.T) {
	f := newFixture(t, fixtureOpts{backend: newFakeBackend()})
	r := f.do(t, req{method: "GET", path: "/rollouts/checkout-20250304-1"})
	if r.status != 200 || !strings.Contains(string(r.body), "<polyline") || !strings.Contains(string(r.body), "converged 1 of 1") {
		t.Fatalf("rollout page: %d\n%s", r.status, r.body)
	}
	r = f.do(t, req{method: "GET", path: "/"})
	if ct := r.header.Get("Content-Type"); r.status != 200 || !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("status page: %d %s", r.status, ct)
	}
}
