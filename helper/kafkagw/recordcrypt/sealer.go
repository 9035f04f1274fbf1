package recordcrypt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SealerConfig says what to encrypt in one topic's records, and with
// which key ring.
type SealerConfig struct {
	// Topic is the topic the records are produced to; it is bound into
	// every ciphertext.
	Topic string
	// Ring is the key ring (a Vault Transit key name).
	Ring string
	// Fields are the fields to encrypt: FieldValue, FieldKey, or both.
	// FieldHeaders is implied by Headers.
	Fields Fields
	// Headers names record headers whose values are encrypted too.
	Headers []string
}

// Sealer seals the records of one topic. It is safe for concurrent use;
// make one per topic and keep it.
type Sealer struct {
	p      *Producer
	r      *ring
	topic  string
	fields Fields
	names  []string
	st     atomic.Pointer[sealState]
}

// sealState is what a Sealer precomputes for one data key, so that the
// per-record path allocates nothing: the encryption header and the AADs
// for each variant (bit 0: the value is sealed, bit 1: the key is; a
// null value or key stays null).
type sealState struct {
	d        *dek
	hdr      [4][]byte
	aadValue [4][]byte
	aadKey   [4][]byte
	aadHdr   [4][][]byte
}

// Sealer returns the Sealer of cfg.
func (p *Producer) Sealer(cfg SealerConfig) (*Sealer, error) {
	if err := validRing(cfg.Ring); err != nil {
		return nil, err
	}
	if cfg.Topic == "" {
		return nil, errors.New("recordcrypt: a topic is required")
	}
	if cfg.Fields&^(FieldValue|FieldKey) != 0 {
		return nil, fmt.Errorf("recordcrypt: fields %#x: only FieldValue and FieldKey (FieldHeaders follows Headers)", byte(cfg.Fields))
	}
	if len(cfg.Headers) > maxHeaderNames {
		return nil, fmt.Errorf("recordcrypt: %d header names, at most %d", len(cfg.Headers), maxHeaderNames)
	}
	names := slices.Clone(cfg.Headers)
	for _, n := range names {
		if n == "" || n == HeaderKey || len(n) > maxHeaderNameLen {
			return nil, fmt.Errorf("recordcrypt: header name %q cannot be encrypted", n)
		}
	}
	if cfg.Fields == 0 && len(names) == 0 {
		return nil, errors.New("recordcrypt: nothing to encrypt: set Fields or Headers")
	}
	return &Sealer{p: p, r: p.ring(cfg.Ring), topic: cfg.Topic, fields: cfg.Fields, names: names}, nil
}

// state returns the precomputed state of the data key that seals the next
// record.
func (s *Sealer) state(ctx context.Context) (*sealState, error) {
	d, err := s.p.acquire(ctx, s.r)
	if err != nil {
		return nil, err
	}
	return s.stateOf(d)
}

// stateOf returns the precomputed state of d, computing it the first time.
func (s *Sealer) stateOf(d *dek) (*sealState, error) {
	if st := s.st.Load(); st != nil && st.d == d {
		return st, nil
	}
	st := &sealState{d: d}
	for v := range 4 {
		f := Fields(v)
		if len(s.names) > 0 {
			f |= FieldHeaders
		}
		if f == 0 {
			continue
		}
		h := Header{Version: FormatVersion, Fields: f, Commitment: d.commit, Ring: d.ring, WrappedKey: d.wrapped, Headers: s.names}
		st.hdr[v] = h.AppendTo(nil)
		// The span is found by parsing what was written, so that sealing
		// and opening cut the wrapped DEK out of the AAD the same way.
		_, sp, err := parseHeader(st.hdr[v])
		if err != nil {
			return nil, fmt.Errorf("recordcrypt: header of ring %q: %w", d.ring, err)
		}
		st.aadValue[v] = appendAAD(nil, FieldValue, s.topic, st.hdr[v], sp, "")
		st.aadKey[v] = appendAAD(nil, FieldKey, s.topic, st.hdr[v], sp, "")
		for _, n := range s.names {
			st.aadHdr[v] = append(st.aadHdr[v], appendAAD(nil, FieldHeaders, s.topic, st.hdr[v], sp, n))
		}
	}
	s.st.Store(st)
	return st, nil
}

