package config

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw"
)

func encryptConf(body string) string {
	return minimal + `spiffe_id = "spiffe://example.org/edge/site-a/cam"
kafka_gateway "uplink" {
  upstreams = ["localhost:9094"]
  encrypt {
` + body + `
  }
}
`
}

// TestEncryptBlock: the block becomes the gateway's EncryptConfig with
// every default applied, and each key set overrides its default.
func TestEncryptBlock(t *testing.T) {
	c, _, err := parse(t, encryptConf(`topics = ["site-a.detections", "site-a.*"]
key_ring = "site-a"
vault_address = "https://127.0.0.1:8200"
quarantine_dir = "/var/lib/edgeid/quarantine"`))
	if err != nil {
		t.Fatal(err)
	}
	ec := c.KafkaGateways[0].Encrypt
	if ec == nil || len(ec.Topics) != 2 || ec.KeyRing != "site-a" || ec.Vault.Address != "https://127.0.0.1:8200" ||
		ec.Vault.Timeout != kafkagw.DefaultVaultTimeout || ec.CertAuthMount != "cert" || ec.TransitMount != "transit" || ec.CertRole != "" ||
		ec.RecordsPerKey != 1<<20 || ec.KeyMaxAge != time.Hour || ec.OutageRecords != 1<<24 || ec.OutageMaxAge != 24*time.Hour ||
		ec.NoOutageGrace || ec.Undecryptable != "quarantine" || ec.Plaintext != "allow" || ec.QuarantineDir != "/var/lib/edgeid/quarantine" ||
		ec.SealedCompression != "none" {
		t.Fatalf("defaults: %+v", ec)
	}
	c, _, err = parse(t, encryptConf(`topics = ["site-a.detections"]
vault_address = "https://vault:8200"
vault_ca_file = "/etc/edgeid/vault-ca.pem"
vault_timeout = "3s"
cert_auth_mount = "spiffe-cert"
cert_role = "cam"
transit_mount = "kafka/transit"
records_per_key = 1000
key_max_age = "10m"
outage_grace = false
undecryptable = "pass"
plaintext = "allow"
sealed_compression = "producer"`))
	if err != nil {
		t.Fatal(err)
	}
	ec = c.KafkaGateways[0].Encrypt
	if ec.KeyRing != "" || ec.Vault.CACertFile != "/etc/edgeid/vault-ca.pem" || ec.Vault.Timeout != 3*time.Second || ec.CertAuthMount != "spiffe-cert" ||
		ec.CertRole != "cam" || ec.TransitMount != "kafka/transit" || ec.RecordsPerKey != 1000 || ec.KeyMaxAge != 10*time.Minute ||
		!ec.NoOutageGrace || ec.OutageRecords != 0 || ec.Undecryptable != "pass" || ec.QuarantineDir != "" ||
		ec.SealedCompression != "producer" {
		t.Fatalf("set: %+v", ec)
	}
	c, _, err = parse(t, encryptConf(`topics = ["site-a.detections", "site-a.tracks.*", "site-b.*"]
key_ring = "site-b"
key_rings = { "site-a.detections" = "det", "site-a.tracks.*" = "tracks" }
vault_address = "https://vault:8200"
quarantine_dir = "/q"`))
	if err != nil {
		t.Fatal(err)
	}
	if ec = c.KafkaGateways[0].Encrypt; ec.KeyRing != "site-b" || len(ec.KeyRings) != 2 || ec.KeyRings["site-a.detections"] != "det" || ec.KeyRings["site-a.tracks.*"] != "tracks" {
		t.Fatalf("key_rings: %+v", ec)
	}
	if c, _, err = parse(t, gatewayConf); err != nil || c.KafkaGateways[0].Encrypt != nil {
		t.Fatalf("no encrypt block: %v", err)
	}
}

