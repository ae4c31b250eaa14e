package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/model"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/octoacme/octoroll/controller"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)

// Canned admin API responses, in the admin package's types.

func activeSummary() api.RolloutSummary {
	return api.RolloutSummary{
		ID: "r-0001", Service: "checkout", Stable: "v1", Canary: "v2", Release: "2025.3", Type: "minor",
		State: controller.StateProgressing, Stage: 1, StageName: "25%", Stages: 3,
		CanaryWeight: 2500, CanaryPercent: 25, Generation: 2,
		Plan:         "5% 15m0s → 25% 30m0s → 50% 30m0s → 100%",
		LastDecision: controller.DecisionContinue, Reason: "checks passing, 10m0s of 30m0s monitored",
		CreatedAt: t0, UpdatedAt: t0.Add(26 * time.Minute), StartedAt: t0,
	}
}

func services() api.ServicesResponse {
	a := activeSummary()
	return api.ServicesResponse{Services: []api.ServiceSummary{
		{Name: "checkout", KnownGood: "v1", Versions: []string{"v1", "v2"}, Weights: map[string]uint32{"v1": 7500, "v2": 2500}, WeightsPercent: model.Percents(map[string]uint32{"v1": 7500, "v2": 2500}),
			TotalWeight: model.TotalWeight, Proxies: api.ProxyConvergence{RouteVersion: "a1b2", Subscribed: 3, Acked: 3, Converged: true},
			Active: &a},
		{Name: "payments", KnownGood: "v7", Versions: []string{"v7"}, Weights: map[string]uint32{"v7": 10000}, WeightsPercent: model.Percents(map[string]uint32{"v7": 10000}),
			TotalWeight: model.TotalWeight, Proxies: api.ProxyConvergence{RouteVersion: "c3d4", Subscribed: 2, Acked: 1,
				Stragglers: []string{"payments-envoy-2"}}},
		restoringService(),
	}, Replicas: &api.Replicas{Self: "octoroll-2", Leader: "octoroll-0", Members: []api.Replica{
		{ID: "octoroll-0", Admin: "http://10.0.0.10:8081", XDS: "10.0.0.10:18000", Leader: true, Proxies: 41, Updated: t0.Add(time.Hour)},
		{ID: "octoroll-1", Admin: "http://10.0.0.11:8081", XDS: "10.0.0.11:18000", Proxies: 38, Updated: t0.Add(time.Hour)},
		{ID: "octoroll-2", Admin: "http://10.0.0.12:8081", XDS: "10.0.0.12:18000", Proxies: 0, Updated: t0.Add(50 * time.Minute),
			Error: "etcd is unreachable: serving the last state, taking no decision"},
	}}}
}

// restoringService was just aborted: its known-good weights are served, and one of its
// three proxies has not ACKed them yet.
func restoringService() api.ServiceSummary {
	d := &model.Restore{RolloutID: "r-0002", Version: "v3", Aborted: true, RolledBackAt: t0.Add(40 * time.Minute),
		Published: true, Subscribed: 3, Acked: 2, Stragglers: []string{"search-envoy-3"}}
	return api.ServiceSummary{Name: "search", KnownGood: "v3", Versions: []string{"v3", "v4"}, Weights: map[string]uint32{"v3": 10000, "v4": 0}, WeightsPercent: model.Percents(map[string]uint32{"v3": 10000, "v4": 0}),
		TotalWeight: model.TotalWeight, Proxies: api.ProxyConvergence{RouteVersion: "e5f6", Subscribed: 3, Acked: 2,
			Stragglers: []string{"search-envoy-3"}}, Restore: d, RestoreSummary: d.Summary()}
}

