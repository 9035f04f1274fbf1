package vaultboot

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const rcBase = `state_dir = "s"
trust_domain = "example.org"
vault {
  address = "https://127.0.0.1:8200"
}
init {
  secret_shares    = 1
  secret_threshold = 1
  insecure_plaintext_shares = true
}
`

func TestRecordEncryptionConfig(t *testing.T) {
	cfg, err := Parse("r.hcl", []byte(rcBase+`record_encryption {
  token_ttl = "10m"
  key_rings = ["site-a.detections", "site-b"]
  identity "spiffe://example.org/edge/site-a/cam" {
    produce = ["site-a.detections"]
  }
  identity "spiffe://example.org/cloud/analytics" {
    consume = ["site-a.detections", "site-b"]
  }
  identity "spiffe://example.org/ops/key-admin" {
    rewrap = ["site-b"]
  }
}
`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := buildConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rc := c.rc
	if !rc.on || rc.transitMount != "transit" || rc.certMount != "cert" || rc.tokenTTL != 10*time.Minute || !slices.Equal(rc.rings, []string{"site-a.detections", "site-b"}) {
		t.Fatalf("record encryption = %+v", rc)
	}
	if len(rc.roles) != 3 || rc.roles[0].name != "edgeid-rc-example-org.edge.site-a.cam" || rc.roles[1].name != "edgeid-rc-example-org.cloud.analytics" ||
		rc.roles[2].name != "edgeid-rc-example-org.ops.key-admin" {
		t.Fatalf("roles = %+v", rc.roles)
	}
	// The producer's policy: datakey only; the consumer's: decrypt only;
	// the key administrator's: rewrap only.
	prod, cons, admin := renderRecordPolicy(&rc, rc.roles[0]), renderRecordPolicy(&rc, rc.roles[1]), renderRecordPolicy(&rc, rc.roles[2])
	if !strings.HasPrefix(prod, recordPolicyMarker) || !strings.Contains(prod, `path "transit/datakey/plaintext/site-a.detections"`) || strings.Contains(prod, "decrypt/") {
		t.Errorf("producer policy:\n%s", prod)
	}
	if !strings.Contains(cons, `path "transit/decrypt/site-a.detections"`) || !strings.Contains(cons, `path "transit/decrypt/site-b"`) || strings.Contains(cons, "datakey") || strings.Contains(cons, "rewrap/") {
		t.Errorf("consumer policy:\n%s", cons)
	}
	if strings.Count(admin, "path ") != 1 || !strings.Contains(admin, `path "transit/rewrap/site-b"`) {
		t.Errorf("key administrator policy:\n%s", admin)
	}
}

func TestRecordEncryptionOffByDefault(t *testing.T) {
	cfg, err := Parse("r.hcl", []byte(rcBase))
	if err != nil {
		t.Fatal(err)
	}
	c, err := buildConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.rc.on || len(c.rc.roles) != 0 || c.rc.certMount != "cert" || c.rc.prefix != "edgeid-rc-example-org." {
		t.Fatalf("record encryption without the block = %+v", c.rc)
	}
}

func TestRecordCryptRoleName(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://example.org/edge/site-a/deepstream/cam-1")
	if got := RecordCryptRoleName(id); got != "edgeid-rc-example-org.edge.site-a.deepstream.cam-1" {
		t.Fatalf("RecordCryptRoleName = %q", got)
	}
}

// TestBadRecordEncryption: each problem names its key, at its line.
func TestBadRecordEncryption(t *testing.T) {
	tests := []struct {
		name, block, key string
		line             int
		msg              string
	}{
		{"bad ring", `  key_rings = ["a/b"]`, "record_encryption.key_rings[0]", 12, `"a/b" is not a Transit key name`},
		{"ring twice", `  key_rings = ["a", "a"]`, "record_encryption.key_rings[1]", 12, "listed twice"},
		{"bad ttl", `  token_ttl = "soon"`, "record_encryption.token_ttl", 12, `"soon" is not a duration`},
		{"bad mount", `  cert_auth_mount = "a b"`, "record_encryption.cert_auth_mount", 12, `"a b" is not a valid mount path`},
		{"transit on pki", `  transit_mount = "pki_int"`, "record_encryption.transit_mount", 12, "already mounted for the PKI or KV"},
		{"not an ID", "  identity \"cam\" {\n    produce = [\"a\"]\n  }", "record_encryption.identity[0]", 12, `"cam" is not a SPIFFE ID`},
		{"other trust domain", "  identity \"spiffe://other.org/x\" {\n    produce = [\"a\"]\n  }", "record_encryption.identity[0]", 12, `not in trust domain "example.org"`},
		{"uppercase path", "  key_rings = [\"a\"]\n  identity \"spiffe://example.org/Cam\" {\n    produce = [\"a\"]\n  }", "record_encryption.identity[0]", 13, "which Vault does not accept"},
		{"grants nothing", "  identity \"spiffe://example.org/x\" {\n  }", "record_encryption.identity[0]", 12, "grants nothing"},
		{"unknown ring", "  key_rings = [\"a\"]\n  identity \"spiffe://example.org/x\" {\n    consume = [\"a\", \"b\"]\n  }", "record_encryption.identity[0].consume[1]", 14, `"b" is not one of key_rings`},
		{"unknown rewrap ring", "  key_rings = [\"a\"]\n  identity \"spiffe://example.org/x\" {\n    rewrap = [\"b\"]\n  }", "record_encryption.identity[0].rewrap[0]", 14, `"b" is not one of key_rings`},
		{"same role name", "  key_rings = [\"a\"]\n  identity \"spiffe://example.org/a.b/c\" {\n    produce = [\"a\"]\n  }\n  identity \"spiffe://example.org/a/b.c\" {\n    produce = [\"a\"]\n  }", "record_encryption.identity[1]", 16, `has the same role name "edgeid-rc-example-org.a.b.c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("r.hcl", []byte(rcBase+"record_encryption {\n"+tt.block+"\n}\n"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = buildConfig(cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			for _, p := range ce.Problems {
				if p.Key == tt.key && strings.Contains(p.Message, tt.msg) && p.Range.Start.Line == tt.line {
					return
				}
			}
			t.Fatalf("no problem %s at line %d containing %q: %v", tt.key, tt.line, tt.msg, ce.Problems)
		})
	}
	cfg, err := Parse("r.hcl", []byte(strings.Replace(rcBase, "trust_domain = \"example.org\"\n", "", 1)+"record_encryption {\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := buildConfig(cfg); err == nil || !strings.Contains(err.Error(), "record_encryption: needs trust_domain") {
		t.Fatalf("without trust_domain: %v", err)
	}
}