// TestEncryptBlockErrors: each problem at its key.
func TestEncryptBlockErrors(t *testing.T) {
	base := "vault_address = \"https://v:8200\"\nquarantine_dir = \"/q\"\n"
	for _, tc := range []struct{ name, body, want string }{
		{"no topics", base, `kafka_gateway "uplink": encrypt: "topics" is required`},
		{"bad topic", base + `topics = ["a*b"]`, `"topics": "a*b" is neither a topic name nor a prefix`},
		{"prefix without ring", base + `topics = ["site-a.*"]`, `helper.conf:11,1-7: kafka_gateway "uplink": encrypt: the prefix "site-a.*" needs a key ring ("key_ring", or "key_rings" = { "site-a.*" = "<ring>" })`},
		{"rings: unknown entry", base + "topics = [\"t\"]\nkey_rings = { \"u\" = \"r\" }", `helper.conf:12,1-10: kafka_gateway "uplink": encrypt: "key_rings": "u" is not an entry of "topics"`},
		{"rings: bad ring", base + "topics = [\"t\"]\nkey_rings = { \"t\" = \"a/b\" }", `"key_rings": "t" = "a/b" is not a Transit key name`},
		{"rings: twice", base + "topics = [\"t\"]\nkey_rings = { \"t\" = \"r\", \"t\" = \"s\" }", `"key_rings": "t" is given twice`},
		{"rings: overlap", base + "topics = [\"a.*\", \"a.b\"]\nkey_rings = { \"a.*\" = \"r\" }", `"topics": "a.b" overlaps "a.*" but their key rings differ`},
		{"rings: not a map", base + "topics = [\"t\"]\nkey_rings = \"r\"", `key_rings`},
		{"bad ring", base + "topics = [\"t\"]\nkey_ring = \"a/b\"", `helper.conf:12,1-9: kafka_gateway "uplink": encrypt: "key_ring" "a/b" is not a Transit key name`},
		{"no vault", "quarantine_dir = \"/q\"\ntopics = [\"t\"]", `"vault_address" is required`},
		{"plain http", "vault_address = \"http://v:8200\"\nquarantine_dir = \"/q\"\ntopics = [\"t\"]", `must be an https:// URL`},
		{"no quarantine dir", "vault_address = \"https://v:8200\"\ntopics = [\"t\"]", `"quarantine_dir" is required: records are quarantined ("undecryptable" = "quarantine"`},
		{"plaintext quarantined", "vault_address = \"https://v:8200\"\ntopics = [\"t\"]\nundecryptable = \"pass\"\nplaintext = \"quarantine\"", `"quarantine_dir" is required`},
		{"bad undecryptable", base + "topics = [\"t\"]\nundecryptable = \"drop\"", `"undecryptable" "drop" is not "quarantine" or "pass"`},
		{"bad sealed_compression", base + "topics = [\"t\"]\nsealed_compression = \"zstd\"", `"sealed_compression" "zstd" is not "none" or "producer"`},
		{"bad plaintext", base + "topics = [\"t\"]\nplaintext = \"deny\"", `"plaintext" "deny" is not "allow" or "quarantine"`},
		{"zero records", base + "topics = [\"t\"]\nrecords_per_key = 0", `"records_per_key" must be positive`},
		{"nonce bound", base + "topics = [\"t\"]\nrecords_per_key = 4294967296", `exceeds 4294967296`},
		{"grace off with bound", base + "topics = [\"t\"]\noutage_grace = false\noutage_records = 5", `which "outage_grace" = false turns off`},
		{"negative age", base + "topics = [\"t\"]\nkey_max_age = \"0s\"", `"key_max_age" must be positive`},
		{"bad mount", base + "topics = [\"t\"]\ntransit_mount = \"/x/\"", `"transit_mount" "/x/" is not a Vault mount path`},
		{"unknown key", base + "topics = [\"t\"]\nfields = [\"key\"]", `unknown key "fields"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parse(t, encryptConf(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestKafkaFilesOfSealingGateway: Kafka client files that point at a
// gateway with an encrypt block are rendered with sealed-batch limits;
// those of a gateway without one are not.
func TestKafkaFilesOfSealingGateway(t *testing.T) {
	kafka := "kafka {\n  librdkafka_file_name = \"kafka.properties\"\n}\n"
	c, _, err := parse(t, encryptConf(`topics = ["site-a.detections"]
vault_address = "https://127.0.0.1:8200"
undecryptable = "pass"`)+kafka)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Kafka.Plaintext || !c.Kafka.SealingGateway {
		t.Fatalf("kafka settings of a sealing gateway's client: %+v", c.Kafka.Settings)
	}
	c, _, err = parse(t, gatewayConf)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Kafka.Plaintext || c.Kafka.SealingGateway {
		t.Fatalf("without an encrypt block: %+v", c.Kafka.Settings)
	}
}
