package healthcheck

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// httpChecker GETs a path and wants a 2xx. Keep-alives are off so that every probe
// opens a connection, as a new client would: a reused connection could outlive a
// listener that no longer accepts.
type httpChecker struct {
	url    string
	client *http.Client
}

func newHTTPChecker(addr, path string) *httpChecker {
	return &httpChecker{
		url:    "http://" + addr + path,
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}},
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
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: status %s", c.url, resp.Status)
	}
	return nil
}

func (c *httpChecker) close() { c.client.CloseIdleConnections() }

// grpcChecker calls grpc.health.v1.Health/Check for the whole server (service "") on
// a connection kept for the endpoint's lifetime; gRPC reconnects it as needed.
type grpcChecker struct {
	conn *grpc.ClientConn
	err  error
}

func newGRPCChecker(addr string, cfg Config) *grpcChecker {
	// gRPC's default reconnect backoff grows to 2 minutes, which would hide a server
	// that came back; cap it at the probe interval.
	bo := backoff.DefaultConfig
	bo.BaseDelay = min(bo.BaseDelay, cfg.Interval)
	bo.MaxDelay = cfg.Interval
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: cfg.Timeout}),
	)
	return &grpcChecker{conn: conn, err: err}
}

func (c *grpcChecker) check(ctx context.Context) error {
	if c.err != nil {
		return c.err
	}
	resp, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		// Let the next probe find a fresh connection attempt, not a backoff wait.
		c.conn.ResetConnectBackoff()
		return fmt.Errorf("grpc health check: %w", err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
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
type tcpChecker struct{ addr string }

func (c tcpChecker) check(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (tcpChecker) close() {}

type failChecker struct{ err error }

func (c failChecker) check(context.Context) error { return c.err }
func (failChecker) close()                        {}