func serviceDetail() api.ServiceDetail {
	s := services().Services[0]
	s.Proxies = api.ProxyConvergence{RouteVersion: "a1b2", Subscribed: 3, Acked: 2, Stragglers: []string{"envoy-3"},
		NACK: &model.Nack{NodeID: "envoy-3", Version: "a1b2", Message: "weights do not sum", At: t0.Add(25 * time.Minute)}}
	th := controller.Thresholds{PauseErrorRatePP: 0.1, PauseLatencyRatio: 1.1, RollbackErrorRatePP: 1,
		RollbackSustain: controller.Duration(5 * time.Minute), RollbackLatencyRatio: 1.25, MinRequests: 100}
	return api.ServiceDetail{
		ServiceSummary: s,
		Catalog:        model.Service{Name: "checkout", Port: 8080, Stable: "v1"},
		Health: map[string]api.VersionHealth{
			"v1": {Total: 2, Healthy: 2}, "v2": {Total: 2, Healthy: 1, Unhealthy: []string{"10.0.1.2:8080"}}},
		LastObservation: &controller.Numbers{CanaryRequests: 2000, CanaryErrors: 2, StableRequests: 6000, StableErrors: 5,
			CanaryErrorPct: 0.1, StableErrorPct: 0.08333333, CanaryP99: controller.Duration(120456789), // prints rounded: 120ms
			StableP99: controller.Duration(118 * time.Millisecond), LatencyRatio: 1.017,
			DeltaLowPP: -0.083, DeltaHighPP: 0.141, Window: controller.Duration(12 * time.Minute), Verdict: controller.VerdictClean},
		Thresholds: &th,
	}
}

// abortedDetail is the answer to an abort: the rollout rolled back, how far its
// known-good weights got, and a warning.
func abortedDetail(service, canary string, d *model.Restore, warning string) api.RolloutDetail {
	out := rolloutDetail(func(s *api.RolloutSummary) {
		s.ID, s.Service, s.Stable, s.Canary = d.RolloutID, service, d.Version, canary
		s.State, s.CanaryWeight, s.CanaryPercent, s.Aborted = controller.StateRolledBack, 0, 0, true
		s.Reason, s.EndedAt = "aborted by alice: data integrity issue", t0.Add(30*time.Minute)
	})
	out.Restore, out.RestoreSummary, out.Warning = d, d.Summary(), warning
	return out
}

func rolloutDetail(mut func(*api.RolloutSummary)) api.RolloutDetail {
	s := activeSummary()
	if mut != nil {
		mut(&s)
	}
	return api.RolloutDetail{
		RolloutSummary: s,
		Timeline: []api.StageStep{
			{Index: 0, Name: "canary", Weight: 500, Percent: 5, MinWindow: model.Duration(15 * time.Minute), MaxWindow: model.Duration(30 * time.Minute),
				Status: api.StepDone, EnteredAt: t0, LeftAt: t0.Add(16 * time.Minute)},
			{Index: 1, Name: "25%", Weight: 2500, Percent: 25, MinWindow: model.Duration(30 * time.Minute), MaxWindow: model.Duration(60 * time.Minute),
				Status: api.StepCurrent, EnteredAt: t0.Add(16 * time.Minute)},
			{Index: 2, Name: "50%", Weight: 5000, Percent: 50, MinWindow: model.Duration(30 * time.Minute), MaxWindow: model.Duration(60 * time.Minute),
				Status: api.StepPending},
			{Index: 3, Name: "100%", Weight: 10000, Percent: 100, Status: api.StepPending},
		},
		Decision: &api.DecisionView{Time: t0.Add(26 * time.Minute), Decision: controller.DecisionContinue,
			Reason: "checks passing, 10m0s of 30m0s monitored"},
		Rollout: controller.Rollout{ID: "r-0001", Service: "checkout", Stable: "v1", Canary: "v2", State: controller.StateProgressing},
	}
}

func events() api.EventsResponse {
	ev := func(seq uint64, min int, kind string, mut func(*controller.Event)) api.EventRecord {
		e := controller.Event{Time: t0.Add(time.Duration(min) * time.Minute), Kind: kind, RolloutID: "r-0001", Service: "checkout",
			State: controller.StateProgressing, Stage: 0, StageName: "canary", Weight: 500, Generation: 1}
		if mut != nil {
			mut(&e)
		}
		return api.NewEventRecord(seq, e)
	}
	return api.EventsResponse{Next: 14, Events: []api.EventRecord{
		ev(10, 0, "started", func(e *controller.Event) { e.Reason = "plan 5% 15m0s → 25% 30m0s → 50% 30m0s → 100%" }),
		ev(11, 1, "acked", func(e *controller.Event) { e.Reason = "every proxy applied weights generation 1" }),
		ev(12, 5, "command", func(e *controller.Event) {
			e.Command, e.Actor, e.Reason = controller.CmdPause, "alice", "checking a dashboard"
		}),
		ev(13, 16, "stage_advanced", func(e *controller.Event) {
			e.Decision, e.Stage, e.StageName, e.Weight = controller.DecisionGo, 1, "25%", 2500
			e.Reason = "every check passed with enough data for 15m0s in stage canary"
		}),
	}}
}

