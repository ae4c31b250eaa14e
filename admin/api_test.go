package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/octoacme/octoroll/admin/api"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds"
)

const testCatalog = `
services:
  - name: checkout
    port: 10000
    stable: v1
    versions:
      - name: v1
        endpoints: ["127.0.0.1:9001"]
      - name: v2
        endpoints: ["127.0.0.1:9002"]
  - name: cart
    port: 10001
    stable: v1
    versions:
      - name: v1
        endpoints: ["127.0.0.1:9003"]
`

const testSpecJSON = `{"service":"checkout","release":{"name":"2.0.0","type":"minor","summary":"faster checkout",
 "rollbackPlan":"route 100% back to v1"},"canary":{"version":"v2"},"smokeChecks":["smoke"]}`

const testSpecYAML = `service: checkout
release:
  name: "2.0.0"
  type: minor
  summary: faster checkout
  rollbackPlan: route 100% back to v1
canary:
  version: v2
smokeChecks: [smoke]
`

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	srv    *httptest.Server
	admin  *Server
	runner *runner.Runner
	xds    *xds.Server
	reg    *prometheus.Registry
	clock  *clock
	token  string
}

type fixtureOpts struct {
	token   string
	addr    string
	ready   func() error
	report  ReportFunc
	backend Backend // nil: the real runner
	// catalog is the catalog YAML (default testCatalog), resolver the runner's DNS
	// resolver (default the system's) and catalogStatus the watcher's status (default
	// generation 1 with 2 reload errors).
	catalog       string
	resolver      publish.HostResolver
	catalogStatus func() catalog.Status
}

// newFixture serves the real admin handler over HTTP in front of a real runner with a
// real store and a real (not serving) xds server.
func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	log := zaptest.NewLogger(t)
	if o.catalog == "" {
		o.catalog = testCatalog
	}
	if o.catalogStatus == nil {
		o.catalogStatus = func() catalog.Status { return catalog.Status{Generation: 1, ReloadErrors: 2} }
	}
	cat, err := catalog.Parse("catalog.yaml", []byte(o.catalog))
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
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	run, err := runner.New(ctx, cat, runner.Options{Log: log, Store: st, XDS: xs, Now: clk.Now, Resolver: o.resolver})
	if err != nil {
		t.Fatal(err)
	}
	if o.addr == "" {
		o.addr = "127.0.0.1:8080"
	}
	var be Backend = run
	if o.backend != nil {
		be = o.backend
	}
	reg := prometheus.NewRegistry()
	a := New(log, Options{
		Backend: be, Proxies: xs.Proxies, ProxyConfig: xs.ProxyConfig, XDSStats: xs.Stats,
		CatalogStatus: o.catalogStatus,
		Ready:         o.ready, Token: o.token, Addr: o.addr, Report: o.report,
		Registry: reg, Now: clk.Now, Version: "test",
	})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, admin: a, runner: run, xds: xs, reg: reg, clock: clk, token: o.token}
}

type req struct {
	method, path, body string
	ctype              string  // default application/json for a mutation; "none" sends none
	token              *string // nil: the fixture's token
	header             map[string]string
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (f *fixture) do(t *testing.T, r req) resp {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, f.srv.URL+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case r.ctype == "none":
	case r.ctype != "":
		hr.Header.Set("Content-Type", r.ctype)
	case r.method != http.MethodGet:
		hr.Header.Set("Content-Type", "application/json")
	}
	tok := f.token
	if r.token != nil {
		tok = *r.token
	}
	if tok != "" {
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	res, err := f.srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// expect checks the status, and for errors that the body is a JSON Error with code.
func expect(t *testing.T, name string, got resp, status int, code string) {
	t.Helper()
	if got.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", name, got.status, status, got.body)
	}
	if status < 400 {
		return
	}
	var e api.Error
	dec := json.NewDecoder(bytes.NewReader(got.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("%s: error body %q is not a JSON error: %v", name, got.body, err)
	}
	if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: error Content-Type %q", name, ct)
	}
	if code != "" && e.Code != code {
		t.Fatalf("%s: code %q, want %q (%s)", name, e.Code, code, e.Error)
	}
	for _, bad := range []string{"goroutine ", ".go:", "/tmp/", "state.db"} {
		if strings.Contains(e.Error, bad) {
			t.Errorf("%s: error message leaks %q: %s", name, bad, e.Error)
		}
	}
}

func decode[T any](t *testing.T, r resp) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, r.body)
	}
	return v
}

