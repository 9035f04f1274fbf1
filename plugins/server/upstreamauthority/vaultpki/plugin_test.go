package vaultpki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/plugins/common/vaultclient/vaultfake"
	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	"github.com/spiffe/spire-plugin-sdk/plugintest"
	upstreamauthorityv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/upstreamauthority/v1"
	"github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/types"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	trustDomain = "example.org"
	jwtPath     = "secret/data/edgeid/example.org/jwt-authorities"
)

var fullCaps = vaultfake.Caps{
	"pki_int/root/sign-intermediate": {"update"},
	jwtPath:                          {"read", "create", "update"},
}

// syncBuffer collects plugin logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pkiFixture is a fake Vault with root1 -> int1 in mount pki_int.
type pkiFixture struct {
	v     *vaultfake.Vault
	root1 vaultfake.CA
	int1  vaultfake.CA
	token string
}

func newPKI(t *testing.T, v *vaultfake.Vault) *pkiFixture {
	t.Helper()
	f := &pkiFixture{v: v}
	f.root1 = vaultfake.NewRootCA(t, "Vault Root 1", 24*time.Hour)
	f.int1 = vaultfake.NewIntermediateCA(t, "Vault Intermediate 1", f.root1, nil, 12*time.Hour)
	v.AddPKIMount("pki_int", 8*time.Hour)
	v.AddIssuer("pki_int", "int1", f.int1, f.root1.Cert)
	f.token = v.AddToken(vaultfake.TokenSpec{Caps: fullCaps})
	return f
}

type loaded struct {
	plugin *Plugin
	ua     *upstreamauthorityv1.UpstreamAuthorityPluginClient
	cfg    *configv1.ConfigServiceClient
	logs   *syncBuffer
}

func load(t *testing.T, env map[string]string) *loaded {
	t.Helper()
	p := New()
	p.hooks.getenv = func(k string) string { return env[k] }
	l := &loaded{plugin: p, ua: new(upstreamauthorityv1.UpstreamAuthorityPluginClient), cfg: new(configv1.ConfigServiceClient), logs: &syncBuffer{}}
	plugintest.ServeInBackground(t, plugintest.Config{
		PluginServer:   upstreamauthorityv1.UpstreamAuthorityPluginServer(p),
		PluginClient:   l.ua,
		ServiceServers: []pluginsdk.ServiceServer{configv1.ConfigServiceServer(p)},
		ServiceClients: []pluginsdk.ServiceClient{l.cfg},
		Logger:         hclog.New(&hclog.LoggerOptions{Output: l.logs, Level: hclog.Debug}),
	})
	return l
}

func (l *loaded) configure(t *testing.T, hcl string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := l.cfg.Configure(ctx, &configv1.ConfigureRequest{
		HclConfiguration:  hcl,
		CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: trustDomain},
	})
	return err
}

func (l *loaded) mustConfigure(t *testing.T, hcl string) {
	t.Helper()
	if err := l.configure(t, hcl); err != nil {
		t.Fatalf("Configure: %v", err)
	}
}

func tokenHCL(addr, token, extra string) string {
	return fmt.Sprintf("vault_addr = %q\nkv_mount_point = \"secret\"\n%s\ntoken_auth {\n  token = %q\n}\n", addr, extra, token)
}

// newCSR returns a SPIRE-like CA CSR and its key.
func newCSR(t *testing.T) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	td, _ := url.Parse("spiffe://" + trustDomain)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{Country: []string{"US"}, Organization: []string{"SPIFFE"}},
		URIs:    []*url.URL{td},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func parseCerts(t *testing.T, in []*types.X509Certificate) []*x509.Certificate {
	t.Helper()
	out := make([]*x509.Certificate, 0, len(in))
	for _, c := range in {
		cert, err := x509.ParseCertificate(c.Asn1)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cert)
	}
	return out
}

func mintStream(t *testing.T, l *loaded, ttl time.Duration) (*receiver[*upstreamauthorityv1.MintX509CAResponse], *upstreamauthorityv1.MintX509CAResponse, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	csr, _ := newCSR(t)
	stream, err := l.ua.MintX509CAAndSubscribe(ctx, &upstreamauthorityv1.MintX509CARequest{Csr: csr, PreferredTtl: int32(ttl / time.Second)})
	if err != nil {
		return nil, nil, err
	}
	r := newReceiver(stream.Recv)
	resp, err := r.next(20 * time.Second)
	return r, resp, err
}

// recvResult is one message (or the final error) of a stream.
type recvResult[T any] struct {
	v   T
	err error
}

