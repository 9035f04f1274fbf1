package vaultboot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func testRecipients(t *testing.T, n int) ([]string, []*age.X25519Identity) {
	t.Helper()
	var recs []string
	var ids []*age.X25519Identity
	for i := 0; i < n; i++ {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		recs = append(recs, id.Recipient().String())
	}
	return recs, ids
}

func minimalConfig(recipients []string) string {
	return `state_dir = "state"
vault {
  address = "http://127.0.0.1:8200"
}
init {
  secret_shares    = 3
  secret_threshold = 2
  age_recipients   = ["` + strings.Join(recipients, `", "`) + `"]
}
`
}

func TestParseAndBuildDefaults(t *testing.T) {
	recs, _ := testRecipients(t, 3)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "bootstrap.hcl")
	if err := os.WriteFile(cfgPath, []byte(minimalConfig(recs)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := buildConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"state_dir is resolved against the config's directory", c.stateDir, filepath.Join(dir, "state")},
		{"shares dir", c.sharesDir, filepath.Join(dir, "state", "unseal")},
		{"encryption", c.encryption, encAge},
		{"per-share recipients", c.agePerShare, true},
		{"root mount", c.root.path, "pki"},
		{"root key type", c.root.keyType, "ec"},
		{"root key bits", c.root.keyBits, 256},
		{"root ttl", c.root.ttl, 87600 * time.Hour},
		{"int mount", c.int.path, "pki_int"},
		{"int ttl", c.int.ttl, 43800 * time.Hour},
		{"root issuing URL", strings.Join(c.root.issuingURLs, ","), "http://127.0.0.1:8200/v1/pki/ca"},
		{"int CRL URL", strings.Join(c.int.crlURLs, ","), "http://127.0.0.1:8200/v1/pki_int/crl"},
		{"policy", c.policyName, "edgeid-spire-upstream"},
		{"kv mount", c.kvMount, "secret"},
		{"role", c.roleName, "spire-server"},
		{"role_id file", c.roleIDFile, filepath.Join(dir, "state", "approle", "role_id")},
		{"secret_id file", c.secretIDFile, filepath.Join(dir, "state", "approle", "secret_id")},
		{"token ttl", c.tokenTTL, 30 * time.Minute},
		{"token max ttl", c.tokenMaxTTL, 2 * time.Hour},
		{"audit on", c.auditEnabled, true},
		{"audit path", c.auditPath, "file"},
		{"sweep root tokens", c.sweep, true},
		{"wait timeout", c.waitTimeout, 2 * time.Minute},
		{"no TLS block", c.tls == nil, true},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseRejectsUnknownKeysWithLine(t *testing.T) {
	recs, _ := testRecipients(t, 3)
	text := minimalConfig(recs) + "pki_root {\n  comon_name = \"x\"\n}\n"
	_, err := Parse("conf/bootstrap.hcl", []byte(text))
	if err == nil {
		t.Fatal("want an error for an unknown key")
	}
	// The misspelt key is on line 11 of the file.
	for _, want := range []string{"conf/bootstrap.hcl:11,", `"comon_name" is not expected`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"syntax", "state_dir = \n", []string{"parse config", "f.hcl:1"}},
		{"unknown block", "state_dir = \"s\"\nvault {\n address = \"http://a\"\n}\nvalut {\n}\n", []string{"f.hcl:5,", "Unsupported block type"}},
		{"wrong type", "state_dir = \"s\"\nvault {\n address = \"http://a\"\n}\ninit {\n secret_shares = \"five\"\n}\n", []string{"f.hcl:6,", "Unsuitable value type"}},
		{"missing required", "vault {\n address = \"http://a\"\n}\n", []string{"state_dir", "required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.hcl", []byte(tt.text))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestBuildConfigReportsEveryProblem(t *testing.T) {
	text := `state_dir = "s"
vault {
  address      = "127.0.0.1:8200"
  wait_timeout = "soon"
}
init {
  secret_shares    = 3
  secret_threshold = 5
  age_recipients   = ["not-a-recipient"]
  insecure_plaintext_shares = true
}
pki_root {
  key_type = "dsa"
  mode     = "offline"
}
pki_intermediate {
  path     = "pki"
  ttl      = "100000h"
  key_type = "ec"
  key_bits = 128
}
spire_upstream {
  token_ttl     = "3h"
  token_max_ttl = "1h"
  bound_cidrs   = ["10.0.0.0/33"]
  policy_name   = "root"
}
audit {
  file_path = "relative/audit.log"
}
vault_tls {
  common_name = "vault example"
  ip_sans     = ["not-an-ip"]
}
`
	cfg, err := Parse("b.hcl", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	_, err = buildConfig(cfg)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{
		"b.hcl: vault.address:",
		"b.hcl: vault.wait_timeout:",
		"b.hcl: init.secret_threshold:",
		"b.hcl: init: set exactly one of",
		"b.hcl: init.age_recipients[0]:",
		"b.hcl: init.age_recipients: per_share mode needs one recipient per share",
		"b.hcl: pki_root.key_type:",
		"b.hcl: pki_root.mode:",
		"b.hcl: pki_intermediate.path: must differ",
		"b.hcl: pki_intermediate.key_bits:",
		"b.hcl: pki_intermediate.ttl:",
		"b.hcl: spire_upstream.token_ttl:",
		"b.hcl: spire_upstream.bound_cidrs[0]:",
		"b.hcl: spire_upstream.policy_name:",
		"b.hcl: audit.file_path:",
		"b.hcl: vault_tls.common_name:",
		"b.hcl: vault_tls.ip_sans[0]:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q\nerror: %v", want, err)
		}
	}
}

func TestBuildConfigEncryptionModes(t *testing.T) {
	recs, _ := testRecipients(t, 2)
	tests := []struct {
		name    string
		init    string
		want    shareEncryption
		wantErr string
	}{
		{"plaintext", "insecure_plaintext_shares = true", encPlaintext, ""},
		{"age all", `age_recipients = ["` + recs[0] + `"]` + "\nage_recipient_mode = \"all\"", encAge, ""},
		{"age per share count", `age_recipients = ["` + recs[0] + `", "` + recs[1] + `"]`, "", "one recipient per share: 2 recipients for 3 shares"},
		{"pgp count", `pgp_key_files = ["a.asc"]`, "", "one PGP key per share: 1 keys for 3 shares"},
		{"none", "", "", "set exactly one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "state_dir = \"s\"\nvault {\n address = \"http://127.0.0.1:1\"\n}\ninit {\n secret_shares = 3\n secret_threshold = 2\n" + tt.init + "\n}\n"
			cfg, err := Parse("c.hcl", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			c, err := buildConfig(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.encryption != tt.want {
				t.Fatalf("encryption %q, want %q", c.encryption, tt.want)
			}
		})
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	path := filepath.Join("..", "..", "conf", "bootstrap.hcl")
	cfg, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := buildConfig(cfg); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyText(t *testing.T) {
	recs, _ := testRecipients(t, 3)
	text := minimalConfig(recs) + "pki_intermediate {\n  path = \"edge_int\"\n}\nspire_upstream {\n  kv_mount = \"kv2\"\n}\n"
	cfg, err := Parse("p.hcl", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := PolicyText(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`path "edge_int/root/sign-intermediate" {` + "\n  capabilities = [\"update\"]",
		`path "edge_int/issuers" {` + "\n  capabilities = [\"list\"]",
		`path "edge_int/issuer/+/json" {` + "\n  capabilities = [\"read\"]",
		`path "kv2/data/edgeid/+/jwt-authorities" {` + "\n  capabilities = [\"create\", \"update\", \"read\"]",
		`path "kv2/metadata/edgeid/+/jwt-authorities" {` + "\n  capabilities = [\"read\"]",
		`path "sys/capabilities-self" {` + "\n  capabilities = [\"update\"]",
	} {
		if !strings.Contains(policy, want) {
			t.Errorf("policy lacks %q", want)
		}
	}
	// Nothing on the root mount, no sudo, no wildcard paths, no deletes.
	for _, bad := range []string{`"pki/`, "sudo", "*", "delete", "create\", \"update\", \"read\", \"list"} {
		if strings.Contains(policy, bad) {
			t.Errorf("policy contains %q:\n%s", bad, policy)
		}
	}
}
