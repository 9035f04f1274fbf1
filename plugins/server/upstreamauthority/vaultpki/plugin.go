package vaultpki

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/edgeid/edgeid/plugins/common/vaultclient"
	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	metricsv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/hostservice/common/metrics/v1"
	upstreamauthorityv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/upstreamauthority/v1"
	"github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/types"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PluginName is the name of the plugin in SPIRE's server.conf.
const PluginName = "vault_pki"

// maxCSRBytes bounds the CSR SPIRE sends.
const maxCSRBytes = 64 << 10

var (
	_ upstreamauthorityv1.UpstreamAuthorityServer = (*Plugin)(nil)
	_ configv1.ConfigServer                       = (*Plugin)(nil)
	_ pluginsdk.NeedsLogger                       = (*Plugin)(nil)
	_ pluginsdk.NeedsHostServices                 = (*Plugin)(nil)
)

// hooks are the OS and clock dependencies that tests replace.
type hooks struct {
	now    func() time.Time
	getenv func(string) string
	dial   func(ctx context.Context, cfg vaultclient.Config) (vault, error)
}

// state is one applied configuration and the Vault client made for it.
type state struct {
	cfg   *configuration
	vault vault
}

// Plugin is the vault_pki UpstreamAuthority.
type Plugin struct {
	upstreamauthorityv1.UnimplementedUpstreamAuthorityServer
	configv1.UnimplementedConfigServer

	mu      sync.RWMutex
	state   *state
	log     hclog.Logger
	metrics metrics
	hooks   hooks
}

// New returns an unconfigured plugin.
func New() *Plugin {
	return &Plugin{
		log: hclog.NewNullLogger(),
		hooks: hooks{
			now:    time.Now,
			getenv: os.Getenv,
			dial: func(ctx context.Context, cfg vaultclient.Config) (vault, error) {
				return vaultclient.Dial(ctx, cfg)
			},
		},
	}
}

// SetLogger implements pluginsdk.NeedsLogger.
func (p *Plugin) SetLogger(log hclog.Logger) {
	p.log = log
}

// BrokerHostServices implements pluginsdk.NeedsHostServices. The metrics
// host service is optional.
func (p *Plugin) BrokerHostServices(broker pluginsdk.ServiceBroker) error {
	client := new(metricsv1.MetricsServiceClient)
	if broker.BrokerClient(client) {
		p.metrics = metrics{client: client}
	}
	return nil
}

// Validate implements configv1.ConfigServer. It checks the configuration
// without contacting Vault.
func (p *Plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	_, st := buildConfig(req, p.hooks.getenv)
	st.ReportInfo("Vault is contacted at Configure, not at Validate")
	return st.ValidateResponse(), nil
}

// Configure implements configv1.ConfigServer. Besides validating the
// configuration it logs in to Vault, checks that the token may sign at
// <pki_mount_point>/root/sign-intermediate (and use the KV path when
// kv_mount_point is set), and reads the signing issuer. Any failure keeps
// the previous configuration.
func (p *Plugin) Configure(ctx context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	cfg, st := buildConfig(req, p.hooks.getenv)
	if err := st.Err(); err != nil {
		return nil, err
	}
	clientCfg := cfg.client
	clientCfg.Logger = p.log.Named("vault")
	if a, ok := clientCfg.Auth.(*vaultclient.AppRoleAuth); ok {
		a.Logger = clientCfg.Logger
	}
	v, err := p.hooks.dial(ctx, clientCfg)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "cannot log in to Vault at vault_addr %q with %s: %v", cfg.client.Address, cfg.authKey, err)
	}
	if err := p.checkVault(ctx, cfg, v); err != nil {
		_ = v.Close()
		return nil, err
	}

	p.mu.Lock()
	old := p.state
	p.state = &state{cfg: cfg, vault: v}
	p.mu.Unlock()
	if old != nil {
		_ = old.vault.Close()
	}
	p.log.Info("Configured", "vault_addr", cfg.client.Address, "pki_mount_point", cfg.pkiMount,
		"issuer_ref", cfg.issuerRefOrDefault(), "auth_method", vaultclient.Method(cfg.client.Auth),
		"kv_mount_point", cfg.kvMount, "root_poll_interval", cfg.rootPollInterval.String(), "min_ttl", cfg.minTTL.String())
	if cfg.kvMount == "" {
		p.log.Warn("kv_mount_point is not set: JWT authorities are not shared through Vault, and JWT-SVIDs of this server will not verify at servers rooted in the same Vault")
	}
	return &configv1.ConfigureResponse{}, nil
}

