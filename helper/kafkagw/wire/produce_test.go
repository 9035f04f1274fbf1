package wire

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestProducePartsMatchKmsg: for every version ProduceParts encodes, the
// parts joined are byte for byte what kmsg's AppendTo writes, and the
// records are referred to, not copied.
func TestProducePartsMatchKmsg(t *testing.T) {
	txn := "txn-1"
	empty := ""
	recs := func(n int) []byte { return bytes.Repeat([]byte{byte(n)}, n) }
	shapes := map[string]func() *kmsg.ProduceRequest{
		"no topics": func() *kmsg.ProduceRequest { return kmsg.NewPtrProduceRequest() },
		"one partition": func() *kmsg.ProduceRequest {
			r := kmsg.NewPtrProduceRequest()
			r.Acks, r.TimeoutMillis = -1, 30000
			r.Topics = []kmsg.ProduceRequestTopic{{Topic: "site-a.detections", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 3, Records: recs(200)}}}}
			return r
		},
		"many, transactional, nil and empty records": func() *kmsg.ProduceRequest {
			r := kmsg.NewPtrProduceRequest()
			r.TransactionID, r.Acks, r.TimeoutMillis = &txn, 1, 5
			r.Topics = []kmsg.ProduceRequestTopic{
				{Topic: "a", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: recs(300)}, {Partition: 1}, {Partition: 2, Records: []byte{}}}},
				{Topic: "", Partitions: nil},
				{Topic: string(bytes.Repeat([]byte("t"), 200)), Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 9, Records: recs(70000)}}},
			}
			return r
		},
		"empty transactional id": func() *kmsg.ProduceRequest {
			r := kmsg.NewPtrProduceRequest()
			r.TransactionID = &empty
			r.Topics = []kmsg.ProduceRequestTopic{{Topic: "b", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 1, Records: recs(5)}}}}
			return r
		},
	}
	for v := int16(minPartsProduce); v <= maxPartsProduce; v++ {
		for name, mk := range shapes {
			t.Run(fmt.Sprintf("v%d/%s", v, name), func(t *testing.T) {
				r := mk()
				r.Version = v
				want := r.AppendTo(nil)
				parts, _, ok := ProduceParts(nil, []byte("ignored prefix"), r)
				if !ok {
					t.Fatal("ProduceParts refused a plain request")
				}
				if got := bytes.Join(parts, nil); !bytes.Equal(got, want) {
					t.Fatalf("parts joined differ from kmsg:\n got %x\nwant %x", got, want)
				}
				for _, tp := range r.Topics {
					for _, p := range tp.Partitions {
						if len(p.Records) > 0 && !referred(parts, p.Records) {
							t.Errorf("partition %d's records were copied, not referred to", p.Partition)
						}
					}
				}
			})
		}
	}
}

func referred(parts [][]byte, recs []byte) bool {
	for _, p := range parts {
		if len(p) == len(recs) && &p[0] == &recs[0] {
			return true
		}
	}
	return false
}

// TestProducePartsRefuses: versions outside 3..12 and unknown tagged
// fields are left to kmsg.
func TestProducePartsRefuses(t *testing.T) {
	for _, v := range []int16{2, 13} {
		r := kmsg.NewPtrProduceRequest()
		r.Version = v
		if parts, buf, ok := ProduceParts(nil, nil, r); ok || parts != nil || buf != nil {
			t.Errorf("v%d: encoded", v)
		}
	}
	r := kmsg.NewPtrProduceRequest()
	r.Version = 9
	r.Topics = []kmsg.ProduceRequestTopic{{Topic: "a", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: []byte{1}}}}}
	r.Topics[0].Partitions[0].UnknownTags.Set(7, []byte{1})
	if _, _, ok := ProduceParts(nil, nil, r); ok {
		t.Error("a partition with unknown tags: encoded")
	}
}
