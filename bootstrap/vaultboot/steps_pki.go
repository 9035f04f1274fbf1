package vaultboot

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/pemutil"
)

// stepPKIRoot mounts pki and creates (or imports) the root CA.
func (r *run) stepPKIRoot(ctx context.Context) (bool, error) {
	m := &r.c.root
	changed, err := r.ensureMount(ctx, m.path, "pki", "edgeid root CA", nil, int(m.maxLeaseTTL.Seconds()))
	if err != nil {
		return false, err
	}
	r.b.afterStep(CheckpointRootMounted)
	is, named, err := r.findCA(ctx, m)
	if err != nil {
		return false, err
	}
	changed = changed || named
	if is == nil {
		if m.external {
			is, err = r.createExternalRoot(ctx, m)
		} else {
			is, err = r.createInternalRoot(ctx, m)
		}
		if err != nil {
			return false, err
		}
		changed = true
	} else {
		r.log.Info("The root CA exists", "mount", m.path, "issuer", is.id)
	}
	r.rootIssuer = is
	fin, err := r.finishCA(ctx, m, is, &r.sum.PKIRoot)
	return changed || fin, err
}

func (r *run) createInternalRoot(ctx context.Context, m *pkiMount) (*issuerInfo, error) {
	p := caParams(m)
	p["ttl"] = fmt.Sprintf("%ds", int(m.ttl.Seconds()))
	p["issuer_name"] = m.issuerName
	kind := "internal"
	keyID, err := r.keyID(ctx, m.path, m.keyName)
	if err != nil {
		return nil, err
	}
	if keyID != "" {
		kind = "existing"
		p["key_ref"] = m.keyName
	} else {
		p["key_name"] = m.keyName
		p["key_type"] = m.keyType
		p["key_bits"] = m.keyBits
	}
	r.log.Info("Generating the root CA", "mount", m.path, "key", kind, "key_type", m.keyType, "key_bits", m.keyBits, "ttl", m.ttl)
	s, err := r.v.write(ctx, m.path+"/root/generate/"+kind, p)
	if err != nil {
		return nil, fmt.Errorf("vaultboot: generate the root CA: %w", err)
	}
	id := ""
	if s != nil {
		id = str(s.Data, "issuer_id")
	}
	if id == "" {
		id = m.issuerName
	}
	is, err := r.readIssuer(ctx, m.path, id)
	if err != nil || is == nil {
		return nil, fmt.Errorf("vaultboot: read the new root CA: %v", err)
	}
	return is, nil
}

// ensureKey makes sure mount holds a key named m.keyName.
func (r *run) ensureKey(ctx context.Context, m *pkiMount, checkpoint string) error {
	keyID, err := r.keyID(ctx, m.path, m.keyName)
	if err != nil || keyID != "" {
		return err
	}
	r.log.Info("Generating the CA key", "mount", m.path, "key_name", m.keyName, "key_type", m.keyType, "key_bits", m.keyBits)
	if _, err := r.v.write(ctx, m.path+"/keys/generate/internal", map[string]any{
		"key_name": m.keyName, "key_type": m.keyType, "key_bits": m.keyBits,
	}); err != nil {
		return fmt.Errorf("vaultboot: generate key %s/%s: %w", m.path, m.keyName, err)
	}
	if checkpoint != "" {
		r.b.afterStep(checkpoint)
	}
	return nil
}

// csrFor returns a CSR for the mount's named key. Making a CSR for an
// existing key changes nothing in Vault, so it is repeated freely.
func (r *run) csrFor(ctx context.Context, m *pkiMount) (string, error) {
	p := caParams(m)
	p["key_ref"] = m.keyName
	s, err := r.v.write(ctx, m.path+"/intermediate/generate/existing", p)
	if err != nil {
		return "", fmt.Errorf("vaultboot: CSR for %s: %w", m.path, err)
	}
	if s == nil || str(s.Data, "csr") == "" {
		return "", fmt.Errorf("vaultboot: CSR for %s: empty answer", m.path)
	}
	return str(s.Data, "csr"), nil
}

// importSigned imports a signed CA certificate (and its chain) into
// mount, then names the issuer that holds the mount's key.
func (r *run) importSigned(ctx context.Context, m *pkiMount, bundle string, checkpoint string) (*issuerInfo, error) {
	if _, err := r.v.write(ctx, m.path+"/intermediate/set-signed", map[string]any{"certificate": bundle}); err != nil {
		return nil, fmt.Errorf("vaultboot: import the signed certificate into %s: %w", m.path, err)
	}
	if checkpoint != "" {
		r.b.afterStep(checkpoint)
	}
	is, _, err := r.findCA(ctx, m)
	if err != nil {
		return nil, err
	}
	if is == nil || is.name != m.issuerName {
		return nil, fmt.Errorf("vaultboot: after importing the signed certificate, %s has no issuer for key %s", m.path, m.keyName)
	}
	return is, nil
}

