package recordcrypt_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzOpen feeds arbitrary encryption headers, values and keys to
// ParseHeader and Open: neither may panic, every failure is one of the
// typed errors, a header that parses survives AppendTo/ParseHeader, and
// only the genuine record opens (its header may differ only in the
// wrapped key, which must then unwrap to the same data key: a re-wrap).
func FuzzOpen(f *testing.F) {
	kms := kmstest.New("r")
	p, _ := NewProducer(kms, ProducerConfig{})
	s, _ := p.Sealer(SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue | FieldKey, Headers: []string{"h"}})
	genuine := kmsg.Record{Key: []byte("key"), Value: []byte("value"), Headers: []kmsg.Header{{Key: "h", Value: []byte("hv")}}}
	if _, err := s.Seal(ctx, &genuine, nil); err != nil {
		f.Fatal(err)
	}
	hdr := genuine.Headers[len(genuine.Headers)-1].Value
	f.Add(hdr, genuine.Value, genuine.Key)
	f.Add(hdr[:len(hdr)-1], genuine.Value, genuine.Key)
	f.Add([]byte{1, 1}, []byte{}, []byte(nil))
	f.Add(append(bytes.Clone(hdr), 0), genuine.Value[:10], genuine.Key)
	o, _ := NewOpener(kms, OpenerConfig{MaxKeys: 4})
	typed := []error{ErrForgedHeader, ErrTruncated, ErrTampered, ErrUnknownKeyVersion, ErrAccessDenied}
	f.Fuzz(func(t *testing.T, hdrVal, value, key []byte) {
		if h, err := ParseHeader(hdrVal); err == nil {
			again, err := ParseHeader(h.AppendTo(nil))
			if err != nil || !reflect.DeepEqual(again, h) {
				t.Fatalf("header %+v does not survive AppendTo/ParseHeader: %v", h, err)
			}
		} else if !errors.Is(err, ErrForgedHeader) {
			t.Fatalf("ParseHeader error %v is not ErrForgedHeader", err)
		}
		rec := kmsg.Record{Key: key, Value: value, Headers: []kmsg.Header{{Key: "h", Value: genuine.Headers[0].Value}, {Key: HeaderKey, Value: hdrVal}}}
		_, err := o.Open(ctx, "t", &rec, nil)
		if err == nil {
			if !sameButWrappedKey(hdrVal, hdr) || !bytes.Equal(value, genuine.Value) || !bytes.Equal(key, genuine.Key) {
				t.Fatalf("a record other than the genuine one opened: %x / %x / %x", hdrVal, value, key)
			}
			return
		}
		for _, e := range typed {
			if errors.Is(err, e) {
				return
			}
		}
		t.Fatalf("Open error %v is none of the typed errors", err)
	})
}

// sameButWrappedKey reports whether header values a and b are equal but
// for the wrapped key.
func sameButWrappedKey(a, b []byte) bool {
	ha, erra := ParseHeader(a)
	hb, errb := ParseHeader(b)
	if erra != nil || errb != nil {
		return false
	}
	ha.WrappedKey, hb.WrappedKey = nil, nil
	return reflect.DeepEqual(ha, hb)
}

// FuzzReplaceWrappedKey feeds arbitrary header values and wrapped keys to
// ReplaceWrappedKey, WrappedKeyVersion and the Vault conversions: none may
// panic, a header that is accepted comes back parsing, equal but for the
// wrapped key; a version is reported only for a minimal uvarint N ≥ 1
// followed by a ciphertext, exactly then does the key convert to Vault's
// text, and that text converts back to the same bytes; text that
// CompactVaultCiphertext accepts is the one canonical "vault:v<N>:<base64>"
// of what it returns.
func FuzzReplaceWrappedKey(f *testing.F) {
	kms := kmstest.New("r")
	p, _ := NewProducer(kms, ProducerConfig{})
	s, _ := p.Sealer(SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue, Headers: []string{"h"}})
	rec := kmsg.Record{Value: []byte("v")}
	if _, err := s.Seal(ctx, &rec, nil); err != nil {
		f.Fatal(err)
	}
	hdr := rec.Headers[len(rec.Headers)-1].Value
	f.Add(hdr, []byte{2, 0xab, 0xcd})
	f.Add(hdr[:20], []byte{0, 1})
	f.Add([]byte{1, 1}, []byte{0x80, 0x01, 7})
	f.Add(hdr, []byte("vault:v2:q80="))
	f.Add(hdr, []byte("vault:v01:q80="))
	f.Fuzz(func(t *testing.T, src, wrapped []byte) {
		v, ok := WrappedKeyVersion(wrapped)
		if ok && (v < 1 || !bytes.HasPrefix(wrapped, binary.AppendUvarint(nil, uint64(v))) || len(wrapped) <= len(binary.AppendUvarint(nil, uint64(v)))) {
			t.Fatalf("WrappedKeyVersion(%x) = %d", wrapped, v)
		}
		text, err := VaultCiphertext(wrapped)
		if (err == nil) != ok {
			t.Fatalf("VaultCiphertext(%x): %v, but WrappedKeyVersion ok=%v", wrapped, err, ok)
		}
		if back, err := CompactVaultCiphertext(text); ok && (err != nil || !bytes.Equal(back, wrapped)) {
			t.Fatalf("%x → %q → %x, %v", wrapped, text, back, err)
		}
		if c, err := CompactVaultCiphertext(string(wrapped)); err == nil {
			if back, err := VaultCiphertext(c); err != nil || back != string(wrapped) {
				t.Fatalf("%q → %x → %q, %v", wrapped, c, back, err)
			}
		}
		out, err := ReplaceWrappedKey(src, wrapped)
		if err != nil {
			return
		}
		h, err := ParseHeader(out)
		if err != nil || !bytes.Equal(h.WrappedKey, wrapped) || !sameButWrappedKey(out, src) {
			t.Fatalf("ReplaceWrappedKey(%x, %q) = %x: %v", src, wrapped, out, err)
		}
	})
}
