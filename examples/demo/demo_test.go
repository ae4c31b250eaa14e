package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octoacme/octoroll/controller"
)

// TestDemoFast runs the demo end to end in its fast mode with freshly built binaries:
// real octoroll, real example apps, a real proxyless gRPC load generator.
func TestDemoFast(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes about a minute; skipped with -short")
	}
	bin := t.TempDir()
	for _, pkg := range []string{"octoroll=../../cmd/octoroll", "example-app=../app", "loadgen=../loadgen"} {
		name, path, _ := strings.Cut(pkg, "=")
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), path).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := run(ctx, options{
		Bin: bin, Catalog: "../catalog.yaml",
		Release1: "../rollouts/demo-release-1.yaml", Release2: "../rollouts/demo-release-2.yaml",
		Fast: true, Out: &out,
	})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}

	r1 := res.Release1
	if r1.State != controller.StateCompleted || r1.FullAt.IsZero() || r1.CanaryWeight != 10000 {
		t.Errorf("release 1: state %s, reached 100 %% at %v, canary weight %d; want completed after reaching 100 %%", r1.State, r1.FullAt, r1.CanaryWeight)
	}
	r2 := res.Release2
	if r2.State != controller.StateRolledBack || r2.Aborted || !strings.Contains(r2.Reason, "error rate") {
		t.Errorf("release 2: state %s, aborted %v, reason %q; want rolled back by the error-rate rule", r2.State, r2.Aborted, r2.Reason)
	}
	if r2.CanaryWeight != 0 {
		t.Errorf("release 2 canary weight after rollback = %d, want 0", r2.CanaryWeight)
	}
	// Routing never failed an RPC: every failure seen is one v3 injected itself.
	if res.Traffic.Other != 0 {
		t.Errorf("%d RPCs failed for a reason other than the app's injected failures: %v", res.Traffic.Other, res.Traffic.LastOther)
	}
	if res.Traffic.OK["v1"] == 0 || res.Traffic.OK["v2"] == 0 || res.Traffic.OK["v3"]+res.Traffic.Injected["v3"] == 0 {
		t.Errorf("traffic did not reach every version: %+v", res.Traffic)
	}
	for _, rep := range []string{res.Report1, res.Report2} {
		if !strings.Contains(rep, "## Release notes") {
			t.Errorf("report without release notes:\n%s", rep)
		}
	}
	if !strings.Contains(res.Report2, "Time to restore") {
		t.Errorf("rollback report without time to restore:\n%s", res.Report2)
	}
	if len(res.Pids) < 5 {
		t.Errorf("demo started %d processes, want at least 5 (3 apps, octoroll, load generator)", len(res.Pids))
	}
	for _, pid := range res.Pids {
		if alive(pid) {
			t.Errorf("process %d still running after the demo", pid)
		}
	}
}
