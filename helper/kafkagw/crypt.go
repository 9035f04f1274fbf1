package kafkagw

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/batch"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/quarantine"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/vaultkms"
	"github.com/edgeid/edgeid/internal/vaultconn"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Policies for records an edge gateway cannot open, and for plaintext
// records found in an encrypted topic.
const (
	// UndecryptableQuarantine writes the record to the quarantine
	// directory, then passes it on still encrypted.
	UndecryptableQuarantine = "quarantine"
	// UndecryptablePass passes the record on still encrypted, with its
	// edgeid-enc header intact.
	UndecryptablePass = "pass"
	// PlaintextAllow passes a plaintext record of an encrypted topic on.
	PlaintextAllow = "allow"
	// PlaintextQuarantine writes it to the quarantine directory and
	// gives the app, at its offset, a record with null key and value and
	// the header edgeid-withheld = "plaintext" instead.
	PlaintextQuarantine = "quarantine"
)

// How sealed batches are compressed on their way to the broker.
const (
	// SealedUncompressed stores sealed batches uncompressed, whatever the
	// producer chose: a sealed value is ciphertext, which no codec
	// shrinks, and compressing it again costs the gateway more CPU than
	// decompressing, sealing and encoding together.
	SealedUncompressed = "none"
	// SealedAsProduced compresses sealed batches with the producer's
	// codec: only keys and the per-record edgeid-enc header (about 107
	// bytes, the same in every record of a data key) shrink, which counts
	// for small records on a metered uplink.
	SealedAsProduced = "producer"
)

// DefaultVaultTimeout bounds each Vault request of the encryption filter.
const DefaultVaultTimeout = 10 * time.Second

// maxSealers bounds the per-topic sealers kept; topics beyond it get a
// sealer per request.
const maxSealers = 4096

// EncryptConfig turns on record encryption in an edge gateway: values of
// the matching topics are sealed on Produce and opened on Fetch (see
// README.md, "Record encryption").
type EncryptConfig struct {
	// Topics are topic names, or prefixes written "prefix*".
	Topics []string
	// KeyRing is the Vault Transit key of every matching topic that
	// KeyRings does not name; empty gives each such topic the key named
	// after it.
	KeyRing string
	// KeyRings maps entries of Topics (as written, "prefix*" included)
	// to the Transit key of the topics they match.
	KeyRings map[string]string
	// Vault is how to reach Vault; its client certificate settings stay
	// empty (the gateway's SVID is the client certificate).
	Vault         vaultconn.Config
	CertRole      string
	CertAuthMount string // default "cert"
	TransitMount  string // default "transit"
	// Key bounds: see recordcrypt.ProducerConfig.
	RecordsPerKey uint64
	KeyMaxAge     time.Duration
	OutageRecords uint64
	OutageMaxAge  time.Duration
	NoOutageGrace bool
	// Undecryptable is UndecryptableQuarantine (default) or
	// UndecryptablePass; Plaintext is PlaintextAllow (default) or
	// PlaintextQuarantine.
	Undecryptable string
	Plaintext     string
	// QuarantineDir is required when either policy quarantines.
	QuarantineDir string
	// SealedCompression is SealedUncompressed (default) or
	// SealedAsProduced.
	SealedCompression string
	// KMS replaces Vault (tests); nil builds vaultkms from the fields above.
	KMS recordcrypt.KMS
}

// validate applies defaults and checks c.
func (c *EncryptConfig) validate() error {
	c.Undecryptable = cmpOr(c.Undecryptable, UndecryptableQuarantine)
	c.Plaintext = cmpOr(c.Plaintext, PlaintextAllow)
	c.SealedCompression = cmpOr(c.SealedCompression, SealedUncompressed)
	var errs []error
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("encrypt: no topics"))
	}
	for _, t := range c.Topics {
		if strings.TrimSuffix(t, "*") == "" || strings.Contains(strings.TrimSuffix(t, "*"), "*") {
			errs = append(errs, fmt.Errorf("encrypt: topic %q is neither a name nor a prefix written \"prefix*\"", t))
		}
	}
	errs = append(errs, c.validateRings()...)
	if c.Undecryptable != UndecryptableQuarantine && c.Undecryptable != UndecryptablePass {
		errs = append(errs, fmt.Errorf("encrypt: undecryptable %q is not %q or %q", c.Undecryptable, UndecryptableQuarantine, UndecryptablePass))
	}
	if c.Plaintext != PlaintextAllow && c.Plaintext != PlaintextQuarantine {
		errs = append(errs, fmt.Errorf("encrypt: plaintext %q is not %q or %q", c.Plaintext, PlaintextAllow, PlaintextQuarantine))
	}
	if c.SealedCompression != SealedUncompressed && c.SealedCompression != SealedAsProduced {
		errs = append(errs, fmt.Errorf("encrypt: sealed compression %q is not %q or %q", c.SealedCompression, SealedUncompressed, SealedAsProduced))
	}
	if c.QuarantineDir == "" && (c.Undecryptable == UndecryptableQuarantine || c.Plaintext == PlaintextQuarantine) {
		errs = append(errs, errors.New("encrypt: a quarantine directory is required when records are quarantined"))
	}
	if c.KMS == nil && c.Vault.Address == "" {
		errs = append(errs, errors.New("encrypt: the Vault address is required"))
	}
	return errors.Join(errs...)
}

