package xdstest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and balancers
)

// clientEnv carries the JSON ClientConfig to a re-executed test binary.
const clientEnv = "OCTOROLL_XDSTEST_CLIENT"

// ClientConfig configures a proxyless gRPC xDS client process.
type ClientConfig struct {
	// XDSServer is the host:port of the xDS management server (plaintext).
	XDSServer string `json:"xdsServer"`
	// NodeID identifies the client to the server; Cluster and Zone are optional.
	NodeID  string `json:"nodeId"`
	Cluster string `json:"cluster,omitempty"`
	Zone    string `json:"zone,omitempty"`
	// Target is the dial target, e.g. "xds:///checkout".
	Target string `json:"target"`
	// Concurrency is the number of RPC loops. Default 4.
	Concurrency int `json:"concurrency,omitempty"`
	// RPS caps the total rate; 0 sends as fast as the loops go.
	RPS int `json:"rps,omitempty"`
	// RPCTimeout bounds each RPC. Default 5s.
	RPCTimeout time.Duration `json:"rpcTimeout,omitempty"`
	// ReportEvery is the interval of the progress lines. Default 20ms.
	ReportEvery time.Duration `json:"reportEvery,omitempty"`
}

// Report counts the RPCs of the current window (started after the last Reset and
// finished), by the version that served them.
type Report struct {
	Epoch  int              `json:"epoch"`
	OK     map[string]int64 `json:"ok"`
	Failed int64            `json:"failed"`
	// Errors counts failures by error text (at most 20 distinct texts).
	Errors map[string]int64 `json:"errors,omitempty"`
}

// Total is the number of RPCs counted.
func (r Report) Total() int64 {
	n := r.Failed
	for _, c := range r.OK {
		n += c
	}
	return n
}

// Succeeded is the number of RPCs that got an answer.
func (r Report) Succeeded() int64 { return r.Total() - r.Failed }

// Bootstrap returns the gRPC xDS bootstrap JSON for a client of server (plaintext,
// xDS v3).
func Bootstrap(server, nodeID, cluster, zone string) string {
	node := map[string]any{"id": nodeID}
	if cluster != "" {
		node["cluster"] = cluster
	}
	if zone != "" {
		node["locality"] = map[string]string{"zone": zone}
	}
	b, _ := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      server,
			"channel_creds":   []any{map[string]string{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": node,
	})
	return string(b)
}

// Client controls a proxyless gRPC xDS client running in a child process.
type Client struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	exited chan struct{}

	mu      sync.Mutex
	last    Report
	epoch   int
	changed chan struct{}
	exitErr error
}

// StartClient re-executes the test binary as a client of cfg. The test binary's
// TestMain must call RunClientIfRequested first. The client is stopped at the end of
// the test; its stderr is logged if the test failed.
func StartClient(t testing.TB, cfg ClientConfig) *Client {
	t.Helper()
	return startProcess(t, exec.Command(os.Args[0], "-test.run=^$"), cfg)
}

// StartNodeClient runs the Node proxyless client (client.js in dir, with its
// node_modules installed) as a client of cfg. It speaks the protocol of StartClient's
// client, so the returned Client drives it the same way.
func StartNodeClient(t testing.TB, dir string, cfg ClientConfig) *Client {
	t.Helper()
	return startProcess(t, exec.Command("node", filepath.Join(dir, "client.js")), cfg)
}

// startProcess starts cmd as a client of cfg: the configuration and the xDS bootstrap
// go in its environment, reports come on its stdout, commands go to its stdin.
func startProcess(t testing.TB, cmd *exec.Cmd, cfg ClientConfig) *Client {
	t.Helper()
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("client config: %v", err)
	}
	cmd.Env = append(os.Environ(),
		clientEnv+"="+string(js),
		"GRPC_XDS_BOOTSTRAP_CONFIG="+Bootstrap(cfg.XDSServer, cfg.NodeID, cfg.Cluster, cfg.Zone),
	)
	c := &Client{t: t, cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{}), changed: make(chan struct{})}
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("client stdout: %v", err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatalf("client stdin: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start client: %v", err)
	}
	go c.read(stdout)
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("client %s stderr:\n%s", cfg.NodeID, c.stderr.String())
		}
	})
	return c
}

// Exited is closed when the client process has exited; ExitErr then says how.
func (c *Client) Exited() <-chan struct{} { return c.exited }

// ExitErr is the client process's exit error once Exited is closed (nil: exit 0).
func (c *Client) ExitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exitErr
}

func (c *Client) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var rep Report
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			continue // not a report line
		}
		c.mu.Lock()
		if rep.Epoch >= c.last.Epoch {
			c.last = rep
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
	err := c.cmd.Wait()
	c.mu.Lock()
	c.exitErr = err
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	close(c.exited)
}

