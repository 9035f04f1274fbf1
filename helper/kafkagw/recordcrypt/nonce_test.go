package recordcrypt_test

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestNoncesNeverRepeatUnderOneKey seals values, keys and a header of
// records from two topics' Sealers at once, all under the one data key of
// their ring, and checks every field's nonce: none repeats, all share the
// key's fixed field, and their counters are exactly 1..n (every
// invocation counted once, none skipped or reused).
func TestNoncesNeverRepeatUnderOneKey(t *testing.T) {
	p, err := NewProducer(kmstest.New("r"), ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 4, 500
	var mu sync.Mutex
	var fields [][]byte
	var wg sync.WaitGroup
	for w := range workers {
		s, err := p.Sealer(SealerConfig{Topic: []string{"a", "b"}[w%2], Ring: "r", Fields: FieldValue | FieldKey, Headers: []string{"h"}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			recs := make([]kmsg.Record, perWorker)
			for i := range recs {
				recs[i] = record("value", "key", "h", "header")
			}
			_, n, err := s.SealAll(ctx, recs, nil)
			if err != nil || n != perWorker {
				t.Errorf("sealed %d of %d: %v", n, perWorker, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				fields = append(fields, r.Value, r.Key, r.Headers[0].Value)
			}
		})
	}
	wg.Wait()
	want := workers * perWorker * 3
	if len(fields) != want {
		t.Fatalf("%d sealed fields, want %d", len(fields), want)
	}
	seen := make(map[[12]byte]bool, want)
	counters := make([]bool, want+1)
	fixed := fields[0][:4]
	for _, f := range fields {
		var n [12]byte
		copy(n[:], f)
		if seen[n] {
			t.Fatalf("nonce %x used twice under one key", n)
		}
		seen[n] = true
		if !bytes.Equal(f[:4], fixed) {
			t.Fatalf("nonce %x: fixed field %x, want the key's %x", n, f[:4], fixed)
		}
		c := binary.BigEndian.Uint64(f[4:12])
		if c == 0 || c > uint64(want) || counters[c] {
			t.Fatalf("nonce counter %d: want each of 1..%d once", c, want)
		}
		counters[c] = true
	}
}
