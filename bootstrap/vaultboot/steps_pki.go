package vaultboot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgeid/edgeid/bootstrap/internal/atomicfile"
	"github.com/edgeid/edgeid/internal/pemutil"
)

// issuerInfo is one PKI issuer as Vault reports it.
type issuerInfo struct {
	id      string
	name    string
	keyID   string
	certPEM string
	chain   []string
	cert    *x509.Certificate
}

func (i *issuerInfo) fingerprint() string {
	sum := sha256.Sum256(i.cert.Raw)
	return hex.EncodeToString(sum[:])
}

// ensureMount makes sure a secrets engine of type typ is mounted at path,
// with max_lease_ttl maxTTL when maxTTL > 0 and the given options.
func (r *run) ensureMount(ctx context.Context, path, typ, desc string, options map[string]string, maxTTL int) (bool, error) {
	mounts, err := r.v.c.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("vaultboot: list mounts: %w", err)
	}
	if m, ok := mounts[path+"/"]; ok {
		if m.Type != typ {
			return false, fmt.Errorf("vaultboot: mount %s/ exists with type %q, want %q", path, m.Type, typ)
		}
		for k, want := range options {
			if m.Options[k] != want {
				return false, fmt.Errorf("vaultboot: mount %s/ exists with option %s=%q, want %q", path, k, m.Options[k], want)
			}
		}
		if maxTTL > 0 && m.Config.MaxLeaseTTL != maxTTL {
			r.log.Info("Tuning the mount's max lease TTL", "mount", path, "from_seconds", m.Config.MaxLeaseTTL, "to_seconds", maxTTL)
			if err := r.v.c.Sys().TuneMountWithContext(ctx, path, vaultapi.MountConfigInput{MaxLeaseTTL: fmt.Sprintf("%ds", maxTTL)}); err != nil {
				return false, fmt.Errorf("vaultboot: tune mount %s: %w", path, err)
			}
			return true, nil
		}
		return false, nil
	}
	in := &vaultapi.MountInput{Type: typ, Description: desc, Options: options}
	if maxTTL > 0 {
		in.Config.MaxLeaseTTL = fmt.Sprintf("%ds", maxTTL)
	}
	if err := r.v.c.Sys().MountWithContext(ctx, path, in); err != nil {
		return false, fmt.Errorf("vaultboot: mount %s at %s: %w", typ, path, err)
	}
	r.log.Info("Mounted a secrets engine", "type", typ, "path", path)
	return true, nil
}

// readIssuer returns the issuer ref (id or name) of mount, or nil.
func (r *run) readIssuer(ctx context.Context, mount, ref string) (*issuerInfo, error) {
	data, err := r.v.read(ctx, mount+"/issuer/"+ref)
	if err != nil {
		// An unknown reference is a 4xx, not a missing entry.
		if c := statusCode(err); c == 400 || c == 404 || c == 500 && strings.Contains(err.Error(), "unable to find") {
			return nil, nil
		}
		return nil, fmt.Errorf("vaultboot: %w", err)
	}
	if data == nil {
		return nil, nil
	}
	info := &issuerInfo{
		id:      str(data, "issuer_id"),
		name:    str(data, "issuer_name"),
		keyID:   str(data, "key_id"),
		certPEM: strings.TrimSpace(str(data, "certificate")),
		chain:   stringSlice(data["ca_chain"]),
	}
	if info.cert, err = parseCertPEM(info.certPEM); err != nil {
		return nil, fmt.Errorf("vaultboot: issuer %s/%s: %w", mount, ref, err)
	}
	return info, nil
}

// listIssuers returns every issuer of mount.
func (r *run) listIssuers(ctx context.Context, mount string) ([]*issuerInfo, error) {
	ids, _, err := r.v.list(ctx, mount+"/issuers")
	if err != nil {
		return nil, fmt.Errorf("vaultboot: %w", err)
	}
	var out []*issuerInfo
	for _, id := range ids {
		info, err := r.readIssuer(ctx, mount, id)
		if err != nil {
			return nil, err
		}
		if info != nil {
			out = append(out, info)
		}
	}
	return out, nil
}

// keyID returns the id of the key named name in mount, or "".
func (r *run) keyID(ctx context.Context, mount, name string) (string, error) {
	ids, info, err := r.v.list(ctx, mount+"/keys")
	if err != nil {
		return "", fmt.Errorf("vaultboot: %w", err)
	}
	for _, id := range ids {
		if m, ok := info[id].(map[string]any); ok && str(m, "key_name") == name {
			return id, nil
		}
	}
	return "", nil
}

// defaultIssuerID returns the mount's default issuer id, or "".
func (r *run) defaultIssuerID(ctx context.Context, mount string) (string, error) {
	data, err := r.v.read(ctx, mount+"/config/issuers")
	if err != nil {
		return "", fmt.Errorf("vaultboot: %w", err)
	}
	return str(data, "default"), nil
}

