package runner_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// octorollProc is one `octoroll serve` process.
type octorollProc struct {
	cmd   *exec.Cmd
	admin string // http://host:port
	xds   string
	out   *bytes.Buffer
	done  chan struct{}
}

// buildOctoroll builds the octoroll binary into a temporary directory.
func buildOctoroll(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go toolchain not found: %v", err)
		}
		t.Skipf("go toolchain not found, cannot build octoroll: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "octoroll")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/octoacme/octoroll/cmd/octoroll").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startOctoroll starts `octoroll serve` on fresh ports, with extra flags, and waits
// until it is ready.
func startOctoroll(t *testing.T, bin, catalogFile, stateDir string, extra ...string) *octorollProc {
	t.Helper()
	p := &octorollProc{xds: freeAddr(t), out: &bytes.Buffer{}, done: make(chan struct{})}
	adminAddr := freeAddr(t)
	p.admin = "http://" + adminAddr
	p.cmd = exec.Command(bin, "serve", "-config", catalogFile, "-state-dir", stateDir,
		"-xds-addr", p.xds, "-admin-addr", adminAddr, "-log-level", "warn")
	p.cmd.Args = append(p.cmd.Args, extra...)
	p.cmd.Env = append(os.Environ(), "OCTOROLL_ADMIN_TOKEN=")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("octoroll output:\n%s", p.out.String())
		}
	})
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("octoroll exited before it was ready: %s", p.out.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("octoroll not ready after %s: %v", waitTimeout, err)
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *octorollProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// call does one admin API request and decodes the "rollout" of the answer.
func (p *octorollProc) call(t *testing.T, method, path string, body any) controller.Rollout {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.admin+"/api/v1"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Octoroll-Actor", "carol")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	var out struct {
		Rollout controller.Rollout `json:"rollout"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, data)
	}
	return out.Rollout
}

// servedRoute reads svcName's route from the process's xds server over a raw ADS
// stream, as a proxy connecting now would get it, and returns its split weights.
func (p *octorollProc) servedRoute(t *testing.T) map[string]uint32 {
	t.Helper()
	stream, stop := rawADS(t, p.xds, waitTimeout)
	defer stop()
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "crash-probe"},
		TypeUrl: resource.RouteType, ResourceNames: []string{translate.RouteName(svcName)}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("read route: %v", err)
	}
	out, err := routeSplit(resp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// routeSplit returns the split weights, by version, of svcName's route in resp.
func routeSplit(resp *discoveryv3.DiscoveryResponse) (map[string]uint32, error) {
	for _, a := range resp.GetResources() {
		var rc routev3.RouteConfiguration
		if err := a.UnmarshalTo(&rc); err != nil {
			return nil, err
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if wc := r.GetRoute().GetWeightedClusters(); wc != nil {
					out := map[string]uint32{}
					for _, c := range wc.GetClusters() {
						out[strings.TrimPrefix(c.GetName(), svcName+translate.NameSeparator)] = c.GetWeight().GetValue()
					}
					return out, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no split route in %v", resp)
}

// TestCrashResumeProcess runs the real binary: every transition of a rollout is made
// through the admin API, then the process is killed with SIGKILL and started again on
// the same state directory. The restarted process reports the same rollout state and
// its xds server serves exactly the weights of that state.
func TestCrashResumeProcess(t *testing.T) {
	bin := buildOctoroll(t)
	v1, v2 := xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2")
	catalogFile, stateDir := processCatalog(t, v1, v2)

	// Stages of an hour: on the wall clock the rollout moves only by command.
	spec := crashSpec()
	for i := range spec.Stages {
		spec.Stages[i].MinWindow = controller.Duration(time.Hour)
	}
	spec.CheckInterval = 0
	// No metrics are served here: the checks the prober forces at every start find
	// none, and must not pause the rollout between the commands.
	spec.SourceFailureLimit = 1000

	p := startOctoroll(t, bin, catalogFile, stateDir)
	if got := p.servedRoute(t); got["v1"] != 10000 {
		t.Fatalf("fresh process serves %v, want v1=10000", got)
	}
	ro := p.call(t, http.MethodPost, "/rollouts", spec)
	id := ro.ID
	steps := []struct {
		action    string // "" for the start above
		wantState controller.State
		wantV2    uint32
	}{
		{"", controller.StateProgressing, 500},
		{"promote", controller.StateProgressing, 2500},
		{"pause", controller.StatePaused, 2500},
		{"resume", controller.StateProgressing, 2500},
		{"promote", controller.StateProgressing, 5000},
		{"promote-full", controller.StateMonitoring, 10000},
		{"finish", controller.StateCompleted, 10000},
	}
	for i, s := range steps {
		if s.action != "" {
			ro = p.call(t, http.MethodPost, "/services/"+svcName+"/"+s.action, map[string]any{"reason": "crash test"})
		}
		if ro.State != s.wantState || ro.CanaryWeight() != s.wantV2 {
			t.Fatalf("step %d %s: %s at %d, want %s at %d", i, s.action, ro.State, ro.CanaryWeight(), s.wantState, s.wantV2)
		}
		want := ro.Weights()
		if ro.State.Terminal() {
			want = map[string]uint32{"v1": 0, "v2": 10000}
		}
		if got := p.servedRoute(t); !maps.Equal(got, want) {
			t.Fatalf("step %d %s: serves %v before the kill, want %v", i, s.action, got, want)
		}

		p.kill()
		p = startOctoroll(t, bin, catalogFile, stateDir)
		got := p.servedRoute(t)
		if !maps.Equal(got, want) {
			t.Fatalf("step %d %s: after kill -9 and restart serves %v, want %v", i, s.action, got, want)
		}
		after := p.call(t, http.MethodGet, "/rollouts/"+id, nil)
		if after.State != ro.State || after.Stage != ro.Stage || after.Generation != ro.Generation ||
			after.PausedFrom != ro.PausedFrom ||
			// A check may have run since (the prober's first results force one), and
			// recorded the ACK; an ACK recorded before must be kept as it was.
			!ro.Progress.AckedAt.IsZero() && !after.Progress.AckedAt.Equal(ro.Progress.AckedAt) {
			t.Fatalf("step %d %s: after restart %s stage %d gen %d, before %s stage %d gen %d",
				i, s.action, after.State, after.Stage, after.Generation, ro.State, ro.Stage, ro.Generation)
		}
		t.Logf("step %d %-12s killed and restarted: %s stage %d, serves %v", i, s.action, after.State, after.Stage, got)
		ro = after
	}
}

// processCatalog writes a catalog of service svcName with versions v1 and v2 (stable
// v1) at the given endpoints into a temporary directory, and returns its path and a
// state directory beside it, for tests that run the real binary.
func processCatalog(t *testing.T, v1, v2 string) (catalogFile, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	catalogFile = filepath.Join(dir, "catalog.yaml")
	cat := fmt.Sprintf("services:\n  - name: %s\n    port: 10001\n    stable: v1\n    versions:\n"+
		"      - name: v1\n        endpoints: [%s]\n      - name: v2\n        endpoints: [%s]\n", svcName, v1, v2)
	if err := os.WriteFile(catalogFile, []byte(cat), 0o600); err != nil {
		t.Fatal(err)
	}
	return catalogFile, filepath.Join(dir, "state")
}
