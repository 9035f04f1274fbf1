package recordcrypt

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// HeaderKey is the Kafka record header that marks an encrypted record and
// carries what a consumer needs to decrypt it.
const HeaderKey = "edgeid-enc"

// FormatVersion is the version of the encryption header this package
// writes, and the only one it reads.
const FormatVersion = 1

// Fields says which parts of a record are encrypted.
type Fields uint8

// The encryptable fields.
const (
	FieldValue   Fields = 1 << 0
	FieldKey     Fields = 1 << 1
	FieldHeaders Fields = 1 << 2
	allFields           = FieldValue | FieldKey | FieldHeaders
)

// Limits of the header's variable parts.
const (
	MaxRingLen       = 128
	MaxWrappedKeyLen = 1024
	maxHeaderNames   = 32
	maxHeaderNameLen = 255
	commitLen        = 16
)

// Header is the content of an encryption header:
//
//	byte 0      format version (1)
//	byte 1      Fields bits: 1 value, 2 key, 4 named headers
//	bytes 2-17  key commitment: SHA-256("edgeid-enc/1 key commitment" ‖ DEK)[:16]
//	uvarint n, n bytes   key ring name
//	uvarint n, n bytes   wrapped DEK: uvarint key ring version ‖ KMS ciphertext (kms.go)
//	uvarint n            number of encrypted header names (0 unless bit 4)
//	  n × (uvarint m, m bytes)  header name
//
// Nothing may follow, and every uvarint is minimally encoded, so that a
// header has exactly one encoding. Every field's AAD covers the whole
// header value except the wrapped DEK (its length and bytes): the key
// commitment stays bound, so the wrapped DEK can be re-wrapped by the KMS
// (the same DEK under a newer ring version) without re-encrypting, while
// a wrapping of another DEK fails the commitment (ErrForgedHeader).
type Header struct {
	Version    uint8
	Fields     Fields
	Commitment [commitLen]byte
	Ring       string
	WrappedKey []byte
	// Headers are the names of the record headers whose values are
	// encrypted.
	Headers []string
}

// AppendTo appends h in wire form.
func (h *Header) AppendTo(dst []byte) []byte {
	dst = append(dst, h.Version, byte(h.Fields))
	dst = append(dst, h.Commitment[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(h.Ring)))
	dst = append(dst, h.Ring...)
	dst = binary.AppendUvarint(dst, uint64(len(h.WrappedKey)))
	dst = append(dst, h.WrappedKey...)
	dst = binary.AppendUvarint(dst, uint64(len(h.Headers)))
	for _, n := range h.Headers {
		dst = binary.AppendUvarint(dst, uint64(len(n)))
		dst = append(dst, n...)
	}
	return dst
}

// ParseHeader parses an encryption header value strictly. Its WrappedKey
// aliases src. Every failure wraps ErrForgedHeader.
func ParseHeader(src []byte) (Header, error) {
	h, _, err := parseHeader(src)
	return h, err
}

// ReplaceWrappedKey returns the encryption header value src with its
// wrapped DEK replaced by wrapped, every other byte kept. Records sealed
// under src open with the result if wrapped unwraps to the same DEK (a
// Rewrapper's result); with any other DEK they fail as ErrForgedHeader.
func ReplaceWrappedKey(src, wrapped []byte) ([]byte, error) {
	_, sp, err := parseHeader(src)
	if err != nil {
		return nil, err
	}
	if len(wrapped) == 0 || len(wrapped) > MaxWrappedKeyLen {
		return nil, fmt.Errorf("recordcrypt: wrapped data key of %d bytes, want 1 to %d", len(wrapped), MaxWrappedKeyLen)
	}
	out := make([]byte, 0, len(src)-(sp.end-sp.at)+binary.MaxVarintLen64+len(wrapped))
	out = append(out, src[:sp.at]...)
	out = binary.AppendUvarint(out, uint64(len(wrapped)))
	out = append(out, wrapped...)
	return append(out, src[sp.end:]...), nil
}

// wrapSpan is where the wrapped DEK, its length prefix included, lies in
// a header value: src[at:end].
type wrapSpan struct{ at, end int }

// parseHeader is ParseHeader, also returning where the wrapped DEK lies.
func parseHeader(src []byte) (Header, wrapSpan, error) {
	h, ring, sp, err := parseHeaderRing(src)
	h.Ring = string(ring)
	return h, sp, err
}

