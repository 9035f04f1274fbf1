package topology

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults and bounds of kafka.encryption.
const (
	DefaultEncryptionTokenTTL = 15 * time.Minute
	minEncryptionTokenTTL     = time.Minute
	maxEncryptionTokenTTL     = 24 * time.Hour
)

// Encryption is the validated kafka.encryption block: record encryption by
// the edge gateways, with one Vault Transit key ring per topic or prefix.
type Encryption struct {
	// Topics are the encrypted topics and prefixes, in file order; no
	// two of them overlap, so a topic has at most one ring.
	Topics        []EncryptedTopic
	Undecryptable string
	Plaintext     string
	TransitMount  string
	CertAuthMount string
	TokenTTL      time.Duration
	// Consumers are cloud SPIFFE IDs allowed to decrypt every ring.
	Consumers []string
	// Rewrappers are SPIFFE IDs allowed to have Vault re-wrap the data
	// keys of every ring.
	Rewrappers []string
}

// EncryptedTopic is one entry of kafka.encryption.topics.
type EncryptedTopic struct {
	// Pattern is as written: a topic name, or a prefix ending in "*".
	Pattern string
	// Ring is the Transit key ring of the topics it matches.
	Ring string
}

// Prefix reports whether the entry is a prefix ("site-a.*").
func (t EncryptedTopic) Prefix() bool { return strings.HasSuffix(t.Pattern, "*") }

// Matches reports whether topic is encrypted by this entry.
func (t EncryptedTopic) Matches(topic string) bool {
	if p, ok := strings.CutSuffix(t.Pattern, "*"); ok {
		return strings.HasPrefix(topic, p)
	}
	return topic == t.Pattern
}

// Match returns the entry that encrypts topic, if any.
func (e *Encryption) Match(topic string) (EncryptedTopic, bool) {
	if e == nil {
		return EncryptedTopic{}, false
	}
	for _, t := range e.Topics {
		if t.Matches(topic) {
			return t, true
		}
	}
	return EncryptedTopic{}, false
}

