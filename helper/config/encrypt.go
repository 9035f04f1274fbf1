package config

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/edgeid/edgeid/helper/kafkaconf"
	"github.com/edgeid/edgeid/helper/kafkagw"
	"github.com/edgeid/edgeid/internal/vaultconn"
)

// encryptBlock is the encrypt block of a kafka_gateway: record encryption
// of the topics it names, with data keys from Vault Transit, logged in
// with the helper's SVID (helper/kafkagw README, "Record encryption").
type encryptBlock struct {
	spans
	Topics        []string             `hcl:"topics"`
	KeyRing       string               `hcl:"key_ring"`
	KeyRings      []kafkaconf.Property `hcl:"key_rings"`
	VaultAddress  string               `hcl:"vault_address"`
	VaultCAFile   string               `hcl:"vault_ca_file"`
	VaultTimeout  *time.Duration       `hcl:"vault_timeout"`
	CertAuthMount string               `hcl:"cert_auth_mount"`
	CertRole      string               `hcl:"cert_role"`
	TransitMount  string               `hcl:"transit_mount"`
	RecordsPerKey *int64               `hcl:"records_per_key"`
	KeyMaxAge     *time.Duration       `hcl:"key_max_age"`
	OutageGrace   *bool                `hcl:"outage_grace"`
	OutageRecords *int64               `hcl:"outage_records"`
	OutageMaxAge  *time.Duration       `hcl:"outage_max_age"`
	Undecryptable string               `hcl:"undecryptable"`
	QuarantineDir string               `hcl:"quarantine_dir"`
	Plaintext     string               `hcl:"plaintext"`
	// SealedCompression: "none" or "producer" (kafkagw.SealedUncompressed,
	// kafkagw.SealedAsProduced).
	SealedCompression string `hcl:"sealed_compression"`
}

// Defaults of the encrypt block.
const (
	DefaultRecordsPerKey = 1 << 20
	DefaultKeyMaxAge     = time.Hour
	DefaultOutageRecords = 1 << 24
	DefaultOutageMaxAge  = 24 * time.Hour
	maxKeyUses           = 1 << 32 // records one data key may seal (recordcrypt's bound)
)

