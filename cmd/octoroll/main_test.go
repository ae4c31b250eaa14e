package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestServeAndCLI builds the real binary, starts `octoroll serve` on the example
// catalog, reads where it listens from its log, and drives it with the CLI.
func TestServeAndCLI(t *testing.T) {
	d := startServe(t, "../../examples/catalog-checkout.yaml")
	if c, err := net.DialTimeout("tcp", d.xds, 5*time.Second); err != nil {
		t.Fatalf("xDS at %s: %v", d.xds, err)
	} else {
		c.Close()
	}

	cli := d.cli
	out, code := cli("status")
	if code != 0 || !strings.Contains(out, "checkout") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	out, code = cli("rollout", "start", "-f", "../../examples/rollouts/minor.yaml")
	if code != 0 || !strings.Contains(out, "checkout") {
		t.Fatalf("rollout start: exit %d\n%s", code, out)
	}
	// wait, as a CI pipeline runs it: the rollout cannot reach 100 % in 300ms (exit 5),
	// a pause stops the wait (4), a rollback too (3).
	out, code = cli("wait", "checkout", "--for", "monitoring", "--timeout", "300ms", "--interval", "50ms")
	if code != 5 || !strings.Contains(out, ": pending, stage canary (1/3)") || !strings.Contains(out, "after 300ms, not monitoring") {
		t.Fatalf("wait with a short timeout: exit %d, want 5\n%s", code, out)
	}
	out, code = cli("pause", "checkout", "--reason", "looking at dashboards")
	if code != 0 {
		t.Fatalf("pause: exit %d\n%s", code, out)
	}
	out, code = cli("wait", "checkout", "--for", "completed", "--interval", "50ms")
	if code != 4 || !strings.Contains(out, "is paused: paused by") {
		t.Fatalf("wait on a paused rollout: exit %d, want 4\n%s", code, out)
	}
	out, code = cli("status", "checkout", "--watch", "--interval", "50ms")
	if code != 4 || !strings.Contains(out, "is paused: paused by") || !strings.Contains(out, "checkout") {
		t.Fatalf("status --watch on a paused rollout: exit %d, want 4\n%s", code, out)
	}
	out, code = cli("pause", "checkout")
	if code != 0 || !strings.Contains(out, "checkout is already paused") {
		t.Fatalf("second pause: exit %d, want 0 and already paused\n%s", code, out)
	}
	out, code = cli("abort", "checkout", "--reason", "security fix pending")
	if code != 0 {
		t.Fatalf("abort: exit %d\n%s", code, out)
	}
	out, code = cli("wait", "checkout", "--interval", "50ms")
	if code != 3 || !strings.Contains(out, "rolled back: aborted by") {
		t.Fatalf("wait on a rolled back rollout: exit %d, want 3\n%s", code, out)
	}
	out, code = cli("rollout", "get", "checkout")
	if code != 0 || !strings.Contains(out, "rolled_back") || !strings.Contains(out, "Reason:   aborted by") {
		t.Fatalf("rollout get SERVICE: exit %d\n%s", code, out)
	}
	out, code = cli("report", "checkout")
	if code != 0 || !strings.Contains(out, "# Release report") {
		t.Fatalf("report SERVICE: exit %d\n%s", code, out)
	}
	out, code = cli("history", "--service", "checkout")
	if code != 0 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("history: exit %d\n%s", code, out)
	}
	out, code = cli("proxies", "-o", "json")
	if code != 0 || !strings.Contains(out, "proxies") {
		t.Fatalf("proxies: exit %d\n%s", code, out)
	}

	// Stop the line: a freeze refuses every start until lifted, and status shows it.
	out, code = cli("freeze", "--reason", "incident 4711")
	if code != 0 || !strings.Contains(out, "FROZEN") {
		t.Fatalf("freeze: exit %d\n%s", code, out)
	}
	out, code = cli("rollout", "start", "-f", "../../examples/rollouts/minor.yaml")
	if code != 1 || !strings.Contains(out, "frozen") {
		t.Fatalf("start during a freeze: exit %d, want 1 naming the freeze\n%s", code, out)
	}
	out, code = cli("status")
	if code != 0 || !strings.Contains(out, "incident 4711") {
		t.Fatalf("status during a freeze: exit %d, want the freeze shown\n%s", code, out)
	}
	out, code = cli("unfreeze", "--reason", "resolved")
	if code != 0 || !strings.Contains(out, "Not frozen") {
		t.Fatalf("unfreeze: exit %d\n%s", code, out)
	}
	out, code = cli("approve", "checkout")
	if code != 1 || !strings.Contains(out, "no active rollout") {
		t.Fatalf("approve without a rollout: exit %d, want 1\n%s", code, out)
	}
}

// daemon is a running `octoroll serve` of the real binary.
type daemon struct {
	cmd        *exec.Cmd
	xds, admin string // addresses
	logs       *lockedBuffer
}

