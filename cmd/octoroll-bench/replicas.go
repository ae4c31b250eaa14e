package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/octoacme/octoroll/admin/api"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/internal/etcdtest"
	"github.com/octoacme/octoroll/internal/pagebench"
)

// replicasResult is the several-replicas run: real octoroll processes on one real
// etcd, simulated proxies spread over them.
type replicasResult struct {
	Replicas, Proxies int
	TTL               time.Duration
	// Decision → the leader sees every proxy of every replica ACK the new route: the
	// time from the admin request to the leader's converged convergence.
	AllAcked dist
	// Failover: kill -9 of the leader → another replica leads (octoroll_leader 1).
	Failover []time.Duration
}

// replicaProc is one `octoroll serve` process of the run.
type replicaProc struct {
	args  []string
	cmd   *exec.Cmd
	admin string
	xds   string
}

func (p *replicaProc) start(bin string) error {
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Env = append(os.Environ(), "OCTOROLL_ADMIN_TOKEN=")
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, os.Stderr
	if err := p.cmd.Start(); err != nil {
		return err
	}
	return poll(time.Minute, func() bool {
		resp, err := http.Get(p.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (p *replicaProc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

func (p *replicaProc) leading() bool {
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return bytes.Contains(b, []byte("\noctoroll_leader 1\n"))
}

func (p *replicaProc) do(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.admin+"/api/v1"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Octoroll-Actor", "bench")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// runReplicas starts replicas real octoroll processes (built from this module) on one
// real etcd server, spreads proxies simulated clients over them, then times decisions
// (a rollout started, then aborted, through the leader's admin API) until the leader
// sees every proxy of every replica ACK, and kill -9 of the leader until another
// replica leads, failovers times.
func runReplicas(replicas, proxies, decisions, failovers int, ttl time.Duration) (res *replicasResult, err error) {
	res = &replicasResult{Replicas: replicas, Proxies: proxies, TTL: ttl}
	dir, err := os.MkdirTemp("", "octoroll-bench-replicas-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "octoroll")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/octoacme/octoroll/cmd/octoroll").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v: %s", err, out)
	}
	etcd, err := etcdtest.New(filepath.Join(dir, "etcd"))
	if err != nil {
		return nil, err
	}
	defer etcd.Close()

	var eps [2][]string
	for i := range eps {
		for range 2 {
			hs, err := startHealthServer()
			if err != nil {
				return nil, err
			}
			defer hs.gs.Stop()
			eps[i] = append(eps[i], `"`+hs.addr+`"`)
		}
	}
	cat := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(fmt.Sprintf("services:\n  - name: %s\n    port: 10001\n    stable: v1\n    versions:\n"+
		"      - {name: v1, endpoints: [%s]}\n      - {name: v2, endpoints: [%s]}\n",
		benchService, strings.Join(eps[0], ", "), strings.Join(eps[1], ", "))), 0o600); err != nil {
		return nil, err
	}
	procs := make([]*replicaProc, replicas)
	for i := range procs {
		xdsAddr, err := freePort()
		if err != nil {
			return nil, err
		}
		adminAddr, err := freePort()
		if err != nil {
			return nil, err
		}
		p := &replicaProc{admin: "http://" + adminAddr, xds: xdsAddr}
		p.args = []string{"serve", "-config", cat, "-xds-addr", xdsAddr, "-admin-addr", adminAddr, "-log-level", "error",
			"-store", "etcd", "-etcd-endpoints", etcd.Endpoint, "-lease-ttl", ttl.String(), "-replica-id", fmt.Sprintf("r%d", i)}
		procs[i] = p
		defer p.kill()
		if err := p.start(bin); err != nil {
			return nil, fmt.Errorf("replica %d: %w", i, err)
		}
	}
	for i, p := range procs {
		n := proxies / replicas
		if i < proxies%replicas {
			n++
		}
		c, err := startChild(p.xds, benchService, n)
		if err != nil {
			return nil, err
		}
		defer c.stop()
		if err := c.await("full 0", 2*time.Minute); err != nil {
			return nil, err
		}
	}
	leader := func(among []*replicaProc) *replicaProc {
		for _, p := range among {
			if p.leading() {
				return p
			}
		}
		return nil
	}
	var lead *replicaProc
	if err := poll(time.Minute, func() bool { lead = leader(procs); return lead != nil }); err != nil {
		return nil, fmt.Errorf("no leader: %w", err)
	}
	converged := func(prev string) (api.ServiceDetail, bool) {
		var d api.ServiceDetail
		if err := lead.do(http.MethodGet, "/services/"+benchService, nil, &d); err != nil {
			return d, false
		}
		return d, d.Proxies.RouteVersion != prev && d.Proxies.Converged && d.Proxies.Subscribed == proxies
	}
	var route string
	if err := poll(time.Minute, func() bool { d, ok := converged("-"); route = d.Proxies.RouteVersion; return ok }); err != nil {
		return nil, fmt.Errorf("the leader never counted the %d proxies: %w", proxies, err)
	}

	spec := pagebench.Spec(benchService, "benchmark release")
	spec.CheckInterval = controller.Duration(time.Hour) // decisions by command only
	spec.SourceFailureLimit = 1000
	var samples []time.Duration
	for i := range decisions {
		t0 := time.Now()
		var err error
		if i%2 == 0 {
			err = lead.do(http.MethodPost, "/rollouts", spec, nil)
		} else {
			err = lead.do(http.MethodPost, "/services/"+benchService+"/abort", map[string]string{"reason": "bench"}, nil)
		}
		if err != nil {
			return res, err
		}
		var next string
		if err := pollFast(time.Minute, func() bool { d, ok := converged(route); next = d.Proxies.RouteVersion; return ok }); err != nil {
			return res, fmt.Errorf("decision %d: not every proxy ACKed: %w", i, err)
		}
		samples = append(samples, time.Since(t0))
		route = next
	}
	res.AllAcked = newDist(samples)

	for range failovers {
		old := lead
		t0 := time.Now()
		old.kill()
		var rest []*replicaProc
		for _, p := range procs {
			if p != old {
				rest = append(rest, p)
			}
		}
		if err := pollFast(time.Minute, func() bool { lead = leader(rest); return lead != nil }); err != nil {
			return res, fmt.Errorf("no new leader after the kill: %w", err)
		}
		res.Failover = append(res.Failover, time.Since(t0))
		if err := old.start(bin); err != nil {
			return res, fmt.Errorf("restart: %w", err)
		}
	}
	return res, nil
}

// pollFast is poll at a 2 ms interval, for timings.
func pollFast(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}
