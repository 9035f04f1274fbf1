package recordcrypt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var ctx = context.Background()

func newPair(t testing.TB, kms KMS, cfg SealerConfig) (*Sealer, *Opener) {
	t.Helper()
	p, err := NewProducer(kms, ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Sealer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpener(kms, OpenerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return s, o
}

func record(value, key string, hdrs ...string) kmsg.Record {
	r := kmsg.Record{Value: []byte(value)}
	if key != "" {
		r.Key = []byte(key)
	}
	for i := 0; i+1 < len(hdrs); i += 2 {
		r.Headers = append(r.Headers, kmsg.Header{Key: hdrs[i], Value: []byte(hdrs[i+1])})
	}
	return r
}

func cloneRecord(r kmsg.Record) kmsg.Record {
	c := r
	c.Key, c.Value = slices.Clone(r.Key), slices.Clone(r.Value)
	c.Headers = nil
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, kmsg.Header{Key: h.Key, Value: slices.Clone(h.Value)})
	}
	return c
}

func equalRecords(a, b kmsg.Record) bool {
	if !bytes.Equal(a.Key, b.Key) || (a.Key == nil) != (b.Key == nil) || !bytes.Equal(a.Value, b.Value) ||
		(a.Value == nil) != (b.Value == nil) || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !bytes.Equal(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}

func TestSealOpenRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		cfg  SealerConfig
		rec  kmsg.Record
		// hidden are the byte strings that must not survive sealing.
		hidden []string
	}{
		{"value", SealerConfig{Fields: FieldValue}, record("plain value", "k1"), []string{"plain value"}},
		{"value and key", SealerConfig{Fields: FieldValue | FieldKey}, record("plain value", "secret key"), []string{"plain value", "secret key"}},
		{"null key", SealerConfig{Fields: FieldValue | FieldKey}, record("plain value", ""), []string{"plain value"}},
		{"empty value", SealerConfig{Fields: FieldValue}, record("", "k"), nil},
		{"headers", SealerConfig{Fields: FieldValue, Headers: []string{"camera", "gps"}},
			record("v", "", "camera", "cam-7", "other", "clear", "gps", "48.1,11.5"), []string{"cam-7", "48.1,11.5"}},
		{"headers only", SealerConfig{Headers: []string{"camera"}}, record("clear value", "", "camera", "cam-7"), []string{"cam-7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Topic, tc.cfg.Ring = "site-a.detections", "site-a"
			s, o := newPair(t, kmstest.New("site-a"), tc.cfg)
			orig := tc.rec
			rec := cloneRecord(orig)
			buf, err := s.Seal(ctx, &rec, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !Encrypted(&rec) {
				t.Fatal("sealed record carries no encryption header")
			}
			wire := fmt.Sprintf("%q %q %v", rec.Key, rec.Value, rec.Headers)
			for _, h := range tc.hidden {
				if bytes.Contains(buf, []byte(h)) || bytes.Contains([]byte(wire), []byte(h)) {
					t.Errorf("%q is still readable after sealing", h)
				}
			}
			if _, err := o.Open(ctx, "site-a.detections", &rec, nil); err != nil {
				t.Fatal(err)
			}
			if !equalRecords(rec, orig) {
				t.Fatalf("opened %+v, want %+v", rec, orig)
			}
		})
	}
}

// TestNullValueStaysNull: a tombstone stays a tombstone (compaction needs
// it) and carries no header when nothing else is sealed.
func TestNullValueStaysNull(t *testing.T) {
	s, _ := newPair(t, kmstest.New("r"), SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
	rec := kmsg.Record{Key: []byte("k")}
	if _, err := s.Seal(ctx, &rec, nil); err != nil {
		t.Fatal(err)
	}
	if rec.Value != nil || Encrypted(&rec) {
		t.Fatalf("tombstone became %+v", rec)
	}
}

func TestSealRefusesEncryptedRecord(t *testing.T) {
	s, _ := newPair(t, kmstest.New("r"), SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
	rec := record("v", "", HeaderKey, "fake")
	if _, err := s.Seal(ctx, &rec, nil); !errors.Is(err, ErrAlreadyEncrypted) {
		t.Fatalf("err %v, want ErrAlreadyEncrypted", err)
	}
}

// sealed returns two records sealed for topic t: one under each of two
// data keys of ring r (the second after a rotation of the data key).
func sealed(t *testing.T, kms KMS, cfg SealerConfig, recs ...kmsg.Record) []kmsg.Record {
	t.Helper()
	p, err := NewProducer(kms, ProducerConfig{MaxRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Sealer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []kmsg.Record
	for _, r := range recs {
		r = cloneRecord(r)
		if _, err := s.Seal(ctx, &r, nil); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func hdrIndex(r *kmsg.Record) int {
	for i, h := range r.Headers {
		if h.Key == HeaderKey {
			return i
		}
	}
	return -1
}