// lockedBuffer collects the daemon's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) add(line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(line)
	l.b.WriteByte('\n')
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe builds the binary, starts `octoroll serve` on the catalog at path (with
// extra flags), reads where it listens from its log, keeps the log, and stops it when
// the test ends.
func startServe(t *testing.T, path string, extra ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "octoroll")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	admin := freeAddr(t)
	cmd := exec.Command(bin, append([]string{"serve", "--config", path,
		"--state-dir", filepath.Join(dir, "state"), "--xds-addr", "127.0.0.1:0", "--admin-addr", admin}, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})

	// The JSON log line that says where octoroll listens.
	lines := bufio.NewScanner(stderr)
	logs := &lockedBuffer{}
	var serving struct {
		Msg, XDS, Admin string
	}
	for lines.Scan() {
		logs.add(lines.Bytes())
		if json.Unmarshal(lines.Bytes(), &serving) == nil && serving.Msg == "octoroll serving" {
			break
		}
	}
	go func() {
		for lines.Scan() {
			logs.add(lines.Bytes())
		}
		exited <- cmd.Wait()
	}()
	if serving.XDS == "" || !strings.Contains(serving.Admin, admin) {
		t.Fatalf("no serving line with addresses in the log: %+v", serving)
	}
	return &daemon{cmd: cmd, xds: serving.XDS, admin: admin, logs: logs}
}

// cli runs a client command against the daemon and returns its output and exit code.
func (d *daemon) cli(args ...string) (string, int) {
	var out, errb bytes.Buffer
	code := run(context.Background(), append(args, "--server", "http://"+d.admin), &out, &errb)
	return out.String() + errb.String(), code
}

// get returns the body of GET path on the admin server.
func (d *daemon) get(t *testing.T, path string) string {
	t.Helper()
	res, err := http.Get("http://" + d.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// catalogState polls GET /api/v1/status until the catalog's state and generation
// satisfy ok, and returns them.
func (d *daemon) catalogState(t *testing.T, what string, ok func(state string, gen int) bool) (string, int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct {
			Catalog struct {
				State      string
				Generation int
			}
		}
		if err := json.Unmarshal([]byte(d.get(t, "/api/v1/status")), &st); err != nil {
			t.Fatal(err)
		}
		if ok(st.Catalog.State, st.Catalog.Generation) {
			return st.Catalog.State, st.Catalog.Generation
		}
		if time.Now().After(deadline) {
			t.Fatalf("catalog not %s within 20s: state %q, generation %d", what, st.Catalog.State, st.Catalog.Generation)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const twoVersions = `services:
  - name: checkout
    port: 10080
    stable: v1
    versions:
      - name: v1
        endpoints: ["127.0.0.1:18081"]
      - name: v2
        endpoints: ["127.0.0.1:18082"]
`

// TestRefusedCatalogAppliedLater: a catalog that drops the version an active rollout
// serves is refused, and says so (API, CLI, metrics) instead of counting as loaded; a
// SIGHUP while the rollout runs keeps it refused; once the rollout is aborted the
// daemon applies it by itself.
func TestRefusedCatalogAppliedLater(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.yaml")
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, []byte(twoVersions), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, []byte("service: checkout\nrelease: {type: minor, summary: faster, rollbackPlan: weights back to v1}\n"+
		"canary: {version: v2}\nwaivers: [{item: smokeTests, by: alice, reason: catalog test}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, path)
	if out, code := d.cli("rollout", "start", "-f", spec); code != 0 {
		t.Fatalf("rollout start: exit %d\n%s", code, out)
	}

	dropV2 := strings.Replace(twoVersions, "      - name: v2\n        endpoints: [\"127.0.0.1:18082\"]\n", "", 1)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(dropV2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	refused := func(state string, gen int) bool { return strings.HasPrefix(state, "refused: ") && gen == 1 }
	state, _ := d.catalogState(t, "refused", refused)
	t.Logf("catalog %s", state)
	if !strings.Contains(state, "checkout") {
		t.Errorf("refusal %q does not name the service", state)
	}
	if out, code := d.cli("status"); code != 0 || !strings.Contains(out, "Catalog: refused: ") {
		t.Errorf("status: exit %d, want the refused catalog shown\n%s", code, out)
	}
	if m := d.get(t, "/metrics"); !strings.Contains(m, "octoroll_config_refused 1") || !strings.Contains(m, "octoroll_config_reload_errors_total 1") {
		t.Errorf("metrics lack the refusal")
	}

	// A SIGHUP while the rollout runs: still refused, still generation 1.
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.catalogState(t, "refused after SIGHUP", refused)

	if out, code := d.cli("abort", "checkout", "--reason", "make way for the catalog"); code != 0 {
		t.Fatalf("abort: exit %d\n%s", code, out)
	}
	d.catalogState(t, "applied once the rollout ended", func(state string, gen int) bool { return state == "loaded" && gen == 2 })
	out, code := d.cli("status", "checkout")
	if i := strings.Index(out, "Versions:"); code != 0 || i < 0 || strings.Contains(strings.SplitN(out[i:], "\n", 2)[0], "v2") {
		t.Errorf("status checkout after the catalog was applied: exit %d, want v1 alone\n%s", code, out)
	}
	if m := d.get(t, "/metrics"); !strings.Contains(m, "octoroll_config_refused 0") {
		t.Errorf("metrics still show the refusal")
	}
}

func TestServeRefusesBadCatalog(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--config", "../../catalog/testdata/bad/port-too-big.yaml",
		"--state-dir", t.TempDir()}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "port-too-big.yaml:") {
		t.Fatalf("exit %d, stderr %q; want 1 and the file:line of the problem", code, errb.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}

// getAccept returns the body of GET path on the admin server with an Accept header.
func (d *daemon) getAccept(t *testing.T, path, accept string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+d.admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
