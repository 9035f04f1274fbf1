// Package svidtest issues X.509 SVIDs from an in-memory CA for tests:
// no SPIRE, no files unless asked, keys generated per run.
package svidtest

import (
	"crypto"
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
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// CA is a trust domain's root.
type CA struct {
	TD   spiffeid.TrustDomain
	cert *x509.Certificate
	key  crypto.Signer
}

var serial atomic.Int64

// NewCA makes a self-signed P-256 root for the trust domain td.
func NewCA(td string) (*CA, error) {
	t, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: "svidtest " + td},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs: []*url.URL{t.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{TD: t, cert: cert, key: key}, nil
}

// Bundle is the CA's trust bundle (an x509bundle.Source).
func (ca *CA) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.TD, []*x509.Certificate{ca.cert})
}

// SVID issues an SVID for id, valid for ttl, with the IP SAN 127.0.0.1 and
// optional DNS names, the first of which is also the subject's CN, as
// SPIRE makes them.
func (ca *CA) SVID(id string, ttl time.Duration, dnsNames ...string) (*x509svid.SVID, error) {
	sid, err := spiffeid.FromString(id)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{Country: []string{"US"}, Organization: []string{"SPIRE"}},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(ttl),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{sid.URL()}, DNSNames: dnsNames, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if len(dnsNames) > 0 {
		// As SPIRE does: the first DNS name is also the CN (Vault's cert
		// auth needs a CN to log in).
		tmpl.Subject.CommonName = dnsNames[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: sid, Certificates: []*x509.Certificate{cert}, PrivateKey: key}, nil
}

// CertificatePEM is the CA certificate, PEM-encoded (a Vault cert auth
// role's trusted CA, a client's ca.pem).
func (ca *CA) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// WriteFiles writes the SVID (cert.pem), its key (key.pem, 0600) and the
// CA (ca.pem) into dir, for clients such as kcat.
func (ca *CA) WriteFiles(dir string, s *x509svid.SVID) (certPath, keyPath, caPath string, err error) {
	certPEM, keyPEM, err := s.Marshal()
	if err != nil {
		return "", "", "", err
	}
	certPath, keyPath, caPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return "", "", "", err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return "", "", "", err
	}
	if err := os.WriteFile(caPath, ca.CertificatePEM(), 0o644); err != nil {
		return "", "", "", err
	}
	return certPath, keyPath, caPath, nil
}

// Source is an x509svid.Source whose SVID can be swapped, as a rotating
// Workload API source would.
type Source struct {
	svid atomic.Pointer[x509svid.SVID]
	// Fetches counts GetX509SVID calls.
	Fetches atomic.Int64
}

// NewSource holds s.
func NewSource(s *x509svid.SVID) *Source {
	src := &Source{}
	src.svid.Store(s)
	return src
}

// Set rotates to s.
func (src *Source) Set(s *x509svid.SVID) { src.svid.Store(s) }

// GetX509SVID returns the current SVID.
func (src *Source) GetX509SVID() (*x509svid.SVID, error) {
	src.Fetches.Add(1)
	s := src.svid.Load()
	if s == nil {
		return nil, fmt.Errorf("svidtest: no SVID")
	}
	return s, nil
}
