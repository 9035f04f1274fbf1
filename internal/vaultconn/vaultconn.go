// Package vaultconn builds the hashicorp/vault/api client that every edgeid
// component uses to reach Vault, with one TLS policy:
//
//   - TLS 1.2 or later; on TLS 1.2 only ECDHE key exchange with AES-GCM;
//   - Vault's certificate verified against the CA file given, or the system
//     roots when none is;
//   - a client certificate only when one is given;
//   - no proxy, no redirects followed by net/http (the Vault API client
//     handles Vault's own), bounded TLS handshakes.
//
// Nothing is read from the environment: VAULT_ADDR, VAULT_CACERT,
// VAULT_TOKEN, VAULT_NAMESPACE, VAULT_HEADERS and proxy variables are all
// ignored. The caller's Config is the only source.
package vaultconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/tlspolicy"
	"github.com/hashicorp/go-cleanhttp"
	vaultapi "github.com/hashicorp/vault/api"
)

// HandshakeTimeout bounds each TLS handshake with Vault.
const HandshakeTimeout = 10 * time.Second

// maxCAFileBytes bounds the CA file.
const maxCAFileBytes = 1 << 20

// Config says how to reach one Vault.
type Config struct {
	// Address is Vault's API address, for example https://vault:8200.
	// Required.
	Address string
	// CACertFile is a PEM file of the CA certificates that verify Vault's
	// server certificate; the system roots when empty.
	CACertFile string
	// TLSServerName overrides the name checked in Vault's certificate.
	TLSServerName string
	// InsecureSkipVerify disables verification of Vault's certificate.
	// For tests only.
	InsecureSkipVerify bool
	// ClientCertFile and ClientKeyFile name a PEM client certificate and
	// key presented on every connection; both or neither.
	ClientCertFile string
	ClientKeyFile  string
	// GetClientCertificate, instead of the files, supplies the client
	// certificate at each TLS handshake, for example the current X.509
	// SVID (go-spiffe's tlsconfig.GetClientCertificate), so that a
	// rotated certificate is presented on the next new connection.
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	// Namespace is the Vault Enterprise namespace, empty for none.
	Namespace string
	// Timeout bounds each request as a whole; zero leaves requests bounded
	// by their contexts only.
	Timeout time.Duration
}

// TLSConfig returns the TLS client configuration of the policy for c.
func TLSConfig(c Config) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       tlspolicy.CipherSuites,
		ServerName:         c.TLSServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // operator opt-in, documented as test-only
	}
	if c.CACertFile != "" {
		pemBytes, err := fsutil.ReadFileLimited(c.CACertFile, maxCAFileBytes)
		if err != nil {
			return nil, fmt.Errorf("vaultconn: CA certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("vaultconn: CA certificates: no PEM certificate in %s", c.CACertFile)
		}
		tc.RootCAs = pool
	}
	if c.GetClientCertificate != nil {
		if c.ClientCertFile != "" || c.ClientKeyFile != "" {
			return nil, errors.New("vaultconn: client certificate: set either the files or GetClientCertificate")
		}
		tc.GetClientCertificate = c.GetClientCertificate
	}
	if c.ClientCertFile != "" || c.ClientKeyFile != "" {
		pair, err := tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("vaultconn: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// NewClient returns a Vault API client for c that holds no token, does not
// retry (callers that retry do so themselves) and reads nothing from the
// environment.
func NewClient(c Config) (*vaultapi.Client, error) {
	if c.Address == "" {
		return nil, errors.New("vaultconn: address is required")
	}
	tc, err := TLSConfig(c)
	if err != nil {
		return nil, err
	}
	tr := cleanhttp.DefaultPooledTransport()
	tr.TLSClientConfig = tc
	tr.TLSHandshakeTimeout = HandshakeTimeout
	tr.Proxy = nil
	hc := &http.Client{
		Transport: tr,
		// The Vault API client follows Vault's redirects itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	client, err := vaultapi.NewClient(&vaultapi.Config{
		Address:    c.Address,
		HttpClient: hc,
		Timeout:    c.Timeout,
		MaxRetries: 0,
	})
	if err != nil {
		return nil, fmt.Errorf("vaultconn: %w", err)
	}
	// NewClient picks up VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS;
	// drop them.
	client.ClearToken()
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	} else {
		client.ClearNamespace()
	}
	client.SetHeaders(http.Header{vaultapi.RequestHeaderName: []string{"true"}})
	return client, nil
}
