// Package xdstest is the test harness of octoroll's xDS data plane: real gRPC backends
// that answer with their version, and a real proxyless gRPC xDS client run in its own
// process (gRPC reads its xDS bootstrap once per process), driven and read from the
// test. It must not import octoroll packages, so that any package's tests may use it.
package xdstest

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// Backend is a gRPC server answering grpc.testing.TestService/UnaryCall with its
// version in SimpleResponse.server_id and hostname.
type Backend struct {
	Addr    string
	Version string
	hits    atomic.Int64
}

// Hits returns the number of UnaryCall RPCs served.
func (b *Backend) Hits() int64 { return b.hits.Load() }

type testService struct {
	testgrpc.UnimplementedTestServiceServer
	b *Backend
}

func (s testService) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.b.hits.Add(1)
	return &testgrpc.SimpleResponse{ServerId: s.b.Version, Hostname: s.b.Version}, nil
}

// StartBackend starts a backend for version on 127.0.0.1:0, stopped at the end of the
// test, and returns its address.
func StartBackend(t testing.TB, version string) string {
	return StartBackendServer(t, version).Addr
}

// StartBackendServer is StartBackend returning the Backend.
func StartBackendServer(t testing.TB, version string) *Backend {
	t.Helper()
	return StartBackendAt(t, version, "127.0.0.1:0")
}

// StartBackendAt is StartBackendServer listening on addr: instances of a version that
// share a port on addresses of their own (127.0.0.2:9000, 127.0.0.3:9000), as the pods
// behind a DNS name do.
func StartBackendAt(t testing.TB, version, addr string) *Backend {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("backend %s: listen: %v", version, err)
	}
	b := &Backend{Addr: lis.Addr().String(), Version: version}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, testService{b: b})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return b
}
