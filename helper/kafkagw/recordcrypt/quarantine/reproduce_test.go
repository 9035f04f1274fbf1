package quarantine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const testTopic = "site-a.detections"

// sealedStore is a store holding records of testTopic sealed with kms
// (ring "r"), quarantined for the reasons given, offsets 0, 1, 2, … of
// partition offset%2; value "value-<offset>".
func sealedStore(t *testing.T, kms recordcrypt.KMS, reasons ...string) *Store {
	t.Helper()
	p, _ := recordcrypt.NewProducer(kms, recordcrypt.ProducerConfig{})
	sl, err := p.Sealer(recordcrypt.SealerConfig{Topic: testTopic, Ring: "r", Fields: recordcrypt.FieldValue})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i, reason := range reasons {
		rec := kmsg.Record{Key: fmt.Appendf(nil, "key-%d", i), Value: fmt.Appendf(nil, "value-%d", i),
			Headers: []kmsg.Header{{Key: "camera", Value: []byte("cam-7")}}}
		if reason != "not_encrypted" {
			if _, err := sl.Seal(context.Background(), &rec, nil); err != nil {
				t.Fatal(err)
			}
		}
		q := &Record{Topic: testTopic, Partition: int32(i % 2), Offset: int64(i), Timestamp: time.UnixMilli(1_800_000_000_000 + int64(i)).UTC(),
			Key: rec.Key, Value: rec.Value, Reason: reason}
		for _, h := range rec.Headers {
			q.Headers = append(q.Headers, Header{Key: h.Key, Value: h.Value})
		}
		if _, err := s.Put(q); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func newKfake(t *testing.T) (*kfake.Cluster, *kgo.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, testTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c, cl
}

// readAll reads every record of testTopic from c.
func readAll(t *testing.T, c *kfake.Cluster) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for range 3 { // three empty-or-not polls: what is there has arrived
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
		cancel()
	}
	return out
}

// TestReproduce: a dry run produces and marks nothing; a run re-produces
// exactly the records of the default reasons, each as stored and to its
// partition, which then open; a second run produces nothing; --reasons
// picks the others.
func TestReproduce(t *testing.T) {
	kms := kmstest.New("r")
	s := sealedStore(t, kms, "access_denied", "kms_unavailable", "tampered", "not_encrypted", "unknown_key_version", "forged_header")
	c, cl := newKfake(t)
	ctx := context.Background()
	sum, err := Reproduce(ctx, s, cl, Selection{}, true)
	t.Logf("dry run: %+v, %v", sum, err)
	if err != nil || sum.Count("would produce") != 3 || sum.Count("skipped") != 3 || len(readAll(t, c)) != 0 {
		t.Fatalf("dry run: %+v, %v", sum, err)
	}
	sum, err = Reproduce(ctx, s, cl, Selection{}, false)
	t.Logf("run 1: %+v, %v", sum, err)
	if err != nil || sum.Err() != nil || sum.Count("produced") != 3 {
		t.Fatalf("run 1: %+v, %v", sum, err)
	}
	for _, o := range sum.Outcomes {
		if o.Reason == "tampered" && !strings.Contains(o.Why, "only quarantined again") || o.Reason == "not_encrypted" && !strings.Contains(o.Why, "plaintext") {
			t.Errorf("%s skipped because %q", o.ID, o.Why)
		}
	}
	got := readAll(t, c)
	if len(got) != 3 {
		t.Fatalf("brokers hold %d records, want 3", len(got))
	}
	o, _ := recordcrypt.NewOpener(kms, recordcrypt.OpenerConfig{})
	for _, kr := range got {
		checkReproduced(t, s, o, kr)
	}
	sum, err = Reproduce(ctx, s, cl, Selection{}, false)
	t.Logf("run 2: %+v, %v", sum, err)
	if err != nil || sum.Count("produced") != 0 || len(readAll(t, c)) != 3 {
		t.Fatalf("run 2 produced again: %+v, %v", sum, err)
	}
	sum, err = Reproduce(ctx, s, cl, Selection{Topic: testTopic, Reasons: []string{"tampered"}}, false)
	if err != nil || sum.Count("produced") != 1 || len(readAll(t, c)) != 4 {
		t.Fatalf("--reasons tampered: %+v, %v", sum, err)
	}
}

// checkReproduced: kr is the stored record of its offset's id, exactly,
// and it opens to its value.
func checkReproduced(t *testing.T, s *Store, o *recordcrypt.Opener, kr *kgo.Record) {
	t.Helper()
	var want *Record
	ids, _ := s.List()
	for _, id := range ids {
		r, _ := s.Get(id)
		if r.Reproduced && bytes.Equal(r.Key, kr.Key) {
			want = r
		}
	}
	if want == nil || kr.Partition != want.Partition || !bytes.Equal(kr.Value, want.Value) || !kr.Timestamp.Equal(want.Timestamp) || len(kr.Headers) != len(want.Headers) {
		t.Fatalf("re-produced %s/%d@%d is no marked stored record (%+v)", kr.Topic, kr.Partition, kr.Offset, want)
	}
	rec := kmsg.Record{Key: kr.Key, Value: kr.Value}
	for i, h := range kr.Headers {
		if h.Key != want.Headers[i].Key || !bytes.Equal(h.Value, want.Headers[i].Value) {
			t.Fatalf("header %d differs", i)
		}
		rec.Headers = append(rec.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
	}
	if _, err := o.Open(context.Background(), kr.Topic, &rec, nil); err != nil || !strings.HasPrefix(string(rec.Value), "value-") {
		t.Fatalf("re-produced record does not open: %v", err)
	}
}

// failingProducer acknowledges every record but the one with key fail.
type failingProducer struct{ fail string }

func (f failingProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	var err error
	if string(r.Key) == f.fail {
		err = errors.New("NOT_ENOUGH_REPLICAS")
	}
	promise(r, err)
}

func (failingProducer) Flush(context.Context) error { return nil }

// TestReproduceFailureLeavesUnmarked: a record the brokers refuse stays
// unmarked and is named by the error; the next run produces only it.
func TestReproduceFailureLeavesUnmarked(t *testing.T) {
	s := sealedStore(t, kmstest.New("r"), "access_denied", "access_denied", "access_denied")
	sum, err := Reproduce(context.Background(), s, failingProducer{fail: "key-1"}, Selection{}, false)
	t.Logf("run 1: %+v, %v, %v", sum, err, sum.Err())
	if err != nil || sum.Count("produced") != 2 || sum.Err() == nil || !strings.Contains(sum.Err().Error(), testTopic+"-1-1") {
		t.Fatalf("run 1: %+v, %v", sum, err)
	}
	if r, _ := s.Get(testTopic + "-1-1"); r.Reproduced {
		t.Fatal("a refused record was marked reproduced")
	}
	sum, err = Reproduce(context.Background(), s, failingProducer{}, Selection{}, false)
	if err != nil || sum.Count("produced") != 1 || sum.Outcomes[2].Action != "produced" {
		t.Fatalf("run 2: %+v, %v", sum, err)
	}
}

func TestSelectionValidate(t *testing.T) {
	for _, sel := range []Selection{{Reasons: []string{"nope"}}, {Topic: "a/b"}} {
		if err := sel.Validate(); err == nil {
			t.Errorf("%+v accepted", sel)
		}
	}
	if err := (Selection{Topic: "t", Reasons: Reasons()}).Validate(); err != nil {
		t.Error(err)
	}
	if got := strings.Join(DefaultReasons(), ","); got != "access_denied,kms_unavailable,unknown_key_version" {
		t.Errorf("default reasons %s", got)
	}
}
