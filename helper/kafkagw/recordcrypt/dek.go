package recordcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
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
