package recordcrypt_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"testing"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fixedKMS hands out one known data key of one ring, wrapped as version 1
// followed by a fixed tag: a KMS whose key a test can write down.
type fixedKMS struct{ ring string }

var (
	fixedDEK     = bytes.Repeat([]byte{0x5a}, DEKLen)
	fixedWrapped = append([]byte{1}, "fixed-wrapped-key"...)
)

func (k fixedKMS) GenerateDataKey(_ context.Context, ring string) (DataKey, error) {
	if ring != k.ring {
		return DataKey{}, ErrAccessDenied
	}
	return DataKey{Plaintext: bytes.Clone(fixedDEK), Wrapped: bytes.Clone(fixedWrapped)}, nil
}

func (k fixedKMS) DecryptDataKey(_ context.Context, ring string, wrapped []byte) ([]byte, error) {
	if ring != k.ring || !bytes.Equal(wrapped, fixedWrapped) {
		return nil, errors.Join(ErrBadWrappedKey)
	}
	return bytes.Clone(fixedDEK), nil
}

// TestOpensStoredFormatVersion1 opens a record sealed on 2026-12-07 by the
// code of that day (value, key and the header "camera" encrypted under
// fixedKMS's key), kept here as its bytes: records already in a topic must
// open whatever this package's code becomes, so that a change to how the
// header or the AAD is built that would strand stored records fails here
// (sealing and opening changed alike would still agree with each other).
func TestOpensStoredFormatVersion1(t *testing.T) {
	const topic = "site-a.detections"
	stored := []struct{ key, value string }{
		{"camera", "7b13d48a000000000000000333d998d500f9f9958ba1f95a9f01daf8096bd91c" +
			"dda783d7ec3c"},
		{"plain", "6b657074"},
		{"edgeid-enc", "0107a1595f8460bb53dd7abcfdf0b64dfa1011736974652d612e646574656374" +
			"696f6e73120166697865642d777261707065642d6b6579010663616d657261"},
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rec := kmsg.Record{
		Key: unhex("7b13d48a00000000000000027f2abe573ba45114e27e3c97a1a2d4d082c082f4"),
		Value: unhex("7b13d48a0000000000000001b6cff9eaa0901138d1af80cb1ec6bc046233c627" +
			"484dd107df98292844adf356b55e5399dfc4ebb68b9b5819453f0c50e2546e74"),
	}
	for _, h := range stored {
		rec.Headers = append(rec.Headers, kmsg.Header{Key: h.key, Value: unhex(h.value)})
	}
	o, err := NewOpener(fixedKMS{topic}, OpenerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(ctx, topic, &rec, nil); err != nil {
		t.Fatalf("open a stored record: %v", err)
	}
	if string(rec.Key) != "cam7" || string(rec.Value) != `{"label":"person","confidence":0.93}` || len(rec.Headers) != 2 ||
		rec.Headers[0].Key != "camera" || string(rec.Headers[0].Value) != "north-gate" || string(rec.Headers[1].Value) != "kept" {
		t.Fatalf("opened %q = %q, headers %+v", rec.Key, rec.Value, rec.Headers)
	}
}
