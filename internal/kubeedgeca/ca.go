package kubeedgeca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"

	"github.com/edgeid/edgeid/plugins/common/kubeedge"
)

const (
	// CACommonName is the subject CN of cloudcore's self-signed CA.
	CACommonName = "KubeEdge"
	// CASerial is the fixed serial number cloudcore gives its CA.
	CASerial = 1024
	// CAValidity is the lifetime cloudcore gives its CA (100 × 364 days).
	CAValidity = 100 * 364 * 24 * time.Hour
	// DefaultNodeValidity is cloudcore's default edge certificate lifetime
	// (EdgeCertSigningDuration, 365 days).
	DefaultNodeValidity = 365 * 24 * time.Hour
	// NodeOrganization is the subject O that edgecore puts in its CSR.
	NodeOrganization = "system:nodes"
	// NodeCommonNamePrefix is prepended to the node name in the subject CN.
	NodeCommonNamePrefix = "system:node:"
	// LegacyCommonName is the subject CN of pre-1.18 edge certificates,
	// which name no node.
	LegacyCommonName = "kubeedge.io"
)

// CA is a KubeEdge cloudcore certificate authority.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Options tune a new CA. The zero value makes a CA like cloudcore's.
type Options struct {
	// Now is the issuing time; zero means time.Now.
	Now time.Time
	// Validity overrides CAValidity when positive.
	Validity time.Duration
	// CommonName overrides CACommonName when set.
	CommonName string
}

// New generates a CA the way cloudcore does on first start.
func New(opts Options) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: unable to generate CA key: %w", err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	validity := opts.Validity
	if validity <= 0 {
		validity = CAValidity
	}
	cn := opts.CommonName
	if cn == "" {
		cn = CACommonName
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(CASerial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.UTC(),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: unable to self-sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: unable to parse CA: %w", err)
	}
	return &CA{cert: cert, key: key}, nil
}

// Load restores a CA from its PEM certificate and PEM private key (SEC1
// "EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY").
func Load(certPEM, keyPEM []byte) (*CA, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("kubeedgeca: no CERTIFICATE block in CA certificate PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: unable to parse CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("kubeedgeca: certificate is not a CA")
	}
	signer, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("kubeedgeca: CA key is %T, want ecdsa", signer)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("kubeedgeca: CA key does not match CA certificate")
	}
	return &CA{cert: cert, key: key}, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertificatePEM returns the CA certificate in PEM, the content of rootCA.crt.
func (ca *CA) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// KeyPEM returns the CA private key as SEC1 "EC PRIVATE KEY" PEM. Store it
// with mode 0600.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: unable to marshal CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// Fingerprint returns the lowercase hex SHA-256 of the CA certificate's DER,
// as used in the kubeedge:ca_fingerprint selector.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.cert) }

// Fingerprint returns the lowercase hex SHA-256 of cert's DER.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// WriteCertificate writes the CA certificate in PEM to path (mode 0644),
// like edgecore's /etc/kubeedge/ca/rootCA.crt.
func (ca *CA) WriteCertificate(path string) error {
	return writeFileAtomic(path, ca.CertificatePEM(), 0o644)
}

// SignOptions tune how SignCSR and SignPublicKey issue a node certificate.
// The zero value issues exactly what cloudcore issues by default.
type SignOptions struct {
	// Now is the issuing time (NotBefore); zero means time.Now.
	Now time.Time
	// Validity overrides DefaultNodeValidity when positive.
	Validity time.Duration
	// NotBefore and NotAfter, when set, override Now and Validity (for
	// tests of expired and not-yet-valid certificates).
	NotBefore, NotAfter time.Time
	// Usages overrides the extended key usages. Nil means ClientAuth;
	// a non-nil empty slice means none (cloudcore refuses that, tests use it).
	Usages []x509.ExtKeyUsage
}

// SignCSR signs an edgecore CSR (DER) the way cloudcore does: subject CN and
// O and SANs copied from the CSR. Unlike cloudcore it also checks the CSR's
// signature.
func (ca *CA) SignCSR(csrDER []byte, opts SignOptions) (*x509.Certificate, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: unable to parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("kubeedgeca: CSR signature: %w", err)
	}
	if csr.Subject.CommonName == "" {
		return nil, errors.New("kubeedgeca: CSR has no common name")
	}
	tmpl := nodeTemplate(pkix.Name{CommonName: csr.Subject.CommonName, Organization: csr.Subject.Organization}, opts)
	tmpl.DNSNames = csr.DNSNames
	tmpl.IPAddresses = csr.IPAddresses
	return ca.sign(tmpl, csr.PublicKey)
}

// SignPublicKey issues a node certificate for pub with the given subject
// (CN and O only, like cloudcore), without a CSR. Tests use it for keys and
// subjects edgecore would not produce.
func (ca *CA) SignPublicKey(subject pkix.Name, pub crypto.PublicKey, opts SignOptions) (*x509.Certificate, error) {
	tmpl := nodeTemplate(pkix.Name{CommonName: subject.CommonName, Organization: subject.Organization}, opts)
	return ca.sign(tmpl, pub)
}