func proxies() api.ProxiesResponse {
	return api.ProxiesResponse{Proxies: []model.ProxyStatus{
		{NodeID: "envoy-1", Cluster: "checkout", Zone: "eu-1a", ConnectedSince: t0.Add(-time.Hour), Streams: 1,
			Types: map[string]model.TypeStatus{
				"type.googleapis.com/envoy.config.listener.v3.Listener":        {Watched: []string{"*"}, AckedVersion: "l1"},
				"type.googleapis.com/envoy.config.route.v3.RouteConfiguration": {Watched: []string{"checkout"}, AckedVersion: "a1b2"},
				"type.googleapis.com/envoy.config.cluster.v3.Cluster":          {Watched: []string{"*"}, AckedVersion: "c1"},
			}},
		{NodeID: "envoy-3", ConnectedSince: t0.Add(-30 * time.Minute), Streams: 1, NACKs: 1,
			Types: map[string]model.TypeStatus{
				"type.googleapis.com/envoy.config.route.v3.RouteConfiguration": {Watched: []string{"checkout"}, AckedVersion: "9f8e"},
			},
			LastNACK: &model.Nack{NodeID: "envoy-3", TypeURL: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
				Version: "a1b2", Message: "weights do not sum", At: t0.Add(25 * time.Minute)}},
	}}
}

func proxyConfig() model.ProxyConfig {
	route := json.RawMessage(`{"@type":"type.googleapis.com/envoy.config.route.v3.RouteConfiguration","name":"checkout"}`)
	const rt = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	return model.ProxyConfig{NodeID: "envoy-1", Cluster: "checkout", Zone: "eu-1a", Types: []model.TypeConfig{{
		TypeURL: rt,
		Sent: &model.SentConfig{Version: "9f8e", At: t0.Add(25 * time.Minute),
			Resources: []model.ConfigResource{{Name: "checkout", Version: "9f8e", Resource: route}}},
		Acked: &model.SentConfig{Version: "a1b2", At: t0.Add(20 * time.Minute),
			Resources: []model.ConfigResource{{Name: "checkout", Version: "a1b2", Resource: route}}},
		LastNACK: &model.Nack{NodeID: "envoy-1", TypeURL: rt, Version: "9f8e", Message: "weights do not sum", At: t0.Add(25 * time.Minute)},
	}}}
}

const reportMD = "# Release report: checkout 2025.3\n\n## Outcome\n\n- **Result:** rolled back\n"

// recorded is one request the fake admin API received.
type recorded struct {
	Method, Path, Query, ContentType, Accept, Auth, Actor, Body string
}

