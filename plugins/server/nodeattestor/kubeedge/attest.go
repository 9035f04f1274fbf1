package kubeedge

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	nodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/nodeattestor/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wire "github.com/edgeid/edgeid/plugins/common/kubeedge"
)

// Attest runs the challenge–response attestation of one agent.
func (p *Plugin) Attest(stream nodeattestorv1.NodeAttestor_AttestServer) error {
	st, logger, err := p.getState()
	if err != nil {
		return err
	}
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	payload := req.GetPayload()
	if payload == nil {
		return status.Error(codes.InvalidArgument, "expected an attestation payload")
	}
	ex, challenge, err := st.begin(payload, &p.hooks)
	if err != nil {
		logRefusal(logger, ex, err)
		return err
	}
	if err := stream.Send(&nodeattestorv1.AttestResponse{Response: &nodeattestorv1.AttestResponse_Challenge{Challenge: challenge}}); err != nil {
		return err
	}
	req, err = stream.Recv()
	if err != nil {
		return err
	}
	respBytes := req.GetChallengeResponse()
	if respBytes == nil {
		return status.Error(codes.InvalidArgument, "expected a challenge response")
	}
	res, err := ex.finish(stream.Context(), respBytes)
	if err != nil {
		logRefusal(logger, ex, err)
		return err
	}
	if logger.IsDebug() {
		// SPIRE logs every attestation itself; this adds what it cannot know.
		logger.Debug("Node attested", "agent_id", res.AgentID, "cert_serial", ex.v.serial, "ca_fingerprint", ex.v.caFingerprint)
	}
	return stream.Send(&nodeattestorv1.AttestResponse{
		Response: &nodeattestorv1.AttestResponse_AgentAttributes{
			AgentAttributes: &nodeattestorv1.AgentAttributes{
				SpiffeId:       res.AgentID,
				SelectorValues: res.Selectors,
				CanReattest:    true,
			},
		},
	})
}

// logRefusal logs a refused attestation, with the node's name, serial and
// CA when its certificate verified that far (ex.v set): SPIRE logs the
// error too, but not which certificate was refused.
func logRefusal(logger hclog.Logger, ex *exchange, err error) {
	reason := status.Convert(err).Message()
	if ex == nil || ex.v == nil {
		logger.Warn("Node attestation failed", "reason", reason)
		return
	}
	logger.Warn("Node attestation failed", "node_name", ex.v.nodeName, "cert_serial", ex.v.serial, "ca_fingerprint", ex.v.caFingerprint, "reason", reason)
}

// exchange is one attestation between its challenge and the response.
type exchange struct {
	st     *state
	hooks  *hooks
	v      *verified
	nonce  []byte
	sentAt time.Time
}

// Result is the outcome of a successful attestation.
type Result struct {
	// AgentID is spiffe://<td>/spire/agent/kubeedge/<cluster>/<node-name>.
	AgentID string
	// Selectors are the kubeedge selector values (without the type).
	Selectors []string
}

// begin parses and verifies the payload and returns the challenge to send.
// When the certificate verified but a deny list refuses it, the error
// comes with an exchange that holds only what was verified, for the log.
func (st *state) begin(payload []byte, h *hooks) (*exchange, []byte, error) {
	data, err := wire.DecodeAttestationData(payload)
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	v, err := st.verifyCached(data.Certificates, h.now())
	if err != nil {
		if v != nil {
			return &exchange{v: v}, nil, err
		}
		return nil, nil, err
	}
	// Proof of possession: a fresh nonce the agent signs with the node key.
	nonce := make([]byte, wire.NonceSize)
	if _, err := io.ReadFull(h.rand, nonce); err != nil {
		return nil, nil, status.Errorf(codes.Internal, "unable to generate challenge: %v", err)
	}
	challenge, err := wire.Marshal(&wire.Challenge{Version: wire.ProtocolVersion, Nonce: nonce})
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "unable to encode challenge: %v", err)
	}
	return &exchange{st: st, hooks: h, v: v, nonce: nonce, sentAt: h.now()}, challenge, nil
}

// finish verifies the challenge response, runs the Kubernetes Node check
// (only after proof of possession, so unauthenticated callers never reach
// the API server) and builds the agent ID and selectors.
func (ex *exchange) finish(ctx context.Context, response []byte) (*Result, error) {
	st := ex.st
	if err := st.verifyChallengeResponse(ex.v.leaf, ex.nonce, response, ex.sentAt, ex.hooks.now()); err != nil {
		return nil, err
	}
	selectors := ex.v.selectors(st.config.cluster)
	if st.kube != nil {
		extra, err := st.checkNode(ctx, ex.v.nodeName, ex.hooks.now)
		if err != nil {
			return nil, err
		}
		selectors = append(selectors, extra...)
	}
	id, err := spiffeid.FromSegments(st.config.trustDomain, "spire", "agent", wire.PluginName, st.config.cluster, ex.v.nodeName)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "unable to build agent ID: %v", err)
	}
	return &Result{AgentID: id.String(), Selectors: selectors}, nil
}

// ParseAttestationPayload decodes the agent's first message and parses its
// certificates. Every error is meant for an InvalidArgument status.
func ParseAttestationPayload(payload []byte) ([]*x509.Certificate, error) {
	data, err := wire.DecodeAttestationData(payload)
	if err != nil {
		return nil, err
	}
	return parseChain(data.Certificates)
}

// parseChain parses the DER certificates of a decoded payload.
func parseChain(ders [][]byte) ([]*x509.Certificate, error) {
	chain := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("kubeedge: malformed certificate %d: %w", i, err)
		}
		chain = append(chain, cert)
	}
	return chain, nil
}
