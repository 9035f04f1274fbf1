package kubeedge

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"

	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	nodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/nodeattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wire "github.com/edgeid/edgeid/plugins/common/kubeedge"
	"github.com/edgeid/edgeid/plugins/common/pluginconf"
)

var (
	_ nodeattestorv1.NodeAttestorServer = (*Plugin)(nil)
	_ configv1.ConfigServer             = (*Plugin)(nil)
	_ pluginsdk.NeedsLogger             = (*Plugin)(nil)
)

// maxFileBytes bounds the certificate and key files the agent reads.
const maxFileBytes = 64 << 10

// Config is the plugin_data of NodeAttestor "kubeedge" on the agent.
type Config struct {
	// CertificatePath is the node certificate (PEM; intermediates may
	// follow the leaf). Default /etc/kubeedge/certs/server.crt.
	CertificatePath string `hcl:"certificate_path,optional"`
	// PrivateKeyPath is the node key (PEM: SEC1, PKCS#1 or PKCS#8).
	// Default /etc/kubeedge/certs/server.key.
	PrivateKeyPath string `hcl:"private_key_path,optional"`
	// IntermediatesPath optionally holds intermediate CA certificates to
	// send after the leaf.
	IntermediatesPath string `hcl:"intermediates_path,optional"`
}

type configuration struct {
	trustDomain       spiffeid.TrustDomain
	certificatePath   string
	privateKeyPath    string
	intermediatesPath string
}

// BuildConfig checks c and applies the defaults (see pluginconf.Builder).
// The files are not read here: edgecore may still be joining.
func (c *Config) BuildConfig(core pluginconf.Core, s *pluginconf.Status) *configuration {
	core.RequireTrustDomain(s)
	out := &configuration{
		trustDomain:       core.TrustDomain,
		certificatePath:   c.CertificatePath,
		privateKeyPath:    c.PrivateKeyPath,
		intermediatesPath: c.IntermediatesPath,
	}
	if out.certificatePath == "" {
		out.certificatePath = wire.DefaultCertificatePath
	}
	if out.privateKeyPath == "" {
		out.privateKeyPath = wire.DefaultPrivateKeyPath
	}
	return out
}

// buildConfig builds the configuration of a Configure or Validate request.
func buildConfig(req pluginconf.Request) (*configuration, *pluginconf.Status) {
	return pluginconf.Build(req, new(Config))
}

// hooks are the plugin's links to the clock and randomness, replaced by tests.
type hooks struct {
	now  func() time.Time
	rand io.Reader
}

// Plugin is the agent side of NodeAttestor "kubeedge".
type Plugin struct {
	nodeattestorv1.UnimplementedNodeAttestorServer
	configv1.UnimplementedConfigServer

	hooks hooks

	mu     sync.RWMutex
	config *configuration
	logger hclog.Logger
}

// New returns an unconfigured plugin.
func New() *Plugin {
	return &Plugin{hooks: hooks{now: time.Now, rand: rand.Reader}, logger: hclog.NewNullLogger()}
}

// SetLogger is called by the plugin framework with SPIRE's logger.
func (p *Plugin) SetLogger(logger hclog.Logger) {
	p.mu.Lock()
	p.logger = logger
	p.mu.Unlock()
}

// Configure validates and applies the configuration atomically. The files
// are not required to exist yet (edgecore may still be joining); they are
// read at every attestation.
func (p *Plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	cfg, st := buildConfig(req)
	if err := st.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.config = cfg
	logger := p.logger
	p.mu.Unlock()
	if _, err := loadCredentials(cfg); err != nil {
		logger.Warn("Node credentials are not usable yet; attestation will fail until they are", "error", err)
	}
	return &configv1.ConfigureResponse{}, nil
}

// Validate reports whether a configuration is usable.
func (p *Plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	cfg, st := buildConfig(req)
	if cfg != nil {
		if _, err := loadCredentials(cfg); err != nil {
			st.ReportInfof("node credentials are not usable yet: %v", err)
		}
	}
	return st.ValidateResponse(), nil
}

func (p *Plugin) getConfig() (*configuration, hclog.Logger, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.config == nil {
		return nil, p.logger, status.Error(codes.FailedPrecondition, "not configured")
	}
	return p.config, p.logger, nil
}