// checkVault runs Configure's fail-fast checks.
func (p *Plugin) checkVault(ctx context.Context, cfg *configuration, v vault) error {
	caps, err := v.CapabilitiesSelf(ctx, cfg.signPath())
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "cannot read the token's capabilities on %s (pki_mount_point %q): %v", cfg.signPath(), cfg.pkiMount, err)
	}
	if !hasCapability(caps, "update") {
		return status.Errorf(codes.FailedPrecondition, "the Vault token may not update %s (capabilities %v): its policy needs path %q { capabilities = [\"update\"] }", cfg.signPath(), caps, cfg.signPath())
	}
	if cfg.kvMount != "" {
		p := cfg.jwtDataPath()
		caps, err := v.CapabilitiesSelf(ctx, p)
		if err != nil {
			return status.Errorf(codes.FailedPrecondition, "cannot read the token's capabilities on %s (kv_mount_point %q): %v", p, cfg.kvMount, err)
		}
		for _, want := range []string{"read", "create", "update"} {
			if !hasCapability(caps, want) {
				return status.Errorf(codes.FailedPrecondition, "the Vault token may not %s %s (kv_mount_point %q, capabilities %v): its policy needs path %q { capabilities = [\"read\", \"create\", \"update\"] }", want, p, cfg.kvMount, caps, p)
			}
		}
	}
	certs, err := issuerCerts(ctx, v, cfg.pkiMount, cfg.issuerRefOrDefault())
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "cannot read issuer %q of pki_mount_point %q: %v", cfg.issuerRefOrDefault(), cfg.pkiMount, err)
	}
	issuer := certs[0]
	now := p.hooks.now()
	if !issuer.IsCA {
		return status.Errorf(codes.FailedPrecondition, "issuer %q of pki_mount_point %q is not a CA certificate", cfg.issuerRefOrDefault(), cfg.pkiMount)
	}
	if now.After(issuer.NotAfter) {
		return status.Errorf(codes.FailedPrecondition, "issuer %q of pki_mount_point %q expired at %s", cfg.issuerRefOrDefault(), cfg.pkiMount, issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	if cfg.minTTL > 0 && issuer.NotAfter.Sub(now) < cfg.minTTL {
		p.log.Warn("The signing issuer expires sooner than min_ttl; signing will fail once Vault truncates the CA lifetime", "issuer_ref", cfg.issuerRefOrDefault(), "issuer_not_after", issuer.NotAfter.UTC().Format(time.RFC3339), "min_ttl", cfg.minTTL.String())
	}
	return nil
}

func hasCapability(caps []string, want string) bool {
	return slices.Contains(caps, want) || slices.Contains(caps, "root")
}

// Close implements io.Closer; the SDK calls it when SPIRE unloads the
// plugin.
func (p *Plugin) Close() error {
	p.mu.Lock()
	st := p.state
	p.state = nil
	p.mu.Unlock()
	if st != nil {
		return st.vault.Close()
	}
	return nil
}

func (p *Plugin) getState() (*state, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state == nil {
		return nil, status.Error(codes.FailedPrecondition, "not configured")
	}
	return p.state, nil
}

// MintX509CAAndSubscribe implements upstreamauthorityv1.UpstreamAuthorityServer.
// It signs the CSR, sends the chain and the roots, then keeps the stream
// open and sends the root set again whenever Vault's roots change.
func (p *Plugin) MintX509CAAndSubscribe(req *upstreamauthorityv1.MintX509CARequest, stream upstreamauthorityv1.UpstreamAuthority_MintX509CAAndSubscribeServer) error {
	st, err := p.getState()
	if err != nil {
		return err
	}
	ctx := stream.Context()
	start := p.hooks.now()
	resp, baseRoots, err := p.mint(ctx, st, req)
	p.metrics.incr("mint_x509_ca", resultLabel(err))
	p.metrics.since("mint_x509_ca_duration", start)
	if err != nil {
		return err
	}
	if err := stream.Send(resp); err != nil {
		return err
	}
	sent := baseRoots

	ticker := time.NewTicker(st.cfg.rootPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		roots, err := mountRoots(ctx, st.vault, st.cfg.pkiMount, p.hooks.now())
		p.metrics.incr("root_poll", resultLabel(err))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.log.Warn("Cannot poll Vault for root changes; will retry", "pki_mount_point", st.cfg.pkiMount, "error", err)
			continue
		}
		roots = unionRoots(roots, baseRoots)
		if sameCerts(roots, sent) {
			continue
		}
		p.log.Info("Vault's root set changed; sending the new upstream roots", "roots", len(roots), "previous", len(sent))
		if err := stream.Send(&upstreamauthorityv1.MintX509CAResponse{UpstreamX509Roots: toPluginCerts(roots)}); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		sent = roots
	}
}

