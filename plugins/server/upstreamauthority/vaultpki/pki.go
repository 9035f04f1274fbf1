package vaultpki

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgeid/edgeid/internal/pemutil"
)

// maxIssuers bounds how many issuers of a mount are read per poll.
const maxIssuers = 256

// vault is the part of *vaultclient.Client the plugin uses.
type vault interface {
	Read(ctx context.Context, path string) (*vaultapi.Secret, error)
	Write(ctx context.Context, path string, data map[string]any) (*vaultapi.Secret, error)
	List(ctx context.Context, path string) (*vaultapi.Secret, error)
	CapabilitiesSelf(ctx context.Context, path string) ([]string, error)
	Close() error
}

// signResult is what Vault returned for a CSR.
type signResult struct {
	cert *x509.Certificate
	// others holds every other certificate of the response (issuing_ca and
	// ca_chain), deduplicated, in response order.
	others []*x509.Certificate
	// warnings are Vault's response warnings (a TTL cap, for one).
	warnings []string
}

// signIntermediate asks pki_mount_point to sign csr as an intermediate CA.
func signIntermediate(ctx context.Context, v vault, cfg *configuration, csr *x509.CertificateRequest, ttl time.Duration) (*signResult, error) {
	uris := make([]string, 0, len(csr.URIs))
	for _, u := range csr.URIs {
		uris = append(uris, u.String())
	}
	data := map[string]any{
		"csr":            string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})),
		"use_csr_values": true,
		"format":         "pem",
		"common_name":    csr.Subject.CommonName,
	}
	if len(uris) > 0 {
		data["uri_sans"] = strings.Join(uris, ",")
	}
	if ttl > 0 {
		data["ttl"] = fmt.Sprintf("%ds", int64(ttl/time.Second))
	}
	if cfg.issuerRef != "" {
		data["issuer_ref"] = cfg.issuerRef
	}
	s, err := v.Write(ctx, cfg.signPath(), data)
	if err != nil {
		return nil, err
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("%s returned no data", cfg.signPath())
	}
	certs, err := pemField(s.Data, "certificate")
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("response has no certificate")
	}
	res := &signResult{cert: certs[0], warnings: s.Warnings}
	seen := map[string]bool{string(certs[0].Raw): true}
	add := func(cs []*x509.Certificate) {
		for _, c := range cs {
			if !seen[string(c.Raw)] {
				seen[string(c.Raw)] = true
				res.others = append(res.others, c)
			}
		}
	}
	add(certs[1:])
	for _, field := range []string{"issuing_ca", "ca_chain"} {
		cs, err := pemField(s.Data, field)
		if err != nil {
			return nil, err
		}
		add(cs)
	}
	return res, nil
}

// issuerCerts reads the certificate and CA chain of one issuer through the
// mount's issuer/<ref>/json endpoint.
func issuerCerts(ctx context.Context, v vault, mount, ref string) ([]*x509.Certificate, error) {
	p := fmt.Sprintf("%s/issuer/%s/json", mount, url.PathEscape(ref))
	s, err := v.Read(ctx, p)
	if err != nil {
		return nil, err
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("%s: issuer not found", p)
	}
	cert, err := pemField(s.Data, "certificate")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(cert) == 0 {
		return nil, fmt.Errorf("%s: no certificate", p)
	}
	chain, err := pemField(s.Data, "ca_chain")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return append(cert, chain...), nil
}

// mountRoots returns every unexpired self-signed CA certificate found in the
// certificates and CA chains of the mount's issuers: the roots of the
// mount's whole hierarchy, old and new, sorted for comparison.
func mountRoots(ctx context.Context, v vault, mount string, now time.Time) ([]*x509.Certificate, error) {
	p := mount + "/issuers"
	s, err := v.List(ctx, p)
	if err != nil {
		return nil, err
	}
	var ids []string
	if s != nil && s.Data != nil {
		if raw, ok := s.Data["keys"].([]any); ok {
			for _, k := range raw {
				if id, ok := k.(string); ok && id != "" {
					ids = append(ids, id)
				}
			}
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s lists no issuers", p)
	}
	if len(ids) > maxIssuers {
		return nil, fmt.Errorf("%s lists %d issuers, over the limit of %d", p, len(ids), maxIssuers)
	}
	var certs []*x509.Certificate
	for _, id := range ids {
		cs, err := issuerCerts(ctx, v, mount, id)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cs...)
	}
	return selectRoots(certs, now), nil
}

