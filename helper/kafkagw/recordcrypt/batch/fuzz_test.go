package batch

import (
	"testing"
)

// FuzzDecode feeds arbitrary Records bytes to Decode: it may not panic;
// what decodes must re-encode and decode again to the same records, the
// second time through one Decoder that every input reuses.
func FuzzDecode(f *testing.F) {
	for _, c := range allCodecs {
		f.Add(sampleBatch(f, c, sampleRecords(3, 20)))
	}
	f.Add(xerialFrame([]byte("x")))
	f.Add(withPayload(sampleBatch(f, None, sampleRecords(1, 1)), Snappy, xerialFrame(sampleBatch(f, None, sampleRecords(2, 5))[headerLen:])))
	c := NewCodec(1 << 20)
	dec := c.NewDecoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeRoundTrip(t, c, dec, data)
		// The same bytes as one batch with its length and CRC32C made
		// right, so that mutations reach decompression and the record
		// parser instead of stopping at the checksum.
		if len(data) >= headerLen {
			decodeRoundTrip(t, c, dec, fixBatch(append([]byte(nil), data...)))
		}
	})
}

func decodeRoundTrip(t *testing.T, c *Codec, dec *Decoder, data []byte) {
	bs, _, err := c.Decode(data)
	if err != nil {
		return
	}
	out, err := c.EncodeAll(nil, bs)
	if err != nil {
		t.Fatalf("decoded batches do not re-encode: %v", err)
	}
	again, tail, err := dec.Decode(out)
	if err != nil || len(tail) != 0 || len(again) != len(bs) {
		t.Fatalf("re-encoded batches do not decode: %v (tail %d, %d/%d batches)", err, len(tail), len(again), len(bs))
	}
	for i := range bs {
		if bs[i].Passthrough() != again[i].Passthrough() || len(bs[i].Records) != len(again[i].Records) {
			t.Fatalf("batch %d changed in the round trip", i)
		}
		for j := range bs[i].Records {
			a, b := bs[i].Records[j], again[i].Records[j]
			if string(a.Value) != string(b.Value) || string(a.Key) != string(b.Key) || (a.Key == nil) != (b.Key == nil) ||
				len(a.Headers) != len(b.Headers) || a.OffsetDelta != b.OffsetDelta || a.TimestampDelta64 != b.TimestampDelta64 {
				t.Fatalf("batch %d record %d changed in the round trip", i, j)
			}
		}
	}
}