// mint signs the CSR and builds the first response. baseRoots are the roots
// it sent, kept in every later root set.
func (p *Plugin) mint(ctx context.Context, st *state, req *upstreamauthorityv1.MintX509CARequest) (*upstreamauthorityv1.MintX509CAResponse, []*x509.Certificate, error) {
	cfg := st.cfg
	if len(req.Csr) == 0 || len(req.Csr) > maxCSRBytes {
		return nil, nil, status.Errorf(codes.InvalidArgument, "CSR is %d bytes, want 1 to %d", len(req.Csr), maxCSRBytes)
	}
	csr, err := x509.ParseCertificateRequest(req.Csr)
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "unable to parse CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "CSR signature is invalid: %v", err)
	}
	if req.PreferredTtl < 0 {
		return nil, nil, status.Errorf(codes.InvalidArgument, "preferred_ttl %d is negative", req.PreferredTtl)
	}
	requested := time.Duration(req.PreferredTtl) * time.Second

	res, err := signIntermediate(ctx, st.vault, cfg, csr, requested)
	if err != nil {
		return nil, nil, status.Errorf(vaultCode(err), "unable to sign the CA at %s with issuer %q: %v", cfg.signPath(), cfg.issuerRefOrDefault(), err)
	}
	for _, w := range res.warnings {
		p.log.Warn("Vault warned while signing the CA", "warning", w, "pki_mount_point", cfg.pkiMount)
	}
	now := p.hooks.now()
	signed := res.cert
	if !signed.IsCA {
		return nil, nil, status.Errorf(codes.Internal, "%s returned a certificate that is not a CA", cfg.signPath())
	}

	granted := signed.NotAfter.Sub(now)
	if requested > 0 && granted+ttlTolerance(requested) < requested {
		p.log.Warn("Vault issued the CA with a shorter lifetime than requested; raise max_ttl on the PKI mount or its issuer's expiry, or lower ca_ttl",
			"requested_ttl", requested.String(), "granted_ttl", ceilSecond(granted).String(),
			"not_after", signed.NotAfter.UTC().Format(time.RFC3339), "pki_mount_point", cfg.pkiMount)
		p.metrics.incr("ttl_capped", "warn")
	}
	if cfg.minTTL > 0 && granted < cfg.minTTL {
		return nil, nil, status.Errorf(codes.FailedPrecondition, "Vault issued the CA for %s, below min_ttl %s (requested %s); raise max_ttl on the PKI mount %q",
			ceilSecond(granted), cfg.minTTL, requested, cfg.pkiMount)
	}

	// Roots: every root of the mount's hierarchy plus any root in the
	// response itself.
	roots, err := mountRoots(ctx, st.vault, cfg.pkiMount, now)
	if err != nil {
		p.log.Warn("Cannot list the mount's issuers; using the roots in the signing response only", "pki_mount_point", cfg.pkiMount, "error", err)
	}
	roots = unionRoots(roots, selectRoots(res.others, now))

	chain, top := buildChain(signed, append(res.others, roots...))
	if top == nil {
		// The chain does not end at a self-signed certificate Vault knows
		// (for example an intermediate mount whose root was never
		// imported). Trust the topmost CA certificate Vault returned, as
		// SPIRE's built-in plugin does.
		if len(chain) < 2 {
			return nil, nil, status.Errorf(codes.Internal, "%s returned no issuing CA for the signed certificate", cfg.signPath())
		}
		top = chain[len(chain)-1]
		chain = chain[:len(chain)-1]
		p.log.Warn("Vault returned no self-signed root for the CA chain; using the topmost certificate as the upstream root",
			"subject", top.Subject.String(), "pki_mount_point", cfg.pkiMount)
		roots = unionRoots(roots, []*x509.Certificate{top})
	}
	if err := verifyChain(chain, roots, now); err != nil {
		return nil, nil, status.Errorf(codes.Internal, "the chain Vault returned does not verify to the mount's roots: %v", err)
	}
	p.metrics.gauge("upstream_roots", float32(len(roots)))
	p.log.Info("Vault signed the SPIRE CA", "serial", signed.SerialNumber.String(), "not_after", signed.NotAfter.UTC().Format(time.RFC3339), "chain", len(chain), "roots", len(roots))
	return &upstreamauthorityv1.MintX509CAResponse{
		X509CaChain:       toPluginCerts(chain),
		UpstreamX509Roots: toPluginCerts(roots),
	}, roots, nil
}

