package xds_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// nodeClientDir is the Node proxyless client's directory; `make node-deps` installs
// its node_modules (npm ci).
const nodeClientDir = "testdata/nodeclient"

// needNodeClient returns the client's directory, or skips the test on a machine without
// node or without the installed packages; under CI it fails instead.
func needNodeClient(t *testing.T) string {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not on PATH (install Node.js 18 or later)"
	} else if _, err := os.Stat(filepath.Join(nodeClientDir, "node_modules", "@grpc", "grpc-js-xds")); err != nil {
		missing = "the Node client's packages are not installed (run make node-deps)"
	}
	if missing == "" {
		return nodeClientDir
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("Node proxyless client: %s", missing)
	}
	t.Skipf("Node proxyless client: %s", missing)
	return ""
}

// soakTime is how long the Node client must run at 100/0 without crashing: three of its
// outlier detection sweeps (10 s interval), the first of which crashed grpc-js-xds 1.14
// on clusters that left the success_rate_* fields unset.
const soakTime = 30 * time.Second

// TestNodeClient runs @grpc/grpc-js-xds, a second proxyless xDS client implementation,
// against octoroll's xDS server with real RPCs to real Go backends. The subtests run in
// parallel, each with its own server, backends and client process.
func TestNodeClient(t *testing.T) {
	dir := needNodeClient(t)
	t.Parallel()

	start := func(t *testing.T, id string, w1, w2 uint32) (*xdstest.Client, func(w1, w2 uint32)) {
		srv, addr := startServer(t)
		svc := service(t, xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2"))
		setWeights(t, srv, svc, w1, w2)
		c := xdstest.StartNodeClient(t, dir, xdstest.ClientConfig{XDSServer: addr, NodeID: id, Zone: "zone-a",
			Target: "xds:///" + svcName, Concurrency: 4, RPS: 400})
		if _, err := c.WaitTotal(50, rpcTimeout); err != nil {
			t.Fatalf("node client's first RPCs: %v\nstderr:\n%s", err, c.Stderr())
		}
		waitSubscribed(t, srv, 1)
		if err := c.Reset(ackTimeout); err != nil {
			t.Fatal(err)
		}
		return c, func(w1, w2 uint32) { setWeights(t, srv, svc, w1, w2) }
	}

	t.Run("100-0 for 30s", func(t *testing.T) {
		t.Parallel()
		c, _ := start(t, "node-soak", 10000, 0)
		select {
		case <-c.Exited():
			t.Fatalf("node client exited during the soak: %v\nstderr:\n%s", c.ExitErr(), c.Stderr())
		case <-time.After(soakTime):
		}
		r := c.Report()
		t.Logf("node client, %s at 100/0: %v, failed %d", soakTime, r.OK, r.Failed)
		if r.Failed != 0 || r.OK["v2"] != 0 || r.OK["v1"] == 0 {
			t.Errorf("at 100/0 over %s: ok %v, failed %d %v", soakTime, r.OK, r.Failed, r.Errors)
		}
	})

	t.Run("split 50-50", func(t *testing.T) {
		t.Parallel()
		c, _ := start(t, "node-split", 5000, 5000)
		r, err := c.WaitTotal(2000, rpcTimeout)
		if err != nil {
			t.Fatalf("%v\nstderr:\n%s", err, c.Stderr())
		}
		checkSplit(t, r, 5000)
	})

	t.Run("flips", func(t *testing.T) {
		t.Parallel()
		c, set := start(t, "node-flips", 10000, 0)
		const flips = 6
		for i := range flips {
			w2, want := uint32(catalog.TotalWeight), "v2"
			if i%2 == 1 {
				w2, want = 0, "v1"
			}
			set(catalog.TotalWeight-w2, w2)
			// Let the new split carry traffic before flipping back.
			before := c.Report().OK[want]
			if _, err := c.WaitFor(rpcTimeout, func(r xdstest.Report) bool { return r.OK[want] >= before+50 }); err != nil {
				t.Fatalf("flip %d to %s: %v\nstderr:\n%s", i, want, err, c.Stderr())
			}
		}
		r := c.Report()
		t.Logf("node client, %d flips under load: %v, failed %d", flips, r.OK, r.Failed)
		if r.Failed != 0 {
			t.Errorf("%d RPCs failed across %d flips: %v", r.Failed, flips, r.Errors)
		}
	})
}
