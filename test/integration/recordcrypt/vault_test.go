package recordcrypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/vaultkms"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var ctx = context.Background()

type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// sealN seals n records "msg-<i>" with a producer that takes a new data
// key every perKey records, returning them and each one's wrapped key.
func sealN(t *testing.T, p *recordcrypt.Producer, n int) ([]kmsg.Record, []string) {
	t.Helper()
	s, err := p.Sealer(recordcrypt.SealerConfig{Topic: topic, Ring: ring, Fields: recordcrypt.FieldValue | recordcrypt.FieldKey})
	if err != nil {
		t.Fatal(err)
	}
	var recs []kmsg.Record
	var wrapped []string
	for i := range n {
		rec := kmsg.Record{Key: []byte(fmt.Sprintf("cam-%d", i)), Value: []byte(fmt.Sprintf("msg-%d", i))}
		if _, err := s.Seal(ctx, &rec, nil); err != nil {
			t.Fatalf("seal record %d: %v", i, err)
		}
		h, err := recordcrypt.ParseHeader(rec.Headers[len(rec.Headers)-1].Value)
		if err != nil {
			t.Fatal(err)
		}
		recs, wrapped = append(recs, rec), append(wrapped, string(h.WrappedKey))
		if bytes.Contains(rec.Value, []byte("msg-")) || bytes.Contains(rec.Key, []byte("cam-")) {
			t.Fatalf("record %d still readable after sealing", i)
		}
	}
	return recs, wrapped
}

// openAll opens copies of recs and checks each plaintext.
func openAll(t *testing.T, o *recordcrypt.Opener, recs []kmsg.Record, from int) error {
	t.Helper()
	for i, r := range recs {
		rec := r
		rec.Headers = append([]kmsg.Header(nil), r.Headers...)
		if _, err := o.Open(ctx, topic, &rec, nil); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		if want := fmt.Sprintf("msg-%d", from+i); string(rec.Value) != want || string(rec.Key) != fmt.Sprintf("cam-%d", from+i) {
			t.Fatalf("record %d opened to %q/%q, want %q", i, rec.Key, rec.Value, want)
		}
	}
	return nil
}