func ptr(s string) *string { return &s }

// TestAPIRollout drives one rollout through every endpoint and action against the real
// runner, including the wrong-state answers.
func TestAPIRollout(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: "s3cret",
		report: func(r controller.Rollout, evs []controller.Event) ([]byte, any) {
			return []byte("# Release " + r.Spec.Release.Name + "\n"), map[string]any{"id": r.ID, "events": len(evs)}
		}})
	post := func(path, body string) req { return req{method: "POST", path: path, body: body} }
	get := func(path string) req { return req{method: "GET", path: path} }

	// Idle: nothing to promote.
	for _, action := range []string{"pause", "resume", "promote", "promote-full", "finish"} {
		expect(t, "idle "+action, f.do(t, post("/api/v1/services/checkout/"+action, "")), 409, api.CodeNoActiveRollout)
	}
	expect(t, "idle abort", f.do(t, post("/api/v1/services/checkout/abort", `{"reason":"no"}`)), 409, api.CodeNoActiveRollout)
	expect(t, "idle check", f.do(t, post("/api/v1/services/checkout/checks", `{"name":"smoke","passed":true}`)), 409, api.CodeNoActiveRollout)

	svcs := decode[api.ServicesResponse](t, f.do(t, get("/api/v1/services")))
	if len(svcs.Services) != 2 || svcs.Services[0].Name != "cart" || svcs.Services[1].Name != "checkout" {
		t.Fatalf("services: %+v", svcs)
	}
	if w := svcs.Services[1].Weights["v1"]; w != catalog.TotalWeight || svcs.Services[1].Active != nil {
		t.Fatalf("idle checkout: %+v", svcs.Services[1])
	}
	expect(t, "unknown service", f.do(t, get("/api/v1/services/nope")), 404, api.CodeUnknownService)
	expect(t, "unknown service action", f.do(t, post("/api/v1/services/nope/pause", "")), 404, api.CodeUnknownService)
	expect(t, "unknown action", f.do(t, post("/api/v1/services/checkout/explode", "")), 404, api.CodeNotFound)

	// Start with JSON.
	r := f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: testSpecJSON, ctype: "application/json",
		header: map[string]string{api.ActorHeader: "alice"}})
	expect(t, "start", r, 201, "")
	started := decode[api.RolloutDetail](t, r)
	if started.Service != "checkout" || started.Canary != "v2" || started.Stable != "v1" || started.ID == "" {
		t.Fatalf("started: %+v", started.RolloutSummary)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/rollouts/"+started.ID {
		t.Errorf("Location %q", loc)
	}
	if len(started.Timeline) != started.Stages+1 || started.Timeline[len(started.Timeline)-1].Percent != 100 {
		t.Fatalf("timeline: %+v", started.Timeline)
	}
	t.Logf("started %s: %s, %s stage %d (%s) at %g%%", started.ID, started.Plan, started.State, started.Stage, started.StageName, started.CanaryPercent)

	// A second start of the same service conflicts.
	expect(t, "second start", f.do(t, post("/api/v1/rollouts", testSpecJSON)), 409, api.CodeActiveRollout)
	expect(t, "start unknown service", f.do(t, post("/api/v1/rollouts",
		strings.Replace(testSpecJSON, `"checkout"`, `"nope"`, 1))), 404, api.CodeUnknownService)

	// Service detail shows the active rollout and the weights.
	det := decode[api.ServiceDetail](t, f.do(t, get("/api/v1/services/checkout")))
	if det.Active == nil || det.Active.ID != started.ID || det.Thresholds == nil || len(det.Catalog.Versions) != 2 {
		t.Fatalf("detail: %+v", det)
	}
	if det.Weights["v2"] != started.CanaryWeight {
		t.Errorf("published canary weight %d, rollout says %d", det.Weights["v2"], started.CanaryWeight)
	}

	// Lists and filters.
	rs := decode[api.RolloutsResponse](t, f.do(t, get("/api/v1/rollouts?service=checkout&active=true")))
	if len(rs.Rollouts) != 1 || rs.Rollouts[0].ID != started.ID {
		t.Fatalf("rollouts: %+v", rs)
	}
	rs = decode[api.RolloutsResponse](t, f.do(t, get("/api/v1/rollouts?state=completed")))
	if len(rs.Rollouts) != 0 {
		t.Fatalf("completed rollouts: %+v", rs)
	}
	expect(t, "bad state", f.do(t, get("/api/v1/rollouts?state=exploded")), 400, api.CodeBadRequest)
	expect(t, "bad active", f.do(t, get("/api/v1/rollouts?active=maybe")), 400, api.CodeBadRequest)
	expect(t, "bad limit", f.do(t, get("/api/v1/rollouts?limit=-1")), 400, api.CodeBadRequest)
	got := decode[api.RolloutDetail](t, f.do(t, get("/api/v1/rollouts/"+started.ID)))
	if got.ID != started.ID || got.Rollout.Plan.Type != controller.Minor {
		t.Fatalf("get rollout: %+v", got.RolloutSummary)
	}
	expect(t, "unknown rollout", f.do(t, get("/api/v1/rollouts/nope")), 404, api.CodeNotFound)

	// Checks.
	r = f.do(t, post("/api/v1/services/checkout/checks", `{"name":"smoke","passed":true,"detail":"ok"}`))
	expect(t, "check", r, 200, "")
	if cr := decode[api.CheckResponse](t, r); cr.Name != "smoke" || !cr.Passed || cr.Service != "checkout" {
		t.Fatalf("check response %+v", cr)
	}
	expect(t, "check without name", f.do(t, post("/api/v1/services/checkout/checks", `{"passed":true}`)), 400, api.CodeBadRequest)
	expect(t, "check unknown service", f.do(t, post("/api/v1/services/nope/checks", `{"name":"smoke"}`)), 404, api.CodeUnknownService)

	// Actions.
	r = f.do(t, req{method: "POST", path: "/api/v1/services/checkout/pause", body: `{"reason":"look at logs"}`,
		header: map[string]string{api.ActorHeader: "bob"}})
	expect(t, "pause", r, 200, "")
	if d := decode[api.RolloutDetail](t, r); d.State != controller.StatePaused {
		t.Fatalf("after pause: %s", d.State)
	}
	expect(t, "pause twice", f.do(t, post("/api/v1/services/checkout/pause", "")), 409, api.CodeInvalidState)
	r = f.do(t, post("/api/v1/services/checkout/resume", ""))
	expect(t, "resume", r, 200, "")
	if d := decode[api.RolloutDetail](t, r); d.State == controller.StatePaused {
		t.Fatalf("after resume still paused")
	}
	expect(t, "resume twice", f.do(t, post("/api/v1/services/checkout/resume", "")), 409, api.CodeInvalidState)
	r = f.do(t, post("/api/v1/services/checkout/promote", `{"reason":"looks good","force":true}`))
	expect(t, "promote", r, 200, "")
	promoted := decode[api.RolloutDetail](t, r)
	t.Logf("after promote: %s stage %d at %g%%", promoted.State, promoted.Stage, promoted.CanaryPercent)
	r = f.do(t, post("/api/v1/services/checkout/promote-full", `{"reason":"hotfix","force":true}`))
	expect(t, "promote-full", r, 200, "")
	full := decode[api.RolloutDetail](t, r)
	if full.CanaryWeight != catalog.TotalWeight {
		t.Fatalf("after promote-full: %+v", full.RolloutSummary)
	}
	expect(t, "abort without reason", f.do(t, post("/api/v1/services/checkout/abort", `{}`)), 400, api.CodeReasonRequired)
	expect(t, "abort blank reason", f.do(t, post("/api/v1/services/checkout/abort", `{"reason":"  "}`)), 400, api.CodeReasonRequired)
	r = f.do(t, post("/api/v1/services/checkout/finish", `{"reason":"enough","force":true}`))
	if r.status != 200 && r.status != 409 {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	if r.status == 200 {
		if d := decode[api.RolloutDetail](t, r); d.State != controller.StateCompleted {
			t.Fatalf("after finish: %s", d.State)
		}
		t.Log("finish completed the rollout")
	} else {
		t.Logf("finish refused: %s", r.body)
		r = f.do(t, post("/api/v1/services/checkout/abort", `{"reason":"bad canary"}`))
		expect(t, "abort", r, 200, "")
		if d := decode[api.RolloutDetail](t, r); d.State != controller.StateRolledBack {
			t.Fatalf("after abort: %s", d.State)
		}
	}
	expect(t, "promote after the end", f.do(t, post("/api/v1/services/checkout/promote", "")), 409, api.CodeNoActiveRollout)

	// Second rollout, started from YAML, then aborted.
	r = f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: strings.NewReplacer("2.0.0", "2.0.1", "version: v2", "version: v1").Replace(testSpecYAML), ctype: "application/yaml"})
	expect(t, "start yaml", r, 201, "")
	second := decode[api.RolloutDetail](t, r)
	if second.Release != "2.0.1" || second.ID == started.ID {
		t.Fatalf("yaml start: %+v", second.RolloutSummary)
	}
	r = f.do(t, post("/api/v1/services/checkout/abort", `{"reason":"error budget"}`))
	expect(t, "abort", r, 200, "")
	aborted := decode[api.RolloutDetail](t, r)
	if aborted.State != controller.StateRolledBack || !aborted.Aborted {
		t.Fatalf("after abort: %+v", aborted.RolloutSummary)
	}
	var failed int
	for _, s := range aborted.Timeline {
		if s.Status == api.StepFailed {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("aborted timeline has %d failed steps: %+v", failed, aborted.Timeline)
	}
	det = decode[api.ServiceDetail](t, f.do(t, get("/api/v1/services/checkout")))
	if det.Active != nil {
		t.Fatalf("still active after abort")
	}

	// Events: paging with the cursor sees every event once, in order.
	var all []api.EventRecord
	var after uint64
	for i := 0; i < 100; i++ {
		page := decode[api.EventsResponse](t, f.do(t, get("/api/v1/events?limit=3&after="+itoa(after))))
		if len(page.Events) == 0 {
			break
		}
		all = append(all, page.Events...)
		after = page.Next
	}
	if len(all) < 6 {
		t.Fatalf("only %d events", len(all))
	}
	kinds := map[string]bool{}
	for i, e := range all {
		if i > 0 && e.Seq <= all[i-1].Seq {
			t.Fatalf("events out of order at %d: %d after %d", i, e.Seq, all[i-1].Seq)
		}
		kinds[e.Kind] = true
	}
	for _, k := range []string{controller.EventCommand, controller.EventPaused, controller.EventResumed, controller.EventRolledBack} {
		if !kinds[k] {
			t.Errorf("no %s event among %v", k, kinds)
		}
	}
	filtered := decode[api.EventsResponse](t, f.do(t, get("/api/v1/events?rollout="+second.ID+"&kind="+controller.EventRolledBack)))
	if len(filtered.Events) != 1 || filtered.Events[0].RolloutID != second.ID {
		t.Fatalf("filtered events: %+v", filtered)
	}
	var actors []string
	for _, e := range decode[api.EventsResponse](t, f.do(t, get("/api/v1/events?service=checkout&kind=command&limit=1000"))).Events {
		actors = append(actors, e.Actor)
	}
	if !strings.Contains(strings.Join(actors, ","), "bob") || !strings.Contains(strings.Join(actors, ","), api.DefaultActor) {
		t.Errorf("command actors %v: want bob and %s", actors, api.DefaultActor)
	}
	expect(t, "bad cursor", f.do(t, get("/api/v1/events?after=x")), 400, api.CodeBadRequest)

	// Report, by Accept.
	r = f.do(t, req{method: "GET", path: "/api/v1/rollouts/" + started.ID + "/report", header: map[string]string{"Accept": "text/markdown"}})
	expect(t, "report md", r, 200, "")
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/markdown") || string(r.body) != "# Release 2.0.0\n" {
		t.Fatalf("markdown report: %s %q", ct, r.body)
	}
	r = f.do(t, req{method: "GET", path: "/api/v1/rollouts/" + started.ID + "/report", header: map[string]string{"Accept": "application/json, text/markdown;q=0.5"}})
	expect(t, "report json", r, 200, "")
	var doc map[string]any
	if err := json.Unmarshal(r.body, &doc); err != nil || doc["id"] != started.ID {
		t.Fatalf("json report: %s", r.body)
	}
	expect(t, "report unknown", f.do(t, get("/api/v1/rollouts/nope/report")), 404, api.CodeNotFound)

	// Proxies and status.
	pr := decode[api.ProxiesResponse](t, f.do(t, get("/api/v1/proxies")))
	if pr.Proxies == nil || len(pr.Proxies) != 0 {
		t.Fatalf("proxies: %+v", pr)
	}
	st := decode[api.StatusResponse](t, f.do(t, get("/api/v1/status")))
	if st.Version != "test" || st.Catalog.Generation != 1 || st.XDS.Updates == 0 {
		t.Fatalf("status: %+v", st)
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func TestAuth(t *testing.T) {
	const mut = "/api/v1/services/checkout/pause"
	tests := []struct {
		name, token, addr string
		send              *string
		status            int
		code              string
	}{
		{"token, none sent", "s3cret", "0.0.0.0:8080", ptr(""), 401, api.CodeUnauthorized},
		{"token, wrong", "s3cret", "0.0.0.0:8080", ptr("guess"), 401, api.CodeUnauthorized},
		{"token, wrong prefix", "s3cret", "0.0.0.0:8080", ptr("s3cre"), 401, api.CodeUnauthorized},
		{"token, right", "s3cret", "0.0.0.0:8080", ptr("s3cret"), 409, api.CodeNoActiveRollout},
		{"token on loopback still required", "s3cret", "127.0.0.1:8080", ptr(""), 401, api.CodeUnauthorized},
		{"no token, loopback", "", "127.0.0.1:8080", ptr(""), 409, api.CodeNoActiveRollout},
		{"no token, ipv6 loopback", "", "[::1]:8080", ptr(""), 409, api.CodeNoActiveRollout},
		{"no token, localhost", "", "localhost:8080", ptr(""), 409, api.CodeNoActiveRollout},
		{"no token, wildcard", "", ":8080", ptr(""), 403, api.CodeForbidden},
		{"no token, public", "", "10.0.0.5:8080", ptr("anything"), 403, api.CodeForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{token: tc.token, addr: tc.addr})
			got := f.do(t, req{method: "POST", path: mut, token: tc.send})
			expect(t, tc.name, got, tc.status, tc.code)
			if tc.status == 401 && got.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			// Reads never need the token.
			expect(t, "read", f.do(t, req{method: "GET", path: "/api/v1/services", token: ptr("")}), 200, "")
		})
	}
	t.Run("raw scheme", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{token: "s3cret"})
		for _, h := range []string{"s3cret", "Basic s3cret", "Bearer", "Bearer  wrong"} {
			got := f.do(t, req{method: "POST", path: mut, token: ptr(""), header: map[string]string{"Authorization": h}})
			expect(t, h, got, 401, api.CodeUnauthorized)
		}
		got := f.do(t, req{method: "POST", path: mut, token: ptr(""), header: map[string]string{"Authorization": "bearer s3cret"}})
		expect(t, "lower-case scheme", got, 409, api.CodeNoActiveRollout)
	})
}

