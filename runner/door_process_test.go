package runner_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// post sends body as JSON to the admin API and returns the status and the body.
func (p *octorollProc) post(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(p.admin+"/api/v1"+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// service reads one service from the admin API.
func (p *octorollProc) service(t *testing.T, name string) api.ServiceDetail {
	t.Helper()
	resp, err := http.Get(p.admin + "/api/v1/services/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d api.ServiceDetail
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRefusedAtTheDoorProcess runs the real binary with two services. A rollout of one
// with a canary version translation refuses (v|2) or a canary endpoint that does not
// resolve is refused with 400 naming the field, and nothing of it is stored; an abort
// of the other service then puts its real gRPC xDS client on 100 % known-good within a
// second. Then a rollout persisted by a laxer octoroll (its canary renamed v|2 in the
// state file while the process is down) does not stop the restarted process: that
// service is reported failing and serves its known-good version, and its abort
// publishes it again.
func TestRefusedAtTheDoorProcess(t *testing.T) {
	bin := buildOctoroll(t)
	dir := t.TempDir()
	catalogFile := filepath.Join(dir, "catalog.yaml")
	var b strings.Builder
	b.WriteString("services:\n")
	for i, s := range []struct{ name, v1, v2 string }{
		{svcName, xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2")},
		{otherName, xdstest.StartBackend(t, "o1"), xdstest.StartBackend(t, "o2")},
	} {
		fmt.Fprintf(&b, "  - name: %s\n    port: %d\n    stable: v1\n    versions:\n"+
			"      - name: v1\n        endpoints: [%s]\n      - name: v2\n        endpoints: [%s]\n", s.name, 10001+i, s.v1, s.v2)
	}
	if err := os.WriteFile(catalogFile, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	// Stages of an hour, no metrics: the rollouts move only by command.
	spec := func(service string) controller.Spec {
		s := halfSpec(service)
		for i := range s.Stages {
			s.Stages[i].MinWindow = controller.Duration(time.Hour)
		}
		s.CheckInterval = 0
		s.SourceFailureLimit = 1000
		return s
	}

	p := startOctoroll(t, bin, catalogFile, stateDir)
	ro := p.call(t, http.MethodPost, "/rollouts", spec(svcName))
	if ro.CanaryWeight() != 5000 {
		t.Fatalf("started at %d, want 5000", ro.CanaryWeight())
	}
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-checkout", Target: "xds:///" + svcName})
	waitSplit(t, c, 5000, 1000)

	for _, bad := range []struct {
		name   string
		canary controller.Canary
		want   string
	}{
		{"version v|2", controller.Canary{Version: "v|2", Endpoints: []string{"127.0.0.1:9"}}, `canary.version: \"v|2\" is not a valid name`},
		{"unresolvable endpoint", controller.Canary{Version: "v3", Endpoints: []string{"nonexistent.invalid:8080"}},
			`canary.endpoints[0]: \"nonexistent.invalid:8080\" does not resolve`},
	} {
		s := spec(otherName)
		s.Canary = bad.canary
		status, body := p.post(t, "/rollouts", s)
		if status != http.StatusBadRequest || !bytes.Contains(body, []byte(bad.want)) || !bytes.Contains(body, []byte(api.CodeInvalidSpec)) {
			t.Fatalf("%s: %d %s, want 400 invalid_spec naming %s", bad.name, status, body, bad.want)
		}
	}
	if d := p.service(t, otherName); d.Active != nil || d.Publication != nil || d.Weights["v1"] != 10000 || len(d.Versions) != 2 {
		t.Fatalf("%s after the refused starts: %+v", otherName, d.ServiceSummary)
	}

	ro = p.call(t, http.MethodPost, "/services/"+svcName+"/abort", map[string]any{"reason": "checkout errors"})
	if ro.State != controller.StateRolledBack {
		t.Fatalf("abort answered %s", ro.State)
	}
	took := waitOnlyVersion(t, c, "v1", 200, time.Second)
	t.Logf("%s's client on 100%% v1 %s after the abort answered", svcName, took)

	// A rollout of the other service, its canary renamed v|2 in the state file while
	// the process is down, as an older octoroll could have stored it.
	ro = p.call(t, http.MethodPost, "/rollouts", spec(otherName))
	p.kill()
	st, err := store.Open(stateDir, store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	poison(t, st, ro.ID)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	p = startOctoroll(t, bin, catalogFile, stateDir) // fails the test if it does not get ready
	d := p.service(t, otherName)
	if d.Active == nil || d.Publication == nil || d.Publication.OK || !d.Publication.Fallback ||
		!strings.Contains(d.Publication.Error, "not a valid name") || d.Weights["v1"] != 10000 {
		t.Fatalf("poisoned %s after the restart: weights %v, publication %+v, active %v", otherName, d.Weights, d.Publication, d.Active != nil)
	}
	co := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-other", Target: "xds:///" + otherName})
	waitOnlyVersion(t, co, "o1", 100, waitTimeout)
	c2 := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-checkout-2", Target: "xds:///" + svcName})
	waitOnlyVersion(t, c2, "v1", 100, waitTimeout)

	ro = p.call(t, http.MethodPost, "/services/"+otherName+"/abort", map[string]any{"reason": "bad version name"})
	if ro.State != controller.StateRolledBack {
		t.Fatalf("abort of the poisoned rollout answered %s", ro.State)
	}
	if d := p.service(t, otherName); d.Publication != nil || d.Weights["v1"] != 10000 || strings.Contains(strings.Join(d.Versions, ","), "|") {
		t.Fatalf("%s after its abort: weights %v, publication %+v, versions %v", otherName, d.Weights, d.Publication, d.Versions)
	}
	waitOnlyVersion(t, co, "o1", 200, time.Second)
}
