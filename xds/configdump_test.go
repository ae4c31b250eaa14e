package xds_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
	"github.com/octoacme/octoroll/xds/xdstest"
)

// typeConfig returns the entry of typeURL in pc.
func typeConfig(t *testing.T, pc xds.ProxyConfig, typeURL string) xds.TypeConfig {
	t.Helper()
	for _, tc := range pc.Types {
		if tc.TypeURL == typeURL {
			return tc
		}
	}
	t.Fatalf("config dump of %s has no %s: %+v", pc.NodeID, typeURL, pc.Types)
	return xds.TypeConfig{}
}

// weightsIn decodes the route resource of the dump and returns its cluster weights.
func weightsIn(t *testing.T, sc *xds.SentConfig) map[string]uint32 {
	t.Helper()
	if sc == nil || len(sc.Resources) != 1 {
		t.Fatalf("route config %+v, want one resource", sc)
	}
	var a anypb.Any
	if err := protojson.Unmarshal(sc.Resources[0].Resource, &a); err != nil {
		t.Fatalf("route resource %s: %v", sc.Resources[0].Resource, err)
	}
	var rc routev3.RouteConfiguration
	if err := a.UnmarshalTo(&rc); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			for _, cw := range r.GetRoute().GetWeightedClusters().GetClusters() {
				out[cw.GetName()] += cw.GetWeight().GetValue()
			}
		}
	}
	return out
}

// The config dump of a real gRPC-Go xDS client shows every type it was sent and ACKed,
// with the content; after a NACK it shows the rejected version sent, the last good one
// ACKed and the NACK.
func TestProxyConfigDump(t *testing.T) {
	srv, addr := startServer(t)
	svc := service(t, xdstest.StartBackend(t, "v1"), xdstest.StartBackend(t, "v2"))
	good := setWeights(t, srv, svc, 8000, 2000)
	c := xdstest.StartClient(t, xdstest.ClientConfig{XDSServer: addr, NodeID: "client-dump", Zone: "zone-a", Target: "xds:///" + svcName})
	if _, err := c.WaitTotal(50, rpcTimeout); err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, srv, 1)

	if _, ok := srv.ProxyConfig("no-such-proxy"); ok {
		t.Error("ProxyConfig of an unknown node id reported found")
	}
	pc, ok := srv.ProxyConfig("client-dump")
	if !ok {
		t.Fatalf("ProxyConfig(client-dump) not found; proxies %+v", srv.Proxies())
	}
	if pc.NodeID != "client-dump" || pc.Zone != "zone-a" {
		t.Errorf("identity %+v", pc)
	}
	var order []string
	for _, tc := range pc.Types {
		order = append(order, tc.TypeURL)
	}
	want := []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("types %v, want %v", order, want)
	}
	for _, tc := range pc.Types {
		if tc.Sent == nil || tc.Acked == nil || tc.Sent.Version != tc.Acked.Version || tc.LastNACK != nil {
			t.Errorf("%s: sent %+v acked %+v nack %+v, want the same version sent and ACKed", tc.TypeURL, tc.Sent, tc.Acked, tc.LastNACK)
			continue
		}
		if len(tc.Acked.Resources) == 0 {
			t.Errorf("%s: no resources", tc.TypeURL)
		}
		for _, r := range tc.Acked.Resources {
			if r.Resource == nil || r.Version == "" || r.Error != "" {
				t.Errorf("%s %s: %+v", tc.TypeURL, r.Name, r)
			}
		}
	}
	rt := typeConfig(t, pc, resource.RouteType)
	if rt.Acked.Resources[0].Version != good {
		t.Errorf("route ACKed %s, want %s", rt.Acked.Resources[0].Version, good)
	}
	if w := weightsIn(t, rt.Acked); w[translate.ClusterName(svcName, "v1")] != 8000 || w[translate.ClusterName(svcName, "v2")] != 2000 {
		t.Errorf("ACKed route weights %v, want 8000/2000", w)
	}
	// A cluster decodes to the Cluster octoroll serves, outlier detection included.
	for _, r := range typeConfig(t, pc, resource.ClusterType).Acked.Resources {
		var a anypb.Any
		var cl clusterv3.Cluster
		if err := protojson.Unmarshal(r.Resource, &a); err != nil {
			t.Fatal(err)
		}
		if err := a.UnmarshalTo(&cl); err != nil {
			t.Fatal(err)
		}
		if cl.GetName() != r.Name || cl.GetOutlierDetection().GetEnforcingSuccessRate() == nil {
			t.Errorf("cluster %s decodes to %v", r.Name, &cl)
		}
	}

	// A rejected route: sent is the bad version, ACKed stays the good one.
	if err := srv.PublishRaw(resource.RouteType, zeroWeights(t, srv)); err != nil {
		t.Fatal(err)
	}
	bad := srv.RouteVersion(svcName)
	if err := srv.WaitAcked(context.Background(), svcName, bad, ackTimeout); !errors.Is(err, xds.ErrNACKed) {
		t.Fatalf("WaitAcked(bad route) = %v, want ErrNACKed", err)
	}
	pc, _ = srv.ProxyConfig("client-dump")
	rt = typeConfig(t, pc, resource.RouteType)
	if rt.Sent == nil || rt.Sent.Resources[0].Version != bad || rt.Acked.Resources[0].Version != good {
		t.Errorf("after NACK: sent %+v acked %+v, want %s sent and %s ACKed", rt.Sent, rt.Acked, bad, good)
	}
	if w := weightsIn(t, rt.Sent); w[translate.ClusterName(svcName, "v1")] != 0 || w[translate.ClusterName(svcName, "v2")] != 0 {
		t.Errorf("sent route weights %v, want the rejected zeros", w)
	}
	if w := weightsIn(t, rt.Acked); w[translate.ClusterName(svcName, "v1")] != 8000 {
		t.Errorf("ACKed route weights %v, want the last good 8000/2000", w)
	}
	if rt.LastNACK == nil || rt.LastNACK.Version != rt.Sent.Version || rt.LastNACK.Message == "" {
		t.Errorf("route LastNACK %+v", rt.LastNACK)
	}
	if ct := typeConfig(t, pc, resource.ClusterType); ct.LastNACK != nil {
		t.Errorf("clusters show a NACK: %+v", ct.LastNACK)
	}
	// The dump is plain JSON.
	if _, err := json.Marshal(pc); err != nil {
		t.Fatal(err)
	}
}
