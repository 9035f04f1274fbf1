package recordcrypt_test

import (
	"bytes"
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
	long := []byte("vault:v12:" + strings.Repeat("A", 300)) // a 2-byte length prefix
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
		"vault:v1:abc": 1, "vault:v27:x": 27, "vault:v123456789:x": 123456789,
		"vault:v0:x": -1, "vault:v01:x": -1, "vault:v:x": -1, "vault:v1": -1, "vault:vx:y": -1,
		"vault:v1234567890:x": -1, "kms:v1:x": -1, "": -1,
	} {
		v, ok := WrappedKeyVersion([]byte(in))
		if want < 0 && ok || want >= 0 && (!ok || v != want) {
			t.Errorf("WrappedKeyVersion(%q) = %d, %v; want %d", in, v, ok, want)
		}
	}
}
