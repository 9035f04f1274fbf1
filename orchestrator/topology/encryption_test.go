package topology

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// encBase is base with a kafka block holding the encryption block enc.
func encBase(enc string) string {
	return base + "kafka {\n  encryption {\n" + enc + "  }\n}\n"
}

func TestEncryptionOffByDefault(t *testing.T) {
	top, err := Parse([]byte(base), "top.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if top.Kafka.Encryption != nil {
		t.Fatalf("encryption = %+v without an encryption block", top.Kafka.Encryption)
	}
	var e *Encryption
	if _, ok := e.Match("x"); ok {
		t.Fatal("a nil Encryption matched a topic")
	}
}

func TestEncryptionParsed(t *testing.T) {
	src := encBase(`    topics    = ["site-a.detections", "site-b.*", "alerts"]
    key_rings = { "site-b.*" = "site-b", "alerts" = "alerts-ring" }
    undecryptable = "pass"
    plaintext = "quarantine"
    transit_mount = "rc-transit/"
    token_ttl = "10m"
    consumers = ["spiffe://example.org/cloud/analytics"]
    rewrappers = ["spiffe://example.org/ops/key-admin"]
`)
	top, err := Parse([]byte(src), "top.hcl")
	if err != nil {
		t.Fatal(err)
	}
	e := top.Kafka.Encryption
	want := []EncryptedTopic{{"site-a.detections", "site-a.detections"}, {"site-b.*", "site-b"}, {"alerts", "alerts-ring"}}
	if !slices.Equal(e.Topics, want) {
		t.Errorf("topics = %+v, want %+v", e.Topics, want)
	}
	if e.Undecryptable != "pass" || e.Plaintext != "quarantine" || e.TransitMount != "rc-transit" || e.CertAuthMount != "cert" || e.TokenTTL != 10*time.Minute {
		t.Errorf("encryption = %+v", e)
	}
	if !slices.Equal(e.Consumers, []string{"spiffe://example.org/cloud/analytics"}) {
		t.Errorf("consumers = %v", e.Consumers)
	}
	if !slices.Equal(e.Rewrappers, []string{"spiffe://example.org/ops/key-admin"}) {
		t.Errorf("rewrappers = %v", e.Rewrappers)
	}
	if got := e.Rings(); !slices.Equal(got, []string{"alerts-ring", "site-a.detections", "site-b"}) {
		t.Errorf("rings = %v", got)
	}
	for topic, ring := range map[string]string{"site-b.tracks": "site-b", "site-a.detections": "site-a.detections", "site-a.detections2": "", "alerts": "alerts-ring"} {
		got, ok := e.Match(topic)
		if ok != (ring != "") || got.Ring != ring {
			t.Errorf("Match(%q) = %+v, %v; want ring %q", topic, got, ok, ring)
		}
	}
}

func TestEncryptionDefaults(t *testing.T) {
	top, err := Parse([]byte(encBase("    topics = [\"t\"]\n")), "top.hcl")
	if err != nil {
		t.Fatal(err)
	}
	e := top.Kafka.Encryption
	if e.Undecryptable != "quarantine" || e.Plaintext != "allow" || e.TransitMount != "transit" || e.CertAuthMount != "cert" || e.TokenTTL != DefaultEncryptionTokenTTL {
		t.Errorf("defaults = %+v", e)
	}
}