// NodeSubject returns the subject edgecore requests for nodeName.
func NodeSubject(nodeName string) pkix.Name {
	return pkix.Name{CommonName: NodeCommonNamePrefix + nodeName, Organization: []string{NodeOrganization}}
}

// NewNodeCSR does what edgecore does before it asks cloudcore for a
// certificate: it generates an ECDSA P-256 key and a CSR (DER) with subject
// O=system:nodes, CN=system:node:<nodeName> and no SANs.
func NewNodeCSR(nodeName string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeedgeca: unable to generate node key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: NodeSubject(nodeName)}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeedgeca: unable to create CSR: %w", err)
	}
	return key, csr, nil
}

// IssueNode runs the whole join for nodeName: a new edgecore key and CSR,
// signed by this CA with opts.
func (ca *CA) IssueNode(nodeName string, opts SignOptions) (*NodeCredentials, error) {
	key, csr, err := NewNodeCSR(nodeName)
	if err != nil {
		return nil, err
	}
	cert, err := ca.SignCSR(csr, opts)
	if err != nil {
		return nil, err
	}
	return &NodeCredentials{Certificate: cert, Key: key}, nil
}

func nodeTemplate(subject pkix.Name, opts SignOptions) *x509.Certificate {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	validity := opts.Validity
	if validity <= 0 {
		validity = DefaultNodeValidity
	}
	notBefore, notAfter := now.UTC(), now.Add(validity)
	if !opts.NotBefore.IsZero() {
		notBefore = opts.NotBefore
	}
	if !opts.NotAfter.IsZero() {
		notAfter = opts.NotAfter
	}
	usages := opts.Usages
	if usages == nil {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	return &x509.Certificate{
		Subject:     subject,
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usages,
	}
}

func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, big.NewInt(math.MaxInt64))
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: unable to generate serial: %w", err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: unable to sign node certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: unable to parse node certificate: %w", err)
	}
	return cert, nil
}

// NodeCredentials are an edge node's certificate and private key.
type NodeCredentials struct {
	Certificate *x509.Certificate
	Key         crypto.Signer
}

// CertificatePEM returns the certificate in PEM, the content of server.crt.
func (n *NodeCredentials) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: n.Certificate.Raw})
}

// KeyPEM returns the private key in PEM, the content of server.key: SEC1
// "EC PRIVATE KEY" for ECDSA keys (as edgecore writes it), PKCS#8
// "PRIVATE KEY" otherwise.
func (n *NodeCredentials) KeyPEM() ([]byte, error) {
	if k, ok := n.Key.(*ecdsa.PrivateKey); ok {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("kubeedgeca: unable to marshal node key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(n.Key)
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: unable to marshal node key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteFiles writes the certificate (mode 0644) and the key (mode 0600) the
// way edgecore lays out server.crt and server.key. Each file is replaced
// atomically; the key is written first, so a reader that sees the new
// certificate also finds the new key.
func (n *NodeCredentials) WriteFiles(certPath, keyPath string) error {
	keyPEM, err := n.KeyPEM()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, n.CertificatePEM(), 0o644)
}

// ParsePrivateKeyPEM parses the first private key in keyPEM: SEC1
// "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY".
func ParsePrivateKeyPEM(keyPEM []byte) (crypto.Signer, error) {
	signer, err := kubeedge.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("kubeedgeca: %w", err)
	}
	return signer, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := fsutil.WriteFileAtomicMkdir(path, data, mode, fsutil.Keep); err != nil {
		return fmt.Errorf("kubeedgeca: %w", err)
	}
	return nil
}

// EdgeNodeLayout names the files of an edge node's /etc/kubeedge, relative
// to a root directory.
type EdgeNodeLayout struct {
	CertificatePath string // <root>/certs/server.crt
	PrivateKeyPath  string // <root>/certs/server.key
	CAPath          string // <root>/ca/rootCA.crt
}

// Layout returns where edgecore keeps its files under root (for a real node,
// root is /etc/kubeedge).
func Layout(root string) EdgeNodeLayout {
	return EdgeNodeLayout{
		CertificatePath: filepath.Join(root, "certs", "server.crt"),
		PrivateKeyPath:  filepath.Join(root, "certs", "server.key"),
		CAPath:          filepath.Join(root, "ca", "rootCA.crt"),
	}
}

// JoinNode plays a whole edgecore join under root: it issues a node
// certificate for nodeName and writes server.crt, server.key (0600) and
// rootCA.crt in edgecore's layout. Calling it again for the same node is a
// certificate rotation: new key, same name.
func (ca *CA) JoinNode(root, nodeName string, opts SignOptions) (*NodeCredentials, EdgeNodeLayout, error) {
	l := Layout(root)
	creds, err := ca.IssueNode(nodeName, opts)
	if err != nil {
		return nil, l, err
	}
	if err := ca.WriteCertificate(l.CAPath); err != nil {
		return nil, l, err
	}
	if err := creds.WriteFiles(l.CertificatePath, l.PrivateKeyPath); err != nil {
		return nil, l, err
	}
	return creds, l, nil
}
