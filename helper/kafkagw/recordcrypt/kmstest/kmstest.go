// Package kmstest is an in-memory recordcrypt.KMS for tests: key rings
// with versions and rotation, wrapped keys as the Vault adapter hands
// them over (key ring version ‖ ciphertext, see recordcrypt.SplitWrappedKey),
// and switches that make it fail, refuse or count calls.
package kmstest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
)

// KMS is an in-memory KMS. The zero value is not usable; call New.
type KMS struct {
	mu    sync.Mutex
	rings map[string][]cipher.AEAD // versions 1..n
	down  bool
	deny  map[string]bool
	// generated, decrypted and rewrapped count successful calls.
	generated, decrypted, rewrapped int
}

var (
	_ recordcrypt.KMS       = (*KMS)(nil)
	_ recordcrypt.Rewrapper = (*KMS)(nil)
)

// New returns a KMS holding the named rings, each at version 1.
func New(rings ...string) *KMS {
	k := &KMS{rings: map[string][]cipher.AEAD{}, deny: map[string]bool{}}
	for _, r := range rings {
		k.Rotate(r)
	}
	return k
}

// Rotate adds a version to ring (creating it at version 1).
func (k *KMS) Rotate(ring string) {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rings[ring] = append(k.rings[ring], aead)
}

// SetDown makes every call fail with ErrKMSUnavailable while down.
func (k *KMS) SetDown(down bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.down = down
}

// Deny makes op ("generate", "decrypt" or "rewrap") on ring fail with
// ErrAccessDenied.
func (k *KMS) Deny(op, ring string, deny bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.deny[op+"/"+ring] = deny
}

// Calls returns how many GenerateDataKey and DecryptDataKey calls
// succeeded.
func (k *KMS) Calls() (generated, decrypted int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.generated, k.decrypted
}

func (k *KMS) check(op, ring string) ([]cipher.AEAD, error) {
	if k.down {
		return nil, fmt.Errorf("kmstest: %w", recordcrypt.ErrKMSUnavailable)
	}
	if k.deny[op+"/"+ring] {
		return nil, fmt.Errorf("kmstest: %s on %q: %w", op, ring, recordcrypt.ErrAccessDenied)
	}
	vs := k.rings[ring]
	if len(vs) == 0 {
		return nil, fmt.Errorf("kmstest: no ring %q: %w", ring, recordcrypt.ErrAccessDenied)
	}
	return vs, nil
}

// GenerateDataKey implements recordcrypt.KMS.
func (k *KMS) GenerateDataKey(_ context.Context, ring string) (recordcrypt.DataKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	vs, err := k.check("generate", ring)
	if err != nil {
		return recordcrypt.DataKey{}, err
	}
	plain := make([]byte, recordcrypt.DEKLen)
	rand.Read(plain)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	ct := vs[len(vs)-1].Seal(nonce, nonce, plain, []byte(ring))
	k.generated++
	wrapped := wrap(len(vs), ct)
	return recordcrypt.DataKey{Plaintext: plain, Wrapped: []byte(wrapped)}, nil
}

// DecryptDataKey implements recordcrypt.KMS.
func (k *KMS) DecryptDataKey(_ context.Context, ring string, wrapped []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	vs, err := k.check("decrypt", ring)
	if err != nil {
		return nil, err
	}
	plain, err := unwrap(vs, ring, wrapped)
	if err == nil {
		k.decrypted++
	}
	return plain, err
}

// wrap is a wrapped data key of version v.
func wrap(v int, ct []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(v)), ct...)
}

func unwrap(vs []cipher.AEAD, ring string, wrapped []byte) ([]byte, error) {
	v, ct, ok := recordcrypt.SplitWrappedKey(wrapped)
	if !ok {
		return nil, fmt.Errorf("kmstest: %w", recordcrypt.ErrBadWrappedKey)
	}
	if v > len(vs) {
		return nil, fmt.Errorf("kmstest: version %d of %q: %w", v, ring, recordcrypt.ErrUnknownKeyVersion)
	}
	if len(ct) < 12 {
		return nil, fmt.Errorf("kmstest: %w", recordcrypt.ErrBadWrappedKey)
	}
	plain, err := vs[v-1].Open(nil, ct[:12], ct[12:], []byte(ring))
	if err != nil {
		return nil, fmt.Errorf("kmstest: %w", recordcrypt.ErrBadWrappedKey)
	}
	return plain, nil
}

// RewrapDataKey implements recordcrypt.Rewrapper: it unwraps wrapped and
// wraps the same key again under ring's newest version, as Vault's
// transit/rewrap does (no decrypt right needed). Denied with
// Deny("rewrap", ring, true). Rewraps counts the successful calls.
func (k *KMS) RewrapDataKey(_ context.Context, ring string, wrapped []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	vs, err := k.check("rewrap", ring)
	if err != nil {
		return nil, err
	}
	plain, err := unwrap(vs, ring, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	ct := vs[len(vs)-1].Seal(nonce, nonce, plain, []byte(ring))
	k.rewrapped++
	return wrap(len(vs), ct), nil
}

// Rewraps returns how many RewrapDataKey calls succeeded.
func (k *KMS) Rewraps() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rewrapped
}
