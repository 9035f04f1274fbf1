package recordcrypt

import (
	"bytes"
	"context"
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

// WrappedKeyVersion is the key ring version a Vault Transit wrapped data
// key names ("vault:v<N>:…"); ok is false for anything else.
func WrappedKeyVersion(wrapped []byte) (version int, ok bool) {
	rest, found := bytes.CutPrefix(wrapped, []byte("vault:v"))
	if !found {
		return 0, false
	}
	for i, c := range rest {
		switch {
		case c == ':' && i > 0 && rest[0] != '0':
			return version, true
		case c < '0' || c > '9' || i >= 9:
			return 0, false
		}
		version = version*10 + int(c-'0')
	}
	return 0, false
}
