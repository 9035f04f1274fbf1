package quarantine

import (
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// attrLogAppendTime is the batch attribute bit of broker timestamps.
const attrLogAppendTime = 0x08

// FromRecord is the quarantine record of rec, read from batch b of
// topic's partition, that could not be decrypted because of err: its
// offset and timestamp are resolved from the batch (a LogAppendTime batch
// gives every record the batch's MaxTimestamp). rec must be as received.
func FromRecord(topic string, partition int32, b *kmsg.RecordBatch, rec *kmsg.Record, err error) *Record {
	ts := b.FirstTimestamp + rec.TimestampDelta64
	if b.Attributes&attrLogAppendTime != 0 {
		ts = b.MaxTimestamp
	}
	r := &Record{Topic: topic, Partition: partition, Offset: b.FirstOffset + int64(rec.OffsetDelta),
		Timestamp: time.UnixMilli(ts).UTC(), Key: rec.Key, Value: rec.Value, Reason: recordcrypt.Reason(err)}
	if err != nil {
		r.Detail = err.Error()
	}
	for _, h := range rec.Headers {
		r.Headers = append(r.Headers, Header{Key: h.Key, Value: h.Value})
	}
	return r
}

// Kmsg is r as a record to produce again: key, value and headers as
// received, with r's timestamp as its delta from zero (set the batch's
// FirstTimestamp to 0, or adjust).
func (r *Record) Kmsg() kmsg.Record {
	rec := kmsg.Record{Key: r.Key, Value: r.Value, TimestampDelta64: r.Timestamp.UnixMilli()}
	for _, h := range r.Headers {
		rec.Headers = append(rec.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
	}
	return rec
}
