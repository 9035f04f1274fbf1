package vaultboot

import (
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConstraintsFromConfig(t *testing.T) {
	recs, _ := testRecipients(t, 3)
	tests := []struct {
		name        string
		extra       string
		wantPolicy  string
		wantRole    string
		wantURI     []string
		wantDNS     []string
		wantPathLen int
		wantErr     string
	}{
		{name: "no trust domain", wantPolicy: "edgeid-spire-upstream", wantRole: "spire-server", wantPathLen: 2},
		{name: "trust domain", extra: "trust_domain = \"Example.ORG\"\n", wantPolicy: "edgeid-spire-upstream-example-org", wantRole: "spire-server-example-org", wantURI: []string{"example.org"}, wantPathLen: 2},
		{name: "vault names excluded", extra: "trust_domain = \"example.org\"\nvault_tls {\n common_name = \"vault.example.org\"\n dns_names = [\"Vault\", \"vault.example.org\"]\n}\npki_intermediate {\n excluded_dns_domains = [\"kube.example.org\"]\n max_path_length = 3\n}\n",
			wantPolicy: "edgeid-spire-upstream-example-org", wantRole: "spire-server-example-org", wantURI: []string{"example.org"}, wantDNS: []string{"kube.example.org", "vault.example.org", "vault"}, wantPathLen: 3},
		{name: "bad trust domain", extra: "trust_domain = \"spiffe://example.org\"\n", wantErr: "trust_domain: \"spiffe://example.org\" is not a trust domain"},
		{name: "path length 0", extra: "pki_intermediate {\n max_path_length = 0\n}\n", wantErr: "pki_intermediate.max_path_length: must be at least 1"},
		{name: "bad excluded name", extra: "pki_intermediate {\n excluded_dns_domains = [\"a b\"]\n}\n", wantErr: "pki_intermediate.excluded_dns_domains[0]: must be a DNS name"},
		{name: "tls mount is the intermediate", extra: "vault_tls {\n common_name = \"v\"\n pki_mount = \"pki_int\"\n}\n", wantErr: "vault_tls.pki_mount: must differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(filepath.Join(t.TempDir(), "b.hcl"), []byte(minimalConfig(recs)+tt.extra))
			if err != nil {
				t.Fatal(err)
			}
			c, err := buildConfig(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cons := c.int.constraints
			if c.policyName != tt.wantPolicy || c.roleName != tt.wantRole {
				t.Errorf("names %q %q, want %q %q", c.policyName, c.roleName, tt.wantPolicy, tt.wantRole)
			}
			if !sameSet(cons.permittedURIDomains, tt.wantURI) || !sameSet(cons.excludedDNSDomains, tt.wantDNS) || cons.maxPathLen != tt.wantPathLen {
				t.Errorf("constraints %+v", cons)
			}
			if !sameSet(cons.excludedIPRanges, []string{"0.0.0.0/0", "::/0"}) {
				t.Errorf("excluded IP ranges %v", cons.excludedIPRanges)
			}
		})
	}
}

func TestConstraintsDiff(t *testing.T) {
	want := &caConstraints{maxPathLen: 2, permittedURIDomains: []string{"example.org"}, excludedDNSDomains: []string{"vault"}, excludedIPRanges: []string{"0.0.0.0/0", "::/0"}}
	_, v4, _ := net.ParseCIDR("0.0.0.0/0")
	_, v6, _ := net.ParseCIDR("::/0")
	good := func() *x509.Certificate {
		return &x509.Certificate{BasicConstraintsValid: true, IsCA: true, MaxPathLen: 2, PermittedURIDomains: []string{"example.org"}, ExcludedDNSDomains: []string{"vault"}, ExcludedIPRanges: []*net.IPNet{v4, v6}}
	}
	tests := []struct {
		name   string
		change func(*x509.Certificate)
		want   string
	}{
		{"matches", func(*x509.Certificate) {}, ""},
		{"unconstrained path", func(c *x509.Certificate) { c.MaxPathLen = -1 }, "no path length constraint (want 2)"},
		{"pathlen 0 unset", func(c *x509.Certificate) { c.MaxPathLen = 0 }, "no path length constraint (want 2)"},
		{"pathlen 0", func(c *x509.Certificate) { c.MaxPathLen, c.MaxPathLenZero = 0, true }, "path length 0 (want 2)"},
		{"other trust domain", func(c *x509.Certificate) { c.PermittedURIDomains = []string{"evil.org"} }, "permitted URI domains [evil.org]"},
		{"vault not excluded", func(c *x509.Certificate) { c.ExcludedDNSDomains = nil }, "excluded DNS domains []"},
		{"IPs allowed", func(c *x509.Certificate) { c.ExcludedIPRanges = nil }, "excluded IP ranges []"},
		{"extra constraint", func(c *x509.Certificate) { c.PermittedDNSDomains = []string{"x"} }, "other name constraints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.change(c)
			got := want.diff(c)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("diff %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSecretIDConfig(t *testing.T) {
	recs, _ := testRecipients(t, 3)
	dir := t.TempDir()
	text := minimalConfig(recs) + "spire_upstream {\n peer_secret_id_files = [\"approle/secret_id.cloud-2\", \"state/approle/secret_id\", \"approle/secret_id.cloud-2\"]\n}\n"
	cfg, err := Parse(filepath.Join(dir, "b.hcl"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	_, err = buildConfig(cfg)
	for _, want := range []string{"peer_secret_id_files[1]: must be a path other than secret_id_file", "peer_secret_id_files[2]: must be a path other than"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
	cfg, _ = Parse(filepath.Join(dir, "b.hcl"), []byte(minimalConfig(recs)))
	c, err := buildConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !c.wrapSecretID || c.secretIDTTL != 720*time.Hour || c.secretIDWrapTTL != 24*time.Hour {
		t.Errorf("defaults: wrapped %v, secret_id_ttl %s, wrap ttl %s; want wrapped, 720h, 24h", c.wrapSecretID, c.secretIDTTL, c.secretIDWrapTTL)
	}
	policy := renderPolicy(c)
	for _, want := range []string{`path "auth/approle/role/spire-server/secret-id" {`, `min_wrapping_ttl   = "1s"`, `"metadata" = []`, `path "auth/approle/role/spire-server/secret-id/destroy"`} {
		if !strings.Contains(policy, want) {
			t.Errorf("policy lacks %q", want)
		}
	}
}
