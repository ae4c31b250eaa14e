package runner_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// readyz reads the process's /readyz.
func (p *octorollProc) readyz(t *testing.T) (int, api.HealthResponse) {
	t.Helper()
	resp, err := http.Get(p.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var h api.HealthResponse
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatalf("/readyz %d %s: %v", resp.StatusCode, data, err)
	}
	return resp.StatusCode, h
}

// limitFileSize sets the soft RLIMIT_FSIZE of the running process, keeping its hard
// limit, and returns the limit it had.
func (p *octorollProc) limitFileSize(t *testing.T, cur uint64) unix.Rlimit {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, nil, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: cur, Max: old.Max}, nil); err != nil {
		t.Fatal(err)
	}
	return old
}

// TestDiskFullRollbackProcess runs the real binary with a real gRPC xDS client: while
// the process's writes to its state file fail (its file size limit lowered under the
// state file's size, so every write gets EFBIG, as on a full disk), an operator's abort
// is answered 202 with rolled_back and a warning, the client is on 100 % known-good
// within a second, and /readyz is 503 naming the store. Once the limit is raised the
// rollback is persisted, /readyz is 200 again, and after a SIGKILL and a restart on the
// same state directory the rollout reads rolled_back and a client is served v1 alone.
func TestDiskFullRollbackProcess(t *testing.T) {
	bin := buildOctoroll(t)
	v1, v2 := xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2")
	catalogFile, stateDir := processCatalog(t, v1, v2)
	// Stages of an hour, no metrics: the rollout moves only by command.
	spec := halfSpec(svcName)
	for i := range spec.Stages {
		spec.Stages[i].MinWindow = controller.Duration(time.Hour)
	}
	spec.CheckInterval = 0
	spec.SourceFailureLimit = 1000

	p := startOctoroll(t, bin, catalogFile, stateDir)
	ro := p.call(t, http.MethodPost, "/rollouts", spec)
	if ro.CanaryWeight() != 5000 {
		t.Fatalf("started at %d, want 5000", ro.CanaryWeight())
	}
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-disk", Target: "xds:///" + svcName})
	waitSplit(t, c, 5000, 1000)

	fi, err := os.Stat(filepath.Join(stateDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	const limit = 8192
	if fi.Size() <= limit {
		t.Fatalf("state file of %d bytes: a limit of %d would not stop its writes", fi.Size(), limit)
	}
	old := p.limitFileSize(t, limit)
	lifted := false
	lift := func() {
		if !lifted {
			lifted = true
			if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, &old, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer lift()

	// A transition that is not a move to known-good still persists first: refused.
	if status, body := p.post(t, "/services/"+svcName+"/pause", map[string]any{"reason": "disk full"}); status/100 == 2 {
		t.Fatalf("pause answered %d %s while the store fails", status, body)
	}
	start := time.Now()
	status, body := p.post(t, "/services/"+svcName+"/abort", map[string]any{"reason": "disk full and the canary fails"})
	var d api.RolloutDetail
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("abort answer %d %s: %v", status, body, err)
	}
	if status != http.StatusAccepted || d.State != controller.StateRolledBack || !strings.HasPrefix(d.Warning, "not yet persisted: ") ||
		strings.Contains(d.Warning, stateDir) {
		t.Fatalf("abort answered %d %s %q, want 202 rolled_back with a warning naming no path", status, d.State, d.Warning)
	}
	t.Logf("abort: %d, %s; %s", status, d.RestoreSummary, d.Warning)
	waitOnlyVersion(t, c, "v1", 200, time.Second)
	t.Logf("client on 100%% v1 %s after the abort was sent", time.Since(start).Round(time.Millisecond))
	select {
	case <-p.done:
		t.Fatalf("octoroll exited under the file size limit: %s", p.out.String())
	default:
	}
	if status, h := p.readyz(t); status != http.StatusServiceUnavailable || !strings.HasPrefix(h.Error, "store: write failing: ") ||
		strings.Contains(h.Error, stateDir) {
		t.Fatalf("/readyz %d %+v, want 503 saying the store fails, naming no path", status, h)
	} else {
		t.Logf("/readyz: %d %s", status, h.Error)
	}
	if got := p.call(t, http.MethodGet, "/rollouts/"+ro.ID, nil); got.State != controller.StateRolledBack {
		t.Fatalf("rollout reads %s while the store fails, want rolled_back", got.State)
	}

	lift()
	// The republish tick writes what is pending.
	deadline := time.Now().Add(waitTimeout)
	for {
		status, h := p.readyz(t)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d %+v %s after the limit was raised", status, h, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("persisted %s after the abort was sent", time.Since(start).Round(time.Millisecond))
	waitOnlyVersion(t, c, "v1", 200, time.Second)

	p.kill()
	p = startOctoroll(t, bin, catalogFile, stateDir)
	if got := p.call(t, http.MethodGet, "/rollouts/"+ro.ID, nil); got.State != controller.StateRolledBack || !got.Aborted {
		t.Fatalf("after a restart the rollout is %s (aborted %v), want rolled_back", got.State, got.Aborted)
	}
	if d := p.service(t, svcName); d.Active != nil || d.Weights["v1"] != 10000 {
		t.Fatalf("after a restart %s: active %v, weights %v, want idle on 100%% v1", svcName, d.Active != nil, d.Weights)
	}
	// A client of the restarted process (on new ports) is served v1 alone.
	c2 := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: p.xds, NodeID: "client-disk-2", Target: "xds:///" + svcName})
	waitOnlyVersion(t, c2, "v1", 200, waitTimeout)
}
