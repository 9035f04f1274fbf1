package gatewaybench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/edgeid/edgeid/internal/transitpolicy"
	"github.com/edgeid/edgeid/internal/vaultconn"
	"github.com/edgeid/edgeid/test/harness"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Bounds of one record-encryption measurement (every cell gets the same).
const (
	cryptBytes      = 128 << 20        // produced, then consumed, per cell and round
	cryptWindow     = 10 * time.Second // ... or until this passes
	cryptLatencyN   = 300              // sequential one-record produces
	cryptRing       = "site-a.bench"
	cryptTopicStem  = "site-a.bench-"
	idCryptGW       = "spiffe://example.org/edge/site-a/deepstream/bench"
	cryptGWDNSName  = "bench.site-a.example.org" // SPIRE copies it to the CN; Vault's cert auth needs one
	cryptValueKinds = 64                         // distinct values cycled through
)

var cryptCodecs = []struct {
	name  string
	codec kgo.CompressionCodec
}{
	{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()},
	{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()},
}

// cryptRig is a real Vault (Transit + cert auth) and two mTLS kfake
// brokers: one keeps records (the table's cells), one discards them (the
// target's pairs; see BenchmarkRecordEncryption). Each broker has two edge
// gateways with the same SVID: one plain, one encrypting every
// site-a.bench-* topic.
type cryptRig struct {
	ca                  *svidtest.CA
	kf, sink            *kfake.Cluster
	plain, seal         *kafkagw.Gateway // to kf
	plainSink, sealSink *kafkagw.Gateway // to sink
	n                   int              // topics made so far
}

type cryptCell struct {
	produceMBps, consumeMBps float64
	p50, p99                 time.Duration
}

// BenchmarkRecordEncryption measures produce and consume through an edge
// gateway with and without record encryption, for 1 KiB and 64 KiB
// records and every compression codec, each pair back to back in the
// same run; run it with -benchtime 1x.
func BenchmarkRecordEncryption(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newCryptRig(b, ctx)
	type key struct {
		size  int
		codec string
		enc   bool
	}
	runs := map[key][]cryptCell{}
	for range b.N * rounds {
		for _, size := range []int{1 << 10, 64 << 10} {
			for _, c := range cryptCodecs {
				for _, enc := range []bool{false, true} {
					cell, err := r.measure(ctx, b, size, c.codec, enc)
					if err != nil {
						b.Fatalf("%d B, %s, encrypted=%v: %v", size, c.name, enc, err)
					}
					k := key{size, c.name, enc}
					runs[k] = append(runs[k], cell)
				}
			}
		}
	}
	cells := map[key]cryptCell{}
	for k, rs := range runs {
		cells[k] = medianCell(rs)
	}
	w := os.Stdout
	fmt.Fprintf(w, "\nRecord encryption through the edge gateway (kgo -> edge gateway -> kfake over mTLS, Vault Transit; %d MiB per cell, median of %d interleaved rounds; values half random)\n", cryptBytes>>20, rounds)
	fmt.Fprintf(w, "| record | codec | produce MB/s plain | encrypted | cost | consume MB/s plain | encrypted | cost | produce p99 plain | encrypted |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, size := range []int{1 << 10, 64 << 10} {
		for _, c := range cryptCodecs {
			pl, en := cells[key{size, c.name, false}], cells[key{size, c.name, true}]
			fmt.Fprintf(w, "| %d KiB | %s | %.0f | %.0f | %.0f %% | %.0f | %.0f | %.0f %% | %s | %s |\n", size>>10, c.name,
				pl.produceMBps, en.produceMBps, (1-en.produceMBps/pl.produceMBps)*100,
				pl.consumeMBps, en.consumeMBps, (1-en.consumeMBps/pl.consumeMBps)*100,
				pl.p99.Round(time.Microsecond), en.p99.Round(time.Microsecond))
		}
	}
	// The target's figure: the gateway's produce throughput, so the
	// broker discards what it acknowledges (as in BenchmarkProducePaths):
	// the cells' broker writes to its data directory, and those writes
	// meet the page cache's writeback, which swung single pairs by ±20 %.
	// Pairs are measured back to back (the order alternating), so that the
	// machine's drift over the run cancels within each pair; the median
	// and the range are printed.
	var costs []float64
	var sinkRuns [2][]sinkRun // plain, encrypted
	for i := range targetPairs {
		var pair [2]sinkRun
		for j := range 2 {
			enc := (i + j) % 2
			run, err := r.produceToSink(ctx, 1<<10, enc == 1)
			if err != nil {
				b.Fatalf("target pair %d, encrypted=%v: %v", i, enc == 1, err)
			}
			pair[enc] = run
			sinkRuns[enc] = append(sinkRuns[enc], run)
		}
		costs = append(costs, (1-pair[1].mbps/pair[0].mbps)*100)
	}
	slices.Sort(costs)
	med := costs[len(costs)/2]
	b.ReportMetric(med, "enc_cost_1KiB_%")
	fmt.Fprintf(w, "target: encryption costs ≤ 15 %% of the gateway's produce throughput for 1 KiB records (no compression; the broker discards): median %.1f %% over %d back-to-back pairs of %d MiB each (from %.1f to %.1f %%)\n",
		med, targetPairs, targetBytes>>20, costs[0], costs[len(costs)-1])
	cpu := func(rs []sinkRun) (busy, perGB float64) {
		return medianOf(rs, func(r sinkRun) float64 { return r.cpu / r.wall * 100 }),
			medianOf(rs, func(r sinkRun) float64 { return r.cpu / (r.mbps * r.wall / 1e3) })
	}
	pb, pg := cpu(sinkRuns[0])
	eb, eg := cpu(sinkRuns[1])
	fmt.Fprintf(w, "the benchmark process (client, gateway, broker) in those runs: CPU %.0f %% plain, %.0f %% encrypted (of %d00 %%); CPU seconds per GB of values %.2f plain, %.2f encrypted (+%.0f %%)\n",
		pb, eb, runtime.NumCPU(), pg, eg, (eg/pg-1)*100)
}

