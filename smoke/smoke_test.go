package smoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/octoacme/octoroll/controller"
)

const pin = "x-octoroll-pin"

// serve starts a real HTTP server on 127.0.0.1:0 and returns its host:port.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return lis.Addr().String()
}

// deadAddr is a 127.0.0.1 address with nothing listening.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// recorded is what a server saw of one request.
type recorded struct {
	method, path, body string
	header             http.Header
	host               string
}

// app is a canary stand-in: fixed answers per path, and a record of every request.
type app struct {
	name string
	mu   sync.Mutex
	reqs []recorded
	stop chan struct{}
}

func newApp(name string) *app { return &app{name: name, stop: make(chan struct{})} }

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.reqs = append(a.reqs, recorded{method: r.Method, path: r.URL.RequestURI(), body: string(b), header: r.Header.Clone(), host: r.Host})
	a.mu.Unlock()
	switch r.URL.Path {
	case "/health":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","version":%q,"code":200,"ready":true,"db":null,"items":[{"id":"a1"}],"nested":{"x":1}}`, a.name)
	case "/fail":
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "database down\n")
	case "/redirect":
		http.Redirect(w, r, "/login", http.StatusFound)
	case "/text":
		fmt.Fprint(w, "plain text, not JSON")
	case "/big":
		w.Write([]byte(strings.Repeat("x", 5000) + "needle"))
	case "/slow":
		select {
		case <-r.Context().Done():
		case <-a.stop:
		}
	case "/echo":
		fmt.Fprintf(w, "%s %s", r.Method, b)
	default:
		http.NotFound(w, r)
	}
}

func (a *app) requests() []recorded {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]recorded(nil), a.reqs...)
}

func newRunner(t *testing.T, opts Options) *Runner { return New(zaptest.NewLogger(t), opts) }

func TestRunDirect(t *testing.T) {
	a := newApp("v2")
	t.Cleanup(func() { close(a.stop) })
	addr := serve(t, a)
	target := Target{Version: "v2", Endpoints: []string{addr}, PinHeader: pin}
	r := newRunner(t, Options{MaxBody: 1000})
	tests := []struct {
		name   string
		check  controller.HTTPCheck
		pass   bool
		detail string // substring of Detail
	}{
		{"any 2xx", controller.HTTPCheck{Path: "/health"}, true, addr + ": status 200"},
		{"status listed", controller.HTTPCheck{Path: "/fail", Expect: controller.HTTPExpect{Status: []int{503}}}, true, "status 503"},
		{"status not 2xx", controller.HTTPCheck{Path: "/fail"}, false, `status 503, want 2xx; body "database down\n"`},
		{"status not listed", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{Status: []int{201, 202}}}, false, "status 200, want 201 or 202"},
		{"not found", controller.HTTPCheck{Path: "/nope"}, false, "status 404"},
		{"redirect not followed", controller.HTTPCheck{Path: "/redirect"}, false, `status 302, want 2xx (redirect to "/login" not followed)`},
		{"redirect expected", controller.HTTPCheck{Path: "/redirect", Expect: controller.HTTPExpect{Status: []int{302}}}, true, "status 302"},
		{"body contains", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{BodyContains: `"status":"ok"`}}, true, ""},
		{"body lacks", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{BodyContains: "degraded"}}, false, `body does not contain "degraded"`},
		{"body beyond the limit", controller.HTTPCheck{Path: "/big", Expect: controller.HTTPExpect{BodyContains: "needle"}}, false, "in its first 1000 bytes"},
		{"excerpt bounded", controller.HTTPCheck{Path: "/big", Expect: controller.HTTPExpect{BodyContains: "needle"}}, false, "… (1000 bytes)"},
		{"json string", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "status", Equals: "ok"}, {Path: "version", Equals: "v2"}}}}, true, ""},
		{"json number", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "code", Equals: "200.0"}, {Path: "nested.x", Equals: "1"}}}}, true, ""},
		{"json bool null index", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "ready", Equals: "true"}, {Path: "db", Equals: "null"}, {Path: "items.0.id", Equals: "a1"}}}}, true, ""},
		{"json wrong value", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "status", Equals: "degraded"}}}}, false, `JSON field "status" is "ok", want "degraded"`},
		{"json missing key", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "nested.y", Equals: "1"}}}}, false, `JSON field "nested.y" missing (no key "nested.y")`},
		{"json index out of range", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "items.3.id", Equals: "a1"}}}}, false, `"3" is not an index of an array of 1`},
		{"json through a scalar", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "status.x", Equals: "1"}}}}, false, `("status" is a string)`},
		{"json object never equals", controller.HTTPCheck{Path: "/health", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "nested", Equals: "{}"}}}}, false, `JSON field "nested" is a object`},
		{"json not JSON", controller.HTTPCheck{Path: "/text", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "a", Equals: "b"}}}}, false, "body is not JSON"},
		{"other port", controller.HTTPCheck{Path: "/health", Port: portOf(t, deadAddr(t))}, false, "connection refused"},
	}
	var checks []controller.HTTPCheck
	for i, tt := range tests {
		tt.check.Name = fmt.Sprintf("c%d", i)
		checks = append(checks, tt.check)
	}
	// One Run for all of them: results come back in order, concurrently sent.
	res := r.Run(context.Background(), checks, target)
	if len(res) != len(tests) {
		t.Fatalf("%d results for %d checks", len(res), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := res[i]
			if got.Name != checks[i].Name || got.Passed != tt.pass || !strings.Contains(got.Detail, tt.detail) {
				t.Errorf("got %+v, want passed=%v detail containing %q", got, tt.pass, tt.detail)
			}
			if tt.name != "other port" && got.Duration <= 0 {
				t.Errorf("no duration: %+v", got)
			}
		})
	}
	for _, rq := range a.requests() {
		if rq.header.Get(pin) != "" {
			t.Errorf("direct request to %s carried the pin header", rq.path)
		}
	}
}

