// Command loadgen sends a steady stream of RPCs to a service through proxyless gRPC
// xDS (xds:///SERVICE) and counts where they land, so a rollout can be watched from
// the client's side: which version answered, how many failures the application
// injected and how many RPCs failed for any other reason (routing).
//
// gRPC reads its xDS bootstrap once at start: set GRPC_XDS_BOOTSTRAP_CONFIG (or
// GRPC_XDS_BOOTSTRAP) before starting it, or pass --xds-server and loadgen writes the
// bootstrap into its own environment and re-executes itself.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and balancers
)

// InjectedMarker ends the status message of the failures the example app's
// --error-rate knob injects: "<service>/<version>: injected failure".
const InjectedMarker = ": injected failure"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	target := flag.String("target", "xds:///demo", "gRPC target")
	rps := flag.Int("rps", 200, "requests per second (0: as fast as possible)")
	conc := flag.Int("concurrency", 8, "concurrent callers")
	statsAddr := flag.String("stats-addr", "127.0.0.1:0", "HTTP address serving /stats (JSON)")
	xdsServer := flag.String("xds-server", "", "octoroll xDS address; writes the gRPC bootstrap and re-executes")
	node := flag.String("node", "", "xDS node id (default loadgen-<pid>)")
	timeout := flag.Duration("timeout", 2*time.Second, "per-RPC timeout")
	flag.Parse()

	if *xdsServer != "" && os.Getenv("GRPC_XDS_BOOTSTRAP_CONFIG") == "" {
		return reexec(*xdsServer, *node)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", *target, err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)

	st := newStats()
	lis, err := net.Listen("tcp", *statsAddr)
	if err != nil {
		return fmt.Errorf("stats listener: %w", err)
	}
	srv := &http.Server{Handler: st, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(lis)
	defer srv.Close()
	// The first line on stdout tells a parent process where the stats are.
	fmt.Printf("{\"stats\":\"http://%s/stats\"}\n", lis.Addr())

	// Each caller paces itself (rps/concurrency per caller): one shared fast ticker
	// drops ticks on a busy machine and undershoots the rate.
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick <-chan time.Time
			if *rps > 0 {
				t := time.NewTicker(time.Duration(*conc) * time.Second / time.Duration(*rps))
				defer t.Stop()
				tick = t.C
			}
			for {
				if tick != nil {
					select {
					case <-ctx.Done():
						return
					case <-tick:
					}
				} else if ctx.Err() != nil {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, *timeout)
				resp, err := client.UnaryCall(cctx, &testpb.SimpleRequest{FillServerId: true})
				cancel()
				if ctx.Err() != nil {
					return
				}
				st.record(resp, err)
			}
		}()
	}
	wg.Wait()
	return nil
}

// reexec starts this program again with a gRPC xDS bootstrap in its environment.
func reexec(server, node string) error {
	if node == "" {
		node = fmt.Sprintf("loadgen-%d", os.Getpid())
	}
	boot, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      server,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": node, "cluster": "loadgen"},
	})
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	env := append(os.Environ(), "GRPC_XDS_BOOTSTRAP_CONFIG="+string(boot))
	return syscall.Exec(exe, os.Args, env)
}

// stats counts outcomes; safe for concurrent use.
type stats struct {
	mu         sync.Mutex
	OK         map[string]int64 `json:"ok"`       // by version
	Injected   map[string]int64 `json:"injected"` // application-injected failures by version
	Other      int64            `json:"other"`    // every other failure (routing, transport)
	LastOther  []string         `json:"lastOther,omitempty"`
	StartedAt  time.Time        `json:"startedAt"`
	LastUpdate time.Time        `json:"lastUpdate"`
}

func newStats() *stats {
	return &stats{OK: map[string]int64{}, Injected: map[string]int64{}, StartedAt: time.Now()}
}

func (s *stats) record(resp *testpb.SimpleResponse, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.LastUpdate = time.Now()
	if err == nil {
		s.OK[versionOf(resp.GetServerId())]++
		return
	}
	msg := status.Convert(err).Message()
	if v, ok := strings.CutSuffix(msg, InjectedMarker); ok {
		s.Injected[versionOf(v)]++
		return
	}
	s.Other++
	if len(s.LastOther) < 20 && !errors.Is(err, context.Canceled) {
		s.LastOther = append(s.LastOther, err.Error())
	}
}

// versionOf takes the version out of "service/version".
func versionOf(id string) string {
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return id
}

func (s *stats) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	b, err := json.Marshal(s)
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
