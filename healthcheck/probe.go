package healthcheck

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/octoacme/octoroll/catalog"
)

// httpChecker GETs a path and wants one of the expected statuses. Keep-alives are off so that every probe
// opens a connection, as a new client would: a reused connection could outlive a
// listener that no longer accepts.
type httpChecker struct {
	url      string
	expected []catalog.StatusRange
	client   *http.Client
}

// dialFunc connects to a host:port, resolving a DNS name as the prober does.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func newHTTPChecker(addr, path string, expected []catalog.StatusRange, dial dialFunc) *httpChecker {
	return &httpChecker{
		url:      "http://" + addr + path,
		expected: expected,
		// Redirects are not followed: a 3xx is the answer, passing only if expected
		// (as Envoy's HTTP health checker does).
		client: &http.Client{
			Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil, DialContext: dial},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (c *httpChecker) check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "octoroll-healthcheck")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	for _, r := range c.expected {
		if r.Contains(resp.StatusCode) {
			return nil
		}
	}
	return fmt.Errorf("GET %s: status %s, want %s", c.url, resp.Status, joinStatuses(c.expected))
}

func (c *httpChecker) close() { c.client.CloseIdleConnections() }

func joinStatuses(rs []catalog.StatusRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = string(r)
	}
	return strings.Join(parts, ", ")
}

// grpcChecker calls grpc.health.v1.Health/Check for one service ("" is the whole
// server) on a connection kept for the endpoint's lifetime; gRPC reconnects it as
// needed.
type grpcChecker struct {
	service string
	conn    *grpc.ClientConn
	err     error
}

func newGRPCChecker(addr string, cfg Config, dial dialFunc) *grpcChecker {
	// gRPC's default reconnect backoff grows to 2 minutes, which would hide a server
	// that came back; cap it at the probe interval.
	bo := backoff.DefaultConfig
	bo.BaseDelay = min(bo.BaseDelay, cfg.Interval)
	bo.MaxDelay = cfg.Interval
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: cfg.Timeout}),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dial(ctx, "tcp", addr) }),
	)
	return &grpcChecker{service: cfg.GRPCService, conn: conn, err: err}
}

func (c *grpcChecker) check(ctx context.Context) error {
	if c.err != nil {
		return c.err
	}
	resp, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: c.service})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			// The server answers: it does not know the service.
			return fmt.Errorf("grpc health check of service %q: %w", c.service, err)
		}
		// Let the next probe find a fresh connection attempt, not a backoff wait.
		c.conn.ResetConnectBackoff()
		return fmt.Errorf("grpc health check: %w", err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		if c.service != "" {
			return fmt.Errorf("grpc health check of service %q: status %s", c.service, s)
		}
		return fmt.Errorf("grpc health check: status %s", s)
	}
	return nil
}

func (c *grpcChecker) close() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
}

// tcpChecker wants a TCP connection to be accepted.
type tcpChecker struct {
	addr string
	dial dialFunc
}

func (c tcpChecker) check(ctx context.Context) error {
	conn, err := c.dial(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (tcpChecker) close() {}

type failChecker struct{ err error }

func (c failChecker) check(context.Context) error { return c.err }
func (failChecker) close()                        {}