func portOf(t *testing.T, addr string) uint32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n uint32
	fmt.Sscan(p, &n)
	return n
}

func TestRunSendsMethodHeadersAndBody(t *testing.T) {
	a := newApp("v2")
	addr := serve(t, a)
	r := newRunner(t, Options{})
	res := r.Run(context.Background(), []controller.HTTPCheck{{
		Name: "order", Method: "post", Path: "/echo?dry=1", Body: `{"sku":"a"}`,
		Headers: map[string]string{"Content-Type": "application/json", "X-Smoke": "yes", "Host": "shop.example"},
		Expect:  controller.HTTPExpect{BodyContains: `POST {"sku":"a"}`},
	}}, Target{Version: "v2", Endpoints: []string{addr}, PinHeader: pin})
	if !res[0].Passed {
		t.Fatalf("%+v", res[0])
	}
	reqs := a.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	got := reqs[0]
	if got.method != "POST" || got.path != "/echo?dry=1" || got.body != `{"sku":"a"}` || got.host != "shop.example" ||
		got.header.Get("Content-Type") != "application/json" || got.header.Get("X-Smoke") != "yes" {
		t.Errorf("server saw %+v", got)
	}
}

func TestRunTimeout(t *testing.T) {
	a := newApp("v2")
	t.Cleanup(func() { close(a.stop) })
	addr := serve(t, a)
	r := newRunner(t, Options{})
	// The server never answers; only the check's timeout ends the request. A generous
	// deadline turns a timeout that is not honoured into a failure instead of a hang.
	done := make(chan []controller.CheckResult, 1)
	go func() {
		done <- r.Run(context.Background(), []controller.HTTPCheck{{Name: "slow", Path: "/slow", Timeout: controller.Duration(200 * time.Millisecond)}},
			Target{Version: "v2", Endpoints: []string{addr}})
	}()
	var res []controller.CheckResult
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return: the check's timeout was not honoured")
	}
	if res[0].Passed || !strings.Contains(res[0].Detail, "no response within timeout 200ms") {
		t.Fatalf("%+v", res[0])
	}

	// A cancelled context ends the run too, as a failed check.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = r.Run(ctx, []controller.HTTPCheck{{Name: "slow", Path: "/slow"}}, Target{Version: "v2", Endpoints: []string{addr}})
	if res[0].Passed || !strings.Contains(res[0].Detail, "canceled") {
		t.Fatalf("cancelled: %+v", res[0])
	}
}

func TestRunServerDown(t *testing.T) {
	addr := deadAddr(t)
	r := newRunner(t, Options{})
	res := r.Run(context.Background(), []controller.HTTPCheck{{Name: "home", Path: "/"}}, Target{Version: "v2", Endpoints: []string{addr}})
	if res[0].Passed || !strings.Contains(res[0].Detail, addr+": ") || !strings.Contains(res[0].Detail, "connection refused") {
		t.Fatalf("%+v", res[0])
	}
	res = r.Run(context.Background(), []controller.HTTPCheck{{Name: "home", Path: "/"}}, Target{Version: "v2"})
	if res[0].Passed || !strings.Contains(res[0].Detail, `no endpoints of canary version "v2"`) {
		t.Fatalf("no endpoints: %+v", res[0])
	}
}