// TestIdentityDecidesWithRealVault: with a real Vault 1.21.0, Transit and
// cert auth bound to SPIFFE IDs, the producer's SVID can make data keys
// but not unwrap them, the consumer's can unwrap but not make them, an
// unbound SVID gets nothing, rotation wraps new keys with v2 while v1
// records still open, a rotated SVID is used at the next login, the
// token is renewed by a new login, Vault's errors map to the typed
// errors, and a Vault outage is bounded then fails closed.
func TestIdentityDecidesWithRealVault(t *testing.T) {
	start := time.Now()
	r := newRig(t)
	a := &actors{clk: &testClock{}}
	a.prodSrc = svidtest.NewSource(r.svid(t, producerID))
	a.prod, a.prodLogins = r.kms(t, a.prodSrc, "", a.clk.Now)
	a.cons, _ = r.kms(t, svidtest.NewSource(r.svid(t, consumerID)), "consumer", nil)
	a.stranger, _ = r.kms(t, svidtest.NewSource(r.svid(t, strangerID)), "", nil)
	a.strangerAsConsumer, _ = r.kms(t, svidtest.NewSource(r.svid(t, strangerID)), "consumer", nil)
	t.Logf("real Vault up and configured in %s", time.Since(start).Round(time.Millisecond))

	var v1 []kmsg.Record
	if !t.Run("producer seals with keys from datakey", func(t *testing.T) { v1 = producerSeals(t, a) }) {
		t.FailNow()
	}
	t.Run("producer cannot decrypt", func(t *testing.T) { producerCannotDecrypt(t, a, v1) })
	t.Run("consumer opens every record", func(t *testing.T) {
		o, _ := recordcrypt.NewOpener(a.cons, recordcrypt.OpenerConfig{})
		if err := openAll(t, o, v1, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("consumer cannot make data keys", func(t *testing.T) {
		if _, err := a.cons.GenerateDataKey(ctx, ring); !errors.Is(err, recordcrypt.ErrAccessDenied) {
			t.Fatalf("consumer datakey: err %v, want ErrAccessDenied", err)
		}
	})
	t.Run("unbound identity gets nothing", func(t *testing.T) { strangerGetsNothing(t, a, v1) })
	t.Run("rotation: new keys v2, v1 records still open", func(t *testing.T) { rotation(t, r, a, v1) })
	t.Run("typed errors from Vault", func(t *testing.T) { vaultErrors(t, r, a.cons, v1[0]) })
	t.Run("rotated SVID used at the next login", func(t *testing.T) { svidRotation(t, r, a) })
	t.Run("token renewed by a new login", func(t *testing.T) { tokenRenewal(t, a) })
	t.Run("SVID without a DNS name (no CN) cannot log in", func(t *testing.T) {
		s, err := r.ca.SVID(producerID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := r.kms(t, svidtest.NewSource(s), "producer", nil)
		err = k.Login(ctx)
		if !errors.Is(err, recordcrypt.ErrAccessDenied) || !strings.Contains(err.Error(), "no subject common name") {
			t.Fatalf("login with a CN-less SVID: err %v, want ErrAccessDenied naming the missing CN", err)
		}
	})
	t.Run("vault down: outage bound, then fail closed", func(t *testing.T) { outage(t, r, a.prod) })
	t.Logf("whole test against the real Vault took %s", time.Since(start).Round(time.Millisecond))
}

// actors are the identities' KMS clients.
type actors struct {
	clk                          *testClock
	prodSrc                      *svidtest.Source
	prod, cons                   *vaultkms.KMS
	stranger, strangerAsConsumer *vaultkms.KMS
	prodLogins                   *logins
}

func producerSeals(t *testing.T, a *actors) []kmsg.Record {
	producer, err := recordcrypt.NewProducer(a.prod, recordcrypt.ProducerConfig{MaxRecords: 4})
	if err != nil {
		t.Fatal(err)
	}
	recs, wrapped := sealN(t, producer, 8)
	if v, _ := recordcrypt.WrappedKeyVersion([]byte(wrapped[0])); v != 1 || wrapped[0] == wrapped[4] || wrapped[0] != wrapped[3] {
		t.Fatalf("wrapped keys of version %d, first %x: want version 1, one per 4 records", v, wrapped[0])
	}
	return recs
}

func producerCannotDecrypt(t *testing.T, a *actors, v1 []kmsg.Record) {
	h, _ := recordcrypt.ParseHeader(v1[0].Headers[len(v1[0].Headers)-1].Value)
	if _, err := a.prod.DecryptDataKey(ctx, ring, h.WrappedKey); !errors.Is(err, recordcrypt.ErrAccessDenied) {
		t.Fatalf("producer decrypt: err %v, want ErrAccessDenied", err)
	}
	o, _ := recordcrypt.NewOpener(a.prod, recordcrypt.OpenerConfig{})
	if err := openAll(t, o, v1[:1], 0); !errors.Is(err, recordcrypt.ErrAccessDenied) {
		t.Fatalf("producer opening a record: err %v, want ErrAccessDenied", err)
	}
}

func strangerGetsNothing(t *testing.T, a *actors, v1 []kmsg.Record) {
	h, _ := recordcrypt.ParseHeader(v1[0].Headers[len(v1[0].Headers)-1].Value)
	for name, k := range map[string]*vaultkms.KMS{"any role": a.stranger, "consumer role": a.strangerAsConsumer} {
		if err := k.Login(ctx); !errors.Is(err, recordcrypt.ErrAccessDenied) {
			t.Errorf("%s: login err %v, want ErrAccessDenied", name, err)
		}
		if _, err := k.GenerateDataKey(ctx, ring); !errors.Is(err, recordcrypt.ErrAccessDenied) {
			t.Errorf("%s: datakey err %v, want ErrAccessDenied", name, err)
		}
		if _, err := k.DecryptDataKey(ctx, ring, h.WrappedKey); !errors.Is(err, recordcrypt.ErrAccessDenied) {
			t.Errorf("%s: decrypt err %v, want ErrAccessDenied", name, err)
		}
	}
}

func rotation(t *testing.T, r *rig, a *actors, v1 []kmsg.Record) {
	r.write(t, "transit/keys/"+ring+"/rotate", nil)
	p2, _ := recordcrypt.NewProducer(a.prod, recordcrypt.ProducerConfig{})
	v2, wrapped := sealN(t, p2, 2)
	if v, _ := recordcrypt.WrappedKeyVersion([]byte(wrapped[0])); v != 2 {
		t.Fatalf("after rotation the data key is wrapped by version %d, want 2", v)
	}
	o, _ := recordcrypt.NewOpener(a.cons, recordcrypt.OpenerConfig{})
	if err := openAll(t, o, v1, 0); err != nil {
		t.Fatalf("v1 records after rotation: %v", err)
	}
	if err := openAll(t, o, v2, 0); err != nil {
		t.Fatalf("v2 records: %v", err)
	}
}

func svidRotation(t *testing.T, r *rig, a *actors) {
	a.prodSrc.Set(r.svid(t, producerID))
	if err := a.prod.Login(ctx); err != nil {
		t.Fatalf("login with the renewed SVID: %v", err)
	}
	// The source now hands out another identity: the next login must
	// present it, and be refused.
	a.prodSrc.Set(r.svid(t, strangerID))
	if err := a.prod.Login(ctx); !errors.Is(err, recordcrypt.ErrAccessDenied) {
		t.Fatalf("login after the source changed identity: err %v, want ErrAccessDenied", err)
	}
	a.prodSrc.Set(r.svid(t, producerID))
	if err := a.prod.Login(ctx); err != nil {
		t.Fatal(err)
	}
}

func tokenRenewal(t *testing.T, a *actors) {
	before := a.prodLogins.count()
	if _, err := a.prod.GenerateDataKey(ctx, ring); err != nil || a.prodLogins.count() != before {
		t.Fatalf("within the token TTL: err %v, %d new logins", err, a.prodLogins.count()-before)
	}
	a.clk.Add(3*time.Minute + 30*time.Second) // past 2/3 of the 5m token TTL
	if _, err := a.prod.GenerateDataKey(ctx, ring); err != nil || a.prodLogins.count() != before+1 {
		t.Fatalf("past 2/3 of the TTL: err %v, %d new logins, want 1", err, a.prodLogins.count()-before)
	}
}
