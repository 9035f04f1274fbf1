package spirex509pop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	nodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/nodeattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	spirepop "github.com/spiffe/spire/pkg/common/plugin/x509pop"
	spireserverpop "github.com/spiffe/spire/pkg/server/plugin/nodeattestor/x509pop"
	"google.golang.org/grpc/metadata"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
	agent "github.com/edgeid/edgeid/plugins/agent/nodeattestor/kubeedge"
	wire "github.com/edgeid/edgeid/plugins/common/kubeedge"
	server "github.com/edgeid/edgeid/plugins/server/nodeattestor/kubeedge"
)

// stream is an in-process NodeAttestor_AttestServer: it hands the plugin
// the payload, answers its challenge with respond, and captures the result.
// Both plugins run through the same stream, with no gRPC.
type stream struct {
	ctx      context.Context
	payload  []byte
	respond  func(challenge []byte) []byte
	b        *testing.B
	step     int
	response []byte
	attrs    *nodeattestorv1.AgentAttributes
}

func (s *stream) Recv() (*nodeattestorv1.AttestRequest, error) {
	s.step++
	switch s.step {
	case 1:
		return &nodeattestorv1.AttestRequest{Request: &nodeattestorv1.AttestRequest_Payload{Payload: s.payload}}, nil
	case 2:
		return &nodeattestorv1.AttestRequest{Request: &nodeattestorv1.AttestRequest_ChallengeResponse{ChallengeResponse: s.response}}, nil
	}
	return nil, io.EOF
}

func (s *stream) Send(r *nodeattestorv1.AttestResponse) error {
	if ch := r.GetChallenge(); ch != nil {
		// The agent's signing is agent work: keep it out of the timing.
		s.b.StopTimer()
		s.response = s.respond(ch)
		s.b.StartTimer()
		return nil
	}
	s.attrs = r.GetAgentAttributes()
	return nil
}

func (s *stream) Context() context.Context     { return s.ctx }
func (s *stream) SetHeader(metadata.MD) error  { return nil }
func (s *stream) SendHeader(metadata.MD) error { return nil }
func (s *stream) SetTrailer(metadata.MD)       {}
func (s *stream) SendMsg(any) error            { return errors.New("unused") }
func (s *stream) RecvMsg(any) error            { return errors.New("unused") }

type attester interface {
	Attest(nodeattestorv1.NodeAttestor_AttestServer) error
}

// run attests b.N times and reports attestations per second of timed work.
// With -cpu 1 that is attestations per second per core.
func run(b *testing.B, p attester, payload []byte, respond func([]byte) []byte, wantID string) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s := &stream{ctx: ctx, payload: payload, respond: respond, b: b}
		if err := p.Attest(s); err != nil {
			b.Fatal(err)
		}
		if s.attrs == nil || !strings.HasPrefix(s.attrs.SpiffeId, wantID) {
			b.Fatalf("unexpected result %v", s.attrs)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "attest/s")
}

// BenchmarkServerAttestation runs SPIRE v1.13.3's real x509pop server plugin
// and the kubeedge server plugin on the same cloudcore-style ECDSA P-256
// node certificate, in one run.
func BenchmarkServerAttestation(b *testing.B) {
	ca, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		b.Fatal(err)
	}
	creds, err := ca.IssueNode("edge-node-1", kubeedgeca.SignOptions{Now: time.Now().Add(-time.Minute)})
	if err != nil {
		b.Fatal(err)
	}
	caPath := filepath.Join(b.TempDir(), "rootCA.crt")
	if err := ca.WriteCertificate(caPath); err != nil {
		b.Fatal(err)
	}
	core := &configv1.CoreConfiguration{TrustDomain: "example.org"}

	kubeedge := func(b *testing.B, cacheSize int) {
		p := server.New()
		if _, err := p.Configure(context.Background(), &configv1.ConfigureRequest{CoreConfiguration: core,
			HclConfiguration: fmt.Sprintf("cluster = \"prod\"\nca_bundle_path = %q\nkubernetes_check = \"disabled\"\nchain_cache_size = %d\n", caPath, cacheSize)}); err != nil {
			b.Fatal(err)
		}
		payload, _ := wire.Marshal(&wire.AttestationData{Version: wire.ProtocolVersion, Certificates: [][]byte{creds.Certificate.Raw}})
		respond := func(challenge []byte) []byte {
			ch, err := wire.DecodeChallenge(challenge)
			if err != nil {
				b.Fatal(err)
			}
			r, err := agent.Respond(nil, "example.org", ch, creds.Key, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			return r
		}
		run(b, p, payload, respond, "spiffe://example.org/spire/agent/kubeedge/prod/edge-node-1")
	}
	// First attestation of a certificate (verified-chain cache off).
	b.Run("kubeedge-first", func(b *testing.B) { kubeedge(b, 0) })
	// Re-attestation with the same certificate, as at every SVID renewal.
	b.Run("kubeedge-reattest", func(b *testing.B) { kubeedge(b, 16384) })

	b.Run("spire-x509pop", func(b *testing.B) {
		p := spireserverpop.New()
		p.SetLogger(hclog.NewNullLogger())
		if _, err := p.Configure(context.Background(), &configv1.ConfigureRequest{CoreConfiguration: core,
			HclConfiguration: fmt.Sprintf("ca_bundle_path = %q\n", caPath)}); err != nil {
			b.Fatal(err)
		}
		payload, _ := json.Marshal(spirepop.AttestationData{Certificates: [][]byte{creds.Certificate.Raw}})
		respond := func(challenge []byte) []byte {
			ch := new(spirepop.Challenge)
			if err := json.Unmarshal(challenge, ch); err != nil {
				b.Fatal(err)
			}
			r, err := spirepop.CalculateResponse(creds.Key, ch)
			if err != nil {
				b.Fatal(err)
			}
			out, _ := json.Marshal(r)
			return out
		}
		run(b, p, payload, respond, "spiffe://example.org/spire/agent/x509pop/")
	})
}