// parseHeaderRing is parseHeader leaving h.Ring empty and returning the
// ring's name as bytes of src instead, so that opening a record with a
// cached key allocates no string for it.
func parseHeaderRing(src []byte) (h Header, ringName []byte, sp wrapSpan, err error) {
	if len(src) < 2+commitLen {
		return h, nil, sp, fmt.Errorf("%w: %d bytes", ErrForgedHeader, len(src))
	}
	h.Version, h.Fields = src[0], Fields(src[1])
	if h.Version != FormatVersion {
		return h, nil, sp, fmt.Errorf("%w: format version %d, want %d", ErrForgedHeader, h.Version, FormatVersion)
	}
	if h.Fields&^allFields != 0 || h.Fields == 0 {
		return h, nil, sp, fmt.Errorf("%w: fields %#x", ErrForgedHeader, byte(h.Fields))
	}
	copy(h.Commitment[:], src[2:])
	rest := src[2+commitLen:]
	ring, rest, ok := lenPrefixed(rest, MaxRingLen)
	if !ok || validRing(string(ring)) != nil {
		return h, nil, sp, fmt.Errorf("%w: key ring name", ErrForgedHeader)
	}
	sp.at = len(src) - len(rest)
	if h.WrappedKey, rest, ok = lenPrefixed(rest, MaxWrappedKeyLen); !ok || len(h.WrappedKey) == 0 {
		return h, ring, sp, fmt.Errorf("%w: wrapped data key", ErrForgedHeader)
	}
	sp.end = len(src) - len(rest)
	n, l := binary.Uvarint(rest)
	if !minimal(n, l) || n > maxHeaderNames || (n > 0) != (h.Fields&FieldHeaders != 0) {
		return h, ring, sp, fmt.Errorf("%w: header names", ErrForgedHeader)
	}
	rest = rest[l:]
	for range n {
		var name []byte
		if name, rest, ok = lenPrefixed(rest, maxHeaderNameLen); !ok || len(name) == 0 || string(name) == HeaderKey {
			return h, ring, sp, fmt.Errorf("%w: header name", ErrForgedHeader)
		}
		h.Headers = append(h.Headers, string(name))
	}
	if len(rest) != 0 {
		return h, ring, sp, fmt.Errorf("%w: %d bytes after the header", ErrForgedHeader, len(rest))
	}
	return h, ring, sp, nil
}

func lenPrefixed(src []byte, limit int) (val, rest []byte, ok bool) {
	n, l := binary.Uvarint(src)
	if !minimal(n, l) || n > uint64(limit) || n > uint64(len(src)-l) {
		return nil, nil, false
	}
	return src[l : l+int(n)], src[l+int(n):], true
}

// minimal reports whether a uvarint read as n in l bytes parsed and was
// minimally encoded.
func minimal(n uint64, l int) bool {
	return l == 1 || l > 1 && n >= 1<<(7*(l-1))
}

// validRing checks a key ring name: 1 to MaxRingLen bytes of letters,
// digits, '.', '_' and '-' (safe in a Vault path).
func validRing(s string) error {
	if s == "" || len(s) > MaxRingLen {
		return fmt.Errorf("recordcrypt: key ring name %q: want 1 to %d bytes", s, MaxRingLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("recordcrypt: key ring name %q: only letters, digits, '.', '_' and '-'", s)
		}
	}
	if s == "." || s == ".." {
		return fmt.Errorf("recordcrypt: key ring name %q", s)
	}
	return nil
}

// findHeader returns the index of the one encryption header of hs, -1 for
// none; two or more are a forged header.
func findHeader(hs []kmsg.Header) (int, error) {
	at := -1
	for i := range hs {
		if hs[i].Key == HeaderKey {
			if at >= 0 {
				return -1, fmt.Errorf("%w: %s appears twice", ErrForgedHeader, HeaderKey)
			}
			at = i
		}
	}
	return at, nil
}

// aadPrefix is the AAD of every field before its field byte.
var aadPrefix = []byte("edgeid-enc/1")

// appendAAD appends the AAD of one field to dst: the fixed prefix, the
// field (1 value, 2 key, 4 header), the topic, the header value hdr
// without the wrapped DEK at sp and, for a header, its name; every
// variable part length-prefixed. aadLen is its length.
func appendAAD(dst []byte, field Fields, topic string, hdr []byte, sp wrapSpan, headerName string) []byte {
	dst = append(dst, aadPrefix...)
	dst = append(dst, byte(field))
	dst = binary.AppendUvarint(dst, uint64(len(topic)))
	dst = append(dst, topic...)
	dst = binary.AppendUvarint(dst, uint64(len(hdr)-(sp.end-sp.at)))
	dst = append(dst, hdr[:sp.at]...)
	dst = append(dst, hdr[sp.end:]...)
	if field == FieldHeaders {
		dst = binary.AppendUvarint(dst, uint64(len(headerName)))
		dst = append(dst, headerName...)
	}
	return dst
}

// aadLen is the length of what appendAAD appends.
func aadLen(field Fields, topic string, hdr []byte, sp wrapSpan, headerName string) int {
	n := len(hdr) - (sp.end - sp.at)
	l := len(aadPrefix) + 1 + uvarintLen(len(topic)) + len(topic) + uvarintLen(n) + n
	if field == FieldHeaders {
		l += uvarintLen(len(headerName)) + len(headerName)
	}
	return l
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}
