package vaultfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func (v *Vault) routePKI(w http.ResponseWriter, m *mount, method string, rest []string, body map[string]any) {
	switch {
	case method == "LIST" && len(rest) == 1 && rest[0] == "issuers":
		keys := make([]string, 0, len(m.issuers))
		for _, is := range m.issuers {
			keys = append(keys, is.ID)
		}
		writeJSON(w, map[string]any{"data": map[string]any{"keys": keys}})
	case method == http.MethodGet && len(rest) == 3 && rest[0] == "issuer" && rest[2] == "json":
		is := m.issuer(rest[1])
		if is == nil {
			writeErr(w, http.StatusNotFound, "unable to find issuer")
			return
		}
		chain := make([]string, 0, len(is.Chain))
		for _, c := range is.Chain {
			chain = append(chain, pemString(c))
		}
		writeJSON(w, map[string]any{"data": map[string]any{
			"issuer_id": is.ID, "issuer_name": is.Name, "certificate": pemString(is.CA.Cert), "ca_chain": chain,
		}})
	case method == http.MethodPut && len(rest) == 2 && rest[0] == "root" && rest[1] == "sign-intermediate":
		v.signIntermediate(w, m, body)
	default:
		writeErr(w, http.StatusNotFound, "no handler for route")
	}
}

func (m *mount) issuer(ref string) *Issuer {
	if ref == "default" {
		ref = m.defaultID
	}
	for _, is := range m.issuers {
		if is.ID == ref || is.Name == ref {
			return is
		}
	}
	return nil
}

func (v *Vault) signIntermediate(w http.ResponseWriter, m *mount, body map[string]any) {
	ref, _ := body["issuer_ref"].(string)
	if ref == "" {
		ref = "default"
	}
	is := m.issuer(ref)
	if is == nil {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("unable to find PKI issuer for reference: %s", ref))
		return
	}
	csrPEM, _ := body["csr"].(string)
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil {
		writeErr(w, http.StatusBadRequest, "csr contains no data")
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "certificate request could not be parsed: "+err.Error())
		return
	}
	ttl := m.maxTTL
	if s, _ := body["ttl"].(string); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "invalid ttl")
			return
		}
		ttl = min(d, m.maxTTL)
	}
	now := v.now()
	notAfter := now.Add(ttl)
	if notAfter.After(is.CA.Cert.NotAfter) {
		notAfter = is.CA.Cert.NotAfter // leaf_not_after_behavior=truncate
	}
	var uris []*url.URL
	if s, _ := body["uri_sans"].(string); s != "" {
		for _, u := range strings.Split(s, ",") {
			parsed, err := url.Parse(u)
			if err != nil {
				writeErr(w, http.StatusBadRequest, "invalid uri_sans")
				return
			}
			uris = append(uris, parsed)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               csr.Subject,
		URIs:                  uris,
		NotBefore:             now.Add(-30 * time.Second),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.CA.Cert, csr.PublicKey, is.CA.Key)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	cert, _ := x509.ParseCertificate(der)
	chain := []string{}
	for _, c := range is.Chain {
		chain = append(chain, pemString(c))
	}
	writeJSON(w, map[string]any{"data": map[string]any{
		"certificate":   pemString(cert),
		"issuing_ca":    pemString(is.CA.Cert),
		"ca_chain":      chain,
		"serial_number": cert.SerialNumber.String(),
	}})
}

func pemString(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// NewRootCA makes a self-signed root CA valid for ttl.
func NewRootCA(t testing.TB, cn string, ttl time.Duration) CA {
	t.Helper()
	return newCA(t, cn, nil, ttl, nil)
}

// NewIntermediateCA makes a CA signed by parent, valid for ttl. A nil key
// generates one.
func NewIntermediateCA(t testing.TB, cn string, parent CA, key *ecdsa.PrivateKey, ttl time.Duration) CA {
	t.Helper()
	return newCA(t, cn, key, ttl, &parent)
}

// newCA makes a CA certificate for key (generated when nil), signed by
// parent, or by itself when parent is nil.
func newCA(t testing.TB, cn string, key *ecdsa.PrivateKey, ttl time.Duration, parent *CA) CA {
	t.Helper()
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	issuer, issuerKey := tmpl, any(key)
	if parent != nil {
		issuer, issuerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return CA{Cert: cert, Key: key}
}

// AddPKIMount creates (or replaces) a PKI mount whose sign-intermediate caps
// TTLs at maxTTL.
func (v *Vault) AddPKIMount(name string, maxTTL time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pki[name] = &mount{maxTTL: maxTTL}
}

// AddIssuer adds an issuer to mount with its CA chain (ca first, up to and
// including the root). The first issuer added becomes the default. It
// returns the issuer ID.
func (v *Vault) AddIssuer(mount, name string, ca CA, chain ...*x509.Certificate) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.pki[mount]
	if m == nil {
		v.t.Fatalf("vaultfake: no PKI mount %q", mount)
	}
	v.seq++
	id := fmt.Sprintf("%08x-0000-4000-8000-%012d", v.seq, v.seq)
	is := &Issuer{ID: id, Name: name, CA: ca, Chain: append([]*x509.Certificate{ca.Cert}, chain...)}
	m.issuers = append(m.issuers, is)
	if m.defaultID == "" {
		m.defaultID = id
	}
	return id
}

// SetDefaultIssuer makes ref the mount's default issuer.
func (v *Vault) SetDefaultIssuer(mount, ref string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.pki[mount]
	if is := m.issuer(ref); is != nil {
		m.defaultID = is.ID
	}
}

// SetMaxTTL changes the mount's TTL cap.
func (v *Vault) SetMaxTTL(mount string, maxTTL time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pki[mount].maxTTL = maxTTL
}

// RemoveIssuer deletes an issuer from mount.
func (v *Vault) RemoveIssuer(mount, ref string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.pki[mount]
	is := m.issuer(ref)
	if is == nil {
		return
	}
	out := m.issuers[:0]
	for _, x := range m.issuers {
		if x != is {
			out = append(out, x)
		}
	}
	m.issuers = out
}
