package recordcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// nonceLen and tagLen are AES-GCM's standard sizes; an encrypted field is
// nonce ‖ ciphertext ‖ tag.
const (
	nonceLen = 12
	tagLen   = 16
	// Overhead is what encryption adds to each encrypted field.
	Overhead = nonceLen + tagLen
)

var commitLabel = []byte("edgeid-enc/1 key commitment")

// dek is one unwrapped data key. key is the only copy of the plaintext
// this package keeps; zero overwrites it (the AES key schedule inside
// crypto/aes cannot be reached and is left to the garbage collector).
type dek struct {
	ring    string
	wrapped []byte
	aead    cipher.AEAD
	key     []byte
	commit  [commitLen]byte
	created time.Time
	uses    atomic.Uint64
	// nonces is set on a key this process made to seal with, nil on a key
	// unwrapped to open records: its nonces were drawn by their producer,
	// and a sequence started again here could repeat one.
	nonces *nonceSeq
}

// nonceSeq draws the nonces of one sealing key as NIST SP 800-38D
// (section 8.2.1) lays out: a 32-bit fixed field, random per key, then a
// 64-bit counter of the key's invocations. No nonce repeats under the key
// for 2^63 invocations, whatever the number of fields per record, and
// drawing one costs an atomic add instead of a call to the system's
// random source (about a tenth of sealing a 1 KiB value).
type nonceSeq struct {
	fixed [4]byte
	next  atomic.Uint64
}

// maxInvocations bounds a sealing key's counter well before it could wrap.
const maxInvocations = 1 << 63

// newSealingDEK is newDEK for a key this process seals with.
func newSealingDEK(ring string, plaintext, wrapped []byte, now time.Time) (*dek, error) {
	d, err := newDEK(ring, plaintext, wrapped, now)
	if err != nil {
		return nil, err
	}
	d.nonces = &nonceSeq{}
	if _, err := rand.Read(d.nonces.fixed[:]); err != nil {
		d.zero()
		return nil, fmt.Errorf("recordcrypt: nonce field: %w", err)
	}
	return d, nil
}

// putNonce writes the key's next nonce into dst (nonceLen bytes).
func (d *dek) putNonce(dst []byte) error {
	if d.nonces == nil {
		return errors.New("recordcrypt: a data key unwrapped for opening cannot seal")
	}
	n := d.nonces.next.Add(1)
	if n >= maxInvocations {
		return errors.New("recordcrypt: data key used for too many encryptions")
	}
	copy(dst, d.nonces.fixed[:])
	binary.BigEndian.PutUint64(dst[4:nonceLen], n)
	return nil
}

// newDEK takes the plaintext key (zeroing the caller's copy).
func newDEK(ring string, plaintext, wrapped []byte, now time.Time) (*dek, error) {
	defer clear(plaintext)
	if len(plaintext) != DEKLen {
		return nil, fmt.Errorf("recordcrypt: data key of %d bytes, want %d", len(plaintext), DEKLen)
	}
	d := &dek{ring: ring, wrapped: append([]byte(nil), wrapped...), key: append(make([]byte, 0, DEKLen), plaintext...), created: now}
	block, err := aes.NewCipher(d.key)
	if err != nil {
		return nil, fmt.Errorf("recordcrypt: %w", err)
	}
	if d.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("recordcrypt: %w", err)
	}
	d.commit = commitment(d.key)
	return d, nil
}

// commitment binds a header to one data key, so that a header naming
// another wrapped key is told apart from a tampered ciphertext.
func commitment(key []byte) [commitLen]byte {
	h := sha256.New()
	h.Write(commitLabel)
	h.Write(key)
	var sum [sha256.Size]byte
	var c [commitLen]byte
	copy(c[:], h.Sum(sum[:0]))
	return c
}

// zero overwrites the plaintext key.
func (d *dek) zero() { clear(d.key) }