// receiver reads a stream in one goroutine, so a timed-out wait never
// loses a message to an abandoned Recv.
type receiver[T any] struct {
	ch chan recvResult[T]
}

func newReceiver[T any](recv func() (T, error)) *receiver[T] {
	r := &receiver[T]{ch: make(chan recvResult[T], 16)}
	go func() {
		for {
			v, err := recv()
			r.ch <- recvResult[T]{v, err}
			if err != nil {
				close(r.ch)
				return
			}
		}
	}()
	return r
}

// next waits at most d for the next message.
func (r *receiver[T]) next(d time.Duration) (T, error) {
	select {
	case res, ok := <-r.ch:
		if !ok {
			var zero T
			return zero, fmt.Errorf("stream ended")
		}
		return res.v, res.err
	case <-time.After(d):
		var zero T
		return zero, errNoMessage
	}
}

var errNoMessage = fmt.Errorf("no message in time")

func wantCode(t *testing.T, err error, code codes.Code, contains ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("code = %v, want %v (err: %v)", status.Code(err), code, err)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Fatalf("error %q does not contain %q", err, c)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func closedPortAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func TestNotConfigured(t *testing.T) {
	l := load(t, nil)
	csr, _ := newCSR(t)
	stream, err := l.ua.MintX509CAAndSubscribe(context.Background(), &upstreamauthorityv1.MintX509CARequest{Csr: csr})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.FailedPrecondition, "not configured")
	js, err := l.ua.PublishJWTKeyAndSubscribe(context.Background(), &upstreamauthorityv1.PublishJWTKeyRequest{JwtKey: &types.JWTKey{KeyId: "k", PublicKey: []byte{1}}})
	if err == nil {
		_, err = js.Recv()
	}
	wantCode(t, err, codes.FailedPrecondition, "not configured")
}

func TestConfigureFailsFast(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	noSign := v.AddToken(vaultfake.TokenSpec{Caps: vaultfake.Caps{"pki_int/*": {"read", "list"}, jwtPath: {"read", "create", "update"}}})
	noKV := v.AddToken(vaultfake.TokenSpec{Caps: vaultfake.Caps{"pki_int/root/sign-intermediate": {"update"}, jwtPath: {"read"}}})
	roleFile := writeFile(t, "role", "r")
	secretFile := writeFile(t, "secret", "s")

	tests := []struct {
		name     string
		hcl      string
		code     codes.Code
		contains []string
	}{
		{
			name: "unknown key", hcl: tokenHCL(v.Addr(), f.token, `vault_adr = "x"`),
			code: codes.InvalidArgument, contains: []string{`An argument named "vault_adr" is not expected here`, "plugin_data:3"},
		},
		{
			name: "token and approle",
			hcl:  tokenHCL(v.Addr(), f.token, fmt.Sprintf("approle_auth {\n role_id_file = %q\n secret_id_file = %q\n}", roleFile, secretFile)),
			code: codes.InvalidArgument, contains: []string{"exactly one auth block is allowed, found token_auth and approle_auth"},
		},
		{
			name: "no auth", hcl: fmt.Sprintf("vault_addr = %q\n", v.Addr()),
			code: codes.InvalidArgument, contains: []string{"exactly one auth block is required"},
		},
		{
			name: "every problem reported", hcl: "root_poll_interval = \"soon\"\nmin_ttl = \"-1h\"\napprole_auth {}\n",
			code: codes.InvalidArgument, contains: []string{"vault_addr is required", `root_poll_interval: "soon" is not a duration`, "min_ttl: -1h0m0s must be at least 0s", "role_id_file is required", "secret_id_file is required"},
		},
		{
			name: "bad mount", hcl: tokenHCL(v.Addr(), f.token, `pki_mount_point = "../sys"`),
			code: codes.InvalidArgument, contains: []string{"pki_mount_point", "not a valid Vault path"},
		},
		{
			name: "wrong address", hcl: tokenHCL(closedPortAddr(t), f.token, `request_timeout = "2s"`),
			code: codes.FailedPrecondition, contains: []string{"cannot log in to Vault at vault_addr", "token_auth", "connection refused"},
		},
		{
			name: "policy without sign-intermediate", hcl: tokenHCL(v.Addr(), noSign, ""),
			code: codes.FailedPrecondition, contains: []string{"may not update pki_int/root/sign-intermediate", `path "pki_int/root/sign-intermediate"`},
		},
		{
			name: "policy without kv write", hcl: tokenHCL(v.Addr(), noKV, ""),
			code: codes.FailedPrecondition, contains: []string{"may not create " + jwtPath, "kv"},
		},
		{
			name: "unknown issuer", hcl: tokenHCL(v.Addr(), f.token, `issuer_ref = "nope"`),
			code: codes.FailedPrecondition, contains: []string{`cannot read issuer "nope" of pki_mount_point "pki_int"`},
		},
		{
			name: "unknown mount", hcl: fmt.Sprintf("vault_addr = %q\npki_mount_point = \"pki_other\"\ntoken_auth { token = %q }\n", v.Addr(), v.AddToken(vaultfake.TokenSpec{Caps: vaultfake.Caps{"*": {"root"}}})),
			code: codes.FailedPrecondition, contains: []string{`pki_mount_point "pki_other"`},
		},
		{
			name: "bad token", hcl: tokenHCL(v.Addr(), "hvs.not-a-token", ""),
			code: codes.FailedPrecondition, contains: []string{"cannot log in", "permission denied"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := load(t, nil)
			err := l.configure(t, tt.hcl)
			wantCode(t, err, tt.code, tt.contains...)
			if strings.Contains(err.Error(), f.token) || strings.Contains(err.Error(), "hvs.not-a-token") {
				t.Fatalf("error leaks a token: %v", err)
			}
		})
	}
}