// sinkRun is one produceToSink measurement.
type sinkRun struct {
	mbps      float64 // MB/s of values
	records   int64
	cpu, wall float64 // the process's CPU seconds (user + system), and wall seconds
}

// Bounds of the target's measurement.
const (
	targetPairs = 11        // plain/encrypted pairs
	targetBytes = 512 << 20 // produced per measurement (or for cryptWindow)
	sinkTopic   = cryptTopicStem + "sink"
)

// produceToSink produces targetBytes of size-byte records through the
// plain or the encrypting gateway to the discarding broker.
func (r *cryptRig) produceToSink(ctx context.Context, size int, enc bool) (sinkRun, error) {
	gw := r.plainSink
	if enc {
		gw = r.sealSink
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(gw.BootstrapAddrs()...), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(800_000), kgo.DefaultProduceTopic(sinkTopic))
	if err != nil {
		return sinkRun{}, err
	}
	defer cl.Close()
	values := cryptValues(size)
	if _, _, err := produceLatency(ctx, cl, values[:1]); err != nil { // warm: metadata, connection, DEK
		return sinkRun{}, err
	}
	cpu0, start := processCPU(), time.Now()
	mbps, n, err := produceBytes(ctx, cl, values, targetBytes)
	return sinkRun{mbps: mbps, records: n, cpu: (processCPU() - cpu0).Seconds(), wall: time.Since(start).Seconds()}, err
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newCryptRig(b *testing.B, ctx context.Context) *cryptRig {
	ca, err := svidtest.NewCA(td)
	if err != nil {
		b.Fatal(err)
	}
	r := &cryptRig{ca: ca}
	broker, err := ca.SVID(idKafka, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	trust := spiffeid.RequireTrustDomainFromString(td)
	brokerTLS := tlsconfig.MTLSServerConfig(svidtest.NewSource(broker), ca.Bundle(), tlsconfig.AuthorizeMemberOf(trust))
	if r.kf, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(b.TempDir()), kfake.TLS(brokerTLS)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.kf.Close)
	if r.sink, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(brokerTLS), kfake.SeedTopics(1, sinkTopic), kfake.BlackholeProduce()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.sink.Close)
	v := harness.StartVaultDevTLS(b)
	v.SetUpTransitCertAuth(b, harness.TransitCertAuth{
		Ring: cryptRing, CAPEM: ca.CertificatePEM(),
		Policies: map[string]string{"bench": transitpolicy.Producer("transit", cryptRing) + transitpolicy.Consumer("transit", cryptRing)},
		Roles:    map[string]harness.CertRole{"bench": {SPIFFEID: idCryptGW, Policy: "bench"}},
	})
	svid, err := ca.SVID(idCryptGW, time.Hour, cryptGWDNSName)
	if err != nil {
		b.Fatal(err)
	}
	enc := &kafkagw.EncryptConfig{
		Topics: []string{cryptTopicStem + "*"}, KeyRing: cryptRing, CertRole: "bench",
		Vault:         vaultconn.Config{Address: v.Addr, CACertFile: v.CACertPath},
		QuarantineDir: filepath.Join(b.TempDir(), "quarantine"),
	}
	r.plain = r.gateway(b, ctx, "plain", r.kf, svid, nil)
	r.seal = r.gateway(b, ctx, "seal", r.kf, svid, enc)
	r.plainSink = r.gateway(b, ctx, "plain-sink", r.sink, svid, nil)
	r.sealSink = r.gateway(b, ctx, "seal-sink", r.sink, svid, enc)
	return r
}

