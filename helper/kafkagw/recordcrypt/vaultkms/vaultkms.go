// Package vaultkms is a recordcrypt.KMS on Vault's Transit secrets engine,
// logged in with the caller's X.509 SVID through Vault's TLS certificate
// auth method: the SVID is the only credential.
//
//	producer: POST transit/datakey/plaintext/<ring>  → plaintext + "vault:vN:…"
//	consumer: POST transit/decrypt/<ring>            → plaintext
//	rewrap:   POST transit/rewrap/<ring>             → "vault:v<latest>:…" (edgeid kafka rewrap)
//	login:    POST auth/cert/login (TLS client certificate = current SVID)
//
// Wrapped keys cross this package's API in recordcrypt's compact form
// (version ‖ raw ciphertext, recordcrypt.CompactVaultCiphertext) and
// Vault's text form only on the wire to Vault.
//
// A cert auth role bound with allowed_uri_sans to a SPIFFE ID carries the
// policy that grants a producer datakey and a consumer decrypt on its key
// rings (see the recordcrypt README). The token is renewed by logging in
// again once two thirds of its TTL have passed, on a new TLS connection,
// so that a rotated SVID is used at the next login.
package vaultkms

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/internal/vaultconn"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Config says how to reach Vault and which mounts to use.
type Config struct {
	// Vault is the connection (address, CA, timeout). Its client
	// certificate settings must be empty: the SVID is the client
	// certificate.
	Vault vaultconn.Config
	// SVID is the source of the X.509 SVID presented at login, read at
	// each login. Required unless Token is set.
	SVID x509svid.Source
	// Token, when set, is a Vault token used as it is instead of a cert
	// login (operator tools: edgeid kafka rewrap with VAULT_TOKEN). It is
	// never logged.
	Token string
	// CertAuthMount is the cert auth method's mount; default "cert".
	CertAuthMount string
	// CertRole names the cert auth role to log in with; empty lets Vault
	// pick the role that matches the certificate.
	CertRole string
	// TransitMount is the Transit engine's mount; default "transit".
	TransitMount string
	// Logger receives logins (never tokens or keys); nil discards.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// KMS is a recordcrypt.KMS on Vault Transit. It is safe for concurrent
// use.
type KMS struct {
	cfg       Config
	login     *vaultapi.Client // no token; a new connection per login
	data      *vaultapi.Client // carries the token
	loginHTTP *http.Client

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

var (
	_ recordcrypt.KMS       = (*KMS)(nil)
	_ recordcrypt.Rewrapper = (*KMS)(nil)
)

// New returns a KMS for cfg. It does not contact Vault: the first call
// logs in.
func New(cfg Config) (*KMS, error) {
	if cfg.SVID == nil && cfg.Token == "" {
		return nil, errors.New("vaultkms: an SVID source (or a token) is required")
	}
	if cfg.Vault.ClientCertFile != "" || cfg.Vault.ClientKeyFile != "" || cfg.Vault.GetClientCertificate != nil {
		return nil, errors.New("vaultkms: the SVID is the client certificate; leave the Vault client certificate settings empty")
	}
	if cfg.CertAuthMount == "" {
		cfg.CertAuthMount = "cert"
	}
	if cfg.TransitMount == "" {
		cfg.TransitMount = "transit"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	vc := cfg.Vault
	if cfg.SVID != nil {
		vc.GetClientCertificate = tlsconfig.GetClientCertificate(cfg.SVID)
	}
	login, err := vaultconn.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vaultkms: %w", err)
	}
	data, err := vaultconn.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vaultkms: %w", err)
	}
	return &KMS{cfg: cfg, login: login, data: data, loginHTTP: login.CloneConfig().HttpClient}, nil
}

// GenerateDataKey implements recordcrypt.KMS with
// transit/datakey/plaintext/<ring>.
func (k *KMS) GenerateDataKey(ctx context.Context, ring string) (recordcrypt.DataKey, error) {
	s, err := k.write(ctx, k.cfg.TransitMount+"/datakey/plaintext/"+ring, map[string]any{"bits": 256})
	if err != nil {
		return recordcrypt.DataKey{}, fmt.Errorf("vaultkms: datakey of %q: %w", ring, err)
	}
	plain, err := plaintextField(s)
	if err != nil {
		return recordcrypt.DataKey{}, fmt.Errorf("vaultkms: datakey of %q: %w", ring, err)
	}
	text, _ := s.Data["ciphertext"].(string)
	wrapped, err := recordcrypt.CompactVaultCiphertext(text)
	if err != nil {
		clear(plain)
		return recordcrypt.DataKey{}, fmt.Errorf("vaultkms: datakey of %q: no ciphertext in the response", ring)
	}
	return recordcrypt.DataKey{Plaintext: plain, Wrapped: wrapped}, nil
}

// DecryptDataKey implements recordcrypt.KMS with transit/decrypt/<ring>.
func (k *KMS) DecryptDataKey(ctx context.Context, ring string, wrapped []byte) ([]byte, error) {
	text, err := recordcrypt.VaultCiphertext(wrapped)
	if err != nil {
		return nil, fmt.Errorf("vaultkms: %w", err)
	}
	s, err := k.write(ctx, k.cfg.TransitMount+"/decrypt/"+ring, map[string]any{"ciphertext": text})
	if err != nil {
		return nil, fmt.Errorf("vaultkms: decrypt with %q: %w", ring, err)
	}
	plain, err := plaintextField(s)
	if err != nil {
		return nil, fmt.Errorf("vaultkms: decrypt with %q: %w", ring, err)
	}
	return plain, nil
}

// RewrapDataKey implements recordcrypt.Rewrapper with
// transit/rewrap/<ring>: the same data key wrapped by the ring's newest
// version, never seen in plaintext here.
func (k *KMS) RewrapDataKey(ctx context.Context, ring string, wrapped []byte) ([]byte, error) {
	text, err := recordcrypt.VaultCiphertext(wrapped)
	if err != nil {
		return nil, fmt.Errorf("vaultkms: %w", err)
	}
	s, err := k.write(ctx, k.cfg.TransitMount+"/rewrap/"+ring, map[string]any{"ciphertext": text})
	if err != nil {
		return nil, fmt.Errorf("vaultkms: rewrap with %q: %w", ring, err)
	}
	var out string
	if s != nil {
		out, _ = s.Data["ciphertext"].(string)
	}
	rewrapped, err := recordcrypt.CompactVaultCiphertext(out)
	if err != nil {
		return nil, fmt.Errorf("vaultkms: rewrap with %q: no ciphertext in the response", ring)
	}
	return rewrapped, nil
}

func plaintextField(s *vaultapi.Secret) ([]byte, error) {
	if s == nil || s.Data == nil {
		return nil, errors.New("empty response")
	}
	b64, _ := s.Data["plaintext"].(string)
	plain, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(plain) != recordcrypt.DEKLen {
		clear(plain)
		return nil, fmt.Errorf("response plaintext is not a %d-byte key", recordcrypt.DEKLen)
	}
	return plain, nil
}
