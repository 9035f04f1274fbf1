// Package fakewlapi is an in-process SPIFFE Workload API server for
// edgeid-helper's unit tests. Tests push X.509 contexts; every open
// FetchX509SVID stream receives each push.
package fakewlapi

import (
	"crypto/x509"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	workload "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Server is a fake Workload API on a unix socket.
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	// Addr is "unix://<socket>".
	Addr string
	// Path is the socket path.
	Path string

	mu      sync.Mutex
	current *workload.X509SVIDResponse
	subs    map[chan *workload.X509SVIDResponse]struct{}
}

// Start serves on a socket in a temporary directory until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "api.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: "unix://" + path, Path: path, subs: map[chan *workload.X509SVIDResponse]struct{}{}}
	g := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(g, s)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return s
}

// Push sends svids (first is the default) with the bundle of their trust
// domain and federated bundles to every stream, and to streams opened later.
func (s *Server) Push(svids []*x509svid.SVID, bundle *x509bundle.Bundle, federated ...*x509bundle.Bundle) {
	resp := &workload.X509SVIDResponse{FederatedBundles: map[string][]byte{}}
	for _, sv := range svids {
		var chain []byte
		for _, c := range sv.Certificates {
			chain = append(chain, c.Raw...)
		}
		key, err := x509.MarshalPKCS8PrivateKey(sv.PrivateKey)
		if err != nil {
			panic(err)
		}
		resp.Svids = append(resp.Svids, &workload.X509SVID{
			SpiffeId: sv.ID.String(), X509Svid: chain, X509SvidKey: key, Bundle: concat(bundle.X509Authorities()), Hint: sv.Hint,
		})
	}
	for _, b := range federated {
		resp.FederatedBundles[b.TrustDomain().IDString()] = concat(b.X509Authorities())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = resp
	for ch := range s.subs {
		select {
		case ch <- resp:
		default:
		}
	}
}

func concat(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}

// FetchX509SVID streams the current response and every later push.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream workload.SpiffeWorkloadAPI_FetchX509SVIDServer) error {
	ch := make(chan *workload.X509SVIDResponse, 16)
	s.mu.Lock()
	cur := s.current
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	if cur != nil {
		if err := stream.Send(cur); err != nil {
			return err
		}
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case resp := <-ch:
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}

// FetchJWTBundles is not served.
func (s *Server) FetchJWTBundles(*workload.JWTBundlesRequest, workload.SpiffeWorkloadAPI_FetchJWTBundlesServer) error {
	return status.Error(codes.Unimplemented, "fake")
}
