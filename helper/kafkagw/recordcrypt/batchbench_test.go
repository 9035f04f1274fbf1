package recordcrypt_test

import (
	"crypto/rand"
	"testing"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/batch"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// benchBatch is one batch of n size-byte values compressed with c, the
// first half of each value random, the second a repeated detection line
// (as the gateway benchmark's), so that every codec has work to do.
func benchBatch(b *testing.B, n, size int, c batch.Compression) []byte {
	line := []byte(`{"camera":"cam7","label":"person","confidence":0.93,"bbox":[112,40,220,310]} `)
	recs := make([]kmsg.Record, n)
	for i := range recs {
		v := make([]byte, size)
		rand.Read(v[:size/2])
		for j := size / 2; j < size; j += len(line) {
			copy(v[j:], line)
		}
		recs[i] = kmsg.Record{OffsetDelta: int32(i), Value: v}
	}
	bt := batch.Batch{Header: kmsg.RecordBatch{Magic: 2, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, Attributes: int16(c)}, Records: recs}
	out, err := batch.NewCodec(0).Encode(nil, &bt)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkSealBatchStages splits the sealing of one produced batch (700
// records of 1 KiB, about what librdkafka sends) into its stages, each
// against a plain copy of the batch: decoding (a fresh Codec.Decode and a
// reused Decoder), decoding and re-encoding, sealing the whole batch and
// then encoding it, and the path the gateway runs (decode, then encode
// with EncodeEach sealing each run of records just before it is encoded).
func BenchmarkSealBatchStages(b *testing.B) {
	raw := benchBatch(b, 700, 1024, batch.None)
	codec := batch.NewCodec(0)
	s, _ := newPair(b, kmstest.New("r"), SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
	b.Run("copy", func(b *testing.B) {
		dst := make([]byte, 0, 2*len(raw))
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			dst = append(dst[:0], raw...)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := codec.Decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode+encode", func(b *testing.B) {
		dst := make([]byte, 0, 2*len(raw))
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			bs, _, _ := codec.Decode(raw)
			dst, _ = codec.EncodeAll(dst[:0], bs)
		}
	})
	dec := codec.NewDecoder()
	b.Run("decoder", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := dec.Decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode+seal-all+encode", func(b *testing.B) {
		dst := make([]byte, 0, 2*len(raw))
		vals := make([]byte, 0, 2*len(raw))
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			bs, _, _ := dec.Decode(raw)
			var err error
			if vals, _, err = s.SealAll(ctx, bs[0].Records, vals[:0]); err != nil {
				b.Fatal(err)
			}
			dst, _ = codec.EncodeAll(dst[:0], bs)
		}
		b.ReportMetric(float64(len(dst))/float64(len(raw)), "growth")
	})
	b.Run("decode+encode-sealing-each-run", func(b *testing.B) {
		dst := make([]byte, 0, 2*len(raw))
		seal := runSealer(s)
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			bs, _, _ := dec.Decode(raw)
			var err error
			if dst, err = codec.EncodeEach(dst[:0], &bs[0], seal); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(dst))/float64(len(raw)), "growth")
	})
}

// BenchmarkSealBatchCodecs is the gateway's whole sealing path (decode,
// then encode sealing each run of records) for one batch of 700 records of 1 KiB in each
// compression codec: "seal" stores the sealed batch uncompressed (the
// gateway's default), "seal-recompress" in the producer's codec
// (sealed_compression = "producer"), beside "reencode", decoding and
// encoding it again unsealed. MB/s are of the records' values; growth is
// the encoded batch over the produced one.
func BenchmarkSealBatchCodecs(b *testing.B) {
	s, _ := newPair(b, kmstest.New("r"), SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
	for _, c := range []batch.Compression{batch.None, batch.Gzip, batch.Snappy, batch.LZ4, batch.Zstd} {
		raw := benchBatch(b, 700, 1024, c)
		codec := batch.NewCodec(0)
		dec := codec.NewDecoder()
		for _, mode := range []string{"reencode", "seal", "seal-recompress"} {
			if c == batch.None && mode == "seal-recompress" {
				continue
			}
			b.Run(c.String()+"/"+mode, func(b *testing.B) {
				var dst []byte
				var seal func([]kmsg.Record) error
				if mode != "reencode" {
					seal = runSealer(s)
				}
				b.SetBytes(700 * 1024)
				b.ReportAllocs()
				for b.Loop() {
					bs, _, err := dec.Decode(raw)
					if err != nil {
						b.Fatal(err)
					}
					if mode == "seal" {
						bs[0].SetCompression(batch.None)
					}
					if dst, err = codec.EncodeEach(dst[:0], &bs[0], seal); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(dst))/float64(len(raw)), "growth")
			})
		}
	}
}

// runSealer seals each run of records into one buffer, as the gateway
// does (batch.Codec.EncodeEach copies a run before the next is sealed).
func runSealer(s *Sealer) func([]kmsg.Record) error {
	var vals []byte
	return func(run []kmsg.Record) (err error) {
		vals, _, err = s.SealAll(ctx, run, vals[:0])
		return err
	}
}

// BenchmarkOpenBatchStages is the consuming side of BenchmarkSealBatchStages
// for one sealed batch of 700 records of 1 KiB: opening every record and
// then encoding the batch, against the gateway's path (encode with
// EncodeEach opening each run of records just before it is encoded). MB/s
// are of the sealed batch.
func BenchmarkOpenBatchStages(b *testing.B) {
	codec := batch.NewCodec(0)
	s, o := newPair(b, kmstest.New("r"), SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
	bs, _, err := codec.Decode(benchBatch(b, 700, 1024, batch.None))
	if err != nil {
		b.Fatal(err)
	}
	sealed, err := codec.EncodeEach(nil, &bs[0], runSealer(s))
	if err != nil {
		b.Fatal(err)
	}
	dec := codec.NewDecoder()
	openRecs := func(recs []kmsg.Record, vals []byte) ([]byte, error) {
		for i := range recs {
			var err error
			if vals, err = o.Open(ctx, "t", &recs[i], vals); err != nil {
				return vals, err
			}
		}
		return vals, nil
	}
	b.Run("decode+open-all+encode", func(b *testing.B) {
		var dst, vals []byte
		b.SetBytes(int64(len(sealed)))
		b.ReportAllocs()
		for b.Loop() {
			bs, _, _ := dec.Decode(sealed)
			var err error
			if vals, err = openRecs(bs[0].Records, vals[:0]); err != nil {
				b.Fatal(err)
			}
			dst, _ = codec.EncodeAll(dst[:0], bs)
		}
	})
	b.Run("decode+encode-opening-each-run", func(b *testing.B) {
		var dst, vals []byte
		open := func(run []kmsg.Record) (err error) {
			vals, err = openRecs(run, vals[:0])
			return err
		}
		b.SetBytes(int64(len(sealed)))
		b.ReportAllocs()
		for b.Loop() {
			bs, _, _ := dec.Decode(sealed)
			var err error
			if dst, err = codec.EncodeEach(dst[:0], &bs[0], open); err != nil {
				b.Fatal(err)
			}
		}
	})
}