// createExternalRoot makes a CSR for an offline root, or imports the
// certificate the offline root signed.
func (r *run) createExternalRoot(ctx context.Context, m *pkiMount) (*issuerInfo, error) {
	if err := r.ensureKey(ctx, m, ""); err != nil {
		return nil, err
	}
	csrPEM, err := r.csrFor(ctx, m)
	if err != nil {
		return nil, err
	}
	if m.signedFile != "" {
		data, err := fsutil.ReadFileLimited(m.signedFile, 1<<20)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("vaultboot: pki_root.signed_cert_file: %w", err)
		}
		if err == nil {
			certs, err := pemutil.ParseCertificates(data)
			if err != nil {
				return nil, fmt.Errorf("vaultboot: pki_root.signed_cert_file %s: %w", m.signedFile, err)
			}
			if err := matchCSR(csrPEM, certs[0]); err != nil {
				return nil, fmt.Errorf("vaultboot: pki_root.signed_cert_file %s: %w", m.signedFile, err)
			}
			if !certs[0].IsCA {
				return nil, fmt.Errorf("vaultboot: pki_root.signed_cert_file %s: the certificate is not a CA", m.signedFile)
			}
			r.log.Info("Importing the certificate signed by the external root", "mount", m.path, "file", m.signedFile, "subject", certs[0].Subject.String())
			return r.importSigned(ctx, m, string(data), "")
		}
	}
	if err := fsutil.MkdirAllMode(filepath.Dir(m.csrFile), 0o700); err != nil {
		return nil, fmt.Errorf("vaultboot: pki_root.csr_file: %w", err)
	}
	if err := fsutil.WriteFileAtomic(m.csrFile, []byte(strings.TrimSpace(csrPEM)+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("vaultboot: pki_root.csr_file: %w", err)
	}
	r.log.Warn("Have the offline root sign the CSR, set pki_root.signed_cert_file to the signed certificate (followed by its chain) and run again", "csr_file", m.csrFile, "signed_cert_file", m.signedFile)
	return nil, fmt.Errorf("%w: CSR in %s", ErrAwaitingExternalSignature, m.csrFile)
}

// stepPKIIntermediate mounts pki_int and has the root sign its CA.
func (r *run) stepPKIIntermediate(ctx context.Context) (bool, error) {
	m := &r.c.int
	changed, err := r.ensureMount(ctx, m.path, "pki", "edgeid intermediate CA", nil, int(m.maxLeaseTTL.Seconds()))
	if err != nil {
		return false, err
	}
	is, named, err := r.findCA(ctx, m)
	if err != nil {
		return false, err
	}
	changed = changed || named
	if is != nil && is.cert.CheckSignatureFrom(r.rootIssuer.cert) != nil {
		return false, fmt.Errorf("vaultboot: the CA in %s (issuer %s, %s) is not signed by the root in %s", m.path, is.id, is.cert.Subject, r.c.root.path)
	}
	if is == nil {
		if err := r.ensureKey(ctx, m, CheckpointIntKeyCreated); err != nil {
			return false, err
		}
		bundle, err := r.signIntermediate(ctx, m)
		if err != nil {
			return false, err
		}
		if is, err = r.importSigned(ctx, m, bundle, CheckpointIntImported); err != nil {
			return false, err
		}
		changed = true
		r.log.Info("Imported the signed intermediate", "mount", m.path, "issuer", is.id)
	} else if reason := m.constraints.diff(is.cert); reason != "" && is.keyID != "" {
		// The CA exists but lacks the configured constraints (made by an
		// older edgeid, or the configuration changed). The root signs the
		// same key again with them: certificates the old CA certificate
		// signed still verify under the new one (same subject and key), and
		// from now on the chain SPIRE hands out carries the constraints.
		r.log.Warn("The intermediate CA lacks the configured constraints; the root signs its key again with them", "mount", m.path, "issuer", is.id, "reason", reason)
		if is, err = r.resignIntermediate(ctx, m, is); err != nil {
			return false, err
		}
		changed = true
	} else {
		if reason != "" {
			r.log.Warn("The intermediate CA lacks the configured constraints, and its key is not in Vault, so it cannot be signed again; import a constrained one", "mount", m.path, "issuer", is.id, "reason", reason)
		}
		r.log.Info("The intermediate CA exists", "mount", m.path, "issuer", is.id)
	}
	r.intIssuer = is
	fin, err := r.finishCA(ctx, m, is, &r.sum.PKIIntermediate)
	return changed || fin, err
}

