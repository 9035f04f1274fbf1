package fleet

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	spirepop "github.com/spiffe/spire/pkg/common/plugin/x509pop"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
	agent "github.com/edgeid/edgeid/plugins/agent/nodeattestor/kubeedge"
	wire "github.com/edgeid/edgeid/plugins/common/kubeedge"
)

// Cluster is the kubeedge cluster name the benchmark configures.
const Cluster = "prod"

// Node is one simulated edge node: its node certificate and key, and the
// CSR it sends for its agent SVID.
type Node struct {
	Name string
	Cert *x509.Certificate
	Key  crypto.Signer
	// CSR is the agent SVID request; one key per node, made once, so the
	// load generator spends its CPU on the protocol, not on key generation.
	CSR []byte
	// Payload is the attestor's first message, made once.
	Payload []byte
	// AgentPath is the SPIFFE ID path the server must return.
	AgentPath string
}

// Attestor is the agent side of a node attestor.
type Attestor interface {
	// Type is the NodeAttestor name in SPIRE's configuration.
	Type() string
	// payload is the first message of node n.
	payload(n *Node) ([]byte, error)
	// agentPath is the agent ID path the server derives for n.
	agentPath(n *Node) string
	// respond answers the server's challenge with n's key.
	respond(n *Node, challenge []byte) ([]byte, error)
}

// KubeEdge is the agent side of edgeid's kubeedge node attestor.
type KubeEdge struct{ TrustDomain string }

// Type implements Attestor.
func (KubeEdge) Type() string { return wire.PluginName }

func (KubeEdge) payload(n *Node) ([]byte, error) {
	return wire.Marshal(&wire.AttestationData{Version: wire.ProtocolVersion, Certificates: [][]byte{n.Cert.Raw}})
}

func (KubeEdge) agentPath(n *Node) string {
	return fmt.Sprintf("/spire/agent/kubeedge/%s/%s", Cluster, n.Name)
}

func (k KubeEdge) respond(n *Node, challenge []byte) ([]byte, error) {
	ch, err := wire.DecodeChallenge(challenge)
	if err != nil {
		return nil, err
	}
	return agent.Respond(nil, k.TrustDomain, ch, n.Key, time.Now())
}

// X509PoP is the agent side of SPIRE's built-in x509pop node attestor,
// using SPIRE's own wire types and response code.
type X509PoP struct{}

// Type implements Attestor.
func (X509PoP) Type() string { return spirepop.PluginName }

func (X509PoP) payload(n *Node) ([]byte, error) {
	return json.Marshal(&spirepop.AttestationData{Certificates: [][]byte{n.Cert.Raw}})
}

func (X509PoP) agentPath(n *Node) string {
	return "/spire/agent/x509pop/" + spirepop.Fingerprint(n.Cert)
}

func (X509PoP) respond(n *Node, challenge []byte) ([]byte, error) {
	var ch spirepop.Challenge
	if err := json.Unmarshal(challenge, &ch); err != nil {
		return nil, fmt.Errorf("fleet: x509pop challenge: %w", err)
	}
	resp, err := spirepop.CalculateResponse(n.Key, &ch)
	if err != nil {
		return nil, fmt.Errorf("fleet: x509pop response: %w", err)
	}
	return json.Marshal(resp)
}

// NewNodes issues n node certificates from ca, named edge-00000 onwards,
// with their CSRs and first messages for attestor a.
func NewNodes(ca *kubeedgeca.CA, a Attestor, n int) ([]*Node, error) {
	if n <= 0 {
		return nil, errors.New("fleet: node count must be positive")
	}
	nodes := make([]*Node, n)
	for i := range nodes {
		name := fmt.Sprintf("edge-%05d", i)
		creds, err := ca.IssueNode(name, kubeedgeca.SignOptions{})
		if err != nil {
			return nil, fmt.Errorf("fleet: issue %s: %w", name, err)
		}
		node := &Node{Name: name, Cert: creds.Certificate, Key: creds.Key}
		if node.CSR, err = newCSR(); err != nil {
			return nil, err
		}
		if node.Payload, err = a.payload(node); err != nil {
			return nil, err
		}
		node.AgentPath = a.agentPath(node)
		nodes[i] = node
	}
	return nodes, nil
}

// newCSR makes an agent SVID request the way spire-agent does: a fresh
// P-256 key and a CSR without a URI SAN.
func newCSR() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fleet: agent key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("fleet: agent CSR: %w", err)
	}
	return csr, nil
}
