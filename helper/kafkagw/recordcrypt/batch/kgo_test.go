package batch

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKgoBatchesRoundTrip takes the batches franz-go's own producer writes,
// with every codec, decodes them in kfake's Produce hook, checks every
// record against what was produced, changes every value and re-encodes
// the batch in place of the original; franz-go's consumer (which checks
// the CRC32C and decompresses on its own) must then read the changed
// values.
func TestKgoBatchesRoundTrip(t *testing.T) {
	codecs := []struct {
		name string
		kgo  kgo.CompressionCodec
		want Compression
	}{
		{"none", kgo.NoCompression(), None},
		{"gzip", kgo.GzipCompression(), Gzip},
		{"snappy", kgo.SnappyCompression(), Snappy},
		{"lz4", kgo.Lz4Compression(), LZ4},
		{"zstd", kgo.ZstdCompression(), Zstd},
	}
	for _, tc := range codecs {
		t.Run(tc.name, func(t *testing.T) {
			produced := testRecords(20)
			seen := runThroughKfake(t, tc.kgo, produced, func(t *testing.T, b *Batch) {
				if b.Compression() != tc.want {
					t.Errorf("kgo wrote a %s batch, want %s", b.Compression(), tc.want)
				}
				for i := range b.Records {
					b.Records[i].Value = append([]byte("changed:"), b.Records[i].Value...)
				}
			})
			if len(seen) != len(produced) {
				t.Fatalf("consumed %d records, want %d", len(seen), len(produced))
			}
			for i, r := range seen {
				p := produced[i]
				if want := append([]byte("changed:"), p.Value...); !bytes.Equal(r.Value, want) {
					t.Errorf("record %d: value %q, want %q", i, r.Value, want)
				}
				if !bytes.Equal(r.Key, p.Key) || (r.Key == nil) != (p.Key == nil) {
					t.Errorf("record %d: key %q, want %q", i, r.Key, p.Key)
				}
				if fmt.Sprint(r.Headers) != fmt.Sprint(p.Headers) {
					t.Errorf("record %d: headers %v, want %v", i, r.Headers, p.Headers)
				}
			}
		})
	}
}

// testRecords are compressible records with null, empty and set keys, and
// zero to two headers.
func testRecords(n int) []*kgo.Record {
	var out []*kgo.Record
	for i := range n {
		r := &kgo.Record{Topic: "t", Value: bytes.Repeat([]byte(fmt.Sprintf("detection %d;", i)), 20)}
		switch i % 3 {
		case 1:
			r.Key = []byte{}
		case 2:
			r.Key = []byte(fmt.Sprintf("cam-%d", i))
		}
		for h := range i % 3 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: fmt.Sprintf("h%d", h), Value: []byte("v")})
		}
		out = append(out, r)
	}
	return out
}

// runThroughKfake produces recs with codec, lets change edit every decoded
// batch of every Produce request before kfake stores it, and consumes the
// topic back.
func runThroughKfake(t *testing.T, codec kgo.CompressionCodec, recs []*kgo.Record, change func(*testing.T, *Batch)) []*kgo.Record {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	codecUnderTest := NewCodec(0)
	var mu sync.Mutex
	batches := 0
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		for ti := range pr.Topics {
			for pi := range pr.Topics[ti].Partitions {
				p := &pr.Topics[ti].Partitions[pi]
				p.Records = reencode(t, codecUnderTest, p.Records, change)
				mu.Lock()
				batches++
				mu.Unlock()
			}
		}
		return nil, nil, false
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(50*time.Millisecond), kgo.ConsumeTopics("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var got []*kgo.Record
	for len(got) < len(recs) && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil && ctx.Err() == nil {
			t.Fatalf("consume: %v", err)
		}
		got = append(got, fs.Records()...)
	}
	mu.Lock()
	defer mu.Unlock()
	if batches == 0 {
		t.Fatal("the Produce hook saw no batch")
	}
	return got
}

func reencode(t *testing.T, c *Codec, records []byte, change func(*testing.T, *Batch)) []byte {
	bs, tail, err := c.Decode(records)
	if err != nil || len(tail) != 0 {
		t.Errorf("decode: %v (tail %d bytes)", err, len(tail))
		return records
	}
	for i := range bs {
		change(t, &bs[i])
	}
	out, err := c.EncodeAll(nil, bs)
	if err != nil {
		t.Errorf("encode: %v", err)
		return records
	}
	return out
}