func TestBodies(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	big := `{"service":"checkout","release":{"summary":"` + strings.Repeat("x", MaxBodyBytes) + `"}}`
	tests := []struct {
		name, path, body, ctype string
		status                  int
		code                    string
	}{
		{"oversized spec", "/api/v1/rollouts", big, "application/json", 413, api.CodeTooLarge},
		{"oversized action", "/api/v1/services/checkout/pause", `{"reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, "", 413, api.CodeTooLarge},
		{"empty spec", "/api/v1/rollouts", "", "", 400, api.CodeBadRequest},
		{"malformed json", "/api/v1/rollouts", `{"service":`, "application/json", 400, api.CodeBadRequest},
		{"not an object", "/api/v1/rollouts", `[1,2]`, "", 400, api.CodeBadRequest},
		{"wrong type", "/api/v1/rollouts", `{"service":7}`, "", 400, api.CodeBadRequest},
		{"unknown field", "/api/v1/rollouts", `{"service":"checkout","colour":"blue"}`, "", 400, api.CodeBadRequest},
		{"unknown nested field", "/api/v1/rollouts", strings.Replace(testSpecJSON, `"version":"v2"`, `"version":"v2","replicas":3`, 1), "", 400, api.CodeBadRequest},
		{"trailing data", "/api/v1/rollouts", testSpecJSON + ` {}`, "", 400, api.CodeBadRequest},
		{"bad duration", "/api/v1/rollouts", strings.Replace(testSpecJSON, `"smokeChecks"`, `"checkInterval":"soon","smokeChecks"`, 1), "", 400, api.CodeBadRequest},
		{"yaml unknown field", "/api/v1/rollouts", testSpecYAML + "colour: blue\n", "application/x-yaml", 400, api.CodeBadRequest},
		{"yaml malformed", "/api/v1/rollouts", "service: [", "text/yaml", 400, api.CodeBadRequest},
		{"yaml two documents", "/api/v1/rollouts", testSpecYAML + "---\n" + testSpecYAML, "application/yaml", 400, api.CodeBadRequest},
		{"yaml empty", "/api/v1/rollouts", "# nothing\n", "application/yaml", 400, api.CodeBadRequest},
		{"unsupported type", "/api/v1/rollouts", testSpecJSON, "text/plain", 415, api.CodeUnsupportedType},
		{"yaml on an action", "/api/v1/services/checkout/pause", "reason: x", "application/yaml", 415, api.CodeUnsupportedType},
		{"action unknown field", "/api/v1/services/checkout/pause", `{"why":"x"}`, "", 400, api.CodeBadRequest},
		{"check malformed", "/api/v1/services/checkout/checks", `{"name":"smoke","passed":"yes"}`, "", 400, api.CodeBadRequest},
		{"invalid spec", "/api/v1/rollouts", `{"service":"checkout","release":{"type":"huge"},"canary":{"version":"v2"}}`, "", 400, api.CodeInvalidSpec},
		{"preflight", "/api/v1/rollouts", `{"service":"checkout","release":{"type":"minor"},"canary":{"version":"v2"}}`, "", 422, api.CodePreflight},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, tc.name, f.do(t, req{method: "POST", path: tc.path, body: tc.body, ctype: tc.ctype}), tc.status, tc.code)
		})
	}
	// Nothing above started a rollout.
	if rs := decode[api.RolloutsResponse](t, f.do(t, req{method: "GET", path: "/api/v1/rollouts"})); len(rs.Rollouts) != 0 {
		t.Fatalf("rollouts after bad bodies: %+v", rs)
	}
}

func TestRoutingErrors(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	expect(t, "no route", f.do(t, req{method: "GET", path: "/api/v1/nothing"}), 404, api.CodeNotFound)
	expect(t, "no page", f.do(t, req{method: "GET", path: "/favicon.ico"}), 404, api.CodeNotFound)
	r := f.do(t, req{method: "DELETE", path: "/api/v1/rollouts"})
	expect(t, "method", r, 405, api.CodeMethodNotAllowed)
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q", allow)
	}
	expect(t, "get on action", f.do(t, req{method: "GET", path: "/api/v1/services/checkout/pause"}), 405, api.CodeMethodNotAllowed)
	expect(t, "no report func", f.do(t, req{method: "GET", path: "/api/v1/rollouts/x/report"}), 404, api.CodeNotFound)
}

func TestHealth(t *testing.T) {
	var mu sync.Mutex
	readyErr := errors.New("catalog not loaded")
	f := newFixture(t, fixtureOpts{ready: func() error { mu.Lock(); defer mu.Unlock(); return readyErr }})
	expect(t, "healthz", f.do(t, req{method: "GET", path: "/healthz"}), 200, "")
	r := f.do(t, req{method: "GET", path: "/readyz"})
	if r.status != 503 || decode[api.HealthResponse](t, r).Error != "catalog not loaded" {
		t.Fatalf("readyz not ready: %d %s", r.status, r.body)
	}
	if st := decode[api.StatusResponse](t, f.do(t, req{method: "GET", path: "/api/v1/status"})); st.Ready != "catalog not loaded" {
		t.Fatalf("status ready %q", st.Ready)
	}
	mu.Lock()
	readyErr = nil
	mu.Unlock()
	r = f.do(t, req{method: "GET", path: "/readyz"})
	if r.status != 200 || decode[api.HealthResponse](t, r).Status != "ok" {
		t.Fatalf("readyz ready: %d %s", r.status, r.body)
	}
}

func TestMetricsScrape(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	expect(t, "start", f.do(t, req{method: "POST", path: "/api/v1/rollouts", body: testSpecJSON}), 201, "")
	m := f.admin.Metrics()
	m.Event(controller.Event{Kind: controller.EventCreated, Service: "checkout"})
	m.Event(controller.Event{Kind: controller.EventPaused, Service: "checkout", Decision: controller.DecisionPause, Cause: controller.CauseErrorRate})
	m.Event(controller.Event{Kind: controller.EventRolledBack, Service: "checkout", Decision: controller.DecisionRollback, Cause: controller.CauseErrorRate})
	m.NotificationFailure("slack")
	m.SourceUp("prometheus", true)
	m.ObservePush(3 * time.Millisecond)
	var nilMetrics *Metrics // a nil *Metrics counts nothing and does not panic
	nilMetrics.Event(controller.Event{Kind: controller.EventRolledBack, Decision: controller.DecisionRollback})
	nilMetrics.NotificationFailure("x")
	nilMetrics.SourceUp("x", false)
	nilMetrics.ObservePush(time.Second)

	r := f.do(t, req{method: "GET", path: "/metrics"})
	if r.status != 200 {
		t.Fatalf("metrics: %d", r.status)
	}
	text := string(r.body)
	for _, want := range []string{
		`octoroll_canary_weight{service="checkout"}`,
		`octoroll_canary_weight{service="cart"} 0`,
		`octoroll_rollout_stage{service="checkout"} 0`,
		`octoroll_rollout_state{service="checkout",state="progressing"} 1`,
		`octoroll_rollout_state{service="cart",state="idle"} 1`,
		`octoroll_proxies_connected 0`,
		`octoroll_proxies_subscribed{service="checkout"} 0`,
		`octoroll_proxies_converged{service="checkout"} 0`,
		`octoroll_xds_pushes_total`,
		`octoroll_xds_nacks_total{type="all"} 0`,
		`octoroll_xds_push_duration_seconds_bucket`,
		`octoroll_xds_push_duration_seconds_count 1`,
		`octoroll_config_reload_errors_total 2`,
		`octoroll_decisions_total{decision="pause",reason="error_rate",service="checkout"} 1`,
		`octoroll_decisions_total{decision="rollback",reason="error_rate",service="checkout"} 1`,
		`octoroll_rollbacks_total{reason="error_rate",service="checkout"} 1`,
		`octoroll_rollbacks_total{reason="manual_abort",service="checkout"} 0`,
		`octoroll_notification_failures_total{sink="slack"} 1`,
		`octoroll_metrics_source_up{source="prometheus"} 1`,
		`go_goroutines`,
		`process_`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	// New on the same registry twice keeps the first collectors instead of panicking.
	_ = New(zaptest.NewLogger(t), Options{Backend: f.runner, Registry: f.reg})
}

// TestCheckMetrics covers the per-version check gauges with a backend whose last
// observation is known.
func TestCheckMetrics(t *testing.T) {
	fb := newFakeBackend()
	f := newFixture(t, fixtureOpts{backend: fb})
	text := string(f.do(t, req{method: "GET", path: "/metrics"}).body)
	for _, want := range []string{
		`octoroll_check_error_ratio{service="checkout",version="v2"} 0.0025`,
		`octoroll_check_error_ratio{service="checkout",version="v1"} 0.001`,
		`octoroll_check_p99_seconds{service="checkout",version="v2"} 0.12`,
		`octoroll_check_p99_seconds{service="checkout",version="v1"} 0.1`,
		`octoroll_canary_weight{service="checkout"} 2500`,
		`octoroll_proxies_converged{service="checkout"} 1`,
		`octoroll_rollout_info{canary="v2",release="2.0.0",rollout="checkout-20250304-1",service="checkout",stable="v1",type="minor"} 1`,
		`octoroll_build_info{goversion="go`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

func TestPanicIsJSON500(t *testing.T) {
	fb := newFakeBackend()
	fb.panicOn = "Services"
	f := newFixture(t, fixtureOpts{backend: fb})
	r := f.do(t, req{method: "GET", path: "/api/v1/services"})
	expect(t, "panic", r, 500, api.CodeInternal)
	fb.panicOn = ""
	fb.err = errors.New("open /var/lib/octoroll/state.db: disk on fire")
	r = f.do(t, req{method: "GET", path: "/api/v1/rollouts"})
	expect(t, "internal error", r, 500, api.CodeInternal)
}

func TestServe(t *testing.T) {
	fb := newFakeBackend()
	a := New(zaptest.NewLogger(t), Options{Backend: fb, Addr: "0.0.0.0:1"})
	lis, err := newLocalListener()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, lis) }()
	res, err := http.Post("http://"+lis.Addr().String()+"/api/v1/services/checkout/pause", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	// Serve learned the real, loopback address: no token needed.
	if res.StatusCode != 200 {
		t.Fatalf("pause on loopback without token: %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func FuzzDecodeSpec(f *testing.F) {
	f.Add([]byte(testSpecJSON), false)
	f.Add([]byte(testSpecYAML), true)
	f.Add([]byte(`{"service":"x"} {}`), false)
	f.Add([]byte(`{"stages":[{"percent":5,"minWindow":"5m"}]}`), false)
	f.Add([]byte("stages:\n  - percent: 5\n    minWindow: 5m\n"), true)
	f.Add([]byte("a: &a [*a]"), true)
	f.Add([]byte(`{"smokeTests":[{"name":"home","path":"/","expect":{"status":[200],"json":[{"path":"status","equals":"ok"}]}}],`+
		`"synthetics":[{"name":"cart","path":"/cart","url":"http://127.0.0.1:1","timeout":"1s"}]}`), false)
	f.Add([]byte("smokeTests:\n  - name: home\n    path: /\n    headers: {X-A: b}\n    expect: {status: [200], bodyContains: ok}\n"), true)
	f.Add([]byte("synthetics: [{name: a, path: x, expect: {json: [{path: a..b}]}}]\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, yml bool) {
		format := formatJSON
		if yml {
			format = formatYAML
		}
		spec, err := DecodeSpec(data, format)
		if err == nil {
			_ = spec.Validate() // must not panic on anything that decodes
			return
		}
		status, code, msg := classify(err)
		if status != http.StatusBadRequest || code != api.CodeBadRequest || msg == "" {
			t.Fatalf("decode error classified %d %s %q: %v", status, code, msg, err)
		}
		b, jerr := json.Marshal(api.Error{Error: msg, Code: code})
		if jerr != nil || !json.Valid(b) {
			t.Fatalf("error body not JSON: %v", jerr)
		}
	})
}

// TestPausedSinceMetric: a paused rollout exports when it was paused; a running one
// exports nothing.
func TestPausedSinceMetric(t *testing.T) {
	fb := newFakeBackend()
	f := newFixture(t, fixtureOpts{backend: fb})
	if text := string(f.do(t, req{method: "GET", path: "/metrics"}).body); strings.Contains(text, "octoroll_rollout_paused_since_seconds{") {
		t.Errorf("running rollout exports a paused-since time:\n%s", text)
	}
	if _, err := fb.Command(context.Background(), "checkout", controller.Command{Kind: controller.CmdPause, Actor: "ana"}); err != nil {
		t.Fatal(err)
	}
	text := string(f.do(t, req{method: "GET", path: "/metrics"}).body)
	_, after, found := strings.Cut(text, "\n"+`octoroll_rollout_paused_since_seconds{service="checkout"} `)
	value, _, _ := strings.Cut(after, "\n")
	got, err := strconv.ParseFloat(value, 64)
	if want := fakeStart.Add(25 * time.Minute).Unix(); !found || err != nil || int64(got) != want {
		t.Errorf("paused since %q (%v), want %d", value, err, want)
	}
}
