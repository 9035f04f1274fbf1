package kubeedge

import (
	"context"
	"io"
	"time"

	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
)

// Verifier runs the server side of a kubeedge attestation without SPIRE or
// gRPC: the same parsing, chain verification, proof of possession and
// Kubernetes check as the plugin. Benchmarks and tools use it.
type Verifier struct {
	st    *state
	hooks hooks
}

// VerifierOption tunes a Verifier.
type VerifierOption func(*hooks)

// WithClock replaces time.Now.
func WithClock(now func() time.Time) VerifierOption { return func(h *hooks) { h.now = now } }

// WithRand replaces crypto/rand as the nonce source.
func WithRand(r io.Reader) VerifierOption { return func(h *hooks) { h.rand = r } }

// NewVerifier configures a verifier exactly as Configure would with the given
// trust domain and plugin_data HCL.
func NewVerifier(trustDomain, hclConfig string, opts ...VerifierOption) (*Verifier, error) {
	p := New()
	for _, o := range opts {
		o(&p.hooks)
	}
	st, cfgStatus := p.build(&configv1.ConfigureRequest{
		CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: trustDomain},
		HclConfiguration:  hclConfig,
	})
	if err := cfgStatus.Err(); err != nil {
		return nil, err
	}
	return &Verifier{st: st, hooks: p.hooks}, nil
}

// Exchange is one attestation waiting for the agent's challenge response.
type Exchange struct{ ex *exchange }

// Begin verifies the agent's payload and returns the challenge to send it.
// Errors are gRPC statuses, as the plugin returns them.
func (v *Verifier) Begin(payload []byte) (*Exchange, []byte, error) {
	ex, challenge, err := v.st.begin(payload, &v.hooks)
	if err != nil {
		return nil, nil, err
	}
	return &Exchange{ex: ex}, challenge, nil
}

// Finish verifies the agent's challenge response and returns the agent ID
// and selectors.
func (e *Exchange) Finish(ctx context.Context, response []byte) (*Result, error) {
	return e.ex.finish(ctx, response)
}