// selectRoots keeps the unexpired self-signed CA certificates of certs,
// deduplicated and sorted by their DER bytes.
func selectRoots(certs []*x509.Certificate, now time.Time) []*x509.Certificate {
	seen := map[string]bool{}
	var roots []*x509.Certificate
	for _, c := range certs {
		if seen[string(c.Raw)] || !isSelfSignedCA(c) || now.After(c.NotAfter) {
			continue
		}
		seen[string(c.Raw)] = true
		roots = append(roots, c)
	}
	sortCerts(roots)
	return roots
}

// unionRoots merges root sets, deduplicated and sorted.
func unionRoots(sets ...[]*x509.Certificate) []*x509.Certificate {
	seen := map[string]bool{}
	var out []*x509.Certificate
	for _, set := range sets {
		for _, c := range set {
			if !seen[string(c.Raw)] {
				seen[string(c.Raw)] = true
				out = append(out, c)
			}
		}
	}
	sortCerts(out)
	return out
}

func sortCerts(cs []*x509.Certificate) {
	sort.Slice(cs, func(i, j int) bool { return bytes.Compare(cs[i].Raw, cs[j].Raw) < 0 })
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) {
			return false
		}
	}
	return true
}

func isSelfSignedCA(c *x509.Certificate) bool {
	return c.IsCA && bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

// buildChain orders the chain from leaf upwards: each next certificate is
// the one in pool that issued the previous one. Roots are not part of the
// chain; the second result is the root that issued the last certificate, or
// nil when pool holds none.
func buildChain(leaf *x509.Certificate, pool []*x509.Certificate) ([]*x509.Certificate, *x509.Certificate) {
	chain := []*x509.Certificate{leaf}
	used := map[string]bool{string(leaf.Raw): true}
	cur := leaf
	for len(chain) <= len(pool)+1 {
		parent := findIssuer(cur, pool, used)
		if parent == nil {
			return chain, nil
		}
		if isSelfSignedCA(parent) {
			return chain, parent
		}
		used[string(parent.Raw)] = true
		chain = append(chain, parent)
		cur = parent
	}
	return chain, nil
}

func findIssuer(c *x509.Certificate, pool []*x509.Certificate, used map[string]bool) *x509.Certificate {
	for _, p := range pool {
		if used[string(p.Raw)] || !p.IsCA || !bytes.Equal(p.RawSubject, c.RawIssuer) {
			continue
		}
		if c.CheckSignatureFrom(p) == nil {
			return p
		}
	}
	return nil
}

// verifyChain checks that chain[0] verifies through chain[1:] to one of
// roots at now.
func verifyChain(chain, roots []*x509.Certificate, now time.Time) error {
	rootPool := x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         rootPool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// pemField parses the PEM certificates of a response field that is a string
// or a list of strings. A missing field gives no certificates.
func pemField(data map[string]any, field string) ([]*x509.Certificate, error) {
	raw, ok := data[field]
	if !ok || raw == nil {
		return nil, nil
	}
	var blobs []string
	switch v := raw.(type) {
	case string:
		blobs = []string{v}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("field %s holds a %T, want a PEM string", field, e)
			}
			blobs = append(blobs, s)
		}
	default:
		return nil, fmt.Errorf("field %s holds a %T, want PEM", field, raw)
	}
	out, err := pemutil.ParseCertificates([]byte(strings.Join(blobs, "\n")))
	if errors.Is(err, pemutil.ErrNoCertificate) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", field, err)
	}
	return out, nil
}