func (r *cryptRig) gateway(b *testing.B, ctx context.Context, name string, kf *kfake.Cluster, svid *x509svid.SVID, enc *kafkagw.EncryptConfig) *kafkagw.Gateway {
	m, err := kafkagw.NewMetrics(prometheus.NewRegistry(), 10)
	if err != nil {
		b.Fatal(err)
	}
	cfg := kafkagw.Config{Name: name, Mode: kafkagw.ModeEdge, Upstreams: kf.ListenAddrs(), TrustDomain: td,
		UpstreamIDs: []string{idKafka}, Metrics: m, DenialLogInterval: time.Hour, Encrypt: enc}
	gw, err := kafkagw.New(cfg, kafkagw.Sources{SVIDs: svidtest.NewSource(svid), Bundles: r.ca.Bundle()})
	if err != nil {
		b.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		b.Fatal(err)
	}
	return gw
}

// measure produces cryptBytes of size-byte records with codec to a fresh
// topic through the plain or the encrypting gateway, reads them all back
// through the same gateway, and deletes the topic.
func (r *cryptRig) measure(ctx context.Context, b *testing.B, size int, codec kgo.CompressionCodec, enc bool) (cryptCell, error) {
	gw := r.plain
	if enc {
		gw = r.seal
	}
	topic := r.nextTopic()
	values := cryptValues(size)
	// Sealing adds about 135 bytes per record: batches of at most 800 kB
	// (both paths) stay under the broker's 1 MiB message size once sealed.
	cl, err := kgo.NewClient(kgo.SeedBrokers(gw.BootstrapAddrs()...), kgo.ProducerBatchCompression(codec),
		kgo.ProducerBatchMaxBytes(800_000), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return cryptCell{}, err
	}
	defer cl.Close()
	drop, err := createTopic(ctx, cl, topic)
	if err != nil {
		return cryptCell{}, err
	}
	defer drop()
	var cell cryptCell
	if cell.p50, cell.p99, err = produceLatency(ctx, cl, values); err != nil {
		return cell, err
	}
	var n int64
	if cell.produceMBps, n, err = produceBytes(ctx, cl, values, cryptBytes); err != nil {
		return cell, err
	}
	cell.consumeMBps, err = consumeAll(ctx, gw, topic, n+cryptLatencyN, int64(size))
	return cell, err
}

