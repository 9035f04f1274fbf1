package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	agentv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/agent/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// maxSteps bounds the challenge rounds of one attestation.
const maxSteps = 4

// Client attests simulated nodes to one SPIRE server.
type Client struct {
	addr     string
	tls      *tls.Config
	attestor Attestor
}

// NewClient returns a client of the SPIRE server at addr ("host:port")
// whose trust bundle is bundlePEM. Like spire-agent it authenticates the
// server as spiffe://<td>/spire/server and presents no certificate.
func NewClient(addr, trustDomain string, bundlePEM []byte, a Attestor) (*Client, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	bundle, err := x509bundle.Parse(td, bundlePEM)
	if err != nil {
		return nil, fmt.Errorf("fleet: server bundle: %w", err)
	}
	serverID, err := spiffeid.FromPath(td, "/spire/server")
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return &Client{addr: addr, tls: tlsconfig.TLSClientConfig(bundle, tlsconfig.AuthorizeID(serverID)), attestor: a}, nil
}

// Attest runs one AttestAgent exchange for n over a new connection, as
// spire-agent does for its first attestation and for every re-attestation,
// and checks the agent ID the server returns.
func (c *Client) Attest(ctx context.Context, n *Node) error {
	conn, err := grpc.NewClient("passthrough:///"+c.addr, grpc.WithTransportCredentials(credentials.NewTLS(c.tls)))
	if err != nil {
		return fmt.Errorf("fleet: dial: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := agentv1.NewAgentClient(conn).AttestAgent(ctx)
	if err != nil {
		return fmt.Errorf("fleet: %s: open stream: %w", n.Name, err)
	}
	err = stream.Send(&agentv1.AttestAgentRequest{Step: &agentv1.AttestAgentRequest_Params_{Params: &agentv1.AttestAgentRequest_Params{
		Data:   &types.AttestationData{Type: c.attestor.Type(), Payload: n.Payload},
		Params: &agentv1.AgentX509SVIDParams{Csr: n.CSR},
	}}})
	if err != nil {
		return fmt.Errorf("fleet: %s: send payload: %w", n.Name, err)
	}
	for range maxSteps {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("fleet: %s: %w", n.Name, err)
		}
		if res := resp.GetResult(); res != nil {
			return checkResult(n, res)
		}
		answer, err := c.attestor.respond(n, resp.GetChallenge())
		if err != nil {
			return fmt.Errorf("fleet: %s: %w", n.Name, err)
		}
		if err := stream.Send(&agentv1.AttestAgentRequest{Step: &agentv1.AttestAgentRequest_ChallengeResponse{ChallengeResponse: answer}}); err != nil {
			return fmt.Errorf("fleet: %s: send challenge response: %w", n.Name, err)
		}
	}
	return fmt.Errorf("fleet: %s: no result after %d challenges", n.Name, maxSteps)
}

func checkResult(n *Node, res *agentv1.AttestAgentResponse_Result) error {
	svid := res.GetSvid()
	switch {
	case svid == nil || len(svid.CertChain) == 0:
		return fmt.Errorf("fleet: %s: result without an SVID", n.Name)
	case svid.GetId().GetPath() != n.AgentPath:
		return fmt.Errorf("fleet: %s: agent ID path %q, want %q", n.Name, svid.GetId().GetPath(), n.AgentPath)
	case !res.Reattestable:
		return errors.New("fleet: " + n.Name + ": server says the agent cannot re-attest")
	}
	return nil
}
