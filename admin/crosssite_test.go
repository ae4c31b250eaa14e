package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/admin/api"
)

// seenRequest is one request the admin server answered.
type seenRequest struct {
	method, path, origin, host string
	status                     int
}

// recordingServer serves h on 127.0.0.1 and records every request with its status.
type recordingServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func newRecordingServer(t *testing.T, h http.Handler) *recordingServer {
	rs := &recordingServer{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		rs.mu.Lock()
		rs.seen = append(rs.seen, seenRequest{r.Method, r.URL.Path, r.Header.Get("Origin"), r.Host, sw.code})
		rs.mu.Unlock()
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *recordingServer) requests() []seenRequest {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]seenRequest(nil), rs.seen...)
}

type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

// headless starts a headless Chromium with extra command-line flags.
func headless(t *testing.T, flags ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	exe := chromium(t)
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
	}, flags...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 45*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

// attackPage is what a site the operator visits could run against the admin API of a
// loopback server without a token: no-cors fetches (sent without a preflight, with a
// text/plain or no Content-Type), a CORS fetch declaring JSON (preflighted), a form
// posted into a hidden frame, and a cross-origin read. The page's title turns "done"
// when every attempt settled.
const attackPage = `<!doctype html><html><head><title>attack</title></head><body>
<iframe name="sink" id="sink"></iframe>
<form id="f" method="POST" enctype="text/plain" target="sink" action="ADMIN/api/v1/services/checkout/promote-full">
<input name='{"force":true,"x":"' value='"}'></form>
<script>
const admin = "ADMIN";
const results = {};
async function attempt(name, fn) {
  try { const r = await fn(); results[name] = r.type + ":" + r.status; }
  catch (e) { results[name] = "error:" + e.name; }
}
(async () => {
  await attempt("nocors-plain", () => fetch(admin + "/api/v1/services/checkout/promote-full",
    {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: '{"force":true}'}));
  await attempt("nocors-empty", () => fetch(admin + "/api/v1/services/checkout/pause", {method: "POST", mode: "no-cors"}));
  await attempt("nocors-start", () => fetch(admin + "/api/v1/rollouts",
    {method: "POST", mode: "no-cors", body: '{"service":"checkout","canary":{"version":"v2"}}'}));
  await attempt("cors-json", () => fetch(admin + "/api/v1/services/checkout/abort",
    {method: "POST", headers: {"Content-Type": "application/json"}, body: '{"reason":"x"}'}));
  await attempt("cors-read", () => fetch(admin + "/api/v1/services"));
  await new Promise(resolve => {
    document.getElementById("sink").onload = resolve;
    document.getElementById("f").submit();
  });
  window.results = results;
  document.title = "done";
})();
</script></body></html>`

// TestCrossSiteRequestsFromChromium serves a page from another origin on 127.0.0.1 and
// lets headless Chromium run it against a loopback admin server without a token: no
// mutation gets through, each is refused with a JSON 403 (or its preflight fails),
// and the browser cannot read the API. A name re-pointed at 127.0.0.1 (DNS rebinding)
// is refused too. The server's own origin still works.
func TestCrossSiteRequestsFromChromium(t *testing.T) {
	fb := newFakeBackend()
	a := New(zaptest.NewLogger(t), Options{Backend: fb, Addr: "127.0.0.1:8080"})
	adm := newRecordingServer(t, a.Handler())
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(strings.ReplaceAll(attackPage, "ADMIN", adm.URL)))
	}))
	t.Cleanup(evil.Close)
	adminURL, _ := url.Parse(adm.URL)

	// rebind.test resolves to 127.0.0.1 as a DNS-rebinding attacker's name would.
	ctx := headless(t, chromedp.Flag("host-resolver-rules", "MAP rebind.test 127.0.0.1"))
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL+"/")); err != nil {
		t.Fatalf("attack page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.title === "done"`, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("attack page did not finish: %v", err)
	}
	results, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`window.results`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("browser saw: %v", results)
	if r := results["cors-read"]; !strings.HasPrefix(r, "error:") {
		t.Errorf("cross-origin read: %s, want a CORS failure", r)
	}
	if r := results["cors-json"]; !strings.HasPrefix(r, "error:") {
		t.Errorf("preflighted JSON mutation: %s, want a CORS failure", r)
	}
	if cmds := fb.Commands(); len(cmds) != 0 {
		t.Fatalf("cross-site requests ran commands: %+v", cmds)
	}
	// Every mutation that reached the server was refused with 403; the preflight of the
	// JSON request found no CORS answer.
	mutations := map[string]int{}
	for _, r := range adm.requests() {
		switch r.method {
		case http.MethodPost:
			mutations[r.path]++
			if r.status != http.StatusForbidden || r.origin != evil.URL {
				t.Errorf("POST %s from %q answered %d, want 403", r.path, r.origin, r.status)
			}
		case http.MethodOptions:
			if r.status < 400 {
				t.Errorf("preflight of %s answered %d", r.path, r.status)
			}
		}
	}
	for _, p := range []string{"/api/v1/services/checkout/promote-full", "/api/v1/services/checkout/pause", "/api/v1/rollouts"} {
		if mutations[p] == 0 {
			t.Errorf("no cross-site POST %s reached the server (seen %v)", p, mutations)
		}
	}

	// DNS rebinding: the page and the API under a foreign name are refused.
	rebound := fmt.Sprintf("http://rebind.test:%s", adminURL.Port())
	if err := chromedp.Do(ctx, chromedp.Navigate(rebound+"/")); err != nil {
		t.Fatalf("rebound page: %v", err)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatalf("rebound page: %v", err)
	}
	if !strings.Contains(body, api.CodeForbiddenHost) || strings.Contains(body, "checkout") {
		t.Errorf("status page under a rebound name shows %q, want a forbidden_host error", body)
	}
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`fetch("/api/v1/services").then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusForbidden {
		t.Errorf("same-origin read under the rebound name: %d %v, want 403", status, err)
	}

	// The server's own page may mutate.
	if err := chromedp.Do(ctx, chromedp.Navigate(adm.URL+"/")); err != nil {
		t.Fatal(err)
	}
	status, err = chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/api/v1/services/checkout/pause", {method: "POST",
			headers: {"Content-Type": "application/json"}, body: "{}"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusOK {
		t.Fatalf("same-origin pause: %d %v, want 200", status, err)
	}
	if cmds := fb.Commands(); len(cmds) != 1 {
		t.Fatalf("same-origin pause: commands %+v", cmds)
	}
}
