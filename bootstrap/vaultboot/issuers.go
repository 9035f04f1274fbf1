package vaultboot

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"
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