func TestValidateDoesNotContactVault(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	l := load(t, nil)
	ctx := context.Background()
	resp, err := l.cfg.Validate(ctx, &configv1.ValidateRequest{HclConfiguration: tokenHCL(v.Addr(), f.token, ""), CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: trustDomain}})
	if err != nil || !resp.Valid {
		t.Fatalf("Validate = %v, %v; want valid", resp, err)
	}
	resp, err = l.cfg.Validate(ctx, &configv1.ValidateRequest{HclConfiguration: "token_auth {}\napprole_auth {}\n", CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: trustDomain}})
	if err != nil || resp.Valid || len(resp.Notes) == 0 || !strings.Contains(resp.Notes[0], "exactly one auth block is allowed") {
		t.Fatalf("Validate = %v, %v; want invalid with a note", resp, err)
	}
	if n := v.Requests("PUT sys/capabilities-self") + v.Requests("PUT auth/token/lookup-self"); n != 0 {
		t.Fatalf("Validate sent %d requests to Vault", n)
	}
}

func TestEnvironmentOnlyFillsMissingValues(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	bogus := closedPortAddr(t)

	// HCL wins over the environment.
	l := load(t, map[string]string{EnvVaultAddr: bogus, EnvVaultToken: "hvs.env-token"})
	l.mustConfigure(t, tokenHCL(v.Addr(), f.token, ""))

	// The environment fills in what HCL leaves out.
	l2 := load(t, map[string]string{EnvVaultAddr: v.Addr(), EnvVaultToken: f.token})
	l2.mustConfigure(t, "token_auth {}\n")
	if _, resp, err := mintStream(t, l2, time.Hour); err != nil || len(resp.X509CaChain) == 0 {
		t.Fatalf("mint with environment-filled config: %v", err)
	}
}