// fakeAPI serves canned admin API responses and records the requests.
type fakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type canned struct {
	status int
	ctype  string
	body   any // marshalled as JSON unless a string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	errBody := func(code int, msg, c string) canned {
		return canned{code, "application/json", api.Error{Error: msg, Code: c}}
	}
	paused := rolloutDetail(func(s *api.RolloutSummary) {
		s.State, s.PausedFrom, s.Reason = controller.StatePaused, controller.StateProgressing, "paused by alice: checking a dashboard"
	})
	routes := map[string]canned{
		"GET /api/v1/services":          {200, "", services()},
		"GET /api/v1/services/checkout": {200, "", serviceDetail()},
		"GET /api/v1/services/nope":     errBody(404, `unknown service "nope"`, api.CodeUnknownService),
		"GET /api/v1/services/search":   {200, "", api.ServiceDetail{ServiceSummary: restoringService(), Catalog: model.Service{Name: "search", Port: 8081, Stable: "v3"}}},
		"POST /api/v1/rollouts": {201, "", rolloutDetail(func(s *api.RolloutSummary) {
			s.Stage, s.StageName, s.CanaryWeight, s.CanaryPercent, s.LastDecision, s.Reason = 0, "canary", 500, 5, "", ""
		})},
		"GET /api/v1/rollouts":                 {200, "", api.RolloutsResponse{Rollouts: []api.RolloutSummary{activeSummary()}}},
		"GET /api/v1/rollouts/r-0001":          {200, "", rolloutDetail(nil)},
		"GET /api/v1/rollouts/r-0001/report":   {200, "text/markdown; charset=utf-8", reportMD},
		"POST /api/v1/services/checkout/pause": {200, "", paused},
		"POST /api/v1/services/checkout/resume": {200, "", rolloutDetail(func(s *api.RolloutSummary) {
			s.Reason = ""
		})},
		"POST /api/v1/services/checkout/promote-full": {200, "", rolloutDetail(func(s *api.RolloutSummary) {
			s.State, s.Stage, s.StageName, s.CanaryWeight, s.CanaryPercent, s.Reason = controller.StateMonitoring, 3, "100%", 10000, 100, ""
		})},
		"POST /api/v1/services/checkout/promote": errBody(409, "promote: last check failed (error rate): a check is failing; use force to override", api.CodeCheckFailing),
		"POST /api/v1/services/checkout/abort": {200, "", abortedDetail("checkout", "v2", &model.Restore{RolloutID: "r-0001", Version: "v1",
			Aborted: true, RolledBackAt: t0.Add(30 * time.Minute), Published: true, Subscribed: 12, Acked: 12, Done: true,
			RestoredAt: t0.Add(30*time.Minute + 23*time.Millisecond)}, "")},
		// The store fails and the route does not publish yet: done as far as it can be.
		"POST /api/v1/services/search/abort": {202, "", abortedDetail("search", "v4", &model.Restore{RolloutID: "r-0002", Version: "v3",
			Aborted: true, RolledBackAt: t0.Add(30 * time.Minute), Subscribed: 3,
			NotPublished: "dns: lookup search-v3.internal: no such host", NotPersisted: "write: file too large"},
			"not yet persisted: write: file too large (published; the write is retried every tick)")},
		"POST /api/v1/services/payments/finish": errBody(409, `service "payments" has no active rollout`, api.CodeNoActiveRollout),
		"POST /api/v1/services/checkout/checks": {200, "", api.CheckResponse{Service: "checkout", Name: "smoke", Passed: false}},
		"GET /api/v1/events":                    {200, "", events()},
		"GET /api/v1/proxies":                   {200, "", proxies()},
		"GET /api/v1/proxies/envoy-1/config":    {200, "", proxyConfig()},
		"GET /api/v1/proxies/nope/config":       errBody(404, `no connected proxy with node id "nope"`, api.CodeUnknownProxy),
	}
	f := &fakeAPI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"),
			Accept: r.Header.Get("Accept"), Auth: r.Header.Get("Authorization"), Actor: r.Header.Get(api.ActorHeader), Body: string(body)})
		f.mu.Unlock()
		if r.Header.Get("Authorization") == "Bearer wrong" {
			writeCanned(w, errBody(401, "missing or wrong bearer token", api.CodeUnauthorized))
			return
		}
		key := r.Method + " " + r.URL.Path
		if r.URL.Path == "/api/v1/rollouts/r-0001/report" && r.Header.Get("Accept") == "application/json" {
			writeCanned(w, canned{200, "", map[string]any{"rolloutId": "r-0001", "outcome": map[string]any{"result": "rolled back"}}})
			return
		}
		if r.URL.Path == "/api/v1/broken" {
			writeCanned(w, canned{502, "text/html", "<html>bad gateway</html>"})
			return
		}
		c, ok := routes[key]
		if !ok {
			writeCanned(w, errBody(404, "no route "+key, api.CodeNotFound))
			return
		}
		writeCanned(w, c)
	}))
	t.Cleanup(f.Close)
	return f
}

