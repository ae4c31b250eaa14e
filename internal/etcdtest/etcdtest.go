// Package etcdtest runs a real etcd server inside a test process (etcd's own embed
// package: the server etcd ships, not a fake), on 127.0.0.1, with its data in a
// temporary directory. A server may be stopped and started again on the same
// address and data, to test an etcd outage.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is one single-member etcd cluster.
type Server struct {
	// Endpoint is the client URL, http://127.0.0.1:port.
	Endpoint string

	mu  sync.Mutex
	cfg *embed.Config
	e   *embed.Etcd
}

// New starts a server with its data under dir. Close stops it.
func New(dir string) (*Server, error) {
	client, err := freePort()
	if err != nil {
		return nil, err
	}
	peer, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "octoroll-test"
	cfg.Dir = dir
	cu := url.URL{Scheme: "http", Host: client}
	pu := url.URL{Scheme: "http", Host: peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// A single member: short raft ticks make it ready at once.
	cfg.TickMs, cfg.ElectionMs = 10, 50
	s := &Server{Endpoint: cu.String(), cfg: cfg}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start starts the server (again, after Stop) on the same address and data.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		return nil
	}
	var (
		e   *embed.Etcd
		err error
	)
	// The client port of a server just stopped may take a moment to be free again.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if e, err = embed.StartEtcd(s.cfg); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("etcd at %s not ready after 30s", s.Endpoint)
	}
	s.e = e
	return nil
}

// Stop stops the server; its data stays for Start.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}

// Close stops the server.
func (s *Server) Close() { s.Stop() }

// Start starts a server for one test, stopped and removed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// Shared returns one server for the whole test binary (tests keep apart by key
// prefix); it is started by the first call and lives until the process exits.
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "octoroll-etcd-")
		if err != nil {
			sharedErr = err
			return
		}
		shared, sharedErr = New(dir)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Proxy is a TCP proxy in front of a server (etcd's own fault-injection proxy), for a
// test to cut one client off etcd: BlackholeTx and BlackholeRx drop every byte both
// ways while the connections stay open, as a network partition does; PauseTx holds
// the client's bytes until UnpauseTx.
type Proxy struct {
	proxy.Server
	// Endpoint is the client URL of the proxy, http://127.0.0.1:port.
	Endpoint string
}

// Proxy starts a proxy to s for one test; it is closed when the test ends.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	from, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	to, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.NewServer(proxy.ServerConfig{Logger: zap.NewNop(), From: url.URL{Scheme: "tcp", Host: from},
		To: url.URL{Scheme: "tcp", Host: to.Host}})
	select {
	case <-p.Ready():
	case err := <-p.Error():
		t.Fatalf("etcd proxy: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return &Proxy{Server: p, Endpoint: "http://" + from}
}

// Partition cuts the proxy's clients off the server, both ways.
func (p *Proxy) Partition() { p.BlackholeTx(); p.BlackholeRx() }

// Heal ends Partition.
func (p *Proxy) Heal() { p.UnblackholeTx(); p.UnblackholeRx() }
