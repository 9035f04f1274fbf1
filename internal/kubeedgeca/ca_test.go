package kubeedgeca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestCAIsShapedLikeCloudcore(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ca, err := New(Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate()
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	switch {
	case !ok || pub.Curve != elliptic.P256():
		t.Errorf("CA key %T, want ECDSA P-256", c.PublicKey)
	case c.Subject.String() != "CN=KubeEdge" || c.Issuer.String() != "CN=KubeEdge":
		t.Errorf("CA subject %q issuer %q", c.Subject, c.Issuer)
	case c.SerialNumber.Int64() != 1024:
		t.Errorf("CA serial %v, want 1024", c.SerialNumber)
	case !c.IsCA || !c.BasicConstraintsValid:
		t.Error("CA is not a CA")
	case c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment|x509.KeyUsageCertSign:
		t.Errorf("CA key usage %v", c.KeyUsage)
	case !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}):
		t.Errorf("CA EKU %v", c.ExtKeyUsage)
	case c.NotAfter.Sub(c.NotBefore) != 100*364*24*time.Hour:
		t.Errorf("CA lifetime %v", c.NotAfter.Sub(c.NotBefore))
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
}

func TestNodeCertificateIsShapedLikeCloudcore(t *testing.T) {
	ca, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	creds, err := ca.IssueNode("edge-7", SignOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	c := creds.Certificate
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	switch {
	case !ok || pub.Curve != elliptic.P256():
		t.Errorf("node key %T, want ECDSA P-256", c.PublicKey)
	case c.Subject.String() != "CN=system:node:edge-7,O=system:nodes":
		t.Errorf("subject %q", c.Subject)
	case len(c.DNSNames)+len(c.IPAddresses)+len(c.URIs)+len(c.EmailAddresses) != 0:
		t.Error("node certificate has SANs")
	case c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment:
		t.Errorf("key usage %v", c.KeyUsage)
	case !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}):
		t.Errorf("EKU %v", c.ExtKeyUsage)
	case c.NotAfter.Sub(c.NotBefore) != 365*24*time.Hour:
		t.Errorf("lifetime %v, want 365 days", c.NotAfter.Sub(c.NotBefore))
	case c.IsCA:
		t.Error("node certificate is a CA")
	case c.SerialNumber.Sign() < 0 || c.SerialNumber.BitLen() > 63:
		t.Errorf("serial %v is not in [0, 2^63)", c.SerialNumber)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("node certificate does not verify: %v", err)
	}
}

func TestLoadRoundTripAndFiles(t *testing.T) {
	ca, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Load(ca.CertificatePEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint() != ca.Fingerprint() {
		t.Fatal("fingerprint changed across Load")
	}
	creds, err := again.IssueNode("n1", SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Certificate.CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Fatalf("loaded CA signs with another key: %v", err)
	}
	other, _ := New(Options{})
	otherKey, _ := other.KeyPEM()
	if _, err := Load(ca.CertificatePEM(), otherKey); err == nil {
		t.Fatal("Load accepted a key that does not match")
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "certs", "server.crt"), filepath.Join(dir, "certs", "server.key")
	if err := creds.WriteFiles(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
}

func TestSignCSRChecksSignature(t *testing.T) {
	ca, _ := New(Options{})
	_, csr, err := NewNodeCSR("n1")
	if err != nil {
		t.Fatal(err)
	}
	csr[len(csr)-3] ^= 0xff
	if _, err := ca.SignCSR(csr, SignOptions{}); err == nil {
		t.Fatal("SignCSR accepted a CSR with a broken signature")
	}
}
