package recordcrypt_test

import (
	"bytes"
	"errors"
	"testing"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// editHeader parses rec's encryption header, lets f change it and writes
// it back.
func editHeader(t *testing.T, rec *kmsg.Record, f func(h *Header)) {
	t.Helper()
	at := hdrIndex(rec)
	h, err := ParseHeader(rec.Headers[at].Value)
	if err != nil {
		t.Fatal(err)
	}
	h.WrappedKey = bytes.Clone(h.WrappedKey)
	f(&h)
	rec.Headers[at].Value = h.AppendTo(nil)
}

func rawHeader(rec *kmsg.Record, f func([]byte) []byte) {
	at := hdrIndex(rec)
	rec.Headers[at].Value = f(bytes.Clone(rec.Headers[at].Value))
}

// tamperCase edits a sealed record (other is a record sealed under
// another data key of the same ring) and returns the topic to open it
// with.
type tamperCase struct {
	name string
	edit func(t *testing.T, rec *kmsg.Record, other kmsg.Record) string
	want error
}

func tamperCases() []tamperCase {
	return []tamperCase{
		{"moved to another topic", func(*testing.T, *kmsg.Record, kmsg.Record) string { return "t-other" }, ErrTampered},
		{"value and key swapped", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string { r.Key, r.Value = r.Value, r.Key; return "t" }, ErrTampered},
		{"value and header swapped", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			r.Headers[0].Value, r.Value = r.Value, r.Headers[0].Value
			return "t"
		}, ErrTampered},
		{"whole header of another data key", func(_ *testing.T, r *kmsg.Record, o kmsg.Record) string {
			r.Headers[hdrIndex(r)].Value = o.Headers[hdrIndex(&o)].Value
			return "t"
		}, ErrTampered},
		{"wrapped key of another data key, commitment kept", func(t *testing.T, r *kmsg.Record, o kmsg.Record) string {
			oh, _ := ParseHeader(o.Headers[hdrIndex(&o)].Value)
			editHeader(t, r, func(h *Header) { h.WrappedKey = oh.WrappedKey })
			return "t"
		}, ErrForgedHeader},
		{"fields: key bit dropped", func(t *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			editHeader(t, r, func(h *Header) { h.Fields &^= FieldKey })
			return "t"
		}, ErrTampered},
		{"header name list changed", func(t *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			editHeader(t, r, func(h *Header) { h.Headers = []string{"camera", "extra"} })
			return "t"
		}, ErrTampered},
		{"ring renamed", func(t *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			editHeader(t, r, func(h *Header) { h.Ring = "r2" })
			return "t"
		}, ErrForgedHeader},
		{"format version 2", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			rawHeader(r, func(b []byte) []byte { b[0] = 2; return b })
			return "t"
		}, ErrForgedHeader},
		{"unknown field bit", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			rawHeader(r, func(b []byte) []byte { b[1] |= 0x08; return b })
			return "t"
		}, ErrForgedHeader},
		{"ring length not minimally encoded", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			rawHeader(r, func(b []byte) []byte { return append(append(b[:18:18], b[18]|0x80, 0), b[19:]...) })
			return "t"
		}, ErrForgedHeader},
		{"wrapped key length not minimally encoded", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			rawHeader(r, func(b []byte) []byte {
				at := 19 + int(b[18]) // the wrapped key's 1-byte length follows the ring
				return append(append(b[:at:at], b[at]|0x80, 0), b[at+1:]...)
			})
			return "t"
		}, ErrForgedHeader},
		{"byte after the header", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			rawHeader(r, func(b []byte) []byte { return append(b, 0) })
			return "t"
		}, ErrForgedHeader},
		{"header cut", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			rawHeader(r, func(b []byte) []byte { return b[:30] })
			return "t"
		}, ErrForgedHeader},
		{"header twice", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			r.Headers = append(r.Headers, r.Headers[hdrIndex(r)])
			return "t"
		}, ErrForgedHeader},
		{"header removed", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			r.Headers = r.Headers[:hdrIndex(r)]
			return "t"
		}, ErrNotEncrypted},
		{"value truncated", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string { r.Value = r.Value[:Overhead-1]; return "t" }, ErrTruncated},
		{"value nulled", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string { r.Value = nil; return "t" }, ErrTruncated},
		{"header value truncated", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			r.Headers[0].Value = r.Headers[0].Value[:5]
			return "t"
		}, ErrTruncated},
		{"value shortened by one", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			r.Value = r.Value[:len(r.Value)-1]
			return "t"
		}, ErrTampered},
		{"unknown key version", func(t *testing.T, r *kmsg.Record, _ kmsg.Record) string {
			editHeader(t, r, func(h *Header) {
				if h.WrappedKey[0] != 1 {
					t.Fatalf("wrapped key of version %d, want 1", h.WrappedKey[0])
				}
				h.WrappedKey = append([]byte{7}, h.WrappedKey[1:]...)
			})
			return "t"
		}, ErrUnknownKeyVersion},
		{"tag byte flipped", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string { r.Value[len(r.Value)-1] ^= 1; return "t" }, ErrTampered},
		{"ciphertext byte flipped", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string { r.Value[13] ^= 0x80; return "t" }, ErrTampered},
		{"nonce byte flipped", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string { r.Value[0] ^= 1; return "t" }, ErrTampered},
		{"key tag flipped", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string { r.Key[len(r.Key)-1] ^= 1; return "t" }, ErrTampered},
		{"header ciphertext flipped", func(_ *testing.T, r *kmsg.Record, _ kmsg.Record) string { r.Headers[0].Value[12] ^= 1; return "t" }, ErrTampered},
	}
}

