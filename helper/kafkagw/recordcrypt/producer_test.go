package recordcrypt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type producerRig struct {
	kms   *kmstest.KMS
	count *countingKMS
	clk   *clock
	p     *Producer
	s     *Sealer
}

func newRig(t *testing.T, cfg ProducerConfig) *producerRig {
	t.Helper()
	r := &producerRig{kms: kmstest.New("r"), clk: &clock{now: time.Unix(1_800_000_000, 0)}}
	r.count = &countingKMS{KMS: r.kms}
	cfg.Now = r.clk.Now
	var err error
	if r.p, err = NewProducer(r.count, cfg); err != nil {
		t.Fatal(err)
	}
	if r.s, err = r.p.Sealer(SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue}); err != nil {
		t.Fatal(err)
	}
	return r
}

// seal seals n records and returns the wrapped key of each (nil where
// Seal failed) and the last error.
func (r *producerRig) seal(n int) ([]string, error) {
	var keys []string
	var last error
	for range n {
		rec := kmsg.Record{Value: []byte("v")}
		if _, err := r.s.Seal(ctx, &rec, nil); err != nil {
			keys, last = append(keys, ""), err
			continue
		}
		h, _ := ParseHeader(rec.Headers[len(rec.Headers)-1].Value)
		keys = append(keys, string(h.WrappedKey))
	}
	return keys, last
}

func distinct(keys []string) int {
	m := map[string]bool{}
	for _, k := range keys {
		if k != "" {
			m[k] = true
		}
	}
	return len(m)
}

func TestDataKeyReusedUpToMaxRecords(t *testing.T) {
	r := newRig(t, ProducerConfig{MaxRecords: 10})
	keys, err := r.seal(35)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if i%10 != 0 && keys[i] != keys[i-1] {
			t.Fatalf("record %d got a new key within the 10-record bound", i)
		}
		if i%10 == 0 && i > 0 && keys[i] == keys[i-1] {
			t.Fatalf("record %d reused a key past the 10-record bound", i)
		}
	}
	if g, _ := r.count.counts(); g != 4 {
		t.Errorf("%d datakey calls for 35 records at 10 per key, want 4", g)
	}
}

