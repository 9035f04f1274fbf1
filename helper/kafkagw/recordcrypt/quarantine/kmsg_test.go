package quarantine

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestFromRecordAndBack(t *testing.T) {
	b := &kmsg.RecordBatch{FirstOffset: 100, FirstTimestamp: 1_800_000_000_000, MaxTimestamp: 1_800_000_009_000}
	rec := &kmsg.Record{OffsetDelta: 5, TimestampDelta64: 250, Value: []byte("ct"),
		Headers: []kmsg.Header{{Key: recordcrypt.HeaderKey, Value: []byte{1}}}}
	err := fmt.Errorf("open: %w", recordcrypt.ErrTampered)
	q := FromRecord("t", 2, b, rec, err)
	if q.ID() != "t-2-105" || !q.Timestamp.Equal(time.UnixMilli(1_800_000_000_250)) || q.Reason != "tampered" || q.Detail != err.Error() {
		t.Fatalf("got %+v", q)
	}
	b.Attributes = attrLogAppendTime
	if q := FromRecord("t", 2, b, rec, err); !q.Timestamp.Equal(time.UnixMilli(b.MaxTimestamp)) {
		t.Fatalf("LogAppendTime batch: timestamp %v, want the batch's MaxTimestamp", q.Timestamp)
	}
	back := q.Kmsg()
	if back.Key != nil || string(back.Value) != "ct" || !reflect.DeepEqual(back.Headers, rec.Headers) ||
		back.TimestampDelta64 != 1_800_000_000_250 {
		t.Fatalf("back to kmsg: %+v", back)
	}
}
