package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"reflect"
	"testing"

	"github.com/edgeid/edgeid/internal/racecheck"
	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var allCodecs = []Compression{None, Gzip, Snappy, LZ4, Zstd}

// sampleBatch is a batch of recs with compression c, built by Encode.
func sampleBatch(t testing.TB, c Compression, recs []kmsg.Record) []byte {
	t.Helper()
	b := Batch{Header: kmsg.RecordBatch{Magic: 2, Attributes: int16(c), FirstTimestamp: 1700000000000,
		MaxTimestamp: 1700000000009, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		LastOffsetDelta: int32(len(recs) - 1)}, Records: recs}
	out, err := NewCodec(0).Encode(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sampleRecords(n, valueLen int) []kmsg.Record {
	recs := make([]kmsg.Record, n)
	for i := range recs {
		recs[i] = kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: int64(i),
			Value: bytes.Repeat([]byte{byte('a' + i%26)}, valueLen)}
		if i%2 == 1 {
			recs[i].Key = []byte(fmt.Sprintf("k%d", i))
			recs[i].Headers = []kmsg.Header{{Key: "h", Value: []byte("x")}, {Key: "nil"}}
		}
	}
	return recs
}

// sameRecords compares the fields that travel on the wire.
func sameRecords(t *testing.T, got, want []kmsg.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.OffsetDelta != w.OffsetDelta || g.TimestampDelta64 != w.TimestampDelta64 ||
			!bytes.Equal(g.Key, w.Key) || (g.Key == nil) != (w.Key == nil) || !bytes.Equal(g.Value, w.Value) ||
			len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: got %+v, want %+v", i, g, w)
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(g.Headers[j].Value, w.Headers[j].Value) ||
				(g.Headers[j].Value == nil) != (w.Headers[j].Value == nil) {
				t.Fatalf("record %d header %d: got %+v, want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

func TestRoundTripEveryCompression(t *testing.T) {
	for _, c := range allCodecs {
		for _, n := range []int{1, 7, 300} {
			t.Run(fmt.Sprintf("%s/%d", c, n), func(t *testing.T) {
				want := sampleRecords(n, 100)
				raw := sampleBatch(t, c, want)
				cd := NewCodec(0)
				bs, tail, err := cd.Decode(raw)
				if err != nil || len(tail) != 0 || len(bs) != 1 {
					t.Fatalf("decode: %d batches, tail %d, err %v", len(bs), len(tail), err)
				}
				if bs[0].Compression() != c {
					t.Fatalf("compression %s, want %s", bs[0].Compression(), c)
				}
				sameRecords(t, bs[0].Records, want)
				again, err := cd.Encode(nil, &bs[0])
				if err != nil {
					t.Fatal(err)
				}
				if c != Gzip && c != LZ4 && !bytes.Equal(again, raw) {
					t.Errorf("re-encoding a decoded %s batch changed its bytes", c)
				}
				bs2, _, err := cd.Decode(again)
				if err != nil {
					t.Fatal(err)
				}
				sameRecords(t, bs2[0].Records, want)
			})
		}
	}
}

func TestSeveralBatchesAndTail(t *testing.T) {
	a, b := sampleBatch(t, Gzip, sampleRecords(3, 10)), sampleBatch(t, Zstd, sampleRecords(2, 10))
	all := append(append(append([]byte{}, a...), b...), b[:40]...)
	bs, tail, err := NewCodec(0).Decode(all)
	if err != nil || len(bs) != 2 || !bytes.Equal(tail, b[:40]) {
		t.Fatalf("got %d batches, tail %d bytes, err %v; want 2 batches, 40-byte tail", len(bs), len(tail), err)
	}
	out, err := NewCodec(0).EncodeAll(nil, bs)
	if err != nil {
		t.Fatal(err)
	}
	if bs2, _, err := NewCodec(0).Decode(out); err != nil || len(bs2) != 2 || len(bs2[0].Records) != 3 || len(bs2[1].Records) != 2 {
		t.Fatalf("re-decode: %v", err)
	}
}

// xerialFrame frames raw snappy blocks as the Java client does.
func xerialFrame(chunks ...[]byte) []byte {
	out := append([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}, 0, 0, 0, 1, 0, 0, 0, 1)
	for _, c := range chunks {
		blk := s2.EncodeSnappy(nil, c)
		out = binary.BigEndian.AppendUint32(out, uint32(len(blk)))
		out = append(out, blk...)
	}
	return out
}

// withPayload rewrites a batch's records payload and compression, fixing
// its length and CRC.
func withPayload(raw []byte, c Compression, payload []byte) []byte {
	out := append(append([]byte{}, raw[:headerLen]...), payload...)
	binary.BigEndian.PutUint16(out[offAttributes:], uint16(c))
	return fixBatch(out)
}

func fixBatch(b []byte) []byte {
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestXerialSnappyDecodes(t *testing.T) {
	want := sampleRecords(50, 200)
	plain := sampleBatch(t, None, want)[headerLen:]
	// Three chunks, split at arbitrary points, as xerial blocks are.
	raw := withPayload(sampleBatch(t, None, want), Snappy, xerialFrame(plain[:10], plain[10:5000], plain[5000:]))
	bs, _, err := NewCodec(0).Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, bs[0].Records, want)
	if !reflect.DeepEqual(bs[0].Compression(), Snappy) {
		t.Fatal("not snappy")
	}
}

// TestDecoderReusesItsStorage: a Decoder's second Decode returns the new
// batches' records exactly (headers included, each with its own spare
// slot), and once grown it decodes an uncompressed batch without
// allocating.
func TestDecoderReusesItsStorage(t *testing.T) {
	dec := NewCodec(0).NewDecoder()
	first := sampleRecords(7, 30)
	a := sampleBatch(t, None, first)
	second := sampleRecords(5, 12)
	b := append(sampleBatch(t, None, second), sampleBatch(t, Zstd, first[:3])...)
	for range 2 {
		bs, _, err := dec.Decode(a)
		if err != nil || len(bs) != 1 {
			t.Fatalf("first: %d batches, %v", len(bs), err)
		}
		sameRecords(t, bs[0].Records, first)
		if bs, _, err = dec.Decode(b); err != nil || len(bs) != 2 {
			t.Fatalf("second: %d batches, %v", len(bs), err)
		}
		sameRecords(t, bs[0].Records, second)
		sameRecords(t, bs[1].Records, first[:3])
		// The spare header slot of each record is its own.
		for i := range bs[0].Records {
			r := &bs[0].Records[i]
			r.Headers = append(r.Headers, kmsg.Header{Key: "added", Value: []byte{byte(i)}})
		}
		for i := range bs[0].Records {
			hs := bs[0].Records[i].Headers
			if len(hs) != len(second[i].Headers)+1 || hs[len(hs)-1].Key != "added" || hs[len(hs)-1].Value[0] != byte(i) {
				t.Fatalf("record %d: headers %v after each record got one more", i, hs)
			}
		}
	}
	big := sampleBatch(t, None, sampleRecords(500, 100))
	if _, _, err := dec.Decode(big); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() {
		if _, _, err := dec.Decode(big); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%.1f allocations per Decode of a 500-record batch, want 0", n)
	}
}

// TestDecoderInternsBoundedKeys: a Decoder keeps at most 256 header keys
// of at most 64 bytes, whatever the batches carry.
func TestDecoderInternsBoundedKeys(t *testing.T) {
	dec := NewCodec(0).NewDecoder()
	for b := range 10 {
		recs := sampleRecords(100, 1)
		for i := range recs {
			recs[i].Headers = []kmsg.Header{
				{Key: fmt.Sprintf("k-%d-%d", b, i), Value: []byte("v")},
				{Key: string(bytes.Repeat([]byte{byte('a' + i%26)}, 65+i)), Value: []byte("v")},
			}
		}
		if _, _, err := dec.Decode(sampleBatch(t, None, recs)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(dec.keys); n != maxInternedKeys {
		t.Errorf("%d keys interned, want the bound %d", n, maxInternedKeys)
	}
	for k := range dec.keys {
		if len(k) > maxInternedKeyLen {
			t.Errorf("interned a %d-byte key", len(k))
		}
	}
}

// TestDecoderReusesDecompressionBuffers: decoding a compressed batch again
// decompresses into the storage of the last Decode (no new buffer of the
// batch's size each time), for every codec, and the records stay right.
func TestDecoderReusesDecompressionBuffers(t *testing.T) {
	recs := sampleRecords(500, 100)
	for _, c := range []Compression{Gzip, Snappy, LZ4, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			raw := append(sampleBatch(t, c, recs), sampleBatch(t, c, recs[:7])...)
			dec := NewCodec(0).NewDecoder()
			var first *byte
			for i := range 3 {
				bs, _, err := dec.Decode(raw)
				if err != nil || len(bs) != 2 {
					t.Fatalf("decode %d: %d batches, %v", i, len(bs), err)
				}
				sameRecords(t, bs[0].Records, recs)
				sameRecords(t, bs[1].Records, recs[:7])
				at := &bs[0].Records[0].Value[0]
				if first == nil {
					first = at
				} else if at != first {
					t.Fatalf("decode %d: the batch was decompressed into new storage", i)
				}
			}
			// What is left per Decode is the codec's reader state, not
			// the payload: a handful of small allocations (the readers
			// are pooled, and the race detector empties pools at random).
			if racecheck.Enabled {
				return
			}
			if n := testing.AllocsPerRun(10, func() {
				if _, _, err := dec.Decode(raw); err != nil {
					t.Fatal(err)
				}
			}); n > 4 {
				t.Errorf("%.1f allocations per Decode, want at most 4", n)
			}
		})
	}
}

// TestEncodeEachEditsRunByRun: EncodeEach hands the records over in runs
// of at most EachRun, in order, each just before it is encoded, and
// every run's edits may reuse one buffer (as sealing does): the batch
// must decode, CRC32C checked, to exactly the edited records, in every
// codec, and match Encode of the same edits made beforehand. An error
// from the function ends the encoding with that error.
func TestEncodeEachEditsRunByRun(t *testing.T) {
	edit := func(buf []byte, rec *kmsg.Record) []byte {
		at := len(buf)
		buf = append(buf, "sealed:"...)
		buf = append(buf, rec.Value...)
		rec.Value = buf[at:len(buf):len(buf)]
		rec.Headers = append(rec.Headers, kmsg.Header{Key: "edited", Value: []byte{1}})
		return buf
	}
	cd := NewCodec(0)
	for _, c := range allCodecs {
		for _, n := range []int{1, EachRun, 2*EachRun + 5} {
			t.Run(fmt.Sprintf("%s/%d", c, n), func(t *testing.T) {
				raw := sampleBatch(t, c, sampleRecords(n, 100))
				bs, _, err := cd.Decode(raw)
				if err != nil {
					t.Fatal(err)
				}
				var buf []byte // one buffer for every run
				var runs []int
				next := 0
				out, err := cd.EncodeEach(nil, &bs[0], func(run []kmsg.Record) error {
					if len(run) == 0 || len(run) > EachRun || run[0].OffsetDelta != int32(next) {
						t.Fatalf("run of %d records from offset delta %d, want 1 to %d from %d", len(run), run[0].OffsetDelta, EachRun, next)
					}
					runs = append(runs, len(run))
					next += len(run)
					buf = buf[:0]
					for i := range run {
						buf = edit(buf, &run[i])
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if next != n {
					t.Fatalf("runs %v cover %d records, want %d", runs, next, n)
				}
				want := sampleRecords(n, 100)
				var wbuf []byte
				for i := range want {
					wbuf = edit(wbuf, &want[i])
				}
				got, tail, err := NewCodec(0).Decode(out)
				if err != nil || len(tail) != 0 || len(got) != 1 {
					t.Fatalf("decode of EncodeEach's batch: %d batches, tail %d, err %v", len(got), len(tail), err)
				}
				sameRecords(t, got[0].Records, want)
				wb := Batch{Header: got[0].Header, Records: want}
				enc, err := cd.Encode(nil, &wb)
				if err != nil {
					t.Fatal(err)
				}
				if c == None && !bytes.Equal(out, enc) {
					t.Fatal("EncodeEach and Encode of the same records differ")
				}
			})
		}
	}
	t.Run("error", func(t *testing.T) {
		bs, _, err := cd.Decode(sampleBatch(t, None, sampleRecords(3, 10)))
		if err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		if out, err := cd.EncodeEach([]byte("kept"), &bs[0], func([]kmsg.Record) error { return boom }); err != boom || out != nil {
			t.Fatalf("EncodeEach = %q, %v; want nil, %v", out, err, boom)
		}
	})
}
