package recordcrypt_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestOpenerCacheBoundedAndZeroed: the consumer keeps at most MaxKeys
// unwrapped keys, evicts the least recently used, zeroes what it evicts,
// and asks the KMS once per wrapped key while it stays cached.
func TestOpenerCacheBoundedAndZeroed(t *testing.T) {
	kms := kmstest.New("r")
	var recs []kmsg.Record
	for i := range 5 {
		recs = append(recs, record(fmt.Sprintf("v%d", i), ""))
	}
	// MaxRecords 1: every record under its own data key.
	sealedRecs := sealed(t, kms, SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue}, recs...)
	counting := &countingKMS{KMS: kms}
	o, err := NewOpener(counting, OpenerConfig{MaxKeys: 3})
	if err != nil {
		t.Fatal(err)
	}
	var evicted [][]byte
	o.OnEvict(func(key []byte) {
		if bytes.Equal(key, make([]byte, 32)) {
			t.Error("key already zero before eviction")
		}
		evicted = append(evicted, key)
	})
	open := func(i int) {
		t.Helper()
		rec := cloneRecord(sealedRecs[i])
		if _, err := o.Open(ctx, "t", &rec, nil); err != nil || string(rec.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("record %d: %v %q", i, err, rec.Value)
		}
	}
	for _, i := range []int{0, 1, 2, 0, 0, 1} {
		open(i)
	}
	if _, d := counting.counts(); d != 3 {
		t.Fatalf("%d unwraps for 3 keys within the cache, want 3", d)
	}
	open(3) // evicts 2, the least recently used
	open(4) // evicts 0
	if o.CachedKeys() != 3 || len(evicted) != 2 {
		t.Fatalf("%d cached, %d evicted; want 3 and 2", o.CachedKeys(), len(evicted))
	}
	for i, k := range evicted {
		if !bytes.Equal(k, make([]byte, 32)) {
			t.Errorf("evicted key %d not zeroed", i)
		}
	}
	open(1) // still cached
	if _, d := counting.counts(); d != 5 {
		t.Fatalf("%d unwraps, want 5", d)
	}
	open(2) // was evicted: unwrapped again
	if _, d := counting.counts(); d != 6 {
		t.Fatalf("%d unwraps, want 6", d)
	}
	o.Close()
	if o.CachedKeys() != 0 || len(evicted) != 6 {
		t.Fatalf("after Close: %d cached, %d evicted", o.CachedKeys(), len(evicted))
	}
	for i, k := range evicted {
		if !bytes.Equal(k, make([]byte, 32)) {
			t.Errorf("key %d not zeroed after Close", i)
		}
	}
}

