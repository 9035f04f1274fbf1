// Package testpki issues SPIFFE certificates for edgeid-helper's unit
// tests: a root CA per trust domain, an optional intermediate, and X.509
// SVIDs, all generated at run time.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// CA is a trust domain's signing authority.
type CA struct {
	TrustDomain spiffeid.TrustDomain
	Root        *x509.Certificate
	rootKey     crypto.Signer
	// Intermediate signs SVIDs when set.
	Intermediate    *x509.Certificate
	intermediateKey crypto.Signer
}

// NewCA creates a root for td and, when withIntermediate, an intermediate.
func NewCA(t testing.TB, td string, withIntermediate bool) *CA {
	t.Helper()
	ca := &CA{TrustDomain: spiffeid.RequireTrustDomainFromString(td)}
	ca.rootKey = newKey(t)
	ca.Root = sign(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: td + " root"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{ca.TrustDomain.ID().URL()},
	}, nil, ca.rootKey.Public(), ca.rootKey, time.Hour)
	if withIntermediate {
		ca.intermediateKey = newKey(t)
		ca.Intermediate = sign(t, &x509.Certificate{
			Subject:               pkix.Name{CommonName: td + " intermediate"},
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			URIs:                  []*url.URL{ca.TrustDomain.ID().URL()},
		}, ca.Root, ca.intermediateKey.Public(), ca.rootKey, time.Hour)
	}
	return ca
}

// SVID issues an X.509 SVID for id valid for ttl, with optional DNS SANs.
func (ca *CA) SVID(t testing.TB, id string, ttl time.Duration, dnsNames ...string) *x509svid.SVID {
	t.Helper()
	sid := spiffeid.RequireFromString(id)
	key := newKey(t)
	parent, parentKey := ca.Root, ca.rootKey
	if ca.Intermediate != nil {
		parent, parentKey = ca.Intermediate, ca.intermediateKey
	}
	leaf := sign(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "svid"},
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:                  []*url.URL{sid.URL()},
		DNSNames:              dnsNames,
	}, parent, key.Public(), parentKey, ttl)
	chain := []*x509.Certificate{leaf}
	if ca.Intermediate != nil {
		chain = append(chain, ca.Intermediate)
	}
	return &x509svid.SVID{ID: sid, Certificates: chain, PrivateKey: key}
}

// Bundle returns the trust domain's bundle (its root).
func (ca *CA) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.TrustDomain, []*x509.Certificate{ca.Root})
}

func newKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer, ttl time.Duration) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	tmpl.NotAfter = time.Now().Add(ttl)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
