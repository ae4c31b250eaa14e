package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/octoacme/octoroll/translate"
)

// The load generator runs in its own process (the bench binary re-executed with
// -loadgen). It opens N simulated xDS clients, each on its own gRPC connection with one
// ADS stream, subscribing the way a proxyless gRPC client does: the service's
// api_listener (LDS), then its route (RDS), then the clusters the route references (CDS)
// and their endpoints (EDS). Every response is ACKed.
//
// Updates are identified by content: update u gives the canary version weight u (out
// of 10000), so the client knows which update a RouteConfiguration carries whatever the
// server's version strings.
//
// Protocol with the parent, one line each way:
//
//	child → parent: "full G"  every client has full config for the G-th time (0: first
//	                          connect, 1: after the first reconnect)
//	child → parent: "done U"  every client received and ACKed update U
//	parent → child: "report"  child answers with one JSON line (loadReport)
//	parent → child: "quit"
const (
	maxUpdates = 64
	maxFulls   = 4
)

// loadReport holds Unix nanosecond timestamps; 0 means never.
type loadReport struct {
	Recv [][]int64 `json:"recv"` // [update][client] receipt of the route of update u
	Ack  [][]int64 `json:"ack"`  // [update][client] ACK of that route sent
	Full [][]int64 `json:"full"` // [generation][client] full config on that stream
	// Errors counts stream errors (reconnects).
	Errors int64 `json:"errors"`
}

type loadgen struct {
	addr, service string
	n             int
	out           *bufio.Writer
	outMu         sync.Mutex

	recv, ack [maxUpdates][]atomic.Int64
	done      [maxUpdates]atomic.Int64
	full      [maxFulls][]atomic.Int64
	fullCount [maxFulls]atomic.Int64
	errors    atomic.Int64
}

func (g *loadgen) say(format string, args ...any) {
	g.outMu.Lock()
	defer g.outMu.Unlock()
	fmt.Fprintf(g.out, format+"\n", args...)
	_ = g.out.Flush()
}

func runLoadgen(addr, service string, n, dialConcurrency int) error {
	raiseNoFile()
	g := &loadgen{addr: addr, service: service, n: n, out: bufio.NewWriterSize(os.Stdout, 1<<20)}
	for u := range maxUpdates {
		g.recv[u] = make([]atomic.Int64, n)
		g.ack[u] = make([]atomic.Int64, n)
	}
	for f := range maxFulls {
		g.full[f] = make([]atomic.Int64, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sem := make(chan struct{}, dialConcurrency)
	for i := range n {
		sem <- struct{}{}
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		c := &simClient{g: g, id: i, conn: conn, firstFull: sem}
		go c.run(ctx)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "report":
			rep := loadReport{Errors: g.errors.Load()}
			last := 0
			for u := range maxUpdates {
				if g.done[u].Load() > 0 {
					last = u
				}
			}
			for u := 0; u <= last; u++ {
				rep.Recv = append(rep.Recv, load(g.recv[u]))
				rep.Ack = append(rep.Ack, load(g.ack[u]))
			}
			for f := range maxFulls {
				if g.fullCount[f].Load() > 0 {
					rep.Full = append(rep.Full, load(g.full[f]))
				}
			}
			b, err := json.Marshal(rep)
			if err != nil {
				return err
			}
			g.say("%s", b)
		case "quit":
			return nil
		}
	}
	return in.Err()
}

func load(a []atomic.Int64) []int64 {
	out := make([]int64, len(a))
	for i := range a {
		out[i] = a[i].Load()
	}
	return out
}

// simClient is one simulated proxyless gRPC client.
type simClient struct {
	g         *loadgen
	id        int
	conn      *grpc.ClientConn
	fulls     int
	firstFull chan struct{} // released (one receive) at the first full config
}

func (c *simClient) run(ctx context.Context) {
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(c.conn)
	for ctx.Err() == nil {
		err := c.stream(ctx, ads)
		if ctx.Err() != nil {
			return
		}
		c.g.errors.Add(1)
		_ = err
	}
}

// stream runs one ADS stream until it fails.
func (c *simClient) stream(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := ads.StreamAggregatedResources(sctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	svc := c.g.service
	clusters := []string{translate.ClusterName(svc, "v1"), translate.ClusterName(svc, "v2")}
	names := map[string][]string{}
	first := true
	send := func(typeURL, version, nonce string) error {
		req := &discoveryv3.DiscoveryRequest{
			TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names[typeURL],
		}
		if first {
			req.Node = &corev3.Node{Id: fmt.Sprintf("node-%d", c.id), Cluster: "bench", UserAgentName: "octoroll-bench"}
			first = false
		}
		return st.Send(req)
	}
	subscribe := func(typeURL string, n []string) error {
		if _, ok := names[typeURL]; ok {
			return nil
		}
		names[typeURL] = n
		return send(typeURL, "", "")
	}
	if err := subscribe(resource.ListenerType, []string{translate.APIListenerName(svc)}); err != nil {
		return err
	}
	got := map[string]bool{}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		now := time.Now().UnixNano()
		t := resp.GetTypeUrl()
		u := -1
		if t == resource.RouteType {
			u = canaryWeight(resp, translate.ClusterName(svc, "v2"))
			if u > 0 && u < maxUpdates {
				c.g.recv[u][c.id].CompareAndSwap(0, now)
			}
		}
		if err := send(t, resp.GetVersionInfo(), resp.GetNonce()); err != nil {
			return err
		}
		if u > 0 && u < maxUpdates && c.g.ack[u][c.id].CompareAndSwap(0, time.Now().UnixNano()) {
			if c.g.done[u].Add(1) == int64(c.g.n) {
				c.g.say("done %d", u)
			}
		}
		got[t] = true
		switch t {
		case resource.ListenerType:
			err = subscribe(resource.RouteType, []string{translate.RouteName(svc)})
		case resource.RouteType:
			err = subscribe(resource.ClusterType, clusters)
		case resource.ClusterType:
			err = subscribe(resource.EndpointType, clusters)
		}
		if err != nil {
			return err
		}
		if len(got) == 4 && !got["full"] {
			got["full"] = true
			if c.fulls < maxFulls {
				c.g.full[c.fulls][c.id].Store(time.Now().UnixNano())
				if c.g.fullCount[c.fulls].Add(1) == int64(c.g.n) {
					c.g.say("full %d", c.fulls)
				}
			}
			if c.fulls == 0 {
				<-c.firstFull
			}
			c.fulls++
		}
	}
}

// canaryWeight returns the weight of cluster in the weighted route of the first
// RouteConfiguration of resp, or -1.
func canaryWeight(resp *discoveryv3.DiscoveryResponse, cluster string) int {
	for _, a := range resp.GetResources() {
		var rc routev3.RouteConfiguration
		if err := proto.Unmarshal(a.GetValue(), &rc); err != nil {
			return -1
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
					if wc.GetName() == cluster {
						return int(wc.GetWeight().GetValue())
					}
				}
			}
		}
	}
	return -1
}