// signIntermediate has the root sign a CSR for the intermediate's key with
// the configured constraints, and returns the certificate followed by its
// chain.
func (r *run) signIntermediate(ctx context.Context, m *pkiMount) (string, error) {
	csrPEM, err := r.csrFor(ctx, m)
	if err != nil {
		return "", err
	}
	p := caParams(m)
	p["csr"] = csrPEM
	p["ttl"] = fmt.Sprintf("%ds", int(m.ttl.Seconds()))
	p["issuer_ref"] = r.rootIssuer.id
	p["format"] = "pem"
	for k, v := range m.constraints.params() {
		p[k] = v
	}
	r.log.Info("Signing the intermediate CA with the root", "root_mount", r.c.root.path, "mount", m.path, "ttl", m.ttl,
		"max_path_length", m.constraints.maxPathLen, "permitted_uri_domains", m.constraints.permittedURIDomains,
		"excluded_dns_domains", m.constraints.excludedDNSDomains, "excluded_ip_ranges", m.constraints.excludedIPRanges)
	s, err := r.v.write(ctx, r.c.root.path+"/root/sign-intermediate", p)
	if err != nil {
		return "", fmt.Errorf("vaultboot: sign the intermediate: %w", err)
	}
	if s == nil || str(s.Data, "certificate") == "" {
		return "", errors.New("vaultboot: sign the intermediate: empty answer")
	}
	r.b.afterStep(CheckpointIntSigned)
	bundle := strings.TrimSpace(str(s.Data, "certificate"))
	cert, err := parseCertPEM(bundle)
	if err != nil {
		return "", fmt.Errorf("vaultboot: sign the intermediate: %w", err)
	}
	// Vault silently ignores a parameter it does not know: check that
	// the certificate carries what was asked for.
	if d := m.constraints.diff(cert); d != "" {
		return "", fmt.Errorf("vaultboot: sign the intermediate: the signed certificate lacks the constraints: %s", d)
	}
	for _, c := range stringSlice(s.Data["ca_chain"]) {
		c = strings.TrimSpace(c)
		if c != "" && !strings.Contains(bundle, c) {
			bundle += "\n" + c
		}
	}
	return bundle + "\n", nil
}

// resignIntermediate gives the intermediate's key a certificate with the
// configured constraints. An issuer left by an interrupted run (same key,
// right constraints, signed by the root) is adopted instead of signing
// again. The new issuer takes the name; the old one is renamed and kept,
// so that chains it appears in can still be looked up.
func (r *run) resignIntermediate(ctx context.Context, m *pkiMount, old *issuerInfo) (*issuerInfo, error) {
	all, err := r.listIssuers(ctx, m.path)
	if err != nil {
		return nil, err
	}
	var fresh *issuerInfo
	for _, is := range all {
		if is.id != old.id && is.keyID == old.keyID && m.constraints.diff(is.cert) == "" && is.cert.CheckSignatureFrom(r.rootIssuer.cert) == nil {
			fresh = is
			r.log.Info("Adopting a constrained intermediate certificate an interrupted run imported", "mount", m.path, "issuer", is.id)
			break
		}
	}
	if fresh == nil {
		bundle, err := r.signIntermediate(ctx, m)
		if err != nil {
			return nil, err
		}
		s, err := r.v.write(ctx, m.path+"/intermediate/set-signed", map[string]any{"certificate": bundle})
		if err != nil {
			return nil, fmt.Errorf("vaultboot: import the constrained intermediate into %s: %w", m.path, err)
		}
		r.b.afterStep(CheckpointIntImported)
		want, _ := parseCertPEM(bundle)
		var ids []string
		if s != nil {
			ids = stringSlice(s.Data["imported_issuers"])
		}
		if len(ids) == 0 {
			// Already imported: find it by content.
			for _, is := range all {
				ids = append(ids, is.id)
			}
			if more, err := r.listIssuers(ctx, m.path); err == nil {
				for _, is := range more {
					ids = append(ids, is.id)
				}
			}
		}
		for _, id := range ids {
			is, err := r.readIssuer(ctx, m.path, id)
			if err != nil {
				return nil, err
			}
			if is != nil && want != nil && bytes.Equal(is.cert.Raw, want.Raw) {
				fresh = is
				break
			}
		}
		if fresh == nil {
			return nil, fmt.Errorf("vaultboot: the constrained intermediate was imported into %s but no issuer holds it", m.path)
		}
	}
	retired := fmt.Sprintf("%s-unconstrained-%s", m.issuerName, old.id[:min(8, len(old.id))])
	if len(retired) > 128 {
		retired = retired[:128]
	}
	for _, patch := range []struct{ id, name string }{{old.id, retired}, {fresh.id, m.issuerName}} {
		if _, err := r.v.c.Logical().JSONMergePatch(ctx, m.path+"/issuer/"+patch.id, map[string]any{"issuer_name": patch.name}); err != nil {
			return nil, fmt.Errorf("vaultboot: name issuer %s/%s: %w", m.path, patch.id, err)
		}
	}
	fresh.name = m.issuerName
	r.log.Info("The intermediate CA is now constrained", "mount", m.path, "issuer", fresh.id, "previous_issuer", old.id, "previous_renamed_to", retired)
	return fresh, nil
}

// parseCertPEM returns the first certificate of a PEM string.
func parseCertPEM(s string) (*x509.Certificate, error) {
	certs, err := pemutil.ParseCertificates([]byte(s))
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// matchCSR checks that cert certifies the key of csrPEM.
func matchCSR(csrPEM string, cert *x509.Certificate) error {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil {
		return errors.New("no PEM CSR")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return err
	}
	a, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return err
	}
	b, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil {
		return err
	}
	if !bytes.Equal(a, b) {
		return errors.New("the certificate is for another key than the CSR's")
	}
	return nil
}