// AidAttestation sends the certificate chain and answers the challenge.
func (p *Plugin) AidAttestation(stream nodeattestorv1.NodeAttestor_AidAttestationServer) error {
	cfg, logger, err := p.getConfig()
	if err != nil {
		return err
	}
	creds, err := loadCredentials(cfg)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "unable to load node credentials: %v", err)
	}
	leaf := creds.chain[0]
	if now := p.hooks.now(); now.After(leaf.NotAfter) {
		logger.Warn("Node certificate has expired; the server will refuse it", "not_after", leaf.NotAfter, "path", cfg.certificatePath)
	}
	ders := make([][]byte, len(creds.chain))
	for i, c := range creds.chain {
		ders[i] = c.Raw
	}
	payload, err := wire.Marshal(&wire.AttestationData{Version: wire.ProtocolVersion, Certificates: ders})
	if err != nil {
		return status.Errorf(codes.Internal, "unable to encode payload: %v", err)
	}
	if len(payload) > wire.MaxPayloadBytes {
		return status.Errorf(codes.FailedPrecondition, "attestation payload is %d bytes, over the %d byte limit; send fewer intermediates", len(payload), wire.MaxPayloadBytes)
	}
	if err := stream.Send(&nodeattestorv1.PayloadOrChallengeResponse{Data: &nodeattestorv1.PayloadOrChallengeResponse_Payload{Payload: payload}}); err != nil {
		return err
	}

	msg, err := stream.Recv()
	if err != nil {
		return err
	}
	ch, err := wire.DecodeChallenge(msg.GetChallenge())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	resp, err := Respond(p.hooks.rand, cfg.trustDomain.Name(), ch, creds.key, p.hooks.now())
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	return stream.Send(&nodeattestorv1.PayloadOrChallengeResponse{Data: &nodeattestorv1.PayloadOrChallengeResponse_ChallengeResponse{ChallengeResponse: resp}})
}

// Respond builds the encoded ChallengeResponse to ch, signed with key.
func Respond(randReader io.Reader, trustDomain string, ch *wire.Challenge, key crypto.Signer, now time.Time) ([]byte, error) {
	if randReader == nil {
		randReader = rand.Reader
	}
	agentNonce := make([]byte, wire.NonceSize)
	if _, err := io.ReadFull(randReader, agentNonce); err != nil {
		return nil, fmt.Errorf("kubeedge: unable to generate nonce: %w", err)
	}
	ts := now.UnixMilli()
	sig, err := wire.Sign(randReader, key, wire.SignedMessage(trustDomain, ch.Nonce, agentNonce, ts))
	if err != nil {
		return nil, err
	}
	return wire.Marshal(&wire.ChallengeResponse{
		Version:       wire.ProtocolVersion,
		Challenge:     ch.Nonce,
		Nonce:         agentNonce,
		TimeUnixMilli: ts,
		Signature:     sig,
	})
}

type credentials struct {
	chain []*x509.Certificate
	key   crypto.Signer
}

// loadCredentials reads the certificate chain and key and checks they match.
func loadCredentials(cfg *configuration) (*credentials, error) {
	certPEM, err := fsutil.ReadFileLimited(cfg.certificatePath, maxFileBytes)
	if err != nil {
		return nil, err
	}
	chain, err := pemutil.ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.certificatePath, err)
	}
	if cfg.intermediatesPath != "" {
		interPEM, err := fsutil.ReadFileLimited(cfg.intermediatesPath, maxFileBytes)
		if err != nil {
			return nil, err
		}
		inter, err := pemutil.ParseCertificates(interPEM)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.intermediatesPath, err)
		}
		chain = append(chain, inter...)
	}
	if len(chain) > wire.MaxCertificates {
		return nil, fmt.Errorf("the chain holds %d certificates, over the limit of %d", len(chain), wire.MaxCertificates)
	}
	keyPEM, err := fsutil.ReadFileLimited(cfg.privateKeyPath, maxFileBytes)
	if err != nil {
		return nil, err
	}
	key, err := wire.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.privateKeyPath, err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("the private key in %s does not match the certificate in %s", cfg.privateKeyPath, cfg.certificatePath)
	}
	if err := wire.CheckPublicKey(key.Public()); err != nil {
		return nil, err
	}
	return &credentials{chain: chain, key: key}, nil
}