func writeCanned(w http.ResponseWriter, c canned) {
	var b []byte
	if s, ok := c.body.(string); ok {
		b = []byte(s)
	} else {
		b, _ = json.Marshal(c.body)
	}
	ct := c.ctype
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(c.status)
	w.Write(b)
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

// run runs Main with an environment pointing at server.
func run(t *testing.T, server string, extraEnv map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	env := map[string]string{"OCTOROLL_SERVER": server, "USER": "alice"}
	for k, v := range extraEnv {
		env[k] = v
	}
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return out.String(), errOut.String(), code
}

func TestCommandsGolden(t *testing.T) {
	dir := t.TempDir()
	specYAML := filepath.Join(dir, "spec.yaml")
	specJSON := filepath.Join(dir, "spec.json")
	os.WriteFile(specYAML, []byte("service: checkout\nrelease: {type: minor, name: '2025.3'}\ncanary: {version: v2}\n"), 0o644)
	os.WriteFile(specJSON, []byte(`{"service":"checkout","release":{"type":"minor"},"canary":{"version":"v2"}}`), 0o644)

	tests := []struct {
		name string
		args []string
		want recorded // the request expected (Method and Path at least)
	}{
		{"status", []string{"status"}, recorded{Method: "GET", Path: "/api/v1/services"}},
		{"status-json", []string{"status", "-o", "json"}, recorded{Method: "GET", Path: "/api/v1/services"}},
		{"status-service", []string{"status", "checkout"}, recorded{Method: "GET", Path: "/api/v1/services/checkout"}},
		{"status-unknown-service", []string{"status", "nope"}, recorded{Method: "GET", Path: "/api/v1/services/nope"}},
		{"status-restoring", []string{"status", "search"}, recorded{Method: "GET", Path: "/api/v1/services/search"}},
		{"rollout-start-yaml", []string{"rollout", "start", "-f", specYAML},
			recorded{Method: "POST", Path: "/api/v1/rollouts", ContentType: "application/yaml", Actor: "alice",
				Body: "service: checkout\nrelease: {type: minor, name: '2025.3'}\ncanary: {version: v2}\n"}},
		{"rollout-start-json", []string{"rollout", "start", "-o", "json", "-f", specJSON},
			recorded{Method: "POST", Path: "/api/v1/rollouts", ContentType: "application/json", Actor: "alice",
				Body: `{"service":"checkout","release":{"type":"minor"},"canary":{"version":"v2"}}`}},
		{"rollout-list", []string{"rollout", "list", "--service", "checkout", "--active", "--limit", "5"},
			recorded{Method: "GET", Path: "/api/v1/rollouts", Query: "active=true&limit=5&service=checkout"}},
		{"rollout-get", []string{"rollout", "get", "r-0001"}, recorded{Method: "GET", Path: "/api/v1/rollouts/r-0001"}},
		{"pause", []string{"pause", "checkout", "--reason", "checking a dashboard"},
			recorded{Method: "POST", Path: "/api/v1/services/checkout/pause", ContentType: "application/json", Actor: "alice",
				Body: `{"reason":"checking a dashboard"}`}},
		{"resume", []string{"resume", "checkout"},
			recorded{Method: "POST", Path: "/api/v1/services/checkout/resume", ContentType: "application/json", Actor: "alice", Body: `{}`}},
		{"promote-full", []string{"promote", "--full", "--force", "checkout", "--reason", "hotfix verified"},
			recorded{Method: "POST", Path: "/api/v1/services/checkout/promote-full", ContentType: "application/json", Actor: "alice",
				Body: `{"reason":"hotfix verified","force":true}`}},
		{"promote-refused", []string{"promote", "checkout"},
			recorded{Method: "POST", Path: "/api/v1/services/checkout/promote", ContentType: "application/json", Actor: "alice", Body: `{}`}},
		{"abort", []string{"abort", "checkout", "--reason", "data integrity issue"},
			recorded{Method: "POST", Path: "/api/v1/services/checkout/abort", ContentType: "application/json", Actor: "alice",
				Body: `{"reason":"data integrity issue"}`}},
		{"abort-restoring", []string{"abort", "search", "--reason", "data integrity issue"},
			recorded{Method: "POST", Path: "/api/v1/services/search/abort", ContentType: "application/json", Actor: "alice",
				Body: `{"reason":"data integrity issue"}`}},
		{"finish-idle", []string{"finish", "payments"},
			recorded{Method: "POST", Path: "/api/v1/services/payments/finish", ContentType: "application/json", Actor: "alice", Body: `{}`}},
		{"history", []string{"history", "--service", "checkout", "--rollout", "r-0001", "--limit", "4"},
			recorded{Method: "GET", Path: "/api/v1/events", Query: "limit=4&rollout=r-0001&service=checkout"}},
		{"report", []string{"report", "r-0001"}, recorded{Method: "GET", Path: "/api/v1/rollouts/r-0001/report", Accept: "text/markdown"}},
		{"report-md", []string{"report", "r-0001", "-o", "md"}, recorded{Method: "GET", Path: "/api/v1/rollouts/r-0001/report", Accept: "text/markdown"}},
		{"report-json", []string{"report", "-o", "json", "r-0001"}, recorded{Method: "GET", Path: "/api/v1/rollouts/r-0001/report", Accept: "application/json"}},
		{"proxies", []string{"proxies"}, recorded{Method: "GET", Path: "/api/v1/proxies"}},
		{"proxy-config", []string{"proxy-config", "envoy-1"}, recorded{Method: "GET", Path: "/api/v1/proxies/envoy-1/config"}},
		{"proxy-config-unknown", []string{"proxy-config", "nope"}, recorded{Method: "GET", Path: "/api/v1/proxies/nope/config"}},
		{"check", []string{"check", "checkout", "smoke", "--fail", "--detail", "login flow 500"},
			recorded{Method: "POST", Path: "/api/v1/services/checkout/checks", ContentType: "application/json", Actor: "alice",
				Body: `{"name":"smoke","passed":false,"detail":"login flow 500"}`}},
		{"wrong-token", []string{"pause", "checkout", "--token", "wrong"},
			recorded{Method: "POST", Path: "/api/v1/services/checkout/pause", ContentType: "application/json", Auth: "Bearer wrong", Actor: "alice", Body: `{}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t)
			stdout, stderr, code := run(t, api.URL, nil, tc.args...)
			golden(t, tc.name, tc.args, stdout, stderr, code)
			// The request that answers the command; status SERVICE also reads the
			// catalog's state, report resolves its argument first.
			reqs := api.requests()
			var got recorded
			for _, r := range reqs {
				if r.Method == tc.want.Method && r.Path == tc.want.Path {
					got = r
				}
			}
			if got.Method == "" {
				t.Fatalf("no %s %s among the requests: %+v", tc.want.Method, tc.want.Path, reqs)
			}
			if tc.want.Accept == "" {
				got.Accept = "" // application/json everywhere else
			} else if tc.want.Accept == "text/markdown" && got.Accept != "text/markdown" {
				t.Errorf("Accept %q", got.Accept)
			}
			if tc.want.Method == "GET" {
				got.Actor = ""
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("request (-want +got):\n%s", d)
			}
		})
	}
}

// The token comes from the environment or --token, and is sent as a bearer token.
func TestToken(t *testing.T) {
	api := newFakeAPI(t)
	if _, stderr, code := run(t, api.URL, map[string]string{"OCTOROLL_ADMIN_TOKEN": "s3cret"}, "resume", "checkout"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, api.URL, map[string]string{"OCTOROLL_ADMIN_TOKEN": "s3cret"}, "resume", "--token", "other", "checkout"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	reqs := api.requests()
	if reqs[0].Auth != "Bearer s3cret" || reqs[1].Auth != "Bearer other" {
		t.Errorf("auth headers %q, %q", reqs[0].Auth, reqs[1].Auth)
	}
	// --server overrides the environment; an address without a scheme is http.
	host := strings.TrimPrefix(api.URL, "http://")
	if _, stderr, code := run(t, "http://127.0.0.1:1", nil, "status", "--server", host); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// closedPort returns the address of a port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestServerDown(t *testing.T) {
	server := closedPort(t)
	for _, args := range [][]string{{"status"}, {"pause", "checkout"}, {"report", "r-0001"}, {"proxies", "-o", "json"}} {
		stdout, stderr, code := run(t, server, nil, args...)
		want := fmt.Sprintf("octoroll: cannot reach the admin API at %s: connection refused — is `octoroll serve` running? set --server or OCTOROLL_SERVER\n", server)
		if code != ExitError || stdout != "" || stderr != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and %q", args, code, stdout, stderr, want)
		}
	}
	// The default address is used when nothing is set.
	var out, errOut bytes.Buffer
	Main(context.Background(), []string{"status", "--server", server}, &out, &errOut, nil)
	if !strings.Contains(errOut.String(), server) {
		t.Errorf("stderr %q", errOut.String())
	}
}

func TestDefaultServer(t *testing.T) {
	a := &App{env: func(string) string { return "" }}
	if _, err := a.client(); err != nil {
		t.Fatal(err)
	}
	if a.server != DefaultServer || a.token != "" {
		t.Errorf("server %q token %q", a.server, a.token)
	}
}

func TestNonJSONError(t *testing.T) {
	api := newFakeAPI(t)
	c := &client{base: api.URL, http: http.DefaultClient}
	_, err := c.do(context.Background(), request{method: "GET", path: "/broken"})
	if err == nil || err.Error() != "the server answered 502 Bad Gateway: <html>bad gateway</html> (HTTP 502)" {
		t.Errorf("error %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no-args", nil},
		{"unknown-command", []string{"deploy"}},
		{"abort-without-reason", []string{"abort", "checkout"}},
		{"pause-without-service", []string{"pause"}},
		{"pause-two-services", []string{"pause", "a", "b"}},
		{"check-pass-and-fail", []string{"check", "checkout", "smoke", "--pass", "--fail"}},
		{"check-missing-name", []string{"check", "checkout", "--pass"}},
		{"rollout-no-subcommand", []string{"rollout"}},
		{"rollout-start-no-file", []string{"rollout", "start"}},
		{"rollout-unknown-subcommand", []string{"rollout", "stop"}},
		{"bad-output", []string{"status", "-o", "xml"}},
		{"report-bad-output", []string{"report", "r-0001", "-o", "html"}},
		{"unknown-flag", []string{"status", "--colour"}},
		{"force-on-pause", []string{"pause", "checkout", "--force"}},
		{"bad-server", []string{"status", "--server", "ftp://x"}},
		{"history-negative-limit", []string{"history", "--limit", "-1"}},
		{"proxy-config-without-id", []string{"proxy-config"}},
		{"proxy-config-table-output", []string{"proxy-config", "envoy-1", "-o", "table"}},
	}
	api := newFakeAPI(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := run(t, api.URL, nil, tc.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			golden(t, "usage-"+tc.name, tc.args, stdout, stderr, code)
		})
	}
	if n := len(api.requests()); n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
	if _, stderr, code := run(t, api.URL, nil, "rollout", "start", "-f", "/does/not/exist.yaml"); code != ExitError || !strings.Contains(stderr, "read rollout spec") {
		t.Errorf("missing spec file: exit %d, %q", code, stderr)
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"status", "-h"}, {"abort", "--help"}, {"rollout", "-h"}, {"help", "rollout", "start"}} {
		if stdout, _, code := run(t, api.URL, nil, args...); code != 0 || !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, "--server") {
			t.Errorf("%v: exit %d, %q", args, code, stdout)
		}
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		p    float64
		want string
	}{
		{0, "[....................]   0.0%"},
		{0.1, "[#...................]   0.1%"},
		{5, "[#...................]   5.0%"},
		{25, "[#####...............]  25.0%"},
		{50, "[##########..........]  50.0%"},
		{100, "[####################] 100.0%"},
	} {
		if got := bar(tc.p); got != tc.want {
			t.Errorf("bar(%v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

// golden compares a command's outputs and exit code with testdata/name.golden.
func golden(t *testing.T, name string, args []string, stdout, stderr string, code int) {
	t.Helper()
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = a
		if filepath.IsAbs(a) && strings.HasPrefix(a, os.TempDir()) {
			shown[i] = "$DIR/" + filepath.Base(a) // temporary directories vary between runs
		}
	}
	got := fmt.Sprintf("$ octoroll %s\n--- stdout\n%s--- stderr\n%s--- exit %d\n", strings.Join(shown, " "), stdout, stderr, code)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, d)
	}
}

// TestStatusShowsProblemsGolden: a service whose desired state is not published and a
// catalog on disk that is refused show in `octoroll status`, after the table.
func TestStatusShowsProblemsGolden(t *testing.T) {
	resp := services()
	resp.Services[1].Publication = &api.Publication{OK: false, FailingSince: t0.Add(3 * time.Minute),
		Error: `resolve endpoints of service "payments": service.versions[0] "v7": resolve "payments.internal": lookup payments.internal: no such host`}
	resp.Catalog = &model.CatalogStatus{Generation: 3, ReloadErrors: 1, LastLoaded: t0, RefusedSince: t0.Add(4 * time.Minute),
		Refused: "it drops service checkout, which has active rollout r-0001"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/services" {
			writeCanned(w, canned{404, "", api.Error{Error: "no route", Code: api.CodeNotFound}})
			return
		}
		writeCanned(w, canned{200, "", resp})
	}))
	t.Cleanup(srv.Close)
	args := []string{"status"}
	stdout, stderr, code := run(t, srv.URL, nil, args...)
	golden(t, "status-problems", args, stdout, stderr, code)

	args = []string{"status", "-o", "json"}
	stdout, _, code = run(t, srv.URL, nil, args...)
	if code != 0 || !strings.Contains(stdout, `"state": "refused: it drops service checkout`) || !strings.Contains(stdout, `"ok": false`) {
		t.Errorf("status -o json: exit %d\n%s", code, stdout)
	}
}