// Rings are the key rings, sorted and without repeats.
func (e *Encryption) Rings() []string {
	var out []string
	for _, t := range e.Topics {
		out = append(out, t.Ring)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

var (
	// topicPattern is a Kafka topic name (at most 249 of letters, digits,
	// '.', '_', '-') or a non-empty prefix of one followed by '*'.
	topicPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}\*?$`)
	// ringPattern is a Transit key name the helper and Vault accept.
	ringPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
)

// encryption validates kafka.encryption against the validated kafka and
// vault blocks and the trust domain.
func (v *validator) encryption(eb *EncryptionBlock, k Kafka, top *Topology) *Encryption {
	e := &Encryption{
		Undecryptable: orDefault(eb.Undecryptable, "quarantine"),
		Plaintext:     orDefault(eb.Plaintext, "allow"),
		TransitMount:  strings.Trim(orDefault(eb.TransitMount, "transit"), "/"),
		CertAuthMount: strings.Trim(orDefault(eb.CertAuthMount, "cert"), "/"),
		TokenTTL:      v.duration(eb.TokenTTL, DefaultEncryptionTokenTTL, eb.TokenTTLRange, "kafka.encryption.token_ttl"),
	}
	if !k.Demo {
		v.errorf(eb.DefRange, "kafka.encryption: needs kafka mode \"demo\": records are sealed by the edge gateways, which only the demo's cloud gateway gives the pipelines")
	}
	if !top.Vault.Managed && !strings.HasPrefix(top.Vault.Address, "https://") {
		v.errorf(eb.DefRange, "kafka.encryption: vault.address %q must be https://: the gateways log in to Vault with their SVIDs over TLS", top.Vault.Address)
	}
	v.encryptedTopics(eb, e)
	if e.Undecryptable != "quarantine" && e.Undecryptable != "pass" {
		v.errorf(eb.UndecryptableRange, "kafka.encryption.undecryptable: %q is not one of quarantine, pass", eb.Undecryptable)
	}
	if e.Plaintext != "allow" && e.Plaintext != "quarantine" {
		v.errorf(eb.PlaintextRange, "kafka.encryption.plaintext: %q is not one of allow, quarantine", eb.Plaintext)
	}
	v.encryptionMounts(eb, e, top.Vault)
	if e.TokenTTL < minEncryptionTokenTTL || e.TokenTTL > maxEncryptionTokenTTL {
		v.errorf(eb.TokenTTLRange, "kafka.encryption.token_ttl: %s is out of range (%s..%s)", e.TokenTTL, minEncryptionTokenTTL, maxEncryptionTokenTTL)
	}
	for _, id := range eb.Consumers {
		v.encryptionIdentity(rangeOr(eb.ConsumersRange, eb.DefRange), "consumers", id, top.TrustDomain)
		e.Consumers = append(e.Consumers, id)
	}
	for _, id := range eb.Rewrappers {
		v.encryptionIdentity(rangeOr(eb.RewrappersRange, eb.DefRange), "rewrappers", id, top.TrustDomain)
		e.Rewrappers = append(e.Rewrappers, id)
	}
	return e
}

// encryptedTopics validates topics and key_rings: valid names, no entry
// twice or overlapping another, a ring for every prefix.
func (v *validator) encryptedTopics(eb *EncryptionBlock, e *Encryption) {
	r := rangeOr(eb.TopicsRange, eb.DefRange)
	if len(eb.Topics) == 0 {
		v.errorf(r, "kafka.encryption.topics: empty; name the topics to encrypt (names, or prefixes written \"site-a.*\")")
	}
	for _, p := range eb.Topics {
		t := EncryptedTopic{Pattern: p, Ring: eb.KeyRings[p]}
		if !topicPattern.MatchString(p) {
			v.errorf(r, "kafka.encryption.topics: %q is neither a topic name nor a prefix ending in \"*\" (letters, digits, '.', '_', '-')", p)
			continue
		}
		for _, prev := range e.Topics {
			if prev.Matches(strings.TrimSuffix(p, "*")) || t.Matches(strings.TrimSuffix(prev.Pattern, "*")) {
				v.errorf(r, "kafka.encryption.topics: %q overlaps %q; a topic must have one key ring", p, prev.Pattern)
			}
		}
		switch {
		case t.Ring == "" && t.Prefix():
			v.errorf(rangeOr(eb.KeyRingsRange, r), "kafka.encryption.key_rings: the prefix %q needs a key ring (key_rings = { %q = \"<ring>\" })", p, p)
		case t.Ring == "" && !ringPattern.MatchString(p):
			v.errorf(rangeOr(eb.KeyRingsRange, r), "kafka.encryption.key_rings: the topic %q is too long to name its own key ring (128 characters at most); give it one", p)
		case t.Ring == "":
			t.Ring = p
		case !ringPattern.MatchString(t.Ring):
			v.errorf(eb.KeyRingsRange, "kafka.encryption.key_rings: %q is not a Transit key name (1-128 of letters, digits, '.', '_', '-')", t.Ring)
		}
		e.Topics = append(e.Topics, t)
	}
	for _, p := range slices.Sorted(maps.Keys(eb.KeyRings)) {
		if !slices.Contains(eb.Topics, p) {
			v.errorf(eb.KeyRingsRange, "kafka.encryption.key_rings: %q is not an entry of topics", p)
		}
	}
}

// encryptionMounts validates the Transit and cert auth mounts.
func (v *validator) encryptionMounts(eb *EncryptionBlock, e *Encryption, vault Vault) {
	if !mountPath.MatchString(e.TransitMount) {
		v.errorf(rangeOr(eb.TransitMountRange, eb.DefRange), "kafka.encryption.transit_mount: %q is not a Vault mount path", eb.TransitMount)
	}
	if !mountPath.MatchString(e.CertAuthMount) {
		v.errorf(rangeOr(eb.CertAuthMountRange, eb.DefRange), "kafka.encryption.cert_auth_mount: %q is not a Vault mount path", eb.CertAuthMount)
	}
	for key, m := range map[string]string{"vault.pki_mount": vault.PKIMount, "vault.pki_int_mount": vault.PKIIntMount, "vault.kv_mount": vault.KVMount} {
		if e.TransitMount == m {
			v.errorf(rangeOr(eb.TransitMountRange, eb.DefRange), "kafka.encryption.transit_mount: %q is already %s", m, key)
		}
	}
}

// encryptionIdentity validates one entry of consumers or rewrappers (key,
// at r): a SPIFFE ID of the topology's trust domain whose path segments
// are valid names (each ID gets a Vault role named after its path).
func (v *validator) encryptionIdentity(r hcl.Range, key, id, td string) {
	sid, err := spiffeid.FromString(id)
	switch {
	case err != nil:
		v.errorf(r, "kafka.encryption.%s: %q: %v", key, id, err)
	case sid.TrustDomain().Name() != td:
		v.errorf(r, "kafka.encryption.%s: %q is not in trust domain %q; Vault trusts only its SVIDs", key, id, td)
	case !validPath(strings.TrimPrefix(sid.Path(), "/")):
		v.errorf(r, "kafka.encryption.%s: %q: path segments must be lowercase letters, digits and '-'", key, id)
	}
}
