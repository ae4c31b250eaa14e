package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap"

	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/publish"
	"github.com/octoacme/octoroll/publish/dnstest"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/store"
	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// dnsResult is the DNS discovery run: a record change on a real DNS server (in
// process, on the DNS protocol) until every proxy ACKed the new EDS.
type dnsResult struct {
	Proxies, Changes int
	TTL, Tick        time.Duration
	// EndToEnd runs from the record change to the last proxy's ACK of the new EDS;
	// Fanout from the new EDS published to that ACK.
	EndToEnd, Fanout dist
}

// dnsName is the name the stable version's endpoints follow.
const dnsName = "v1.bench.test"

// runDNS serves one service whose stable version is a DNS name, with proxies simulated
// clients subscribed (LDS, RDS, CDS and EDS, every response ACKed), and changes the
// name's A records changes times, the TTL apart.
func runDNS(proxies, changes int) (res *dnsResult, err error) {
	const ttl = time.Second
	res = &dnsResult{Proxies: proxies, Changes: changes, TTL: ttl, Tick: time.Second}
	tb := &benchTB{}
	defer tb.close()
	err = tb.run(func() {
		srv := dnstest.Start(tb)
		srv.SetA(dnsName, uint32(ttl/time.Second), "127.0.0.2")
		svc := catalog.Service{Name: shopService, Port: 10001, Stable: "v1", Versions: []catalog.Version{
			{Name: "v1", Endpoints: []catalog.Endpoint{{Host: dnsName, Port: 9000}}},
			{Name: "v2", Endpoints: []catalog.Endpoint{endpointOf("127.0.0.1:9001")}},
		}}
		cat := &catalog.Catalog{Services: []catalog.Service{svc}}
		log := zap.NewNop()
		xs := xds.NewServer(log, xds.Options{})
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan struct{})
		go func() { _ = xs.Serve(ctx, lis); close(served) }()
		tb.Cleanup(func() { cancel(); <-served })
		dir := tb.TempDir()
		st, err := store.Open(dir, store.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = st.Close() })
		run, err := runner.New(ctx, cat, runner.Options{Log: log, Store: st, XDS: xs, Tick: res.Tick,
			Resolver: &publish.DNSClient{Servers: []string{srv.Addr}}, DNSMinTTL: ttl})
		if err != nil {
			tb.Fatal(err)
		}
		ran := make(chan struct{})
		go func() { _ = run.Run(ctx); close(ran) }()
		tb.Cleanup(func() { cancel(); <-ran; run.Close() })
		ch, err := startChild(lis.Addr().String(), shopService, proxies)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(ch.stop)
		if err := ch.await("full 0", 3*time.Minute); err != nil {
			tb.Fatal(err)
		}
		cluster := translate.ClusterName(shopService, "v1")
		allAcked := func(version string) bool {
			n := 0
			for _, px := range xs.Proxies() {
				if t, ok := px.Types[resource.EndpointType]; ok && t.Acked[cluster] == version {
					n++
				}
			}
			return n >= proxies
		}
		var e2e, fan []time.Duration
		for i := range changes {
			before := xs.Cache().Version(resource.EndpointType, cluster)
			ips := []string{"127.0.0.2", "127.0.0.3"}[:1+(i+1)%2]
			changed := time.Now()
			srv.SetA(dnsName, uint32(ttl/time.Second), ips...)
			var published time.Time
			var want string
			if err := poll(time.Minute, func() bool {
				want = xs.Cache().Version(resource.EndpointType, cluster)
				return want != before
			}); err != nil {
				tb.Fatalf("change %d: EDS not published: %v", i, err)
			}
			published = time.Now()
			if err := poll(time.Minute, func() bool { return allAcked(want) }); err != nil {
				tb.Fatalf("change %d: EDS not ACKed by every proxy: %v", i, err)
			}
			done := time.Now()
			e2e = append(e2e, done.Sub(changed))
			fan = append(fan, done.Sub(published))
			fmt.Fprintf(os.Stderr, "   change %d: %s end to end, %s from publish\n", i, ms(done.Sub(changed)), ms(done.Sub(published)))
		}
		res.EndToEnd, res.Fanout = newDist(e2e), newDist(fan)
	})
	return res, err
}
