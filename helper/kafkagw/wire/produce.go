package wire

import (
	"encoding/binary"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Produce request versions ProduceParts encodes: RecordBatch-carrying
// versions with topic names (v13 names topics by id).
const (
	minPartsProduce = 3
	flexibleProduce = 9
	maxPartsProduce = 12
	// produceFixedBytes bounds the bytes of a request outside its topics:
	// transactional id prefix, acks, timeout, topic count, tagged fields.
	produceFixedBytes = binary.MaxVarintLen32 + 2 + 4 + binary.MaxVarintLen32 + 1
)

// ProduceParts encodes the body of r (everything after the request
// header) as kmsg's AppendTo would, but as parts that refer to each
// partition's Records instead of copying them: a re-encoded Produce
// request of sealed batches leaves without one more copy of its records.
// The other bytes are appended to buf, which the returned parts alias;
// parts are appended to dst. It reports false, encoding nothing, for a
// version outside 3 to 12 or a request carrying unknown tagged fields:
// the caller then encodes with kmsg.
func ProduceParts(dst [][]byte, buf []byte, r *kmsg.ProduceRequest) ([][]byte, []byte, bool) {
	if r.Version < minPartsProduce || r.Version > maxPartsProduce || r.UnknownTags.Len() > 0 {
		return dst, buf, false
	}
	// Room for every byte but the records, so that buf never moves while
	// parts are cut from it.
	room := produceFixedBytes
	if r.TransactionID != nil {
		room += len(*r.TransactionID)
	}
	for i := range r.Topics {
		t := &r.Topics[i]
		if t.UnknownTags.Len() > 0 {
			return dst, buf, false
		}
		room += 2*binary.MaxVarintLen32 + len(t.Topic) + 1
		for j := range t.Partitions {
			if t.Partitions[j].UnknownTags.Len() > 0 {
				return dst, buf, false
			}
			room += 4 + binary.MaxVarintLen32 + 1
		}
	}
	flex := r.Version >= flexibleProduce
	buf = slices.Grow(buf, room)
	from := len(buf)
	if flex {
		buf = appendCompactNullableString(buf, r.TransactionID)
	} else {
		buf = appendNullableString(buf, r.TransactionID)
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(r.Acks))
	buf = binary.BigEndian.AppendUint32(buf, uint32(r.TimeoutMillis))
	buf = appendArrayLen(buf, len(r.Topics), flex)
	for i := range r.Topics {
		t := &r.Topics[i]
		if flex {
			buf = binary.AppendUvarint(buf, uint64(len(t.Topic))+1)
		} else {
			buf = binary.BigEndian.AppendUint16(buf, uint16(len(t.Topic)))
		}
		buf = append(buf, t.Topic...)
		buf = appendArrayLen(buf, len(t.Partitions), flex)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			buf = binary.BigEndian.AppendUint32(buf, uint32(p.Partition))
			switch {
			case flex && p.Records == nil:
				buf = append(buf, 0)
			case flex:
				buf = binary.AppendUvarint(buf, uint64(len(p.Records))+1)
			case p.Records == nil:
				buf = binary.BigEndian.AppendUint32(buf, 0xFFFFFFFF)
			default:
				buf = binary.BigEndian.AppendUint32(buf, uint32(len(p.Records)))
			}
			if len(p.Records) > 0 {
				dst = append(dst, buf[from:len(buf):len(buf)], p.Records)
				from = len(buf)
			}
			if flex {
				buf = append(buf, 0) // the partition's tagged fields
			}
		}
		if flex {
			buf = append(buf, 0) // the topic's
		}
	}
	if flex {
		buf = append(buf, 0) // the request's
	}
	return append(dst, buf[from:len(buf):len(buf)]), buf, true
}

func appendArrayLen(buf []byte, n int, flex bool) []byte {
	if flex {
		return binary.AppendUvarint(buf, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(buf, uint32(n))
}

func appendNullableString(buf []byte, s *string) []byte {
	if s == nil {
		return binary.BigEndian.AppendUint16(buf, 0xFFFF)
	}
	return append(binary.BigEndian.AppendUint16(buf, uint16(len(*s))), *s...)
}

func appendCompactNullableString(buf []byte, s *string) []byte {
	if s == nil {
		return append(buf, 0)
	}
	return append(binary.AppendUvarint(buf, uint64(len(*s))+1), *s...)
}
