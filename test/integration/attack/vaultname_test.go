package attack

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/plugins/common/vaultclient"
	"github.com/edgeid/edgeid/test/harness"
)

// vaultName is Vault's DNS name in this test.
const vaultName = "vault.edgeid.test"

// forgedVault is an impostor of Vault: a TLS server presenting a
// certificate for Vault's name and 127.0.0.1, minted by an edge SPIRE CA
// whose key the attacker holds, with the whole chain up to the Vault
// intermediate. It records every AppRole login it receives.
type forgedVault struct {
	srv    *httptest.Server
	mu     sync.Mutex
	logins []string
}

func (f *forgedVault) loginCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.logins)
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signCert(t *testing.T, tmpl, parent *x509.Certificate, pub any, signer any) *x509.Certificate {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mintForgery builds the attack's chain below a cloud SPIRE CA that Vault
// signed (cloudCA, cloudKey): an edge SPIRE CA, as the cloud server signs
// one for each site, and below it the forged certificate for Vault.
func mintForgery(t *testing.T, cloudCA *x509.Certificate, cloudKey *ecdsa.PrivateKey, upper []*x509.Certificate) tls.Certificate {
	t.Helper()
	edgeKey := newKey(t)
	u, _ := url.Parse("spiffe://example.org")
	edgeCA := signCert(t, &x509.Certificate{
		Subject: pkix.Name{Country: []string{"US"}, Organization: []string{"SPIFFE"}}, URIs: []*url.URL{u},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, cloudCA, &edgeKey.PublicKey, cloudKey)
	leafKey := newKey(t)
	leaf := signCert(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: vaultName}, DNSNames: []string{vaultName}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, edgeCA, &leafKey.PublicKey, edgeKey)
	chain := [][]byte{leaf.Raw, edgeCA.Raw, cloudCA.Raw}
	for _, c := range upper {
		chain = append(chain, c.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: leafKey, Leaf: leaf}
}

// cloudCAFromVault has Vault's intermediate sign a CA for a key the
// attacker holds, through sign-intermediate: what the vault_pki plugin
// does for the cloud SPIRE server. sign runs the request.
func cloudCAFromVault(t *testing.T, sign func(csr string) (*vaultapi.Secret, error)) (*x509.Certificate, *ecdsa.PrivateKey, []*x509.Certificate) {
	t.Helper()
	key := newKey(t)
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "cloud SPIRE CA"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})))
	if err != nil {
		t.Fatalf("sign-intermediate: %v", err)
	}
	certs, err := pemutil.ParseCertificates([]byte(s.Data["certificate"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	var chain []*x509.Certificate
	for _, c := range s.Data["ca_chain"].([]any) {
		cs, err := pemutil.ParseCertificates([]byte(c.(string)))
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range cs {
			if !x.Equal(certs[0]) && !x.Equal(chain0(chain)) {
				chain = append(chain, x)
			}
		}
	}
	return certs[0], key, chain
}

func chain0(c []*x509.Certificate) *x509.Certificate {
	if len(c) == 0 {
		return nil
	}
	return c[len(c)-1]
}

func startForgedVault(t *testing.T, cert tls.Certificate) *forgedVault {
	t.Helper()
	f := &forgedVault{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if strings.HasSuffix(r.URL.Path, "/login") {
			f.mu.Lock()
			f.logins = append(f.logins, string(body))
			f.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"auth":{"client_token":"hvs.forged","lease_duration":3600,"renewable":false}}`)
	}))
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// attemptLogin runs the cloud server's Vault client (the vault_pki
// plugin's vaultclient, AppRole) against the impostor with caFile as its
// ca_cert_path, and also checks Vault's DNS name with the same trust
// (tls.Dial with ServerName, the way the client verifies a name). It
// returns the client's error, the DNS check's error and whether the
// impostor received the login.
func attemptLogin(t *testing.T, f *forgedVault, caFile string) (ipErr, dnsErr error, intercepted bool) {
	t.Helper()
	dir := t.TempDir()
	roleID, secretID := filepath.Join(dir, "role_id"), filepath.Join(dir, "secret_id")
	for _, p := range []string{roleID, secretID} {
		if err := os.WriteFile(p, []byte("00000000-0000-0000-0000-00000000000"+filepath.Base(p)[0:1]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := f.loginCount()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, ipErr := vaultclient.Dial(ctx, vaultclient.Config{
		Address: f.srv.URL, CACertPath: caFile, Retries: -1,
		Auth: &vaultclient.AppRoleAuth{RoleIDFile: roleID, SecretIDFile: secretID},
	})
	if c != nil {
		c.Close()
	}
	pool := x509.NewCertPool()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pemBytes)
	conn, dnsErr := tls.Dial("tcp", f.srv.Listener.Addr().String(), &tls.Config{RootCAs: pool, ServerName: vaultName, MinVersion: tls.VersionTLS12})
	if conn != nil {
		conn.Close()
	}
	return ipErr, dnsErr, f.loginCount() > before
}

// TestEdgeCACannotImpersonateVault covers issue 14's acceptance 3: a
// certificate for Vault's DNS name (and its address), minted by an edge
// SPIRE CA whose key the attacker stole, is refused by the cloud server's
// Vault client, so the AppRole login cannot be intercepted.
//
// The chain is real down to the cloud CA: a real Vault 1.21.0, set up by
// the real bootstrap (trust_domain, vault_tls), signs the cloud CA through
// the AppRole login the bootstrap made (the wrapped secret_id unwrapped by
// vaultclient), exactly the call the vault_pki plugin makes. The edge CA
// and the forged certificate below it are signed with keys the attacker
// holds, as a compromised edge server could.
//
// Two protections stand in the way, each shown alone:
//   - the client trusts only the Vault TLS CA (vault_tls.ca_file), a CA of
//     its own, not the SPIRE root: unknown authority;
//   - a client that still trusts the SPIRE root is saved by the
//     intermediate's name constraints (Vault's names and every IP
//     excluded).
//
// With both switched off (a second real Vault set up the way edgeid did
// before: an unconstrained intermediate, clients trusting the SPIRE root)
// the same forgery is accepted and the impostor receives the login.
func TestEdgeCACannotImpersonateVault(t *testing.T) {
	// --- Protected: the real bootstrap.
	v := harness.StartVault(t, harness.VaultOptions{})
	dir := t.TempDir()
	cfgText := `state_dir = "` + filepath.Join(dir, "state") + `"
trust_domain = "example.org"
vault {
  address = "` + v.Addr + `"
}
init {
  secret_shares = 1
  secret_threshold = 1
  insecure_plaintext_shares = true
}
audit {
  enabled = false
}
vault_tls {
  common_name = "` + vaultName + `"
  ip_sans = ["127.0.0.1"]
}
`
	cfg, err := vaultboot.Parse(filepath.Join(dir, "bootstrap.hcl"), []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	b, err := vaultboot.New(cfg, vaultboot.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := b.Run(context.Background())
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	ctx := context.Background()
	vc, err := vaultclient.Dial(ctx, vaultclient.Config{Address: v.Addr, Auth: &vaultclient.AppRoleAuth{RoleIDFile: sum.AppRole.RoleIDFile, SecretIDFile: sum.AppRole.SecretIDFile}})
	if err != nil {
		t.Fatalf("AppRole login with the bootstrap's files: %v", err)
	}
	defer vc.Close()
	cloudCA, cloudKey, upper := cloudCAFromVault(t, func(csr string) (*vaultapi.Secret, error) {
		return vc.Write(ctx, "pki_int/root/sign-intermediate", map[string]any{"csr": csr, "common_name": "cloud SPIRE CA", "ttl": "2h", "format": "pem"})
	})
	forged := mintForgery(t, cloudCA, cloudKey, upper)
	f := startForgedVault(t, forged)

	// The forgery is a real chain to the SPIRE root: without the
	// constraints it would verify (signatures, path, validity).
	rootFile := filepath.Join(dir, "spire-root.pem")
	root := upper[len(upper)-1]
	if err := os.WriteFile(rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}

	// 1. The client's CA file is the Vault TLS CA alone.
	ipErr, dnsErr, intercepted := attemptLogin(t, f, sum.VaultTLS.CAFile)
	t.Logf("trusting vault_tls.ca_file: client %v; DNS %v", ipErr, dnsErr)
	if ipErr == nil || dnsErr == nil || intercepted {
		t.Errorf("with the Vault TLS CA as ca_cert_path, the forged Vault was accepted (client err %v, DNS err %v, login intercepted %v)", ipErr, dnsErr, intercepted)
	}
	for _, err := range []error{ipErr, dnsErr} {
		if err != nil && !strings.Contains(err.Error(), "unknown authority") {
			t.Errorf("refused for another reason than an unknown authority: %v", err)
		}
	}
	// 2. A client that still trusts the SPIRE root: the constraints.
	ipErr, dnsErr, intercepted = attemptLogin(t, f, rootFile)
	t.Logf("trusting the SPIRE root, constrained intermediate: client %v; DNS %v", ipErr, dnsErr)
	if ipErr == nil || dnsErr == nil || intercepted {
		t.Errorf("with the SPIRE root as ca_cert_path, the constrained intermediate let the forged Vault through (client err %v, DNS err %v, intercepted %v)", ipErr, dnsErr, intercepted)
	}
	for _, err := range []error{ipErr, dnsErr} {
		if err != nil && !strings.Contains(err.Error(), "excluded by constraint") {
			t.Errorf("refused for another reason than the name constraints: %v", err)
		}
	}
	// The same constraints, seen by any SVID verifier trusting the SPIRE
	// root: an SVID of another trust domain, and a CA minted below an edge
	// CA (path length 2 is used up by the cloud and edge CAs).
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inters := x509.NewCertPool()
	for _, c := range append([]*x509.Certificate{forged.Leaf}, upper...) {
		inters.AddCert(c)
	}
	edgeCA, _ := x509.ParseCertificate(forged.Certificate[1])
	inters.AddCert(edgeCA)
	inters.AddCert(cloudCA)
	for _, tc := range []struct {
		name, want string
		leaf       func() *x509.Certificate
	}{
		{"SVID of another trust domain", "not permitted", func() *x509.Certificate {
			k := newKey(t)
			u, _ := url.Parse("spiffe://evil.org/workload")
			return signCert(t, &x509.Certificate{URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, cloudCA, &k.PublicKey, cloudKey)
		}},
		{"SVID of the trust domain (control)", "", func() *x509.Certificate {
			k := newKey(t)
			u, _ := url.Parse("spiffe://example.org/workload")
			return signCert(t, &x509.Certificate{URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, cloudCA, &k.PublicKey, cloudKey)
		}},
	} {
		_, err := tc.leaf().Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: verify error %v, want %q", tc.name, err, tc.want)
		}
	}

	// The real Vault's own certificate passes with the same client trust.
	if err := checkRealVaultTLS(sum.VaultTLS); err != nil {
		t.Errorf("Vault's real certificate does not verify with ca_file: %v", err)
	}

	// --- Protection off: the previous setup, on a second real Vault.
	dev := harness.StartVaultDev(t)
	rc := dev.Client(t)
	for _, m := range []string{"pki", "pki_int"} {
		if err := rc.Sys().Mount(m, &vaultapi.MountInput{Type: "pki", Config: vaultapi.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := rc.Logical().Write("pki/root/generate/internal", map[string]any{"common_name": "edgeid root CA", "key_type": "ec", "ttl": "87600h"})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := rc.Logical().Write("pki_int/intermediate/generate/internal", map[string]any{"common_name": "edgeid intermediate CA", "key_type": "ec"})
	if err != nil {
		t.Fatal(err)
	}
	si, err := rc.Logical().Write("pki/root/sign-intermediate", map[string]any{"csr": csr.Data["csr"], "ttl": "43800h", "format": "pem"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Logical().Write("pki_int/intermediate/set-signed", map[string]any{"certificate": si.Data["certificate"].(string) + "\n" + r.Data["certificate"].(string)}); err != nil {
		t.Fatal(err)
	}
	oldCA, oldKey, oldUpper := cloudCAFromVault(t, func(csr string) (*vaultapi.Secret, error) {
		return rc.Logical().Write("pki_int/root/sign-intermediate", map[string]any{"csr": csr, "common_name": "cloud SPIRE CA", "ttl": "2h", "format": "pem"})
	})
	f2 := startForgedVault(t, mintForgery(t, oldCA, oldKey, oldUpper))
	oldRootFile := filepath.Join(dir, "old-spire-root.pem")
	if err := os.WriteFile(oldRootFile, []byte(r.Data["certificate"].(string)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ipErr, dnsErr, intercepted = attemptLogin(t, f2, oldRootFile)
	t.Logf("protection off (SPIRE root trusted, unconstrained intermediate): client %v; DNS %v; login intercepted %v", ipErr, dnsErr, intercepted)
	if ipErr != nil || dnsErr != nil || !intercepted {
		t.Errorf("with the protections off the forgery should be accepted and the login intercepted, so that the refusals above are the protections' doing: client err %v, DNS err %v, intercepted %v", ipErr, dnsErr, intercepted)
	}
}

// checkRealVaultTLS verifies Vault's certificate file with ca_file.
func checkRealVaultTLS(s *vaultboot.VaultTLSSummary) error {
	caPEM, err := os.ReadFile(s.CAFile)
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(s.CertFile)
	if err != nil {
		return err
	}
	certs, err := pemutil.ParseCertificates(certPEM)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: vaultName})
	return err
}
