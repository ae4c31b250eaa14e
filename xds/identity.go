package xds

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// CertIdentities are the names a client certificate gives its holder: its URI SANs and
// its subject common name.
func CertIdentities(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	if c.Subject.CommonName != "" {
		out = append(out, c.Subject.CommonName)
	}
	return out
}

// nodeIdentityInterceptor refuses, with PermissionDenied, a stream whose requests name
// a node id that the client certificate of the connection does not: every request
// carrying a node must name one of CertIdentities, and the first must carry one.
func nodeIdentityInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ids, err := peerIdentities(ss.Context())
	if err != nil {
		return err
	}
	is := &identityStream{ServerStream: ss, ids: ids}
	err = handler(srv, is)
	if is.refused != nil {
		// The stream handler may take a failed receive for a client that left.
		return is.refused
	}
	return err
}

func peerIdentities(ctx context.Context) ([]string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.PermissionDenied, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return nil, status.Error(codes.PermissionDenied, "a client certificate naming the node id is required")
	}
	return CertIdentities(ti.State.PeerCertificates[0]), nil
}

type identityStream struct {
	grpc.ServerStream
	ids     []string
	seen    bool
	refused error
}

func (s *identityStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	var id string
	switch r := m.(type) {
	case *discoveryv3.DiscoveryRequest:
		id = r.GetNode().GetId()
	case *discoveryv3.DeltaDiscoveryRequest:
		id = r.GetNode().GetId()
	default:
		return nil
	}
	first := !s.seen
	s.seen = true
	switch {
	case id == "" && first:
		s.refused = status.Error(codes.PermissionDenied, "the first request must carry the node id its client certificate names")
	case id != "" && !slices.Contains(s.ids, id):
		s.refused = status.Error(codes.PermissionDenied, fmt.Sprintf("node id %q is not named by the client certificate (URI SANs and CN: %v)", id, s.ids))
	}
	return s.refused
}