// ceilSecond rounds d up to whole seconds: certificate times have second
// precision, so a CA granted exactly the requested TTL reads a fraction
// short of it.
func ceilSecond(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}

// ttlTolerance absorbs clock skew and rounding when comparing the granted
// CA lifetime to the requested one.
func ttlTolerance(requested time.Duration) time.Duration {
	return max(5*time.Second, requested/100)
}

// PublishJWTKeyAndSubscribe implements upstreamauthorityv1.UpstreamAuthorityServer.
// It merges the key into the KV v2 secret shared by every server of the
// trust domain, returns the whole set, then streams changes to it.
func (p *Plugin) PublishJWTKeyAndSubscribe(req *upstreamauthorityv1.PublishJWTKeyRequest, stream upstreamauthorityv1.UpstreamAuthority_PublishJWTKeyAndSubscribeServer) error {
	st, err := p.getState()
	if err != nil {
		return err
	}
	if st.cfg.kvMount == "" {
		return status.Error(codes.Unimplemented, "publishing JWT authorities needs kv_mount_point")
	}
	key := req.GetJwtKey()
	switch {
	case key == nil:
		return status.Error(codes.InvalidArgument, "missing JWT key")
	case key.KeyId == "":
		return status.Error(codes.InvalidArgument, "JWT key has no key ID")
	case len(key.PublicKey) == 0:
		return status.Error(codes.InvalidArgument, "JWT key has no public key")
	}
	ctx := stream.Context()
	store := &jwtStore{v: st.vault, path: st.cfg.jwtDataPath(), now: p.hooks.now}
	ours := fromPluginJWTKey(key)

	keys, err := store.publish(ctx, ours)
	p.metrics.incr("publish_jwt_key", resultLabel(err))
	if err != nil {
		return status.Errorf(vaultCode(err), "unable to publish the JWT authority to %s: %v", store.path, err)
	}
	sent, err := toPluginKeys(keys, p.hooks.now())
	if err != nil {
		p.log.Warn("Skipping malformed JWT authorities stored in Vault", "path", store.path, "error", err)
	}
	if err := stream.Send(&upstreamauthorityv1.PublishJWTKeyResponse{UpstreamJwtKeys: sent}); err != nil {
		return err
	}
	p.log.Info("Published the JWT authority to Vault", "key_id", key.KeyId, "path", store.path, "authorities", len(sent))

	ticker := time.NewTicker(st.cfg.rootPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		now := p.hooks.now()
		stored, _, err := store.read(ctx)
		if err == nil && !ours.expired(now) && !containsKey(stored, ours.KeyID) {
			p.log.Warn("Our JWT authority is missing from Vault; publishing it again", "key_id", ours.KeyID, "path", store.path)
			stored, err = store.publish(ctx, ours)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.log.Warn("Cannot poll Vault for JWT authorities; will retry", "path", store.path, "error", err)
			continue
		}
		keys, err := toPluginKeys(mergeJWTKeys(stored, nil, now), now)
		if err != nil {
			p.log.Warn("Skipping malformed JWT authorities stored in Vault", "path", store.path, "error", err)
		}
		if equalPluginKeys(keys, sent) {
			continue
		}
		p.log.Info("JWT authorities in Vault changed; sending them", "authorities", len(keys), "previous", len(sent))
		if err := stream.Send(&upstreamauthorityv1.PublishJWTKeyResponse{UpstreamJwtKeys: keys}); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		sent = keys
	}
}

// vaultCode maps a Vault error to a gRPC code: Unavailable for transient
// failures (SPIRE retries), PermissionDenied for 403, Internal otherwise.
func vaultCode(err error) codes.Code {
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case vaultclient.StatusCode(err) == 403:
		return codes.PermissionDenied
	case vaultclient.StatusCode(err) == 400:
		return codes.InvalidArgument
	case vaultclient.Transient(err):
		return codes.Unavailable
	default:
		return codes.Internal
	}
}

func toPluginCerts(certs []*x509.Certificate) []*types.X509Certificate {
	out := make([]*types.X509Certificate, 0, len(certs))
	for _, c := range certs {
		out = append(out, &types.X509Certificate{Asn1: c.Raw})
	}
	return out
}
