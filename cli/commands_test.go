package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/lint"
	"github.com/octoacme/octoroll/model"
)

// fleetAPI serves two rollouts of checkout (r-0001 older, r-0002 latest, paused) and
// one of search (rs-0009, monitoring), honouring the service filter of the list.
func fleetAPI(t *testing.T) *httptest.Server {
	older := rolloutDetail(func(s *api.RolloutSummary) {
		s.State, s.EndedAt, s.Reason = controller.StateCompleted, t0.Add(3*time.Hour), "monitoring window of 72h0m0s closed without a no-go"
	})
	latest := rolloutDetail(func(s *api.RolloutSummary) {
		s.ID, s.State, s.PausedFrom = "r-0002", controller.StatePaused, controller.StateProgressing
		s.Reason = "paused by alice: checking a dashboard"
	})
	monitoring := rolloutDetail(func(s *api.RolloutSummary) {
		s.ID, s.Service, s.Stable, s.Canary = "rs-0009", "search", "v3", "v4"
		s.State, s.Stage, s.StageName, s.CanaryWeight, s.CanaryPercent = controller.StateMonitoring, 3, "100%", 10000, 100
		s.LastDecision, s.Reason = controller.DecisionContinue, "monitoring, checks passing"
	})
	monitoring.Rollout.State = controller.StateMonitoring
	monitoring.Rollout.Plan.Monitoring = controller.DefaultMonitoring()
	monitoring.Rollout.Phase = 1
	monitoring.Rollout.Progress.AckedAt = t0
	rollouts := map[string]api.RolloutDetail{"r-0001": older, "r-0002": latest, "rs-0009": monitoring}
	byService := map[string][]api.RolloutSummary{
		"checkout": {latest.RolloutSummary, older.RolloutSummary},
		"search":   {monitoring.RolloutSummary},
	}
	searchSvc := api.ServiceDetail{ServiceSummary: api.ServiceSummary{Name: "search", KnownGood: "v3", Versions: []string{"v3", "v4"},
		Weights: map[string]uint32{"v4": 10000}, WeightsPercent: model.Percents(map[string]uint32{"v4": 10000}), TotalWeight: model.TotalWeight,
		Proxies: api.ProxyConvergence{RouteVersion: "e5f6", Subscribed: 2, Acked: 2, Converged: true}, Active: &monitoring.RolloutSummary}}
	checkoutSvc := serviceDetail()
	checkoutSvc.Active = &latest.RolloutSummary
	status := api.StatusResponse{Catalog: model.CatalogStatus{Generation: 4, Failing: true, ReloadErrors: 2, LastErrorAt: t0.Add(time.Hour),
		LastError: "catalog.yaml:12:9: services[0].versions[1].endpoints[0]: \"10.0.0.1\": missing port"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, api.APIPrefix)
		switch {
		case r.Method == "GET" && p == "/status":
			writeCanned(w, canned{200, "", status})
		case r.Method == "GET" && p == "/services/search":
			writeCanned(w, canned{200, "", searchSvc})
		case r.Method == "GET" && p == "/services/checkout":
			writeCanned(w, canned{200, "", checkoutSvc})
		case r.Method == "POST" && p == "/services/checkout/pause":
			writeCanned(w, canned{409, "", api.Error{Error: "pause: command not valid in this state (paused)", Code: api.CodeInvalidState}})
		case r.Method == "GET" && p == "/rollouts":
			var list []api.RolloutSummary
			if s := r.URL.Query().Get("service"); s != "" {
				list = byService[s]
			} else {
				list = append(append([]api.RolloutSummary{monitoring.RolloutSummary}, latest.RolloutSummary), older.RolloutSummary)
			}
			if r.URL.Query().Get("limit") == "1" && len(list) > 1 {
				list = list[:1]
			}
			writeCanned(w, canned{200, "", api.RolloutsResponse{Rollouts: list}})
		case r.Method == "GET" && strings.HasSuffix(p, "/report"):
			id := strings.TrimSuffix(strings.TrimPrefix(p, "/rollouts/"), "/report")
			if _, ok := rollouts[id]; !ok {
				writeCanned(w, canned{404, "", api.Error{Error: "no rollout " + id, Code: api.CodeNotFound}})
				return
			}
			writeCanned(w, canned{200, "text/markdown", "# Release report: " + id + "\n"})
		case r.Method == "GET" && strings.HasPrefix(p, "/rollouts/"):
			d, ok := rollouts[strings.TrimPrefix(p, "/rollouts/")]
			if !ok {
				writeCanned(w, canned{404, "", api.Error{Error: "no rollout", Code: api.CodeNotFound}})
				return
			}
			writeCanned(w, canned{200, "", d})
		default:
			writeCanned(w, canned{404, "", api.Error{Error: "no route " + r.Method + " " + p, Code: api.CodeNotFound}})
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// runProgram runs a Program with a fixed clock, lint and stdin.
func runProgram(t *testing.T, server, stdin string, args ...string) (string, string, int) {
	t.Helper()
	p := Program{Version: "1.2.3", Lint: lint.File, Now: func() time.Time { return t0.Add(5*time.Hour + 33*time.Minute + 27*time.Second) },
		Interval: 10 * time.Millisecond}
	env := map[string]string{"OCTOROLL_SERVER": server, "USER": "alice"}
	var out, errb bytes.Buffer
	a := func(k string) string { return env[k] }
	code := p.withStdin(strings.NewReader(stdin)).Main(context.Background(), args, &out, &errb, a)
	return out.String(), errb.String(), code
}

func TestNewCommandsGolden(t *testing.T) {
	srv := fleetAPI(t)
	dir := t.TempDir()
	badSpec := filepath.Join(dir, "bad-spec.yaml")
	os.WriteFile(badSpec, []byte("service: checkout\nrelease: {type: minor}\ncanary:\n  version: v2\n  verison: v3\nstages:\n"+
		"  - {percent: 5, minWindow: 30}\n  - percent: 25\n"), 0o644)
	badCatalog := filepath.Join(dir, "bad-catalog.yaml")
	os.WriteFile(badCatalog, []byte("services:\n  - name: checkout\n    port: 10080\n    stable: v1\n    versions:\n      - name: v1\n        endpoints: [10.0.0.1]\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"rollout-get-service", []string{"rollout", "get", "checkout"}, 0},
		{"rollout-get-prefix", []string{"rollout", "get", "rs-"}, 0},
		{"rollout-get-ambiguous", []string{"rollout", "get", "r-000"}, 1},
		{"rollout-get-none", []string{"rollout", "get", "nothing"}, 1},
		{"report-service", []string{"report", "search"}, 0},
		{"pause-already-paused", []string{"pause", "checkout"}, 0},
		{"status-monitoring", []string{"status", "search"}, 0},
		{"status-paused-catalog-failing", []string{"status", "checkout"}, 0},
		{"status-yaml", []string{"-o", "yaml", "rollout", "list", "--service", "search"}, 0},
		{"wait-paused", []string{"wait", "checkout"}, ExitPaused},
		{"wait-monitoring", []string{"wait", "search", "--for", "monitoring"}, 0},
		{"wait-timeout", []string{"wait", "search", "--for", "completed", "--timeout", "50ms"}, ExitTimeout},
		{"wait-bad-for", []string{"wait", "x", "--rollout", "r-0001", "--for", "bogus"}, ExitUsage},
		{"lint", []string{"lint", "../examples/catalog.yaml", "../examples/rollouts/minor.yaml", badSpec, badCatalog}, ExitError},
		{"version", []string{"--version"}, 0},
		{"help-rollout", []string{"rollout", "-h"}, 0},
		{"help-wait", []string{"wait", "--help"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runProgram(t, srv.URL, "", tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			golden(t, tc.name, tc.args, stdout, strings.ReplaceAll(stderr, dir, "$DIR"), code)
		})
	}
}

// A rolled back rollout ends wait and status --watch with exit 3.
func TestWaitRolledBack(t *testing.T) {
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls++
		d := rolloutDetail(nil)
		if polls > 2 {
			d.State, d.Reason = controller.StateRolledBack, "no-go: error rate +2.1 pp over 5m0s"
		}
		writeCanned(w, canned{200, "", d})
	}))
	t.Cleanup(srv.Close)
	stdout, stderr, code := runProgram(t, srv.URL, "", "wait", "checkout", "--rollout", "r-0001")
	if code != ExitRolledBack || !strings.Contains(stderr, "rolled back: no-go: error rate +2.1 pp over 5m0s") ||
		strings.Count(stdout, "\n") != 2 {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
}

// -f - reads the spec from stdin; a JSON one is sent as JSON.
func TestRolloutStartStdin(t *testing.T) {
	f := newFakeAPI(t)
	spec := `{"service":"checkout","release":{"type":"minor"},"canary":{"version":"v2"}}`
	if _, stderr, code := runProgram(t, f.URL, spec, "rollout", "start", "--filename", "-"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := f.requests()[0]
	if r.Body != spec || r.ContentType != "application/json" {
		t.Errorf("request %+v", r)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		stdout, stderr, code := runProgram(t, "", "", "completion", shell)
		if code != 0 || !strings.Contains(stdout, "octoroll") || len(stdout) < 1000 {
			t.Errorf("completion %s: exit %d, %d bytes\n%s", shell, code, len(stdout), stderr)
		}
	}
	// The completions the scripts ask the binary for.
	stdout, _, _ := runProgram(t, "", "", "__complete", "ro")
	if !strings.Contains(stdout, "rollout") {
		t.Errorf("__complete ro: %q", stdout)
	}
	stdout, _, _ = runProgram(t, "", "", "__complete", "wait", "x", "--f")
	if !strings.Contains(stdout, "--for") {
		t.Errorf("__complete wait x --f: %q", stdout)
	}
}

// A pause ends status --watch with exit 4, as it ends wait: a person has to act.
func TestStatusWatchPaused(t *testing.T) {
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/services/checkout" {
			writeCanned(w, canned{200, "", api.StatusResponse{}})
			return
		}
		polls++
		d := serviceDetail()
		if polls > 2 {
			d.Active.State, d.Active.Reason = controller.StatePaused, "pause: canary P99 120ms > stable 100ms × 1.10"
		}
		writeCanned(w, canned{200, "", d})
	}))
	t.Cleanup(srv.Close)
	stdout, stderr, code := runProgram(t, srv.URL, "", "status", "checkout", "--watch", "--interval", "1ms")
	if code != ExitPaused || !strings.Contains(stderr, "rollout r-0001 of checkout is paused: pause: canary P99") || polls != 3 ||
		strings.Count(stdout, "\n--- ") != 2 {
		t.Errorf("exit %d after %d polls\n%s%s", code, polls, stdout, stderr)
	}
}