// Report returns the latest counts of the current window.
func (c *Client) Report() Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.last
	r.OK = maps.Clone(r.OK)
	r.Errors = maps.Clone(r.Errors)
	return r
}

// Reset starts a new window: only RPCs started after the client received the command
// are counted. It returns once the client has confirmed.
func (c *Client) Reset(timeout time.Duration) error {
	c.mu.Lock()
	c.epoch++
	want := c.epoch
	c.mu.Unlock()
	if _, err := fmt.Fprintln(c.stdin, "reset"); err != nil {
		return fmt.Errorf("reset client: %w", err)
	}
	_, err := c.WaitFor(timeout, func(r Report) bool { return r.Epoch >= want })
	return err
}

// WaitFor waits until cond holds for the latest report, and returns that report. On
// timeout or client exit it returns the latest report and an error.
func (c *Client) WaitFor(timeout time.Duration, cond func(Report) bool) (Report, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		r, ch, exitErr := c.last, c.changed, c.exitErr
		c.mu.Unlock()
		if cond(r) {
			return c.Report(), nil
		}
		select {
		case <-c.exited:
			return c.Report(), fmt.Errorf("client exited: %v", exitErr)
		default:
		}
		select {
		case <-ch:
		case <-deadline.C:
			return c.Report(), fmt.Errorf("condition not met after %s (last report %+v)", timeout, c.Report())
		}
	}
}

// WaitTotal waits until the window holds at least n finished RPCs.
func (c *Client) WaitTotal(n int64, timeout time.Duration) (Report, error) {
	return c.WaitFor(timeout, func(r Report) bool { return r.Total() >= n })
}

// Stop ends the client process (closing its stdin) and waits for it, killing it if it
// does not exit within 5 s. It may be called more than once.
func (c *Client) Stop() {
	_ = c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// Stderr returns what the client wrote to stderr so far.
func (c *Client) Stderr() string { return c.stderr.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		return len(p), nil // keep the start, drop the rest
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RunClientIfRequested runs the client and exits when the process was started by
// StartClient; otherwise it returns at once. Call it first in TestMain.
func RunClientIfRequested() {
	js := os.Getenv(clientEnv)
	if js == "" {
		return
	}
	var cfg ClientConfig
	if err := json.Unmarshal([]byte(js), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "xdstest client: config: %v\n", err)
		os.Exit(2)
	}
	if err := runClient(cfg, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "xdstest client: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// window holds the counts of one epoch.
type window struct {
	mu    sync.Mutex
	epoch atomic.Int64
	rep   Report
}

func (w *window) record(epoch int64, version string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if epoch != w.epoch.Load() {
		return // started in an earlier window
	}
	if err != nil {
		w.rep.Failed++
		msg := err.Error()
		if _, ok := w.rep.Errors[msg]; ok || len(w.rep.Errors) < 20 {
			w.rep.Errors[msg]++
		}
		return
	}
	w.rep.OK[version]++
}

func (w *window) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.epoch.Add(1)
	w.rep = Report{Epoch: int(e), OK: map[string]int64{}, Errors: map[string]int64{}}
}

func (w *window) line() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, _ := json.Marshal(w.rep)
	return append(b, '\n')
}

func runClient(cfg ClientConfig, in io.Reader, out io.Writer) error {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.RPCTimeout <= 0 {
		cfg.RPCTimeout = 5 * time.Second
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = 20 * time.Millisecond
	}
	cc, err := grpc.NewClient(cfg.Target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", cfg.Target, err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &window{rep: Report{OK: map[string]int64{}, Errors: map[string]int64{}}}

	var tokens <-chan time.Time
	if cfg.RPS > 0 {
		tk := time.NewTicker(time.Second / time.Duration(cfg.RPS))
		defer tk.Stop()
		tokens = tk.C
	}
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				if tokens != nil {
					select {
					case <-tokens:
					case <-ctx.Done():
						return
					}
				}
				epoch := w.epoch.Load()
				rctx, rcancel := context.WithTimeout(ctx, cfg.RPCTimeout)
				resp, err := client.UnaryCall(rctx, &testgrpc.SimpleRequest{FillServerId: true})
				rcancel()
				if ctx.Err() != nil {
					return
				}
				w.record(epoch, resp.GetServerId(), err)
			}
		})
	}

	var outMu sync.Mutex
	emit := func() error {
		outMu.Lock()
		defer outMu.Unlock()
		_, err := out.Write(w.line())
		return err
	}
	go func() {
		tk := time.NewTicker(cfg.ReportEvery)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				if emit() != nil {
					cancel()
					return
				}
			}
		}
	}()

	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "reset":
			w.reset()
			if err := emit(); err != nil {
				return err
			}
		}
	}
	cancel()
	wg.Wait()
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