// findCA looks for the CA this bootstrap manages in mount: the issuer
// named m.issuerName, else the issuer holding the key named m.keyName
// (just imported, or left unnamed by an interrupted run; it is named
// now), else an
// existing default issuer with a key (a Vault set up by someone else).
func (r *run) findCA(ctx context.Context, m *pkiMount) (*issuerInfo, bool, error) {
	if is, err := r.readIssuer(ctx, m.path, m.issuerName); err != nil || is != nil {
		return is, false, err
	}
	keyID, err := r.keyID(ctx, m.path, m.keyName)
	if err != nil {
		return nil, false, err
	}
	if keyID != "" {
		all, err := r.listIssuers(ctx, m.path)
		if err != nil {
			return nil, false, err
		}
		for _, is := range all {
			if is.keyID == keyID {
				r.log.Info("Naming the issuer that holds the CA key", "mount", m.path, "issuer", is.id, "name", m.issuerName)
				if _, err := r.v.c.Logical().JSONMergePatch(ctx, m.path+"/issuer/"+is.id, map[string]any{"issuer_name": m.issuerName}); err != nil {
					return nil, false, fmt.Errorf("vaultboot: name issuer %s/%s: %w", m.path, is.id, err)
				}
				is.name = m.issuerName
				return is, true, nil
			}
		}
		return nil, false, nil
	}
	def, err := r.defaultIssuerID(ctx, m.path)
	if err != nil || def == "" {
		return nil, false, err
	}
	is, err := r.readIssuer(ctx, m.path, def)
	if err != nil || is == nil || is.keyID == "" {
		return nil, false, err
	}
	r.log.Info("Using the mount's existing default issuer", "mount", m.path, "issuer", is.id, "name", is.name, "subject", is.cert.Subject.String())
	return is, false, nil
}

// finishCA makes the issuer the mount's default and sets the URLs.
func (r *run) finishCA(ctx context.Context, m *pkiMount, is *issuerInfo, out *CASummary) (bool, error) {
	changed := false
	def, err := r.defaultIssuerID(ctx, m.path)
	if err != nil {
		return false, err
	}
	if def != is.id {
		if _, err := r.v.write(ctx, m.path+"/config/issuers", map[string]any{"default": is.id}); err != nil {
			return false, fmt.Errorf("vaultboot: %w", err)
		}
		r.log.Info("Set the default issuer", "mount", m.path, "issuer", is.id)
		changed = true
	}
	urls, err := r.v.read(ctx, m.path+"/config/urls")
	if err != nil {
		return false, fmt.Errorf("vaultboot: %w", err)
	}
	if !slices.Equal(stringSlice(urls["issuing_certificates"]), m.issuingURLs) || !slices.Equal(stringSlice(urls["crl_distribution_points"]), m.crlURLs) {
		if _, err := r.v.write(ctx, m.path+"/config/urls", map[string]any{
			"issuing_certificates":    m.issuingURLs,
			"crl_distribution_points": m.crlURLs,
		}); err != nil {
			return false, fmt.Errorf("vaultboot: %w", err)
		}
		r.log.Info("Set the issuing and CRL URLs", "mount", m.path, "issuing_certificates", m.issuingURLs, "crl_distribution_points", m.crlURLs)
		changed = true
	}
	*out = CASummary{
		Mount:             m.path,
		IssuerID:          is.id,
		IssuerName:        is.name,
		Subject:           is.cert.Subject.String(),
		FingerprintSHA256: is.fingerprint(),
		NotAfter:          is.cert.NotAfter.UTC(),
		IssuingURLs:       m.issuingURLs,
		CRLURLs:           m.crlURLs,
	}
	r.log.Info("CA ready", "mount", m.path, "issuer", is.id, "subject", out.Subject, "sha256", out.FingerprintSHA256, "not_after", out.NotAfter)
	return changed, nil
}

func caParams(m *pkiMount) map[string]any {
	p := map[string]any{"common_name": m.commonName}
	if m.organization != "" {
		p["organization"] = m.organization
	}
	return p
}

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
		data, err := readLimited(m.signedFile, 1<<20)
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
	if err := atomicfile.MkdirAll(filepath.Dir(m.csrFile), 0o700); err != nil {
		return nil, fmt.Errorf("vaultboot: pki_root.csr_file: %w", err)
	}
	if err := atomicfile.Write(m.csrFile, []byte(strings.TrimSpace(csrPEM)+"\n"), 0o644); err != nil {
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
		csrPEM, err := r.csrFor(ctx, m)
		if err != nil {
			return false, err
		}
		p := caParams(m)
		p["csr"] = csrPEM
		p["ttl"] = fmt.Sprintf("%ds", int(m.ttl.Seconds()))
		p["issuer_ref"] = r.rootIssuer.id
		p["format"] = "pem"
		r.log.Info("Signing the intermediate CA with the root", "root_mount", r.c.root.path, "mount", m.path, "ttl", m.ttl)
		s, err := r.v.write(ctx, r.c.root.path+"/root/sign-intermediate", p)
		if err != nil {
			return false, fmt.Errorf("vaultboot: sign the intermediate: %w", err)
		}
		if s == nil || str(s.Data, "certificate") == "" {
			return false, errors.New("vaultboot: sign the intermediate: empty answer")
		}
		r.b.afterStep(CheckpointIntSigned)
		bundle := strings.TrimSpace(str(s.Data, "certificate"))
		for _, c := range stringSlice(s.Data["ca_chain"]) {
			c = strings.TrimSpace(c)
			if c != "" && !strings.Contains(bundle, c) {
				bundle += "\n" + c
			}
		}
		if is, err = r.importSigned(ctx, m, bundle+"\n", CheckpointIntImported); err != nil {
			return false, err
		}
		changed = true
		r.log.Info("Imported the signed intermediate", "mount", m.path, "issuer", is.id)
	} else {
		r.log.Info("The intermediate CA exists", "mount", m.path, "issuer", is.id)
	}
	r.intIssuer = is
	fin, err := r.finishCA(ctx, m, is, &r.sum.PKIIntermediate)
	return changed || fin, err
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