func TestTamperDetected(t *testing.T) {
	kms := kmstest.New("r", "r2")
	cfg := SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue | FieldKey, Headers: []string{"camera"}}
	for _, tc := range tamperCases() {
		t.Run(tc.name, func(t *testing.T) {
			recs := sealed(t, kms, cfg, record("the value", "the key", "camera", "cam-7"), record("other", "k", "camera", "cam-9"))
			rec := cloneRecord(recs[0])
			topic := tc.edit(t, &rec, recs[1])
			before := cloneRecord(rec)
			o, err := NewOpener(kms, OpenerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = o.Open(ctx, topic, &rec, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if Reason(err) != Reason(tc.want) {
				t.Errorf("Reason %q, want %q", Reason(err), Reason(tc.want))
			}
			if !equalRecords(rec, before) {
				t.Errorf("a failed Open changed the record")
			}
			// The untouched record still opens with the same Opener.
			good := cloneRecord(recs[0])
			if _, err := o.Open(ctx, "t", &good, nil); err != nil {
				t.Errorf("the untouched record does not open: %v", err)
			}
		})
	}
}

func TestRingForRefusesOtherRing(t *testing.T) {
	kms := kmstest.New("r")
	recs := sealed(t, kms, SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue}, record("v", ""))
	o, _ := NewOpener(kms, OpenerConfig{RingFor: func(topic string) (string, bool) { return "ring-of-" + topic, true }})
	if _, err := o.Open(ctx, "t", &recs[0], nil); !errors.Is(err, ErrForgedHeader) {
		t.Fatalf("err %v, want ErrForgedHeader", err)
	}
}

// TestKMSRefusalsAreTyped: no decrypt permission and a KMS outage are
// told apart, and a refusal is remembered (one KMS call for many records)
// while an outage is not.
func TestKMSRefusalsAreTyped(t *testing.T) {
	kms := kmstest.New("r")
	recs := sealed(t, kms, SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue}, record("v", ""))
	counting := &countingKMS{KMS: kms}
	o, _ := NewOpener(counting, OpenerConfig{})
	kms.Deny("decrypt", "r", true)
	for range 5 {
		rec := cloneRecord(recs[0])
		if _, err := o.Open(ctx, "t", &rec, nil); !errors.Is(err, ErrAccessDenied) {
			t.Fatalf("err %v, want ErrAccessDenied", err)
		}
	}
	if counting.decrypts != 1 {
		t.Errorf("%d KMS calls for 5 refused records, want 1 (refusal remembered)", counting.decrypts)
	}
	kms.Deny("decrypt", "r", false)
	kms.SetDown(true)
	o2, _ := NewOpener(counting, OpenerConfig{})
	counting.decrypts = 0
	for range 3 {
		rec := cloneRecord(recs[0])
		if _, err := o2.Open(ctx, "t", &rec, nil); !errors.Is(err, ErrKMSUnavailable) {
			t.Fatalf("err %v, want ErrKMSUnavailable", err)
		}
	}
	if counting.decrypts != 3 {
		t.Errorf("%d KMS calls during an outage, want 3 (outages not remembered)", counting.decrypts)
	}
	kms.SetDown(false)
	rec := cloneRecord(recs[0])
	if _, err := o2.Open(ctx, "t", &rec, nil); err != nil || string(rec.Value) != "v" {
		t.Fatalf("after the outage: %v, value %q", err, rec.Value)
	}
}
