package recordcrypt_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/batch"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestBrokerSeesOnlyCiphertext is the library's part of issue 19's first
// acceptance check, for every compression: franz-go produces to kfake; a
// Produce hook (where the gateway will sit) decodes each batch, seals
// every record and re-encodes it; franz-go's consumer reading the topic
// directly finds no plaintext value, and opening what it read gives every
// value back, in order.
func TestBrokerSeesOnlyCiphertext(t *testing.T) {
	for _, comp := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}} {
		t.Run(comp.name, func(t *testing.T) {
			kms := kmstest.New("ring")
			p, _ := NewProducer(kms, ProducerConfig{MaxRecords: 7})
			s, _ := p.Sealer(SealerConfig{Topic: "t", Ring: "ring", Fields: FieldValue})
			got := produceSealed(t, comp.codec, s, 30)
			o, _ := NewOpener(kms, OpenerConfig{})
			for i, r := range got {
				want := fmt.Sprintf("detection %03d from cam-7", i)
				if bytes.Contains(r.Value, []byte("detection")) {
					t.Fatalf("record %d: the broker holds plaintext %q", i, r.Value)
				}
				rec := kmsg.Record{Key: r.Key, Value: r.Value}
				for _, h := range r.Headers {
					rec.Headers = append(rec.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
				}
				if _, err := o.Open(ctx, r.Topic, &rec, nil); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if string(rec.Value) != want {
					t.Fatalf("record %d opened to %q, want %q", i, rec.Value, want)
				}
			}
		})
	}
}

// produceSealed produces n records through a kfake Produce hook that
// seals them with s, and consumes them back as stored.
func produceSealed(t *testing.T, codec kgo.CompressionCodec, s *Sealer, n int) []*kgo.Record {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bc := batch.NewCodec(0)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for ti := range req.(*kmsg.ProduceRequest).Topics {
			tp := &req.(*kmsg.ProduceRequest).Topics[ti]
			for pi := range tp.Partitions {
				tp.Partitions[pi].Records = sealRecords(t, bc, s, tp.Partitions[pi].Records)
			}
		}
		return nil, nil, false
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(20*time.Millisecond), kgo.ConsumeTopics("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: "t", Value: []byte(fmt.Sprintf("detection %03d from cam-7", i))})
	}
	if err := cl.ProduceSync(cctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var got []*kgo.Record
	for len(got) < n && cctx.Err() == nil {
		got = append(got, cl.PollFetches(cctx).Records()...)
	}
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}
	return got
}

func sealRecords(t *testing.T, bc *batch.Codec, s *Sealer, records []byte) []byte {
	bs, _, err := bc.Decode(records)
	if err != nil {
		t.Errorf("decode: %v", err)
		return records
	}
	var buf []byte
	for i := range bs {
		for j := range bs[i].Records {
			if buf, err = s.Seal(ctx, &bs[i].Records[j], buf); err != nil {
				t.Errorf("seal: %v", err)
				return records
			}
		}
	}
	out, err := bc.EncodeAll(nil, bs)
	if err != nil {
		t.Errorf("encode: %v", err)
		return records
	}
	return out
}
