package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecretsRedactedEverywhere plants secrets in webhook URLs (a Slack-style path, a
// query token, user info), makes every notification fail (the receiver answers 400
// and echoes the URL it was called on) and a catalog reload fail on a bad URL, then
// looks for the secrets in everything octoroll shows: the events API, the status and
// rollout pages, the release report (Markdown and JSON), the status and services
// APIs, the metrics, the CLI's output and the daemon's log.
func TestSecretsRedactedEverywhere(t *testing.T) {
	secrets := []string{"PLANTEDSLACK0123", "PLANTEDTOKEN4567", "PLANTEDPASS89", "PLANTEDRELOAD42"}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such hook: "+r.URL.String(), http.StatusBadRequest)
	}))
	defer receiver.Close()
	catalog := twoVersions + `notifications:
  - name: slack
    url: ` + receiver.URL + `/services/T0AAAA/B0BBBB/` + secrets[0] + `
    format: slack
  - name: audit
    url: http://auditor:` + secrets[2] + `@` + strings.TrimPrefix(receiver.URL, "http://") + `/hook?token=` + secrets[1] + `
`
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.yaml")
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(catalog), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, []byte("service: checkout\nrelease: {type: minor, summary: faster, rollbackPlan: weights back to v1}\n"+
		"canary: {version: v2}\nwaivers: [{item: smokeTests, by: alice, reason: redaction test}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, path, "--log-level", "debug")
	var outputs []string
	out, code := d.cli("rollout", "start", "-f", spec)
	if code != 0 {
		t.Fatalf("rollout start: exit %d\n%s", code, out)
	}
	outputs = append(outputs, out)
	out, code = d.cli("abort", "checkout", "--reason", "redaction test")
	if code != 0 {
		t.Fatalf("abort: exit %d\n%s", code, out)
	}
	outputs = append(outputs, out)

	// Every lifecycle event's notification fails at both sinks.
	var events struct {
		Events []struct {
			Kind      string
			RolloutID string
			Reason    string
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	var failed int
	for failed < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("notification failures not recorded within 20s (%d)", failed)
		}
		time.Sleep(20 * time.Millisecond)
		if err := json.Unmarshal([]byte(d.get(t, "/api/v1/events?kind=notification_failed")), &events); err != nil {
			t.Fatal(err)
		}
		failed = len(events.Events)
	}
	if r := events.Events[0].Reason; !strings.Contains(r, "***") || !strings.Contains(r, "400") {
		t.Errorf("notification failure reason %q, want the redacted URL and the answer", r)
	}
	id := events.Events[0].RolloutID

	// A reload that fails on a sink URL.
	bad := strings.Replace(catalog, "url: "+receiver.URL, "url: ftp://ops:"+secrets[3]+"@hooks.example", 1)
	if err := os.WriteFile(path+".tmp", []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	state, _ := d.catalogState(t, "failing", func(state string, _ int) bool { return strings.HasPrefix(state, "failing") })
	if !strings.Contains(state, "url") {
		t.Errorf("reload failure %q does not name the field", state)
	}

	for _, p := range []string{"/api/v1/events?limit=1000", "/", "/rollouts/" + id, "/api/v1/rollouts/" + id,
		"/api/v1/rollouts/" + id + "/report", "/api/v1/status", "/api/v1/services", "/api/v1/services/checkout", "/metrics"} {
		outputs = append(outputs, p+"\n"+d.get(t, p))
	}
	outputs = append(outputs, "report.md\n"+d.getAccept(t, "/api/v1/rollouts/"+id+"/report", "text/markdown"))
	for _, args := range [][]string{{"status"}, {"status", "checkout"}, {"history", "--limit", "1000"}, {"history", "-o", "json"},
		{"report", id}, {"report", id, "-o", "json"}, {"rollout", "get", id}} {
		out, code := d.cli(args...)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
		outputs = append(outputs, strings.Join(args, " ")+"\n"+out)
	}
	outputs = append(outputs, "log\n"+d.logs.String())
	for _, o := range outputs {
		for _, s := range secrets {
			if i := strings.Index(o, s); i >= 0 {
				name, _, _ := strings.Cut(o, "\n")
				t.Errorf("%s shows secret %s: …%s…", name, s, o[max(0, i-120):min(len(o), i+40)])
			}
		}
	}
	if !strings.Contains(d.logs.String(), "/services/***") {
		t.Errorf("the log does not show the redacted sink URL")
	}
}