func TestRunEveryEndpointMustPass(t *testing.T) {
	good := serve(t, newApp("v2"))
	bad := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	r := newRunner(t, Options{})
	check := controller.HTTPCheck{Name: "health", Path: "/health", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "status", Equals: "ok"}}}}
	res := r.Run(context.Background(), []controller.HTTPCheck{check}, Target{Version: "v2", Endpoints: []string{good, bad}})
	if res[0].Passed {
		t.Fatalf("one endpoint failing passed: %+v", res[0])
	}
	if want := "1 of 2 endpoints failed: " + bad + ": status 500"; !strings.HasPrefix(res[0].Detail, want) {
		t.Errorf("detail %q, want prefix %q", res[0].Detail, want)
	}
	if strings.Contains(res[0].Detail, good) {
		t.Errorf("detail names the passing endpoint: %q", res[0].Detail)
	}
	res = r.Run(context.Background(), []controller.HTTPCheck{check}, Target{Version: "v2", Endpoints: []string{good, good}})
	if !res[0].Passed {
		t.Fatalf("%+v", res[0])
	}
}

// pinProxy is a small reverse proxy that routes on the pin header as the Envoy pin
// routes do: the version it names, else the stable backend.
func pinProxy(t *testing.T, backends map[string]string, fallback string) string {
	t.Helper()
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		to := backends[pr.In.Header.Get(pin)]
		if to == "" {
			to = fallback
		}
		pr.SetURL(&url.URL{Scheme: "http", Host: to})
		pr.Out.Host = pr.In.Host
	}}
	return serve(t, rp)
}

func TestRunThroughProxy(t *testing.T) {
	stable, canary := newApp("v1"), newApp("v2")
	sAddr, cAddr := serve(t, stable), serve(t, canary)
	proxy := pinProxy(t, map[string]string{"v1": sAddr, "v2": cAddr}, sAddr)
	r := newRunner(t, Options{})
	checks := []controller.HTTPCheck{
		{Name: "version", URL: "http://" + proxy, Path: "/health", Expect: controller.HTTPExpect{JSON: []controller.JSONExpect{{Path: "version", Equals: "v2"}}}},
		{Name: "trailing slash", URL: "http://" + proxy + "/", Path: "/health?x=1", Expect: controller.HTTPExpect{BodyContains: `"version":"v2"`}},
	}
	res := r.Run(context.Background(), checks, Target{Version: "v2", Endpoints: []string{"10.255.255.1:1"}, PinHeader: pin})
	for _, c := range res {
		if !c.Passed || !strings.Contains(c.Detail, "via http://"+proxy) {
			t.Errorf("%+v", c)
		}
	}
	if n := len(stable.requests()); n != 0 {
		t.Errorf("stable got %d requests", n)
	}
	reqs := canary.requests()
	if len(reqs) != 2 || reqs[0].header.Get(pin) != "v2" {
		t.Fatalf("canary saw %+v", reqs)
	}
	if reqs[0].path != "/health" && reqs[1].path != "/health" {
		t.Errorf("paths %q %q", reqs[0].path, reqs[1].path)
	}

	// The same check aimed at a version the proxy does not know lands on stable and fails.
	res = r.Run(context.Background(), checks[:1], Target{Version: "v3", PinHeader: pin})
	if res[0].Passed || !strings.Contains(res[0].Detail, `JSON field "version" is "v1", want "v2"`) {
		t.Fatalf("%+v", res[0])
	}

	// A proxy that is down fails the check.
	down := controller.HTTPCheck{Name: "down", URL: "http://" + deadAddr(t), Path: "/"}
	res = r.Run(context.Background(), []controller.HTTPCheck{down}, Target{Version: "v2", PinHeader: pin})
	if res[0].Passed || !strings.Contains(res[0].Detail, "connection refused") {
		t.Fatalf("%+v", res[0])
	}
}

func TestNewKeepsInjectedClient(t *testing.T) {
	var used bool
	client := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		used = true
		return nil, errors.New("injected transport")
	})}
	r := newRunner(t, Options{Client: client})
	res := r.Run(context.Background(), []controller.HTTPCheck{{Name: "a", Path: "/"}}, Target{Version: "v2", Endpoints: []string{"127.0.0.1:1"}})
	if !used || res[0].Passed || !strings.Contains(res[0].Detail, "injected transport") {
		t.Fatalf("%+v", res[0])
	}
	if client.CheckRedirect != nil {
		t.Error("the caller's client was modified")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestExcerpt(t *testing.T) {
	if got := excerpt(nil); got != "empty" {
		t.Errorf("%q", got)
	}
	long := strings.Repeat("é", 150) // 300 bytes: the cut falls inside no rune
	got := excerpt([]byte(long))
	if !strings.HasSuffix(got, "… (300 bytes)") || strings.Contains(got, `\x`) {
		t.Errorf("%q", got)
	}
	odd := "a" + strings.Repeat("é", 150) // the cut at 200 would split a rune
	if got := excerpt([]byte(odd)); strings.Contains(got, `\x`) {
		t.Errorf("split rune: %q", got)
	}
}
