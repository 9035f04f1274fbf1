package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// bomb is a records payload of n bytes of zeros compressed with c, made
// with the compression libraries directly.
func bomb(t *testing.T, c Compression, n int) []byte {
	t.Helper()
	zeros := make([]byte, n)
	var buf bytes.Buffer
	switch c {
	case Gzip:
		w := gzip.NewWriter(&buf)
		w.Write(zeros)
		w.Close()
	case Snappy:
		return s2.EncodeSnappy(nil, zeros)
	case LZ4:
		w := lz4.NewWriter(&buf)
		w.Write(zeros)
		w.Close()
	case Zstd:
		// No content size in the frame header: the decoder cannot refuse
		// up front and must stop while decoding.
		enc, _ := zstd.NewWriter(nil, zstd.WithSingleSegment(false))
		w := enc
		w.Reset(&buf)
		w.Write(zeros)
		w.Close()
	}
	return buf.Bytes()
}

func TestDecompressionBombsRefused(t *testing.T) {
	const limit = 1 << 20
	base := sampleBatch(t, None, sampleRecords(1, 1))
	cases := []struct {
		name    string
		payload []byte
		c       Compression
	}{
		{"gzip", bomb(t, Gzip, 16<<20), Gzip},
		{"snappy", bomb(t, Snappy, 16<<20), Snappy},
		{"xerial snappy", xerialFrame(make([]byte, 600<<10), make([]byte, 600<<10)), Snappy},
		{"lz4", bomb(t, LZ4, 16<<20), LZ4},
		{"zstd", bomb(t, Zstd, 16<<20), Zstd},
		{"none", make([]byte, limit+1), None},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := withPayload(base, tc.c, tc.payload)
			_, _, err := NewCodec(limit).Decode(raw)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d-byte %s payload with a %d limit: err %v, want ErrTooLarge", len(tc.payload), tc.name, limit, err)
			}
		})
	}
}

// TestLimitIsExact: a batch whose records take exactly the limit decodes.
func TestLimitIsExact(t *testing.T) {
	for _, c := range allCodecs {
		raw := sampleBatch(t, c, sampleRecords(10, 1000))
		size := len(sampleBatch(t, None, sampleRecords(10, 1000))) - headerLen
		if _, _, err := NewCodec(size).Decode(raw); err != nil {
			t.Errorf("%s: limit %d = records size: %v", c, size, err)
		}
		if _, _, err := NewCodec(size - 1).Decode(raw); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: limit %d = records size - 1: err %v, want ErrTooLarge", c, size-1, err)
		}
	}
}

func TestCorruptBatches(t *testing.T) {
	good := sampleBatch(t, None, sampleRecords(3, 5))
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"flipped value byte", mut(func(b []byte) []byte { b[len(b)-5] ^= 1; return b }), ErrChecksum},
		{"negative length", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[offLength:], 0xffffff00); return b }), ErrCorrupt},
		{"shorter than header", mut(func(b []byte) []byte { return fixBatch(b[:40]) }), ErrCorrupt},
		{"unknown compression", mut(func(b []byte) []byte { b[offAttributes+1] |= 5; return fixBatch(b) }), ErrCorrupt},
		{"record count too high", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[57:], 4); return fixBatch(b) }), ErrCorrupt},
		{"record count huge", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[57:], 1<<30); return fixBatch(b) }), ErrCorrupt},
		{"record count negative", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[57:], 0xffffffff); return fixBatch(b) }), ErrCorrupt},
		{"record count too low", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[57:], 2); return fixBatch(b) }), ErrCorrupt},
		{"trailing garbage", mut(func(b []byte) []byte { return fixBatch(append(b, 0)) }), ErrCorrupt},
		{"record length past end", mut(func(b []byte) []byte { b[headerLen] = 0x7e; return fixBatch(b) }), ErrCorrupt},
		{"garbage gzip", withPayload(good, Gzip, []byte("not gzip at all")), ErrCorrupt},
		{"garbage lz4", withPayload(good, LZ4, []byte("not lz4 at all")), ErrCorrupt},
		{"garbage zstd", withPayload(good, Zstd, []byte("not zstd at all")), ErrCorrupt},
		{"garbage snappy", withPayload(good, Snappy, []byte{0x05, 0xff, 0xff}), ErrCorrupt},
		{"snappy claiming 4 GiB", withPayload(good, Snappy, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1}), ErrTooLarge},
		{"length 4", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[offLength:], 4); return b }), ErrCorrupt},
		{"xerial block past end", withPayload(good, Snappy, append(xerialFrame(), 0, 0, 1, 0, 1)), ErrCorrupt},
		{"xerial header only, cut", withPayload(good, Snappy, xerialFrame()[:12]), ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := NewCodec(0).Decode(tc.raw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// TestPassthrough: control batches and legacy batches are not decoded and
// come back byte for byte, and a transactional data batch is decoded.
func TestPassthrough(t *testing.T) {
	ctl := kmsg.Record{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}
	b := Batch{Header: kmsg.RecordBatch{Magic: 2, Attributes: 0x10, ProducerID: 7}, Records: []kmsg.Record{ctl}}
	control, err := NewCodec(0).Encode(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	control[offAttributes+1] |= attrControl
	fixBatch(control)
	legacy := []byte{0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 15, 1, 2, 3, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}
	txn := sampleBatch(t, None, sampleRecords(2, 3))
	binary.BigEndian.PutUint16(txn[offAttributes:], 0x10)
	fixBatch(txn)
	in := append(append(append([]byte{}, control...), legacy...), txn...)
	bs, tail, err := NewCodec(0).Decode(in)
	if err != nil || len(tail) != 0 || len(bs) != 3 {
		t.Fatalf("decode: %d batches, tail %d, %v", len(bs), len(tail), err)
	}
	if !bs[0].Passthrough() || !bs[1].Passthrough() || bs[2].Passthrough() || len(bs[2].Records) != 2 {
		t.Fatalf("passthrough: control %v legacy %v txn %v", bs[0].Passthrough(), bs[1].Passthrough(), bs[2].Passthrough())
	}
	bs[2].Records[0].Value = []byte("changed")
	out, err := NewCodec(0).EncodeAll(nil, bs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, append(append([]byte{}, control...), legacy...)) {
		t.Fatal("control or legacy batch changed on re-encode")
	}
}

// TestHeaderSpareSlot: a decoded record can take one more header without
// allocating, and doing so does not overwrite the next record's headers.
func TestHeaderSpareSlot(t *testing.T) {
	raw := sampleBatch(t, None, sampleRecords(4, 3))
	bs, _, err := NewCodec(0).Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	recs := bs[0].Records
	for i := range recs {
		before := &recs[i].Headers[:1][0]
		recs[i].Headers = append(recs[i].Headers, kmsg.Header{Key: "added"})
		if &recs[i].Headers[0] != before {
			t.Errorf("record %d: appending a header reallocated", i)
		}
	}
	sameHdr := []int{1, 3, 1, 3}
	for i := range recs {
		if len(recs[i].Headers) != sameHdr[i] || recs[i].Headers[len(recs[i].Headers)-1].Key != "added" {
			t.Errorf("record %d headers %+v", i, recs[i].Headers)
		}
	}
}
