package harness

import (
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
)

// TransitCertAuth is the Vault setup of record encryption: a Transit key
// ring, the cert auth method trusting a CA, policies, and one cert auth
// role per identity bound to its SPIFFE ID by allowed_uri_sans.
type TransitCertAuth struct {
	// Ring is the Transit key (aes256-gcm96) under the "transit" mount.
	Ring string
	// CAPEM is the CA cert auth trusts (the SVIDs' root).
	CAPEM []byte
	// Policies are written as they are, by name.
	Policies map[string]string
	// Roles are the cert auth roles, by name.
	Roles map[string]CertRole
}

// CertRole binds one SPIFFE ID to one policy, with no default policy.
type CertRole struct {
	SPIFFEID string
	Policy   string
}

// SetUpTransitCertAuth mounts transit and cert auth on v (with its root
// token) and writes the key ring, policies and roles of s.
func (v *Vault) SetUpTransitCertAuth(t testing.TB, s TransitCertAuth) {
	t.Helper()
	root := v.Client(t)
	if err := root.Sys().Mount("transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("harness: mount transit: %v", err)
	}
	if _, err := root.Logical().Write("transit/keys/"+s.Ring, map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatalf("harness: transit key %s: %v", s.Ring, err)
	}
	if err := root.Sys().EnableAuthWithOptions("cert", &vaultapi.EnableAuthOptions{Type: "cert"}); err != nil {
		t.Fatalf("harness: enable cert auth: %v", err)
	}
	for name, hcl := range s.Policies {
		t.Logf("harness: policy %s:\n%s", name, hcl)
		if err := root.Sys().PutPolicy(name, hcl); err != nil {
			t.Fatalf("harness: put policy %s: %v", name, err)
		}
	}
	for name, r := range s.Roles {
		v.WriteCertRole(t, name, s.CAPEM, r)
	}
}

// WriteCertRole writes (or rewrites, for example to grant a policy) the
// cert auth role name trusting caPEM. r.Policy may list several policies,
// comma-separated.
func (v *Vault) WriteCertRole(t testing.TB, name string, caPEM []byte, r CertRole) {
	t.Helper()
	if _, err := v.Client(t).Logical().Write("auth/cert/certs/"+name, map[string]any{
		"certificate": string(caPEM), "allowed_uri_sans": r.SPIFFEID, "token_policies": r.Policy,
		"token_no_default_policy": true, "token_ttl": "5m",
	}); err != nil {
		t.Fatalf("harness: cert auth role %s: %v", name, err)
	}
}
