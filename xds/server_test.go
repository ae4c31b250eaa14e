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
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/octoacme/octoroll/translate"
	"github.com/octoacme/octoroll/xds"
)

// writeCert writes a self-signed certificate (usable as server, client and CA) and its
// key as PEM files in dir.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	return certFile, keyFile, cert
}

func TestServeMutualTLS(t *testing.T) {
	dir := t.TempDir()
	srvCert, srvKey, srvX509 := writeCert(t, dir, "server")
	cliCert, cliKey, _ := writeCert(t, dir, "client")

	srv := xds.NewServer(zaptest.NewLogger(t), xds.Options{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: cliCert})
	svc := service(t, "127.0.0.1:1", "127.0.0.1:2")
	if err := srv.Update([]translate.Desired{{Service: svc, Weights: map[string]uint32{"v1": 10000}}}); err != nil {
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
	fetch := func(withClientCert bool) error {
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if withClientCert {
			pair, err := tls.LoadX509KeyPair(cliCert, cliKey)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
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
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "tls-proxy"}, TypeUrl: resource.ClusterType}); err != nil {
			return err
		}
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if n := len(resp.GetResources()); n != 2 {
			t.Errorf("clusters over mTLS: %d, want 2", n)
		}
		return nil
	}
	if err := fetch(true); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if err := fetch(false); err == nil {
		t.Fatal("without a client certificate: served, want a handshake failure")
	}
}

func TestPublishRawDisabledByDefault(t *testing.T) {
	srv := xds.NewServer(zaptest.NewLogger(t), xds.Options{})
	if err := srv.PublishRaw(resource.RouteType); err == nil {
		t.Fatal("PublishRaw succeeded without Options.AllowRawPublish")
	}
}
