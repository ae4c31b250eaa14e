package xds_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// testCA signs client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "proxies CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// issue returns a client certificate with the common name cn and URI SANs uris.
func (ca *testCA) issue(t *testing.T, cn string, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestNodeIdentityRequired: over mTLS with node identities required, a proxy gets its
// configuration only under a node id its certificate names (URI SAN or CN).
func TestNodeIdentityRequired(t *testing.T) {
	dir := t.TempDir()
	srvCert, srvKey, srvX509 := writeCert(t, dir, "server")
	ca := newTestCA(t, dir)
	srv := xds.NewServer(zaptest.NewLogger(t), xds.Options{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: ca.file, RequireNodeIdentity: true})
	if err := srv.Update([]translate.Desired{{Service: service(t, "127.0.0.1:1", "127.0.0.1:2"), Weights: map[string]uint32{"v1": 10000}}}); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(srvX509)
	fetch := func(cert tls.Certificate, nodeID string) error {
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		sctx, scancel := context.WithTimeout(context.Background(), ackTimeout)
		defer scancel()
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
		if err != nil {
			return err
		}
		req := &discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType}
		if nodeID != "" {
			req.Node = &corev3.Node{Id: nodeID}
		}
		if err := stream.Send(req); err != nil {
			return err
		}
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if n := len(resp.GetResources()); n != 2 {
			t.Errorf("clusters: %d, want 2", n)
		}
		return nil
	}
	cnCert := ca.issue(t, "checkout-proxy-1")
	uriCert := ca.issue(t, "ignored", "spiffe://shop/ns/checkout/proxy-2")
	for _, c := range []struct {
		name   string
		cert   tls.Certificate
		nodeID string
		ok     bool
	}{
		{"CN names the node", cnCert, "checkout-proxy-1", true},
		{"URI SAN names the node", uriCert, "spiffe://shop/ns/checkout/proxy-2", true},
		{"another node's id", cnCert, "payments-proxy-1", false},
		{"no node id", cnCert, "", false},
	} {
		err := fetch(c.cert, c.nodeID)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.ok && status.Code(err) != codes.PermissionDenied:
			t.Errorf("%s: %v, want PermissionDenied", c.name, err)
		}
	}
	// Refused proxies are not tracked as connected under the id they claimed.
	for _, p := range srv.Proxies() {
		if p.NodeID == "payments-proxy-1" {
			t.Errorf("a refused proxy is listed: %+v", p)
		}
	}
}