func TestBadEncryption(t *testing.T) {
	long := strings.Repeat("a", 129)
	tests := []struct {
		name, src string
		want      []string
	}{
		{"topics missing", encBase("    plaintext = \"allow\"\n"), []string{"top.hcl:15,14", `The argument "topics" is required`}},
		{"topics empty", encBase("    topics = []\n"), []string{"top.hcl:16,5", "kafka.encryption.topics: empty"}},
		{"unknown key", encBase("    topics = [\"t\"]\n    key_ring = \"r\"\n"), []string{"top.hcl:17,5", `An argument named "key_ring" is not expected here`}},
		{"bad topic", encBase("    topics = [\"site a\"]\n"), []string{"top.hcl:16,5", `"site a" is neither a topic name nor a prefix`}},
		{"star alone", encBase("    topics = [\"*\"]\n"), []string{`"*" is neither a topic name nor a prefix`}},
		{"star inside", encBase("    topics = [\"a*b\"]\n"), []string{`"a*b" is neither`}},
		{"duplicate", encBase("    topics = [\"t\", \"t\"]\n"), []string{`"t" overlaps "t"`}},
		{"prefix overlaps name", encBase("    topics = [\"site-a.x\", \"site-a.*\"]\n    key_rings = { \"site-a.*\" = \"a\" }\n"), []string{`"site-a.*" overlaps "site-a.x"`}},
		{"prefix overlaps prefix", encBase("    topics = [\"site-*\", \"site-a.*\"]\n    key_rings = { \"site-*\" = \"s\", \"site-a.*\" = \"a\" }\n"), []string{`"site-a.*" overlaps "site-*"`}},
		{"prefix without ring", encBase("    topics = [\"site-a.*\"]\n"), []string{"top.hcl:16,5", `the prefix "site-a.*" needs a key ring`}},
		{"long name without ring", encBase("    topics = [\"" + long + "\"]\n"), []string{"is too long to name its own key ring"}},
		{"bad ring", encBase("    topics = [\"t\"]\n    key_rings = { \"t\" = \"a/b\" }\n"), []string{"top.hcl:17,5", `"a/b" is not a Transit key name`}},
		{"ring for no topic", encBase("    topics = [\"t\"]\n    key_rings = { \"u\" = \"r\" }\n"), []string{"top.hcl:17,5", `key_rings: "u" is not an entry of topics`}},
		{"bad undecryptable", encBase("    topics = [\"t\"]\n    undecryptable = \"drop\"\n"), []string{"top.hcl:17,5", `undecryptable: "drop" is not one of quarantine, pass`}},
		{"bad plaintext", encBase("    topics = [\"t\"]\n    plaintext = \"deny\"\n"), []string{"top.hcl:17,5", `plaintext: "deny" is not one of allow, quarantine`}},
		{"bad transit mount", encBase("    topics = [\"t\"]\n    transit_mount = \"a b\"\n"), []string{"top.hcl:17,5", `transit_mount: "a b" is not a Vault mount path`}},
		{"transit on the pki mount", encBase("    topics = [\"t\"]\n    transit_mount = \"pki_int\"\n"), []string{"top.hcl:17,5", `transit_mount: "pki_int" is already vault.pki_int_mount`}},
		{"bad cert mount", encBase("    topics = [\"t\"]\n    cert_auth_mount = \"\\u00e9\"\n"), []string{"top.hcl:17,5", "cert_auth_mount"}},
		{"token ttl too long", encBase("    topics = [\"t\"]\n    token_ttl = \"48h\"\n"), []string{"top.hcl:17,5", "token_ttl: 48h0m0s is out of range (1m0s..24h0m0s)"}},
		{"token ttl not a duration", encBase("    topics = [\"t\"]\n    token_ttl = \"soon\"\n"), []string{"top.hcl:17,5", `token_ttl: "soon" is not a positive duration`}},
		{"consumer not an ID", encBase("    topics = [\"t\"]\n    consumers = [\"analytics\"]\n"), []string{"top.hcl:17,5", `consumers: "analytics"`}},
		{"consumer of another trust domain", encBase("    topics = [\"t\"]\n    consumers = [\"spiffe://other.org/cloud/a\"]\n"), []string{`"spiffe://other.org/cloud/a" is not in trust domain "example.org"`}},
		{"consumer path", encBase("    topics = [\"t\"]\n    consumers = [\"spiffe://example.org/cloud/A_b\"]\n"), []string{"path segments must be lowercase letters"}},
		{"rewrapper not an ID", encBase("    topics = [\"t\"]\n    rewrappers = [\"ops\"]\n"), []string{"top.hcl:17,5", `rewrappers: "ops"`}},
		{"rewrapper of another trust domain", encBase("    topics = [\"t\"]\n    rewrappers = [\"spiffe://other.org/ops\"]\n"), []string{`kafka.encryption.rewrappers: "spiffe://other.org/ops" is not in trust domain "example.org"`}},
		{"external kafka", base + "kafka {\n  mode = \"external\"\n  brokers = [\"k:9093\"]\n  encryption {\n    topics = [\"t\"]\n  }\n}\n", []string{"top.hcl:17,3", `kafka.encryption: needs kafka mode "demo"`}},
		{"external vault over http", base + "vault {\n  mode = \"external\"\n  address = \"http://v:8200\"\n  role_id_file = \"r\"\n  secret_id_file = \"s\"\n}\n" + "kafka {\n  encryption {\n    topics = [\"t\"]\n  }\n}\n", []string{`vault.address "http://v:8200" must be https://`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top, err := Parse([]byte(tt.src), "top.hcl")
			if err == nil {
				t.Fatalf("accepted: %+v", top.Kafka.Encryption)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}