var (
	topicPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+\*?$`)
	ringPattern  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	mountPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)
)

// encrypt checks the encrypt block of gateway where and builds its
// kafkagw.EncryptConfig, defaults applied.
func (v *validator) encrypt(b *encryptBlock, where string) *kafkagw.EncryptConfig {
	if b == nil {
		return nil
	}
	where += ": encrypt"
	ec := &kafkagw.EncryptConfig{
		Topics: b.Topics, KeyRing: b.KeyRing, CertRole: b.CertRole,
		CertAuthMount: cmpOr(b.CertAuthMount, "cert"), TransitMount: cmpOr(b.TransitMount, "transit"),
		Vault:         vaultconn.Config{Address: b.VaultAddress, CACertFile: b.VaultCAFile, Timeout: kafkagw.DefaultVaultTimeout},
		RecordsPerKey: DefaultRecordsPerKey, KeyMaxAge: DefaultKeyMaxAge,
		OutageRecords: DefaultOutageRecords, OutageMaxAge: DefaultOutageMaxAge,
		Undecryptable:     cmpOr(b.Undecryptable, kafkagw.UndecryptableQuarantine),
		Plaintext:         cmpOr(b.Plaintext, kafkagw.PlaintextAllow),
		QuarantineDir:     b.QuarantineDir,
		SealedCompression: cmpOr(b.SealedCompression, kafkagw.SealedUncompressed),
	}
	v.encryptTopics(b, where)
	ec.KeyRings = v.encryptRings(b, where)
	v.encryptVault(b, ec, where)
	v.encryptBounds(b, ec, where)
	switch ec.Undecryptable {
	case kafkagw.UndecryptableQuarantine, kafkagw.UndecryptablePass:
	default:
		v.errorf(b.at("undecryptable"), "%s: \"undecryptable\" %q is not %q or %q", where, ec.Undecryptable, kafkagw.UndecryptableQuarantine, kafkagw.UndecryptablePass)
	}
	switch ec.Plaintext {
	case kafkagw.PlaintextAllow, kafkagw.PlaintextQuarantine:
	default:
		v.errorf(b.at("plaintext"), "%s: \"plaintext\" %q is not %q or %q", where, ec.Plaintext, kafkagw.PlaintextAllow, kafkagw.PlaintextQuarantine)
	}
	switch ec.SealedCompression {
	case kafkagw.SealedUncompressed, kafkagw.SealedAsProduced:
	default:
		v.errorf(b.at("sealed_compression"), "%s: \"sealed_compression\" %q is not %q or %q", where, ec.SealedCompression, kafkagw.SealedUncompressed, kafkagw.SealedAsProduced)
	}
	quarantines := ec.Undecryptable == kafkagw.UndecryptableQuarantine || ec.Plaintext == kafkagw.PlaintextQuarantine
	if quarantines && ec.QuarantineDir == "" {
		v.errorf(b.at("undecryptable", "plaintext"), "%s: \"quarantine_dir\" is required: records are quarantined (\"undecryptable\" = %q, \"plaintext\" = %q)", where, ec.Undecryptable, ec.Plaintext)
	}
	return ec
}

func (v *validator) encryptTopics(b *encryptBlock, where string) {
	if len(b.Topics) == 0 {
		v.errorf(b.at("topics"), "%s: \"topics\" is required (topic names, or prefixes written \"site-a.*\")", where)
	}
	for _, t := range b.Topics {
		if !topicPattern.MatchString(t) {
			v.errorf(b.at("topics"), "%s: \"topics\": %q is neither a topic name nor a prefix ending in \"*\" (letters, digits, \".\", \"_\", \"-\")", where, t)
		}
	}
	if b.KeyRing != "" && !ringPattern.MatchString(b.KeyRing) {
		v.errorf(b.at("key_ring"), "%s: \"key_ring\" %q is not a Transit key name (1-128 of letters, digits, \".\", \"_\", \"-\")", where, b.KeyRing)
	}
}

// encryptRings checks key_rings (entries of topics to Transit keys) and
// that every topic gets exactly one ring: a prefix needs key_ring or an
// entry, and overlapping entries must resolve to the same ring.
func (v *validator) encryptRings(b *encryptBlock, where string) map[string]string {
	var rings map[string]string
	for _, p := range b.KeyRings {
		switch _, dup := rings[p.Key]; {
		case !slices.Contains(b.Topics, p.Key):
			v.errorf(b.at("key_rings"), "%s: \"key_rings\": %q is not an entry of \"topics\"", where, p.Key)
		case dup:
			v.errorf(b.at("key_rings"), "%s: \"key_rings\": %q is given twice", where, p.Key)
		case !ringPattern.MatchString(p.Value):
			v.errorf(b.at("key_rings"), "%s: \"key_rings\": %q = %q is not a Transit key name (1-128 of letters, digits, \".\", \"_\", \"-\")", where, p.Key, p.Value)
		}
		if rings == nil {
			rings = map[string]string{}
		}
		rings[p.Key] = p.Value
	}
	ringOf := func(t string) string { return cmpOr(rings[t], b.KeyRing) }
	for i, t := range b.Topics {
		if strings.HasSuffix(t, "*") && ringOf(t) == "" {
			v.errorf(b.at("key_rings", "key_ring", "topics"), "%s: the prefix %q needs a key ring (\"key_ring\", or \"key_rings\" = { %q = \"<ring>\" }): each topic would otherwise need its own Transit key", where, t, t)
		}
		for _, u := range b.Topics[:i] {
			if overlaps(t, u) && ringOf(t) != ringOf(u) {
				v.errorf(b.at("key_rings", "topics"), "%s: \"topics\": %q overlaps %q but their key rings differ; a topic must have one key ring", where, t, u)
			}
		}
	}
	return rings
}

// overlaps reports whether some topic matches both entries of topics.
func overlaps(p, q string) bool {
	match := func(p, topic string) bool {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			return strings.HasPrefix(topic, prefix)
		}
		return p == topic
	}
	return match(p, strings.TrimSuffix(q, "*")) || match(q, strings.TrimSuffix(p, "*"))
}

func (v *validator) encryptVault(b *encryptBlock, ec *kafkagw.EncryptConfig, where string) {
	if b.VaultAddress == "" {
		v.errorf(b.at("vault_address"), "%s: \"vault_address\" is required (https://host:port)", where)
	} else if u, err := url.Parse(b.VaultAddress); err != nil || u.Scheme != "https" || u.Host == "" {
		v.errorf(b.at("vault_address"), "%s: \"vault_address\" %q must be an https:// URL: the SVID logs in over TLS", where, b.VaultAddress)
	}
	if b.VaultTimeout != nil {
		if *b.VaultTimeout <= 0 {
			v.errorf(b.at("vault_timeout"), "%s: \"vault_timeout\" must be positive", where)
		}
		ec.Vault.Timeout = *b.VaultTimeout
	}
	for key, m := range map[string]string{"cert_auth_mount": ec.CertAuthMount, "transit_mount": ec.TransitMount} {
		if !mountPattern.MatchString(m) {
			v.errorf(b.at(key), "%s: %q %q is not a Vault mount path", where, key, m)
		}
	}
}

func (v *validator) encryptBounds(b *encryptBlock, ec *kafkagw.EncryptConfig, where string) {
	if b.RecordsPerKey != nil {
		if *b.RecordsPerKey <= 0 {
			v.errorf(b.at("records_per_key"), "%s: \"records_per_key\" must be positive", where)
		} else {
			ec.RecordsPerKey = uint64(*b.RecordsPerKey)
		}
	}
	if b.KeyMaxAge != nil {
		if *b.KeyMaxAge <= 0 {
			v.errorf(b.at("key_max_age"), "%s: \"key_max_age\" must be positive", where)
		}
		ec.KeyMaxAge = *b.KeyMaxAge
	}
	if b.OutageGrace != nil && !*b.OutageGrace {
		ec.NoOutageGrace, ec.OutageRecords, ec.OutageMaxAge = true, 0, 0
		if b.has("outage_records") || b.has("outage_max_age") {
			v.errorf(b.at("outage_records", "outage_max_age"), "%s: \"outage_records\" and \"outage_max_age\" extend the outage grace, which \"outage_grace\" = false turns off", where)
		}
	}
	if b.OutageRecords != nil && !ec.NoOutageGrace {
		if *b.OutageRecords <= 0 {
			v.errorf(b.at("outage_records"), "%s: \"outage_records\" must be positive (set \"outage_grace\" = false for none)", where)
		} else {
			ec.OutageRecords = uint64(*b.OutageRecords)
		}
	}
	if b.OutageMaxAge != nil && !ec.NoOutageGrace {
		if *b.OutageMaxAge <= 0 {
			v.errorf(b.at("outage_max_age"), "%s: \"outage_max_age\" must be positive (set \"outage_grace\" = false for none)", where)
		}
		ec.OutageMaxAge = *b.OutageMaxAge
	}
	if ec.RecordsPerKey+ec.OutageRecords > maxKeyUses {
		v.errorf(b.at("records_per_key", "outage_records"), "%s: \"records_per_key\" + \"outage_records\" = %d exceeds %d, the AES-GCM bound for random nonces under one key",
			where, ec.RecordsPerKey+ec.OutageRecords, uint64(maxKeyUses))
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
