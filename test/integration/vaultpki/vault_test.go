package vaultpki

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/test/harness"
	vaultapi "github.com/hashicorp/vault/api"
)

const (
	trustDomain = harness.DefaultTrustDomain
	policyName  = "edgeid-spire"
)

// policyHCL is the least-privilege policy from the plugin's reference page,
// verbatim. Tokens get it without Vault's default policy, so the test
// proves it is sufficient on its own. The PKI issuer listing and issuer
// JSON the plugin reads are unauthenticated endpoints of the PKI engine.
var policyHCL = fmt.Sprintf(`path "pki_int/root/sign-intermediate" {
  capabilities = ["update"]
}

path "secret/data/edgeid/%s/jwt-authorities" {
  capabilities = ["read", "create", "update"]
}

path "sys/capabilities-self" {
  capabilities = ["update"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
`, trustDomain)

// vaultPKI is a Vault with root "pki" -> intermediate "pki_int".
type vaultPKI struct {
	v      *harness.Vault
	c      *vaultapi.Client // root token
	root   *x509.Certificate
	inter  *x509.Certificate
	unseal string // unseal key of a non-dev Vault
}

// startDevPKI starts a dev Vault and builds the PKI.
func startDevPKI(t *testing.T, tls bool) *vaultPKI {
	t.Helper()
	var v *harness.Vault
	if tls {
		v = harness.StartVaultDevTLS(t)
	} else {
		v = harness.StartVaultDev(t)
	}
	p := &vaultPKI{v: v, c: v.Client(t)}
	p.buildPKI(t, 43800*time.Hour)
	return p
}

// startFilePKI starts a non-dev Vault with file storage, initialises and
// unseals it, and builds the PKI. It survives Stop/Start (then unseal).
func startFilePKI(t *testing.T) *vaultPKI {
	t.Helper()
	v := harness.StartVault(t, harness.VaultOptions{})
	c := v.Client(t)
	init, err := c.Sys().Init(&vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("vault init: %v", err)
	}
	c.SetToken(init.RootToken)
	p := &vaultPKI{v: v, c: c, unseal: init.Keys[0]}
	p.unsealVault(t)
	if err := c.Sys().Mount("secret", &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount kv: %v", err)
	}
	p.buildPKI(t, 43800*time.Hour)
	return p
}

func (p *vaultPKI) unsealVault(t *testing.T) {
	t.Helper()
	harness.Eventually(t, 60*time.Second, func() error {
		st, err := p.c.Sys().Unseal(p.unseal)
		if err != nil {
			return err
		}
		if st.Sealed {
			return fmt.Errorf("still sealed")
		}
		return nil
	})
	harness.Eventually(t, 60*time.Second, func() error {
		h, err := p.c.Sys().Health()
		if err != nil {
			return err
		}
		if h.Sealed || h.Standby {
			return fmt.Errorf("not active yet: %+v", h)
		}
		return nil
	})
}

func (p *vaultPKI) write(t *testing.T, path string, data map[string]any) *vaultapi.Secret {
	t.Helper()
	s, err := p.c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return s
}

// buildPKI creates root "root-1" in pki and an intermediate in pki_int
// signed by it, imported with its chain, and the plugin's policy.
func (p *vaultPKI) buildPKI(t *testing.T, intMaxTTL time.Duration) {
	t.Helper()
	for _, m := range []struct {
		path string
		max  time.Duration
	}{{"pki", 87600 * time.Hour}, {"pki_int", intMaxTTL}} {
		if err := p.c.Sys().Mount(m.path, &vaultapi.MountInput{Type: "pki", Config: vaultapi.MountConfigInput{MaxLeaseTTL: m.max.String()}}); err != nil {
			t.Fatalf("mount %s: %v", m.path, err)
		}
	}
	root := p.write(t, "pki/root/generate/internal", map[string]any{
		"common_name": "edgeid test root 1", "issuer_name": "root-1", "key_type": "ec", "ttl": "87600h",
	})
	p.root = mustCert(t, root.Data["certificate"].(string))
	csr := p.write(t, "pki_int/intermediate/generate/internal", map[string]any{
		"common_name": "edgeid test intermediate", "key_type": "ec", "key_name": "int-key",
	})
	signed := p.write(t, "pki/root/sign-intermediate", map[string]any{
		"csr": csr.Data["csr"], "issuer_ref": "root-1", "ttl": "43800h", "format": "pem",
	})
	p.inter = mustCert(t, signed.Data["certificate"].(string))
	p.write(t, "pki_int/intermediate/set-signed", map[string]any{
		"certificate": signed.Data["certificate"].(string) + "\n" + root.Data["certificate"].(string),
	})
	if err := p.c.Sys().PutPolicy(policyName, policyHCL); err != nil {
		t.Fatalf("put policy: %v", err)
	}
}

// token creates a renewable token with the plugin's policy (or policies).
func (p *vaultPKI) token(t *testing.T, policies ...string) string {
	t.Helper()
	if len(policies) == 0 {
		policies = []string{policyName}
	}
	s, err := p.c.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: policies, TTL: "1h", Renewable: boolPtr(true), NoDefaultPolicy: true})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return s.Auth.ClientToken
}

// appRole enables AppRole with a role for the plugin and writes its role ID
// and a fresh secret ID to 0600 files, as an operator would.
func (p *vaultPKI) appRole(t *testing.T) (roleIDFile, secretIDFile string) {
	t.Helper()
	if err := p.c.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil && !strings.Contains(err.Error(), "path is already in use") {
		t.Fatalf("enable approle: %v", err)
	}
	p.write(t, "auth/approle/role/spire-server", map[string]any{
		"token_policies": policyName, "token_no_default_policy": true, "token_ttl": "1h", "token_max_ttl": "4h", "secret_id_ttl": "24h",
	})
	rid, err := p.c.Logical().Read("auth/approle/role/spire-server/role-id")
	if err != nil {
		t.Fatalf("read role id: %v", err)
	}
	sid := p.write(t, "auth/approle/role/spire-server/secret-id", nil)
	dir := t.TempDir()
	roleIDFile, secretIDFile = filepath.Join(dir, "role_id"), filepath.Join(dir, "secret_id")
	mustWriteFile(t, roleIDFile, rid.Data["role_id"].(string))
	mustWriteFile(t, secretIDFile, sid.Data["secret_id"].(string))
	return roleIDFile, secretIDFile
}

// certAuth enables TLS certificate auth trusting a new client CA and
// returns a client certificate and key issued by it.
func (p *vaultPKI) certAuth(t *testing.T) (certPath, keyPath string) {
	t.Helper()
	ca, err := harness.NewTestCA("edgeid test Vault client CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueClient("spire-server")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.c.Sys().EnableAuthWithOptions("cert", &vaultapi.EnableAuthOptions{Type: "cert"}); err != nil {
		t.Fatalf("enable cert auth: %v", err)
	}
	p.write(t, "auth/cert/certs/spire-server", map[string]any{
		"certificate": string(ca.CertPEM), "token_policies": policyName, "token_no_default_policy": true, "token_ttl": "1h",
	})
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	mustWriteFile(t, certPath, string(certPEM))
	mustWriteFile(t, keyPath, string(keyPEM))
	return certPath, keyPath
}

func mustCert(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	certs, err := pemutil.ParseCertificates([]byte(pemText))
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func mustWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func boolPtr(b bool) *bool { return &b }

func vaultTune(maxTTL string) vaultapi.MountConfigInput {
	return vaultapi.MountConfigInput{MaxLeaseTTL: maxTTL}
}