// TestSealAllKeepsTheRecordBound: SealAll takes one key for a whole
// batch only when the key can seal all of it; no key ever seals more than
// MaxRecords records, whatever the batch sizes, and every record opens.
func TestSealAllKeepsTheRecordBound(t *testing.T) {
	r := newRig(t, ProducerConfig{MaxRecords: 10})
	o, err := NewOpener(r.kms, OpenerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	perKey := map[string]int{}
	total := 0
	for _, n := range []int{1, 4, 5, 3, 9, 25, 10, 2, 0, 7} {
		recs := make([]kmsg.Record, n)
		for i := range recs {
			recs[i].Value = []byte(fmt.Sprintf("batch of %d, record %d", n, i))
		}
		if n > 0 {
			recs[0].Value = nil // a tombstone: nothing to seal, stays null
		}
		_, sealed, err := r.s.SealAll(ctx, recs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := max(n-1, 0); sealed != want {
			t.Errorf("batch of %d: %d sealed, want %d", n, sealed, want)
		}
		for i := range recs {
			if recs[i].Value == nil {
				if Encrypted(&recs[i]) {
					t.Errorf("batch of %d: the null value got an encryption header", n)
				}
				continue
			}
			h, err := ParseHeader(recs[i].Headers[len(recs[i].Headers)-1].Value)
			if err != nil {
				t.Fatal(err)
			}
			perKey[string(h.WrappedKey)]++
			total++
			if _, err := o.Open(ctx, "t", &recs[i], nil); err != nil {
				t.Fatalf("batch of %d, record %d: %v", n, i, err)
			}
			if want := fmt.Sprintf("batch of %d, record %d", n, i); string(recs[i].Value) != want {
				t.Fatalf("opened %q, want %q", recs[i].Value, want)
			}
		}
	}
	for k, n := range perKey {
		if n > 10 {
			t.Errorf("key %.20s… sealed %d records, bound 10", k, n)
		}
	}
	t.Logf("%d records under %d keys", total, len(perKey))
}

func TestDataKeyReusedUpToMaxAge(t *testing.T) {
	r := newRig(t, ProducerConfig{MaxAge: time.Minute})
	a, _ := r.seal(5)
	r.clk.Add(59 * time.Second)
	b, _ := r.seal(1)
	r.clk.Add(time.Second)
	c, _ := r.seal(1)
	if distinct(a) != 1 || b[0] != a[0] || c[0] == a[0] {
		t.Fatalf("keys over time: %d distinct at start, same at 59s %v, new at 60s %v", distinct(a), b[0] == a[0], c[0] != a[0])
	}
}

func TestOutageBoundThenFailClosed(t *testing.T) {
	r := newRig(t, ProducerConfig{MaxRecords: 5, OutageRecords: 10, OutageAge: time.Hour, RetryInterval: time.Second})
	first, err := r.seal(5)
	if err != nil {
		t.Fatal(err)
	}
	r.kms.SetDown(true)
	// 10 more records on the held key (the outage bound), then fail.
	during, err := r.seal(12)
	for i := range 10 {
		if during[i] != first[0] {
			t.Fatalf("record %d of the outage: not sealed with the held key", i)
		}
	}
	if during[10] != "" || during[11] != "" || !errors.Is(err, ErrOutageBound) || !errors.Is(err, ErrKMSUnavailable) {
		t.Fatalf("past the bound: keys %q, err %v; want failures with ErrOutageBound wrapping ErrKMSUnavailable", during[10:], err)
	}
	if g, _ := r.count.counts(); g != 2 {
		t.Errorf("%d datakey attempts, want 2 (first key, one failed refresh within the retry interval)", g)
	}
	r.clk.Add(time.Second)
	if _, err := r.seal(1); !errors.Is(err, ErrOutageBound) {
		t.Fatalf("still down: err %v", err)
	}
	if g, _ := r.count.counts(); g != 3 {
		t.Errorf("%d datakey attempts after the retry interval, want 3", g)
	}
	r.kms.SetDown(false)
	r.clk.Add(time.Second)
	after, err := r.seal(3)
	if err != nil || after[0] == first[0] || distinct(after) != 1 {
		t.Fatalf("after the outage: err %v, new key %v", err, after[0] != first[0])
	}
}

func TestOutageAgeBound(t *testing.T) {
	r := newRig(t, ProducerConfig{MaxAge: time.Minute, OutageAge: 10 * time.Minute, RetryInterval: time.Second})
	if _, err := r.seal(1); err != nil {
		t.Fatal(err)
	}
	r.kms.SetDown(true)
	r.clk.Add(10*time.Minute + 59*time.Second)
	if _, err := r.seal(1); err != nil {
		t.Fatalf("within max_age + outage_age: %v", err)
	}
	r.clk.Add(time.Second)
	if _, err := r.seal(1); !errors.Is(err, ErrOutageBound) {
		t.Fatalf("at max_age + outage_age: err %v, want ErrOutageBound", err)
	}
}

func TestNoKeyAndKMSFailing(t *testing.T) {
	r := newRig(t, ProducerConfig{})
	r.kms.Deny("generate", "r", true)
	if _, err := r.seal(1); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("producer without datakey permission: err %v, want ErrAccessDenied", err)
	}
	r2 := newRig(t, ProducerConfig{NoOutageGrace: true, MaxRecords: 1})
	r2.seal(1)
	r2.kms.SetDown(true)
	if _, err := r2.seal(1); !errors.Is(err, ErrOutageBound) {
		t.Fatalf("NoOutageGrace: err %v, want ErrOutageBound at once", err)
	}
}

func TestProducerConfigRefused(t *testing.T) {
	for _, cfg := range []ProducerConfig{
		{MaxRecords: 1 << 33},
		{MaxRecords: 1 << 31, OutageRecords: 1<<31 + 1},
		{MaxAge: -time.Second},
	} {
		if _, err := NewProducer(kmstest.New(), cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// TestRotatedKeyZeroed: the producer zeroes a key it replaces and every
// key on Close.
func TestRotatedKeyZeroed(t *testing.T) {
	r := newRig(t, ProducerConfig{MaxRecords: 2})
	r.seal(2)
	k1 := r.p.CurrentKey("r")
	if k1 == nil || bytes.Equal(k1, make([]byte, 32)) {
		t.Fatal("no live key")
	}
	r.seal(1)
	if !bytes.Equal(k1, make([]byte, 32)) {
		t.Fatal("the replaced key was not zeroed")
	}
	k2 := r.p.CurrentKey("r")
	r.p.Close()
	if !bytes.Equal(k2, make([]byte, 32)) {
		t.Fatal("Close did not zero the current key")
	}
	if _, err := r.seal(1); err == nil {
		t.Fatal("Seal after Close succeeded")
	}
}

// TestConcurrentSealers: many goroutines through key rotations; no key
// seals more than MaxRecords records while the KMS is up (run with -race).
func TestConcurrentSealers(t *testing.T) {
	r := newRig(t, ProducerConfig{MaxRecords: 50})
	var mu sync.Mutex
	perKey := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			keys, err := r.seal(500)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			for _, k := range keys {
				perKey[k]++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for k, n := range perKey {
		if n > 50 {
			t.Errorf("key %.20s… sealed %d records, bound 50", k, n)
		}
	}
}

// blockingKMS blocks GenerateDataKey until its context ends, while block
// is set.
type blockingKMS struct {
	KMS
	block bool
}

func (b *blockingKMS) GenerateDataKey(ctx context.Context, ring string) (DataKey, error) {
	if b.block {
		<-ctx.Done()
		return DataKey{}, fmt.Errorf("blocking: %w: %w", ErrKMSUnavailable, ctx.Err())
	}
	return b.KMS.GenerateDataKey(ctx, ring)
}

// TestCallerCancelIsNotAnOutage: a caller that gives up while the KMS
// call is in flight gets its context error, and the next caller asks the
// KMS at once instead of treating the ring as failing.
func TestCallerCancelIsNotAnOutage(t *testing.T) {
	kms := &blockingKMS{KMS: kmstest.New("r"), block: true}
	p, _ := NewProducer(kms, ProducerConfig{RetryInterval: time.Hour})
	s, _ := p.Sealer(SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	rec := kmsg.Record{Value: []byte("v")}
	if _, err := s.Seal(cctx, &rec, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled caller: err %v, want its context error", err)
	}
	kms.block = false
	rec = kmsg.Record{Value: []byte("v")}
	if _, err := s.Seal(ctx, &rec, nil); err != nil {
		t.Fatalf("next caller: %v (the cancelled call was taken for a KMS failure)", err)
	}
}
