package recordcrypt

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OpenerConfig bounds a consumer's cache of unwrapped data keys.
type OpenerConfig struct {
	// MaxKeys is how many unwrapped data keys are kept (least recently
	// used first out, zeroed when evicted); default 1024.
	MaxKeys int
	// NegativeTTL is how long a wrapped key the KMS refused (no access,
	// unknown version, does not unwrap) is not asked again; default 10s.
	// KMS outages are not remembered.
	NegativeTTL time.Duration
	// RingFor, when set, names the key ring a topic must use; a record
	// whose header names another is a forged header.
	RingFor func(topic string) (ring string, ok bool)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Opener decrypts records sealed by a Producer. It is safe for
// concurrent use.
type Opener struct {
	kms     KMS
	ringFor func(string) (string, bool)
	cache   *keyCache
}

// NewOpener returns an Opener that unwraps data keys with kms.
func NewOpener(kms KMS, cfg OpenerConfig) (*Opener, error) {
	if kms == nil {
		return nil, errors.New("recordcrypt: a KMS is required")
	}
	if cfg.MaxKeys < 0 || cfg.NegativeTTL < 0 {
		return nil, errors.New("recordcrypt: max_keys and negative_ttl must not be negative")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Opener{kms: kms, ringFor: cfg.RingFor,
		cache: newKeyCache(orDefault(cfg.MaxKeys, 1024), orDefault(cfg.NegativeTTL, 10*time.Second), now)}, nil
}

// Close zeroes every cached data key.
func (o *Opener) Close() { o.cache.purge() }

// Encrypted reports whether rec carries an encryption header.
func Encrypted(rec *kmsg.Record) bool {
	at, err := findHeader(rec.Headers)
	return at >= 0 || err != nil
}

// Open decrypts rec in place for topic: the encrypted fields are replaced
// by their plaintext, appended to buf (which must not overlap rec's
// fields), and the encryption header is removed. On any error rec is left
// exactly as it was, so that it can be quarantined as received. Errors:
// ErrNotEncrypted, ErrForgedHeader, ErrTruncated, ErrTampered,
// ErrUnknownKeyVersion, ErrAccessDenied, ErrKMSUnavailable.
func (o *Opener) Open(ctx context.Context, topic string, rec *kmsg.Record, buf []byte) ([]byte, error) {
	at, err := findHeader(rec.Headers)
	if err != nil {
		return buf, err
	}
	if at < 0 {
		return buf, ErrNotEncrypted
	}
	raw := rec.Headers[at].Value
	h, ring, sp, err := parseHeaderRing(raw)
	if err != nil {
		return buf, err
	}
	if err := o.checkShape(topic, rec, &h, ring); err != nil {
		return buf, err
	}
	d, err := o.key(ctx, ring, h.WrappedKey)
	if err != nil {
		return buf, err
	}
	if subtle.ConstantTimeCompare(d.commit[:], h.Commitment[:]) != 1 {
		return buf, fmt.Errorf("%w: the header's key commitment does not match its wrapped key", ErrForgedHeader)
	}
	return o.openFields(topic, rec, &h, raw, sp, at, d, buf)
}

// checkShape checks what needs no key: the ring the topic must use, and
// that every encrypted field is long enough.
func (o *Opener) checkShape(topic string, rec *kmsg.Record, h *Header, ring []byte) error {
	if o.ringFor != nil {
		if want, ok := o.ringFor(topic); ok && want != string(ring) {
			return fmt.Errorf("%w: key ring %q, topic %q uses %q", ErrForgedHeader, ring, topic, want)
		}
	}
	check := func(what string, b []byte) error {
		if b == nil {
			return fmt.Errorf("%w: encrypted %s is null", ErrTruncated, what)
		}
		if len(b) < Overhead {
			return fmt.Errorf("%w: encrypted %s of %d bytes, at least %d", ErrTruncated, what, len(b), Overhead)
		}
		return nil
	}
	if h.Fields&FieldValue != 0 {
		if err := check("value", rec.Value); err != nil {
			return err
		}
	}
	if h.Fields&FieldKey != 0 {
		if err := check("key", rec.Key); err != nil {
			return err
		}
	}
	for _, hd := range rec.Headers {
		if hd.Value != nil && slices.Contains(h.Headers, hd.Key) {
			if err := check("header "+hd.Key, hd.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// key returns the unwrapped data key wrapped under ring, from the cache
// or the KMS.
func (o *Opener) key(ctx context.Context, ringName, wrapped []byte) (*dek, error) {
	if d, err := o.cache.get(ringName, wrapped); d != nil || err != nil {
		return d, err
	}
	ring := string(ringName)
	plain, err := o.kms.DecryptDataKey(ctx, ring, wrapped)
	if err != nil {
		if errors.Is(err, ErrBadWrappedKey) {
			err = fmt.Errorf("%w: %w", ErrForgedHeader, err)
		}
		if !errors.Is(err, ErrKMSUnavailable) && ctx.Err() == nil {
			o.cache.refuse(ring, wrapped, err)
		}
		return nil, err
	}
	d, err := newDEK(ring, plain, wrapped, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrForgedHeader, err)
	}
	return o.cache.put(d), nil
}

// openFields decrypts every encrypted field into buf, then (all having
// authenticated) replaces them in rec and drops the header at index at.
func (o *Opener) openFields(topic string, rec *kmsg.Record, h *Header, raw []byte, sp wrapSpan, at int, d *dek, buf []byte) ([]byte, error) {
	start := len(buf)
	var err error
	var value, key []byte
	if h.Fields&FieldValue != 0 {
		if buf, value, err = open(buf, d, rec.Value, FieldValue, topic, raw, sp, ""); err != nil {
			return buf[:start], err
		}
	}
	if h.Fields&FieldKey != 0 {
		if buf, key, err = open(buf, d, rec.Key, FieldKey, topic, raw, sp, ""); err != nil {
			return buf[:start], err
		}
	}
	var hdrVals [][]byte
	if len(h.Headers) > 0 {
		hdrVals = make([][]byte, len(rec.Headers))
	}
	for i, hd := range rec.Headers {
		if i != at && hd.Value != nil && slices.Contains(h.Headers, hd.Key) {
			if buf, hdrVals[i], err = open(buf, d, hd.Value, FieldHeaders, topic, raw, sp, hd.Key); err != nil {
				return buf[:start], err
			}
		}
	}
	if h.Fields&FieldValue != 0 {
		rec.Value = value
	}
	if h.Fields&FieldKey != 0 {
		rec.Key = key
	}
	for i, v := range hdrVals {
		if v != nil {
			rec.Headers[i].Value = v
		}
	}
	rec.Headers = slices.Delete(rec.Headers, at, at+1)
	return buf, nil
}

// open appends to buf the plaintext of field, a field of kind sealed
// under d with the AAD of (kind, topic, the header value hdr, the header
// name) as appendAAD builds it, and returns buf and the plaintext.
func open(buf []byte, d *dek, field []byte, kind Fields, topic string, hdr []byte, sp wrapSpan, name string) ([]byte, []byte, error) {
	// Room for the plaintext, and after it for the AAD, built in buf's
	// spare capacity so that opening allocates nothing (AEAD.Open writes
	// the plaintext, shorter than field, before where the AAD lies).
	// Without room made here, AEAD.Open would grow a full buf to exactly
	// the size it needs, copying it: opening a batch's records one after
	// another into one buf would copy it once per record (quadratic).
	n := aadLen(kind, topic, hdr, sp, name)
	buf = slices.Grow(buf, len(field)+n)
	start := len(buf)
	aad := appendAAD(buf[start+len(field):start+len(field)], kind, topic, hdr, sp, name)
	opened, err := d.aead.Open(buf, field[:nonceLen], field[nonceLen:], aad)
	if err != nil {
		what := "value"
		switch kind {
		case FieldKey:
			what = "key"
		case FieldHeaders:
			what = "header " + name
		}
		return buf, nil, fmt.Errorf("%w: %s", ErrTampered, what)
	}
	out := opened[start:len(opened):len(opened)]
	if out == nil {
		out = []byte{}
	}
	return opened, out, nil
}