func TestMintReturnsOrderedChainAndRoots(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	l := load(t, nil)
	l.mustConfigure(t, tokenHCL(v.Addr(), f.token, ""))

	csr, key := newCSR(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := l.ua.MintX509CAAndSubscribe(ctx, &upstreamauthorityv1.MintX509CARequest{Csr: csr, PreferredTtl: 3600})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := newReceiver(stream.Recv).next(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	chain := parseCerts(t, resp.X509CaChain)
	roots := parseCerts(t, resp.UpstreamX509Roots)
	if len(chain) != 2 {
		t.Fatalf("chain has %d certificates, want SPIRE CA + pki_int intermediate", len(chain))
	}
	if !chain[0].PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatal("chain[0] is not the SPIRE CA")
	}
	if !chain[1].Equal(f.int1.Cert) {
		t.Fatalf("chain[1] = %s, want the pki_int intermediate", chain[1].Subject)
	}
	if len(roots) != 1 || !roots[0].Equal(f.root1.Cert) {
		t.Fatalf("roots = %d certs, want exactly the Vault root", len(roots))
	}
	if len(chain[0].URIs) != 1 || chain[0].URIs[0].String() != "spiffe://"+trustDomain {
		t.Fatalf("SPIRE CA URIs = %v", chain[0].URIs)
	}
	if got := time.Until(chain[0].NotAfter); got < 59*time.Minute || got > 61*time.Minute {
		t.Fatalf("CA lifetime %s, want the requested hour", got)
	}
	if err := verifyChain(chain, roots, time.Now()); err != nil {
		t.Fatalf("chain does not verify: %v", err)
	}
	if strings.Contains(l.logs.String(), "shorter lifetime") {
		t.Fatal("warned about a TTL cap that did not happen")
	}
}

func TestMintHonoursIssuerRef(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	root2 := vaultfake.NewRootCA(t, "Vault Root 2", 24*time.Hour)
	int2 := vaultfake.NewIntermediateCA(t, "Vault Intermediate 2", root2, nil, 12*time.Hour)
	v.AddIssuer("pki_int", "int2", int2, root2.Cert)
	l := load(t, nil)
	l.mustConfigure(t, tokenHCL(v.Addr(), f.token, `issuer_ref = "int2"`))
	_, resp, err := mintStream(t, l, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain := parseCerts(t, resp.X509CaChain)
	if !chain[1].Equal(int2.Cert) {
		t.Fatalf("signed by %s, want int2", chain[1].Subject)
	}
	roots := parseCerts(t, resp.UpstreamX509Roots)
	if len(roots) != 2 {
		t.Fatalf("roots = %d, want both roots of the mount's hierarchy", len(roots))
	}
}

func TestMintStreamsRootRotation(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	l := load(t, nil)
	l.mustConfigure(t, tokenHCL(v.Addr(), f.token, `root_poll_interval = "1s"`))
	stream, first, err := mintStream(t, l, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.UpstreamX509Roots) != 1 {
		t.Fatalf("first roots = %d", len(first.UpstreamX509Roots))
	}
	// Vault's root rotation: a new root, and the intermediate's key re-signed
	// by it, imported as a new issuer of pki_int.
	root2 := vaultfake.NewRootCA(t, "Vault Root 2", 48*time.Hour)
	int1b := vaultfake.NewIntermediateCA(t, "Vault Intermediate 1", root2, f.int1.Key, 24*time.Hour)
	v.AddIssuer("pki_int", "int1-root2", int1b, root2.Cert)

	update, err := stream.next(10 * time.Second)
	if err != nil {
		t.Fatalf("no root update after rotation: %v", err)
	}
	if len(update.X509CaChain) != 0 {
		t.Fatal("update carries a CA chain; SPIRE rejects that")
	}
	roots := parseCerts(t, update.UpstreamX509Roots)
	if len(roots) != 2 || !containsCert(roots, f.root1.Cert) || !containsCert(roots, root2.Cert) {
		t.Fatalf("update roots = %d, want old and new root", len(roots))
	}
	// No change, no message.
	if _, err := stream.next(2500 * time.Millisecond); err != errNoMessage {
		t.Fatal("got an update without a root change")
	}
}

func containsCert(set []*x509.Certificate, c *x509.Certificate) bool {
	for _, s := range set {
		if s.Equal(c) {
			return true
		}
	}
	return false
}

func TestMintPollSurvivesOutage(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	l := load(t, nil)
	l.mustConfigure(t, tokenHCL(v.Addr(), f.token, `root_poll_interval = "1s"`+"\nrequest_timeout = \"1s\""))
	stream, _, err := mintStream(t, l, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v.SetSealed(true)
	// A sealed Vault: minting fails with Unavailable (SPIRE retries) ...
	_, _, err = mintStream(t, l, time.Hour)
	wantCode(t, err, codes.Unavailable, "Vault is sealed")
	// ... and the open stream stays open through failed polls.
	if _, err := stream.next(3 * time.Second); err != errNoMessage {
		t.Fatalf("stream during outage: %v, want it open and silent", err)
	}
	v.SetSealed(false)
	root2 := vaultfake.NewRootCA(t, "Vault Root 2", 48*time.Hour)
	v.AddIssuer("pki_int", "root2", root2)
	if _, err := stream.next(10 * time.Second); err != nil {
		t.Fatalf("no update after Vault came back: %v\n%s", err, l.logs.String())
	}
	if _, resp, err := mintStream(t, l, time.Hour); err != nil || len(resp.X509CaChain) != 2 {
		t.Fatalf("mint after unseal: %v", err)
	}
	if !strings.Contains(l.logs.String(), "Cannot poll Vault for root changes") {
		t.Fatal("failed polls were not logged")
	}
}

func TestMintTTLCap(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	v.SetMaxTTL("pki_int", time.Hour)

	l := load(t, nil)
	l.mustConfigure(t, tokenHCL(v.Addr(), f.token, ""))
	_, resp, err := mintStream(t, l, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca := parseCerts(t, resp.X509CaChain)[0]
	if got := time.Until(ca.NotAfter); got > 61*time.Minute {
		t.Fatalf("lifetime %s, expected the fake to cap at 1h", got)
	}
	logs := l.logs.String()
	if !strings.Contains(logs, "shorter lifetime than requested") || !strings.Contains(logs, "requested_ttl=2h0m0s") || !strings.Contains(logs, "granted_ttl=1h0m0s") {
		t.Fatalf("no TTL cap warning with both values in logs:\n%s", logs)
	}

	l2 := load(t, nil)
	l2.mustConfigure(t, tokenHCL(v.Addr(), f.token, `min_ttl = "90m"`))
	_, _, err = mintStream(t, l2, 2*time.Hour)
	wantCode(t, err, codes.FailedPrecondition, "below min_ttl 1h30m0s", "requested 2h0m0s")
}

func TestMintRejectsBadCSR(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	l := load(t, nil)
	l.mustConfigure(t, tokenHCL(v.Addr(), f.token, ""))
	stream, err := l.ua.MintX509CAAndSubscribe(context.Background(), &upstreamauthorityv1.MintX509CARequest{Csr: []byte("not a csr")})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, "unable to parse CSR")
}

func TestMintReloginsAfterRevocation(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	v.EnableAppRole("approle", "role-1", "secret-1", vaultfake.TokenSpec{Caps: fullCaps, TTL: time.Hour, Renewable: true})
	l := load(t, nil)
	l.mustConfigure(t, fmt.Sprintf("vault_addr = %q\napprole_auth {\n  role_id_file = %q\n  secret_id_file = %q\n}\n",
		v.Addr(), writeFile(t, "role", "role-1"), writeFile(t, "secret", "secret-1")))
	_ = f
	v.RevokeAllTokens()
	if _, _, err := mintStream(t, l, time.Hour); err != nil {
		t.Fatalf("mint after token revocation: %v", err)
	}
	if n := v.Requests("PUT auth/approle/login"); n != 2 {
		t.Fatalf("logins = %d, want 2", n)
	}
	if strings.Contains(l.logs.String(), "secret-1") {
		t.Fatal("logs contain the secret ID")
	}
}

func TestK8sAuth(t *testing.T) {
	v := vaultfake.New(t)
	newPKI(t, v)
	v.EnableK8sAuth("k8s-spire", "spire-server", "eyJ.sa.token", vaultfake.TokenSpec{Caps: fullCaps, TTL: time.Hour})
	l := load(t, nil)
	l.mustConfigure(t, fmt.Sprintf("vault_addr = %q\nk8s_auth {\n  k8s_auth_mount_point = \"k8s-spire\"\n  k8s_auth_role_name = \"spire-server\"\n  token_path = %q\n}\n",
		v.Addr(), writeFile(t, "token", "eyJ.sa.token")))
	if _, _, err := mintStream(t, l, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := v.Requests("PUT auth/k8s-spire/login"); n != 1 {
		t.Fatalf("k8s logins = %d", n)
	}
	l2 := load(t, nil)
	err := l2.configure(t, fmt.Sprintf("vault_addr = %q\nk8s_auth {\n  k8s_auth_mount_point = \"k8s-spire\"\n  k8s_auth_role_name = \"other\"\n  token_path = %q\n}\n",
		v.Addr(), writeFile(t, "token2", "eyJ.sa.token")))
	wantCode(t, err, codes.FailedPrecondition, "k8s_auth", "auth/k8s-spire/login")
}

func TestCertAuth(t *testing.T) {
	v := vaultfake.NewTLS(t)
	newPKI(t, v)
	certPEM, keyPEM, cert := clientCert(t)
	v.EnableCertAuth("cert", "spire", cert, vaultfake.TokenSpec{Caps: fullCaps, TTL: time.Hour})
	l := load(t, map[string]string{EnvVaultCACert: writeFile(t, "ca.pem", string(v.CACertPEM()))})
	l.mustConfigure(t, fmt.Sprintf("vault_addr = %q\ncert_auth {\n  cert_auth_role_name = \"spire\"\n  client_cert_path = %q\n  client_key_path = %q\n}\n",
		v.Addr(), writeFile(t, "c.pem", string(certPEM)), writeFile(t, "k.pem", string(keyPEM))))
	if _, _, err := mintStream(t, l, time.Hour); err != nil {
		t.Fatal(err)
	}
}

func clientCert(t *testing.T) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(9),
		Subject:      pkix.Name{CommonName: "spire-server"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), cert
}
