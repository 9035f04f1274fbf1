package kafkagw

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPipelinedProduceAcrossReconnects: an idempotent producer (franz-go
// keeps up to five Produce requests in flight) writes through an edge
// gateway whose upstream connections live 5 ms, so that many are
// replaced while requests are still owed a response (with the old
// connection closed at once, 2 to 5 of 20 replacements dropped the
// client's connection). The client's
// connection must never drop (closing an upstream connection before its
// owed responses are read ends the session, and the producer would retry
// unseen), and every record must be acknowledged without error and stored
// once, in the order produced.
func TestPipelinedProduceAcrossReconnects(t *testing.T) {
	ca := newCA(t)
	trust := spiffeid.RequireTrustDomainFromString(td)
	var handshakes atomic.Int64
	btls := tlsconfig.MTLSServerConfig(svid(t, ca, "spiffe://example.org/cloud/kafka"), ca.Bundle(), tlsconfig.AuthorizeMemberOf(trust))
	btls.VerifyConnection = func(tls.ConnectionState) error { handshakes.Add(1); return nil }
	c, err := newTLSCluster(btls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	gw := runGateway(t, Config{Name: "edge", Mode: ModeEdge, Upstreams: c.ListenAddrs(), TrustDomain: td,
		MaxConnLifetime: 5 * time.Millisecond, Logger: testLogger(t)}, Sources{SVIDs: svid(t, ca, idPipeA), Bundles: ca.Bundle()})
	var drops disconnects
	cl, err := kgo.NewClient(kgo.SeedBrokers(gw.BootstrapAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(4<<10),
		kgo.RequestRetries(0), kgo.ConnIdleTimeout(time.Minute), kgo.WithHooks(&drops))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Waves of records until the upstream connection has been replaced at
	// least minReplacements times (a fast machine sends thousands of
	// records within a few lifetimes), bounded in records.
	const wave, minRecords, maxRecords, minReplacements = 1000, 4000, 200000, 20
	before := handshakes.Load()
	records, failed := 0, 0
	for records < maxRecords && (records < minRecords || handshakes.Load()-before < minReplacements) {
		results := make(chan error, wave)
		for i := records; i < records+wave; i++ {
			v := fmt.Appendf(make([]byte, 0, 512), "%d:", i)
			v = append(v, make([]byte, 500)...) // a few records a batch
			cl.Produce(ctx, &kgo.Record{Topic: topicA, Partition: 0, Value: v}, func(_ *kgo.Record, err error) { results <- err })
		}
		for i := records; i < records+wave; i++ {
			if err := <-results; err != nil {
				if failed++; failed <= 3 {
					t.Errorf("produce %d: %v", i, err)
				}
			}
		}
		records += wave
	}
	reconnects := handshakes.Load() - before
	t.Logf("%d records acknowledged, %d failed; %d upstream handshakes while producing", records-failed, failed, reconnects)
	if failed > 0 {
		t.Fatalf("%d of %d produces failed", failed, records)
	}
	if n := drops.n.Load(); n > 0 {
		t.Fatalf("the gateway closed the client's connection %d times (the producer retried; a replacement must be invisible)", n)
	}
	if reconnects < minReplacements {
		t.Fatalf("%d upstream handshakes while producing: too few replacements to test", reconnects)
	}

	direct, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DialTLSConfig(clientTLS(t, ca, idReader)),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topicA: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	next := 0
	for next < records && ctx.Err() == nil {
		direct.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			seq, _, _ := bytes.Cut(r.Value, []byte(":"))
			if n, err := strconv.Atoi(string(seq)); err != nil || n != next {
				t.Fatalf("record at offset %d is %q, want %d: stored out of order or twice", r.Offset, seq, next)
			}
			next++
		})
	}
	if next != records {
		t.Fatalf("broker stored %d of %d records", next, records)
	}
}

// disconnects counts a client's broker disconnections.
type disconnects struct{ n atomic.Int64 }

func (d *disconnects) OnBrokerDisconnect(kgo.BrokerMetadata, net.Conn) { d.n.Add(1) }
