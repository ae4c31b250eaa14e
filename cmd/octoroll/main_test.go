package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeAndCLI builds the real binary, starts `octoroll serve` on the example
// catalog, reads where it listens from its log, and drives it with the CLI.
func TestServeAndCLI(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "octoroll")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	admin := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--config", "../../examples/catalog-checkout.yaml",
		"--state-dir", filepath.Join(dir, "state"), "--xds-addr", "127.0.0.1:0", "--admin-addr", admin)
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
	var serving struct {
		Msg, XDS, Admin string
	}
	for lines.Scan() {
		if json.Unmarshal(lines.Bytes(), &serving) == nil && serving.Msg == "octoroll serving" {
			break
		}
	}
	go func() {
		for lines.Scan() {
		}
		exited <- cmd.Wait()
	}()
	if serving.XDS == "" || !strings.Contains(serving.Admin, admin) {
		t.Fatalf("no serving line with addresses in the log: %+v", serving)
	}
	if c, err := net.DialTimeout("tcp", serving.XDS, 5*time.Second); err != nil {
		t.Fatalf("xDS at %s: %v", serving.XDS, err)
	} else {
		c.Close()
	}

	ctx := context.Background()
	cli := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(ctx, append(args, "--server", "http://"+admin), &out, &errb)
		return out.String() + errb.String(), code
	}
	out, code := cli("status")
	if code != 0 || !strings.Contains(out, "checkout") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	out, code = cli("rollout", "start", "-f", "../../examples/rollouts/minor.yaml")
	if code != 0 || !strings.Contains(out, "checkout") {
		t.Fatalf("rollout start: exit %d\n%s", code, out)
	}
	out, code = cli("pause", "checkout", "--reason", "looking at dashboards")
	if code != 0 {
		t.Fatalf("pause: exit %d\n%s", code, out)
	}
	out, code = cli("pause", "checkout")
	if code != 1 || !strings.Contains(out, "invalid_state") {
		t.Fatalf("second pause: exit %d, want 1 and invalid_state\n%s", code, out)
	}
	out, code = cli("abort", "checkout", "--reason", "security fix pending")
	if code != 0 {
		t.Fatalf("abort: exit %d\n%s", code, out)
	}
	out, code = cli("history", "--service", "checkout")
	if code != 0 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("history: exit %d\n%s", code, out)
	}
	out, code = cli("proxies", "-o", "json")
	if code != 0 || !strings.Contains(out, "proxies") {
		t.Fatalf("proxies: exit %d\n%s", code, out)
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