// Seal encrypts rec's configured fields in place: each becomes nonce ‖
// ciphertext ‖ tag, appended to buf (which must not overlap rec's
// fields), and the encryption header is appended to rec.Headers. It
// returns buf extended. A null value or key stays null and unmarked; a
// record with nothing to seal is left as is. With a current data key and
// room in buf and in rec.Headers' capacity, Seal allocates nothing.
func (s *Sealer) Seal(ctx context.Context, rec *kmsg.Record, buf []byte) ([]byte, error) {
	v, err := s.variant(rec)
	if err != nil || !s.sealable(v) {
		return buf, err
	}
	st, err := s.state(ctx)
	if err != nil {
		return buf, err
	}
	return s.sealWith(st, v, rec, buf)
}

// SealAll seals every record of recs as Seal does, into buf, and returns
// buf extended and how many records it sealed. The records of one call
// take their data key together (one check of its record and age bounds
// for all of them), so that a batch costs one key lookup, not one per
// record; when the current key cannot take them all, each takes its key
// as Seal would. On error, the records before the failing one are sealed
// and the rest untouched.
func (s *Sealer) SealAll(ctx context.Context, recs []kmsg.Record, buf []byte) ([]byte, int, error) {
	n := 0
	for i := range recs {
		v, err := s.variant(&recs[i])
		if err != nil {
			return buf, 0, err
		}
		if s.sealable(v) {
			n++
		}
	}
	if n == 0 {
		return buf, 0, nil
	}
	var all *sealState // the key of every record, when one can take them all
	if d := s.p.acquireN(s.r, uint64(n)); d != nil {
		var err error
		if all, err = s.stateOf(d); err != nil {
			return buf, 0, err
		}
	}
	sealed := 0
	for i := range recs {
		rec := &recs[i]
		v, _ := s.variant(rec)
		if !s.sealable(v) {
			continue
		}
		st := all
		var err error
		if st == nil {
			if st, err = s.state(ctx); err != nil {
				return buf, sealed, err
			}
		}
		if buf, err = s.sealWith(st, v, rec, buf); err != nil {
			return buf, sealed, err
		}
		sealed++
	}
	return buf, sealed, nil
}

// sealable reports whether a record of variant v gets anything sealed (or
// at least the header, when header names are configured).
func (s *Sealer) sealable(v int) bool { return v != 0 || len(s.names) > 0 }

// variant is which of rec's fields get sealed (bit 0: the value, bit 1:
// the key); a record already sealed is an error.
func (s *Sealer) variant(rec *kmsg.Record) (int, error) {
	if at, err := findHeader(rec.Headers); err != nil || at >= 0 {
		return 0, fmt.Errorf("%w (topic %q)", ErrAlreadyEncrypted, s.topic)
	}
	v := 0
	if s.fields&FieldValue != 0 && rec.Value != nil {
		v |= 1
	}
	if s.fields&FieldKey != 0 && rec.Key != nil {
		v |= 2
	}
	return v, nil
}

// sealWith seals rec's variant v under st.
func (s *Sealer) sealWith(st *sealState, v int, rec *kmsg.Record, buf []byte) ([]byte, error) {
	d := st.d
	var value, key []byte
	var err error
	if v&1 != 0 {
		if buf, value, err = seal(buf, d, rec.Value, st.aadValue[v]); err != nil {
			return buf, err
		}
	}
	if v&2 != 0 {
		if buf, key, err = seal(buf, d, rec.Key, st.aadKey[v]); err != nil {
			return buf, err
		}
	}
	for i := range rec.Headers {
		h := &rec.Headers[i]
		if j := slices.Index(s.names, h.Key); j >= 0 && h.Value != nil {
			if buf, h.Value, err = seal(buf, d, h.Value, st.aadHdr[v][j]); err != nil {
				return buf, err
			}
		}
	}
	if v&1 != 0 {
		rec.Value = value
	}
	if v&2 != 0 {
		rec.Key = key
	}
	rec.Headers = append(rec.Headers, kmsg.Header{Key: HeaderKey, Value: st.hdr[v]})
	return buf, nil
}

// seal appends nonce ‖ Seal(plaintext) to buf under d, returning buf and
// the new field.
func seal(buf []byte, d *dek, plaintext, aad []byte) ([]byte, []byte, error) {
	// Room for the whole field, grown as append grows (AEAD.Seal alone
	// would grow a full buf to the exact size, copying it every record).
	buf = slices.Grow(buf, nonceLen+len(plaintext)+tagLen)
	start := len(buf)
	buf = buf[:start+nonceLen]
	if err := d.putNonce(buf[start:]); err != nil {
		return buf[:start], nil, err
	}
	buf = d.aead.Seal(buf, buf[start:start+nonceLen], plaintext, aad)
	return buf, buf[start:len(buf):len(buf)], nil
}
