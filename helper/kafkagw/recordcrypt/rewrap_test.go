package recordcrypt_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
)

// TestRewrappedHeaderOpens: after a ring rotation, the wrapped DEK of a
// sealed record re-wrapped by the KMS (same DEK, version 2) and put into
// its header leaves the record valid: it opens with a fresh Opener, every
// field intact. A wrapping of another DEK put in the same way fails as a
// forged header (key commitment), not as tampering.
func TestRewrappedHeaderOpens(t *testing.T) {
	kms := kmstest.New("r")
	cfg := SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue | FieldKey, Headers: []string{"camera"}}
	recs := sealed(t, kms, cfg, record("the value", "the key", "camera", "cam-7"), record("other", "k", "camera", "cam-9"))
	kms.Rotate("r")
	at := hdrIndex(&recs[0])
	h, _ := ParseHeader(recs[0].Headers[at].Value)
	rewrapped, err := kms.RewrapDataKey(ctx, "r", h.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := WrappedKeyVersion(rewrapped); !ok || v != 2 {
		t.Fatalf("rewrapped key names version %d (%v), want 2", v, ok)
	}
	for _, tc := range []struct {
		name    string
		wrapped []byte
		want    error
	}{
		{"same DEK re-wrapped at v2", rewrapped, nil},
		{"another DEK's wrapping", func() []byte { oh, _ := ParseHeader(recs[1].Headers[hdrIndex(&recs[1])].Value); return oh.WrappedKey }(), ErrForgedHeader},
	} {
		rec := cloneRecord(recs[0])
		hdr, err := ReplaceWrappedKey(rec.Headers[at].Value, tc.wrapped)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		rec.Headers[at].Value = hdr
		o, _ := NewOpener(kms, OpenerConfig{})
		_, err = o.Open(ctx, "t", &rec, nil)
		t.Logf("%s: Open: %v", tc.name, err)
		if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
			t.Fatalf("%s: Open: %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == nil && (string(rec.Value) != "the value" || string(rec.Key) != "the key" || string(rec.Headers[0].Value) != "cam-7") {
			t.Fatalf("%s: opened to %q / %q / %q", tc.name, rec.Value, rec.Key, rec.Headers[0].Value)
		}
	}
}

func TestReplaceWrappedKeyKeepsTheRest(t *testing.T) {
	kms := kmstest.New("r")
	recs := sealed(t, kms, SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue, Headers: []string{"a", "b"}}, record("v", "", "a", "1"))
	raw := recs[0].Headers[hdrIndex(&recs[0])].Value
	before, _ := ParseHeader(raw)
	long := append([]byte{12}, bytes.Repeat([]byte("A"), 300)...) // a 2-byte length prefix
	out, err := ReplaceWrappedKey(raw, long)
	if err != nil {
		t.Fatal(err)
	}
	after, err := ParseHeader(out)
	if err != nil || !bytes.Equal(after.WrappedKey, long) {
		t.Fatalf("replaced header: %v, wrapped %q", err, after.WrappedKey)
	}
	after.WrappedKey, before.WrappedKey = nil, nil
	if after.Ring != before.Ring || after.Commitment != before.Commitment || after.Fields != before.Fields || strings.Join(after.Headers, ",") != "a,b" {
		t.Fatalf("replacing the wrapped key changed the header: %+v, was %+v", after, before)
	}
	for name, w := range map[string][]byte{"empty": nil, "too long": make([]byte, MaxWrappedKeyLen+1)} {
		if _, err := ReplaceWrappedKey(raw, w); err == nil {
			t.Errorf("%s wrapped key accepted", name)
		}
	}
	if _, err := ReplaceWrappedKey(raw[:10], long); !errors.Is(err, ErrForgedHeader) {
		t.Errorf("a cut header: %v, want ErrForgedHeader", err)
	}
}

func TestWrappedKeyVersion(t *testing.T) {
	for in, want := range map[string]int{
		"\x01\xab": 1, "\x1b\x00": 27, "\x95\x9a\xef\x3a\x01": 123456789, "\x80\x01\x07": 128,
		"\x00\x01": -1, "\x81\x00\x01": -1 /* not minimal */, "\x01": -1 /* no ciphertext */, "\x80": -1,
		"\x80\x94\xeb\xdc\x03\x01": -1 /* 10^9 */, "": -1,
	} {
		v, ok := WrappedKeyVersion([]byte(in))
		if want < 0 && ok || want >= 0 && (!ok || v != want) {
			t.Errorf("WrappedKeyVersion(%x) = %d, %v; want %d", in, v, ok, want)
		}
	}
}

// TestVaultCiphertextConversions: Vault's text form and the compact form
// convert both ways; anything but one canonical text is refused, as a bad
// wrapped key.
func TestVaultCiphertextConversions(t *testing.T) {
	text := "vault:v27:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, 60))
	c, err := CompactVaultCiphertext(text)
	if err != nil || len(c) != 61 || c[0] != 27 {
		t.Fatalf("compact %q: %x (%d bytes), %v; want 61 bytes, version 27", text, c, len(c), err)
	}
	if back, err := VaultCiphertext(c); err != nil || back != text {
		t.Fatalf("back: %q, %v", back, err)
	}
	for _, bad := range []string{"vault:v0:qw==", "vault:v01:qw==", "vault:v:qw==", "vault:v1", "vault:v1:", "vault:vx:qw==",
		"vault:v1234567890:qw==", "kms:v1:qw==", "vault:v1:qw", "vault:v1:qx==", "vault:v1:q w==", ""} {
		if _, err := CompactVaultCiphertext(bad); !errors.Is(err, ErrBadWrappedKey) {
			t.Errorf("CompactVaultCiphertext(%q): %v, want ErrBadWrappedKey", bad, err)
		}
	}
	if _, err := VaultCiphertext([]byte{0, 1}); !errors.Is(err, ErrBadWrappedKey) {
		t.Errorf("VaultCiphertext(version 0): %v, want ErrBadWrappedKey", err)
	}
}