// validateRings checks that KeyRings names only entries of Topics, and
// that overlapping entries give their topics the same ring.
func (c *EncryptConfig) validateRings() []error {
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(c.KeyRings)) {
		if !slices.Contains(c.Topics, p) {
			errs = append(errs, fmt.Errorf("encrypt: key rings: %q is not an entry of topics", p))
		}
	}
	for i, p := range c.Topics {
		for _, q := range c.Topics[:i] {
			if overlap(p, q) && c.entryRing(p) != c.entryRing(q) {
				errs = append(errs, fmt.Errorf("encrypt: the topic entries %q and %q overlap but name different key rings; a topic must have one key ring", q, p))
			}
		}
	}
	return errs
}

// entryRing is the ring of the topics that entry p of Topics matches:
// KeyRings[p], else KeyRing, else "" (each topic its own ring).
func (c *EncryptConfig) entryRing(p string) string {
	if r, ok := c.KeyRings[p]; ok {
		return r
	}
	return c.KeyRing
}

// matches reports whether entry p of Topics (a name, or "prefix*")
// matches topic.
func matches(p, topic string) bool {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return strings.HasPrefix(topic, prefix)
	}
	return p == topic
}

// overlap reports whether some topic matches both entries.
func overlap(p, q string) bool {
	return matches(p, strings.TrimSuffix(q, "*")) || matches(q, strings.TrimSuffix(p, "*"))
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// crypt is a gateway's encryption filter.
type crypt struct {
	cfg   EncryptConfig
	codec *batch.Codec
	// decoders serve the opening of fetched batches (responses are read
	// by one goroutine per upstream connection, so several at a time).
	decoders   sync.Pool
	producer   *recordcrypt.Producer
	opener     *recordcrypt.Opener
	quarantine *quarantine.Store // nil when nothing is quarantined

	mu      sync.Mutex
	sealers map[string]*recordcrypt.Sealer
	once    sync.Once
}

// newCrypt builds the filter: the KMS (Vault, logged in with svids), the
// producer, the opener and the quarantine store.
func newCrypt(c EncryptConfig, svids x509svid.Source, g *Gateway) (*crypt, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	kms := c.KMS
	if kms == nil {
		vc := c.Vault
		if vc.Timeout == 0 {
			vc.Timeout = DefaultVaultTimeout
		}
		k, err := vaultkms.New(vaultkms.Config{Vault: vc, SVID: svids, CertAuthMount: c.CertAuthMount,
			CertRole: c.CertRole, TransitMount: c.TransitMount, Logger: g.log})
		if err != nil {
			return nil, fmt.Errorf("encrypt: %w", err)
		}
		kms = k
	}
	cr := &crypt{cfg: c, codec: batch.NewCodec(0), sealers: map[string]*recordcrypt.Sealer{}}
	var err error
	if cr.producer, err = recordcrypt.NewProducer(kms, recordcrypt.ProducerConfig{
		MaxRecords: c.RecordsPerKey, MaxAge: c.KeyMaxAge, OutageRecords: c.OutageRecords,
		OutageAge: c.OutageMaxAge, NoOutageGrace: c.NoOutageGrace, Logger: g.log,
	}); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if cr.opener, err = recordcrypt.NewOpener(kms, recordcrypt.OpenerConfig{RingFor: cr.ringFor}); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if c.QuarantineDir != "" {
		if cr.quarantine, err = quarantine.Open(c.QuarantineDir); err != nil {
			return nil, fmt.Errorf("encrypt: %w", err)
		}
	}
	return cr, nil
}

// encrypted reports whether topic's records are sealed.
func (c *crypt) encrypted(topic string) bool {
	_, ok := c.ringFor(topic)
	return ok
}

// ringFor is the key ring an encrypted topic uses: that of the first
// entry of Topics matching it (validate makes overlapping entries share
// their ring), or the topic's own name.
func (c *crypt) ringFor(topic string) (string, bool) {
	i := slices.IndexFunc(c.cfg.Topics, func(p string) bool { return matches(p, topic) })
	if i < 0 {
		return "", false
	}
	return cmpOr(c.cfg.entryRing(c.cfg.Topics[i]), topic), true
}

// sealer returns topic's sealer, kept for the next request.
func (c *crypt) sealer(topic string) (*recordcrypt.Sealer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sealers[topic]; ok {
		return s, nil
	}
	ring, _ := c.ringFor(topic)
	s, err := c.producer.Sealer(recordcrypt.SealerConfig{Topic: topic, Ring: ring, Fields: recordcrypt.FieldValue})
	if err != nil {
		return nil, err
	}
	if len(c.sealers) < maxSealers {
		c.sealers[topic] = s
	}
	return s, nil
}

// close zeroes every data key held.
func (c *crypt) close() {
	if c == nil {
		return
	}
	c.once.Do(func() {
		c.producer.Close()
		c.opener.Close()
	})
}
