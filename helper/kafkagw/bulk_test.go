package kafkagw

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBulkProduceArrivesExact: large Produce requests (batches of about
// 1 MiB, in pooled frame buffers, read and written through bufconn on
// both TLS sides) reach a TLS broker byte for byte, every record once. A
// frame buffer reused while its request was still being written, or a
// batch flushed out of order, would show as a corrupted or missing value.
func TestBulkProduceArrivesExact(t *testing.T) {
	ca := newCA(t)
	trust := spiffeid.RequireTrustDomainFromString(td)
	c, err := newTLSCluster(tlsconfig.MTLSServerConfig(svid(t, ca, "spiffe://example.org/cloud/kafka"), ca.Bundle(), tlsconfig.AuthorizeMemberOf(trust)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	gw := runGateway(t, Config{Name: "bulk", Mode: ModeCloud, Upstreams: c.ListenAddrs(), TrustDomain: td, UpstreamTLS: true,
		Policy: mustPolicy(t, testPolicy), Logger: testLogger(t)}, Sources{SVIDs: svid(t, ca, idGW), Bundles: ca.Bundle()})
	e := &env{ca: ca, cluster: c, gw: gw}
	cl := e.client(t, idPipeA, kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const records = 300
	want := map[[32]byte]bool{}
	results := make(chan error, records)
	for i := range records {
		v := make([]byte, 20<<10+i*331) // 20 KiB to about 117 KiB
		_, _ = rand.Read(v)
		want[sha256.Sum256(v)] = true
		cl.Produce(ctx, &kgo.Record{Topic: topicA, Partition: 0, Value: v}, func(_ *kgo.Record, err error) { results <- err })
	}
	for range records {
		if err := <-results; err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	direct, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DialTLSConfig(clientTLS(t, ca, idReader)),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topicA: {0: kgo.NewOffset().AtStart()}}), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	got := 0
	for got < records && ctx.Err() == nil {
		direct.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			sum := sha256.Sum256(r.Value)
			if !want[sum] {
				t.Fatalf("record at offset %d (%d bytes) is not a value that was produced, or arrived twice", r.Offset, len(r.Value))
			}
			delete(want, sum)
			got++
		})
	}
	if got != records {
		t.Fatalf("the broker holds %d of %d records", got, records)
	}
}

// TestBulkSealedProduceArrivesExact: large Produce requests through an
// encrypting edge gateway (pooled frame buffers, sealed into the
// connection's scratch, sent as parts that still refer to the frame's
// header) are stored sealed and come back through the gateway byte for
// byte, every record once. A frame buffer returned to the pool while a
// part still referred to it, or scratch reused too early, would show as
// a record that does not open or a value that was never produced.
func TestBulkSealedProduceArrivesExact(t *testing.T) {
	c, sources, direct := startCryptCluster(t)
	gw, m := startEncrypting(t, c, sources(idPipeA), kmstest.New(topicA), nil)
	// Batches of up to 900 kB stay under the broker's 1 MiB once sealed.
	prod := plainClient(t, gw, kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(900_000), kgo.RecordDeliveryTimeout(60*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const records = 300
	want := map[[32]byte]bool{}
	results := make(chan error, records)
	for i := range records {
		v := make([]byte, 20<<10+i*331) // 20 KiB to about 117 KiB
		_, _ = rand.Read(v)
		want[sha256.Sum256(v)] = true
		prod.Produce(ctx, &kgo.Record{Topic: topicA, Partition: 0, Value: v}, func(_ *kgo.Record, err error) { results <- err })
	}
	for range records {
		if err := <-results; err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	if n := testutil.ToFloat64(m.crypt.sealed); n != records {
		t.Fatalf("sealed metric %v, want %d", n, records)
	}
	for _, r := range consumeN(t, direct(), records) {
		if want[sha256.Sum256(r.Value)] || len(r.Headers) != 1 || r.Headers[0].Key != recordcrypt.HeaderKey {
			t.Fatalf("stored record %d is not sealed", r.Offset)
		}
	}
	cons := plainClient(t, gw, kgo.ConsumeTopics(topicA), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	for _, r := range consumeN(t, cons, records) {
		sum := sha256.Sum256(r.Value)
		if !want[sum] {
			t.Fatalf("record at offset %d (%d bytes) is not a value that was produced, or arrived twice", r.Offset, len(r.Value))
		}
		delete(want, sum)
	}
}