// nextTopic names a topic no measurement has used, under the encrypt
// block's site-a.bench-* pattern.
func (r *cryptRig) nextTopic() string {
	r.n++
	return fmt.Sprintf("%s%d", cryptTopicStem, r.n)
}

// createTopic creates topic (one partition) through cl and returns how to
// delete it.
func createTopic(ctx context.Context, cl *kgo.Client, topic string) (func(), error) {
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		return nil, err
	}
	return func() { _, _ = adm.DeleteTopics(context.Background(), topic) }, nil
}

// cryptValues are cryptValueKinds values of size bytes, each half random
// and half a repeated detection line, so that every codec has work to do.
func cryptValues(size int) [][]byte {
	line := []byte(`{"camera":"cam7","label":"person","confidence":0.93,"bbox":[112,40,220,310]} `)
	out := make([][]byte, cryptValueKinds)
	for i := range out {
		v := make([]byte, size)
		_, _ = rand.Read(v[:size/2])
		for j := size / 2; j < size; j += len(line) {
			copy(v[j:], line)
		}
		out[i] = v
	}
	return out
}

func produceLatency(ctx context.Context, cl *kgo.Client, values [][]byte) (p50, p99 time.Duration, err error) {
	lat := make([]time.Duration, 0, cryptLatencyN)
	for i := range cryptLatencyN {
		start := time.Now()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: values[i%len(values)]}).FirstErr(); err != nil {
			return 0, 0, err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

// produceBytes produces total bytes of values asynchronously (or for
// cryptWindow) and returns the acknowledged MB/s of values and the records.
func produceBytes(ctx context.Context, cl *kgo.Client, values [][]byte, total int) (float64, int64, error) {
	var acked, ackedBytes atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	for sent, i := 0, 0; sent < total && time.Since(start) < cryptWindow; i++ {
		v := values[i%len(values)]
		sent += len(v)
		cl.Produce(ctx, &kgo.Record{Value: v}, func(r *kgo.Record, err error) {
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			acked.Add(1)
			ackedBytes.Add(int64(len(r.Value)))
		})
	}
	fctx, cancel := context.WithTimeout(ctx, flushBound)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return 0, 0, err
	}
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, err
	}
	return float64(ackedBytes.Load()) / 1e6 / time.Since(start).Seconds(), acked.Load(), nil
}

// consumeAll reads records records of topic through gw from the start and
// returns the MB/s of values.
func consumeAll(ctx context.Context, gw *kafkagw.Gateway, topic string, records, size int64) (float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(gw.BootstrapAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(16<<20))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, flushBound)
	defer cancel()
	start := time.Now()
	var got, bytes int64
	for got < records {
		fs := cl.PollFetches(cctx)
		if cctx.Err() != nil {
			return 0, fmt.Errorf("consumed %d of %d records", got, records)
		}
		if err := fs.Err0(); err != nil {
			return 0, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			bytes += int64(len(r.Value))
			if int64(len(r.Value)) != size {
				err = fmt.Errorf("record at offset %d has %d bytes, want %d (still sealed?)", r.Offset, len(r.Value), size)
			}
		})
		if err != nil {
			return 0, err
		}
	}
	return float64(bytes) / 1e6 / time.Since(start).Seconds(), nil
}

// medianCell takes each figure's median over rounds.
func medianCell(rs []cryptCell) cryptCell {
	return cryptCell{
		produceMBps: medianOf(rs, func(c cryptCell) float64 { return c.produceMBps }),
		consumeMBps: medianOf(rs, func(c cryptCell) float64 { return c.consumeMBps }),
		p50:         time.Duration(medianOf(rs, func(c cryptCell) float64 { return float64(c.p50) })),
		p99:         time.Duration(medianOf(rs, func(c cryptCell) float64 { return float64(c.p99) })),
	}
}
