package svidwriter

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/edgeid/edgeid/helper/atomicdir"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// Options says which files to build and how.
type Options struct {
	// SVIDFileName, KeyFileName and BundleFileName are spiffe-helper's
	// svid_file_name, svid_key_file_name and svid_bundle_file_name.
	SVIDFileName   string
	KeyFileName    string
	BundleFileName string
	// CombinedPEMFileName, when set, gets the chain followed by the key.
	CombinedPEMFileName string

	// AddIntermediatesToBundle moves intermediates from the SVID file to
	// the bundle file, as spiffe-helper's add_intermediates_to_bundle.
	AddIntermediatesToBundle bool
	// IncludeFederatedDomains adds federated trust domains' authorities
	// to the bundle.
	IncludeFederatedDomains bool
	// OmitExpired leaves expired certificates out of the PEM files.
	OmitExpired bool

	CertFileMode fs.FileMode
	KeyFileMode  fs.FileMode

	// PKCS12, when set, adds keystore and truststore files.
	PKCS12 *PKCS12Options

	// Now is the clock for OmitExpired; nil means time.Now.
	Now func() time.Time
}

// PKCS12Options configures the PKCS#12 files.
type PKCS12Options struct {
	KeystoreFileName   string
	TruststoreFileName string
	Password           string
	// Legacy uses SHA-1/3DES for old readers instead of PBES2/AES-256.
	Legacy bool
}

// Select picks the SVID to publish from a Workload API update: the one
// whose hint is hint, the one whose ID is id, or the default (first) SVID
// when both are empty.
func Select(x509Context *workloadapi.X509Context, hint, id string) (*x509svid.SVID, error) {
	if x509Context == nil || len(x509Context.SVIDs) == 0 {
		return nil, errors.New("svidwriter: the update has no SVID")
	}
	switch {
	case hint != "":
		for _, s := range x509Context.SVIDs {
			if s.Hint == hint {
				return s, nil
			}
		}
		return nil, fmt.Errorf("svidwriter: no SVID has hint %q", hint)
	case id != "":
		for _, s := range x509Context.SVIDs {
			if s.ID.String() == id {
				return s, nil
			}
		}
		return nil, fmt.Errorf("svidwriter: no SVID has SPIFFE ID %q", id)
	default:
		return x509Context.DefaultSVID(), nil
	}
}

// BundleCerts returns the authorities for svid's trust domain, followed by
// the federated ones when includeFederated is set, in spiffe-helper's order.
func BundleCerts(svid *x509svid.SVID, bundles *x509bundle.Set, includeFederated bool) ([]*x509.Certificate, error) {
	own, ok := bundles.Get(svid.ID.TrustDomain())
	if !ok {
		return nil, fmt.Errorf("svidwriter: no bundle for trust domain %q", svid.ID.TrustDomain())
	}
	certs := own.X509Authorities()
	if includeFederated {
		for _, b := range bundles.Bundles() {
			if b.TrustDomain() != svid.ID.TrustDomain() {
				certs = append(certs, b.X509Authorities()...)
			}
		}
	}
	return certs, nil
}

// Files builds every configured file for svid.
func Files(svid *x509svid.SVID, bundles *x509bundle.Set, opts Options) ([]atomicdir.File, error) {
	if svid == nil || len(svid.Certificates) == 0 || svid.PrivateKey == nil {
		return nil, errors.New("svidwriter: SVID has no certificate or key")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	bundle, err := BundleCerts(svid, bundles, opts.IncludeFederatedDomains)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("svidwriter: marshal private key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})

	certs := svid.Certificates
	pemBundle := bundle
	if opts.AddIntermediatesToBundle {
		pemBundle = append(append([]*x509.Certificate{}, bundle...), certs[1:]...)
		certs = certs[:1]
	}
	omit := func(c *x509.Certificate) bool { return opts.OmitExpired && now().UTC().After(c.NotAfter) }

	var files []atomicdir.File
	if opts.SVIDFileName != "" {
		files = append(files,
			atomicdir.File{Name: opts.SVIDFileName, Data: encodeCerts(certs, omit), Mode: opts.CertFileMode},
			atomicdir.File{Name: opts.KeyFileName, Data: keyPEM, Mode: opts.KeyFileMode},
			atomicdir.File{Name: opts.BundleFileName, Data: encodeCerts(pemBundle, omit), Mode: opts.CertFileMode},
		)
	}
	if opts.CombinedPEMFileName != "" {
		combined := append(encodeCerts(svid.Certificates, nil), keyPEM...)
		files = append(files, atomicdir.File{Name: opts.CombinedPEMFileName, Data: combined, Mode: opts.KeyFileMode})
	}
	if p := opts.PKCS12; p != nil {
		enc := pkcs12.Modern2023
		if p.Legacy {
			enc = pkcs12.LegacyDES
		}
		if p.KeystoreFileName != "" {
			data, err := enc.Encode(svid.PrivateKey, svid.Certificates[0], svid.Certificates[1:], p.Password)
			if err != nil {
				return nil, fmt.Errorf("svidwriter: encode PKCS#12 keystore: %w", err)
			}
			files = append(files, atomicdir.File{Name: p.KeystoreFileName, Data: data, Mode: opts.KeyFileMode})
		}
		if p.TruststoreFileName != "" {
			data, err := enc.EncodeTrustStore(bundle, p.Password)
			if err != nil {
				return nil, fmt.Errorf("svidwriter: encode PKCS#12 truststore: %w", err)
			}
			files = append(files, atomicdir.File{Name: p.TruststoreFileName, Data: data, Mode: opts.CertFileMode})
		}
	}
	return files, nil
}

func encodeCerts(certs []*x509.Certificate, omit func(*x509.Certificate) bool) []byte {
	var out []byte
	for _, c := range certs {
		if omit != nil && omit(c) {
			continue
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
