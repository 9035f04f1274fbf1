package recordcrypt

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// KMS makes and unwraps data keys. A producer needs only GenerateDataKey,
// a consumer only DecryptDataKey, so that a KMS policy can grant each
// identity just one of them per key ring. Implementations wrap their
// failures with ErrAccessDenied, ErrKMSUnavailable, ErrUnknownKeyVersion
// or ErrBadWrappedKey so that callers can tell them apart. See package
// vaultkms for Vault Transit.
type KMS interface {
	// GenerateDataKey returns a new random 256-bit data key of ring, both
	// in plaintext and wrapped by the ring. The caller owns (and zeroes)
	// the plaintext.
	GenerateDataKey(ctx context.Context, ring string) (DataKey, error)
	// DecryptDataKey unwraps a data key that ring wrapped. The caller
	// owns (and zeroes) the result.
	DecryptDataKey(ctx context.Context, ring string, wrapped []byte) ([]byte, error)
}

// DataKey is a data key in plaintext and wrapped.
type DataKey struct {
	Plaintext []byte
	Wrapped   []byte
}

// DEKLen is the data key length: AES-256.
const DEKLen = 32

// Rewrapper re-wraps a data key under the newest version of its key ring
// without revealing it (Vault: transit/rewrap/<ring>). The result wraps
// the same DEK, so ReplaceWrappedKey can put it into the headers of
// records sealed under it and they still open.
type Rewrapper interface {
	RewrapDataKey(ctx context.Context, ring string, wrapped []byte) ([]byte, error)
}

// A wrapped data key, as the KMS adapters hand it over and an edgeid-enc
// header carries it, is the key ring version as a minimal uvarint (at
// least 1) followed by the KMS's ciphertext of the key. Vault Transit's
// text form, "vault:v<N>:<base64>", carries the same two things in 29
// more bytes for a 256-bit key (89 against 60 + 1): on 1 KiB records that
// was a sixth of what encryption adds to each one. CompactVaultCiphertext
// and VaultCiphertext convert at Vault's door.

// maxWrappedKeyVersion bounds a version: Vault's are int, and nine digits
// is far beyond any rotation schedule.
const maxWrappedKeyVersion = 999_999_999

// SplitWrappedKey returns the key ring version and the KMS ciphertext of
// a wrapped data key; ok is false unless the version is a minimal uvarint
// from 1 to 999,999,999 followed by at least one byte.
func SplitWrappedKey(wrapped []byte) (version int, ciphertext []byte, ok bool) {
	v, n := binary.Uvarint(wrapped)
	if n <= 0 || !minimal(v, n) || v < 1 || v > maxWrappedKeyVersion || len(wrapped) == n {
		return 0, nil, false
	}
	return int(v), wrapped[n:], true
}

// WrappedKeyVersion is the key ring version a wrapped data key names; ok
// is false for anything that is not a wrapped data key.
func WrappedKeyVersion(wrapped []byte) (version int, ok bool) {
	v, _, ok := SplitWrappedKey(wrapped)
	return v, ok
}

// CompactVaultCiphertext turns a Vault Transit ciphertext
// ("vault:v<N>:<base64>", standard padded base64 in its one canonical
// form) into a wrapped data key.
func CompactVaultCiphertext(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, "vault:v")
	digits, b64, found := strings.Cut(rest, ":")
	if !ok || !found || digits == "" || len(digits) > 9 || digits[0] == '0' {
		return nil, fmt.Errorf("%w: not a Vault Transit ciphertext", ErrBadWrappedKey)
	}
	v := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("%w: not a Vault Transit ciphertext", ErrBadWrappedKey)
		}
		v = v*10 + int(c-'0')
	}
	ct, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(ct) == 0 || base64.StdEncoding.EncodeToString(ct) != b64 {
		return nil, fmt.Errorf("%w: not a Vault Transit ciphertext", ErrBadWrappedKey)
	}
	return append(binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen32+len(ct)), uint64(v)), ct...), nil
}

// VaultCiphertext is the Vault Transit ciphertext of a wrapped data key,
// the inverse of CompactVaultCiphertext.
func VaultCiphertext(wrapped []byte) (string, error) {
	v, ct, ok := SplitWrappedKey(wrapped)
	if !ok {
		return "", fmt.Errorf("%w: not a wrapped data key", ErrBadWrappedKey)
	}
	return "vault:v" + strconv.Itoa(v) + ":" + base64.StdEncoding.EncodeToString(ct), nil
}