// TestSealCacheHitAllocatesNothing: with a current data key, room in the
// output buffer and a header slot, sealing a record allocates nothing.
func TestSealCacheHitAllocatesNothing(t *testing.T) {
	for _, size := range []int{1 << 10, 64 << 10} {
		s, _ := newPair(t, kmstest.New("r"), SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
		value := bytes.Repeat([]byte("x"), size)
		hdrs := make([]kmsg.Header, 0, 1)
		buf := make([]byte, 0, size+Overhead)
		rec := kmsg.Record{Value: value, Headers: hdrs}
		if _, err := s.Seal(ctx, &rec, buf); err != nil { // first key: a KMS call
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(200, func() {
			rec := kmsg.Record{Value: value, Headers: hdrs}
			if _, err := s.Seal(ctx, &rec, buf); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%d-byte value: %.1f allocations per sealed record, want 0", size, allocs)
		}
	}
}

// TestOpenCacheHitAllocatesNothing: with the data key cached and room in
// the output buffer, opening a record allocates nothing (a consuming
// gateway opens every record it passes on; each allocation per record was
// garbage for the collector at hundreds of thousands of records a second).
func TestOpenCacheHitAllocatesNothing(t *testing.T) {
	for _, size := range []int{1 << 10, 64 << 10} {
		s, o := newPair(t, kmstest.New("r"), SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
		plain := bytes.Repeat([]byte("x"), size)
		sealed := kmsg.Record{Value: plain, Headers: make([]kmsg.Header, 0, 1)}
		if _, err := s.Seal(ctx, &sealed, nil); err != nil {
			t.Fatal(err)
		}
		hdrs := make([]kmsg.Header, 1)
		buf := make([]byte, 0, 2*size)
		rec := kmsg.Record{Value: sealed.Value, Headers: append(hdrs[:0], sealed.Headers...)}
		if _, err := o.Open(ctx, "t", &rec, buf); err != nil { // first key: a KMS call
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(200, func() {
			rec := kmsg.Record{Value: sealed.Value, Headers: append(hdrs[:0], sealed.Headers...)}
			out, err := o.Open(ctx, "t", &rec, buf)
			if err != nil || !bytes.Equal(rec.Value, plain) || len(out) != size {
				t.Fatalf("open: %v (%d bytes out)", err, len(out))
			}
		})
		if allocs != 0 {
			t.Errorf("%d-byte value: %.1f allocations per opened record, want 0", size, allocs)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			s, _ := newPair(b, kmstest.New("r"), SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
			value := bytes.Repeat([]byte("x"), size)
			hdrs := make([]kmsg.Header, 0, 1)
			buf := make([]byte, 0, size+Overhead)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				rec := kmsg.Record{Value: value, Headers: hdrs}
				if _, err := s.Seal(ctx, &rec, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	kms := kmstest.New("r")
	s, o := newPair(b, kms, SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
	value := bytes.Repeat([]byte("x"), 1<<10)
	sealedRec := kmsg.Record{Value: value}
	sbuf, _ := s.Seal(ctx, &sealedRec, nil)
	_ = sbuf
	buf := make([]byte, 0, 2<<10)
	hdrs := make([]kmsg.Header, 0, 1) // Open removes the header: refilled each time
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	for b.Loop() {
		rec := sealedRec
		rec.Headers = append(hdrs[:0], sealedRec.Headers...)
		if _, err := o.Open(ctx, "t", &rec, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBatchIntoOneBufferGrowsAmortized: sealing, then opening, a batch's
// records one after another into one buffer allocates about twice the
// batch's size, not the square of it. AEAD.Seal and Open grow a full
// buffer to exactly the size they need, copying it: unaided, that made the
// consumer side of a 1 KiB-record topic quadratic in the batch size.
func TestBatchIntoOneBufferGrowsAmortized(t *testing.T) {
	s, o := newPair(t, kmstest.New("r"), SealerConfig{Topic: "t", Ring: "r", Fields: FieldValue})
	const n, size = 2000, 1 << 10
	value := bytes.Repeat([]byte("x"), size)
	recs := make([]kmsg.Record, n)
	for i := range recs {
		recs[i] = kmsg.Record{Value: value, Headers: make([]kmsg.Header, 0, 1)}
	}
	limit := uint64(32 * n * size) // generous for amortized growth and per-record bookkeeping; quadratic is n/2 times the batch
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	var buf []byte
	sealBytes := allocated(func() {
		var err error
		for i := range recs {
			if buf, err = s.Seal(ctx, &recs[i], buf); err != nil {
				t.Fatal(err)
			}
		}
	})
	var out []byte
	openBytes := allocated(func() {
		var err error
		for i := range recs {
			if out, err = o.Open(ctx, "t", &recs[i], out); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Logf("%d records of %d B into one buffer: sealing allocated %d KiB, opening %d KiB (batch %d KiB)", n, size, sealBytes>>10, openBytes>>10, n*size>>10)
	if sealBytes > limit || openBytes > limit {
		t.Errorf("sealing allocated %d KiB, opening %d KiB: want at most %d KiB (the buffer grows per record)", sealBytes>>10, openBytes>>10, limit>>10)
	}
	for i := range recs {
		if !bytes.Equal(recs[i].Value, value) {
			t.Fatalf("record %d did not open to its value", i)
		}
	}
}
