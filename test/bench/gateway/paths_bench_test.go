package gatewaybench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Bounds of one measurement; every path gets the same.
const (
	rounds = 5 // interleaved; the median is reported
	// latencyRequests: sequential one-record produces per path and round,
	// 10,000 (50,000 samples a path). A p99 rests on its slowest
	// percent, where this process's garbage collections land; over
	// 10,000 samples (2,000 a round) the cloud gateway's p99 against the
	// relay's moved 1.11-1.34x from run to run (README).
	latencyRequests = 10000
	latencyBound    = 60 * time.Second // ... or until this passes
	// throughputWindow: async produce for this long. The brokers discard
	// what they acknowledge (kfake.BlackholeProduce), so neither memory nor
	// kfake's storage (its in-memory log grows by copying, a cost that
	// landed on whichever path crossed a doubling) bounds or skews a path.
	throughputWindow = 4 * time.Second
	recordBytes      = 1024             // value size
	flushBound       = 30 * time.Second // to drain what the window queued
	pathOrderNote    = "throughput: median of the rounds, paths in turn; latency: every sample, paths interleaved request by request"
)

var pathNames = []string{"direct plaintext", "direct mTLS", "TCP relay (mTLS)", "cloud gateway", cloudLocalPath, "edge gateway"}

// cloudLocalPath is a cloud gateway beside the broker: it terminates the
// client's mTLS and reaches the broker in plaintext on loopback, so that
// it does the relay's TLS work and no more.
const cloudLocalPath = "cloud gateway, plaintext upstream"

type result struct {
	mbps     float64 // produce throughput, MB/s of record values
	p50, p99 time.Duration
	n        int // latency samples
}

// BenchmarkProducePaths measures every path in the same run and prints the
// table; run it with -benchtime 1x. Throughput: each path in turn, the
// median of rounds. Latency: request by request across all paths (one
// produce on each path, then the next), so that every path sees the same
// moments of the machine's jitter; the percentiles are over every sample.
func BenchmarkProducePaths(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := setup(b, ctx)
	tput := map[string][]result{}
	lat := map[string][]time.Duration{}
	for range b.N {
		for r := range rounds {
			if err := interleavedLatencies(ctx, b, p, lat); err != nil {
				b.Fatalf("round %d, latencies: %v", r, err)
			}
			for _, name := range pathNames {
				mbps, err := throughputOf(ctx, p.client(b, name))
				if err != nil {
					b.Fatalf("round %d, %s: %v", r, name, err)
				}
				tput[name] = append(tput[name], result{mbps: mbps})
			}
		}
	}
	med := map[string]result{}
	for _, name := range pathNames {
		l := lat[name]
		slices.Sort(l)
		med[name] = result{mbps: median(tput[name]).mbps, p50: l[len(l)/2], p99: l[len(l)*99/100], n: len(l)}
	}
	printTable(med)
	relay, cloud, local, edge := med["TCP relay (mTLS)"], med["cloud gateway"], med[cloudLocalPath], med["edge gateway"]
	b.ReportMetric(cloud.mbps/relay.mbps*100, "cloud_tput_%relay")
	b.ReportMetric(local.mbps/relay.mbps*100, "cloud_local_tput_%relay")
	b.ReportMetric(float64(local.p99)/float64(relay.p99), "cloud_local_p99_x_relay")
	b.ReportMetric(edge.mbps/relay.mbps*100, "edge_tput_%relay")
	b.ReportMetric(float64(cloud.p99)/float64(relay.p99), "cloud_p99_x_relay")
	b.ReportMetric(float64(edge.p99)/float64(relay.p99), "edge_p99_x_relay")
}

// interleavedLatencies times latencyRequests sequential one-record
// produces on every path, one path after the other for each request, and
// appends the samples to lat.
func interleavedLatencies(ctx context.Context, b *testing.B, p *paths, lat map[string][]time.Duration) error {
	clients := make([]*kgo.Client, len(pathNames))
	for i, name := range pathNames {
		clients[i] = p.client(b, name)
		defer clients[i].Close()
		if err := warm(ctx, clients[i]); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	runtime.GC() // not during the samples: the throughput runs' garbage
	value := randomValue()
	deadline := time.Now().Add(latencyBound)
	for n := 0; n < latencyRequests && time.Now().Before(deadline); n++ {
		for i, cl := range clients {
			start := time.Now()
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
				return fmt.Errorf("%s: %w", pathNames[i], err)
			}
			lat[pathNames[i]] = append(lat[pathNames[i]], time.Since(start))
		}
	}
	return nil
}

func throughputOf(ctx context.Context, cl *kgo.Client) (float64, error) {
	defer cl.Close()
	if err := warm(ctx, cl); err != nil {
		return 0, err
	}
	return throughput(ctx, cl)
}

// throughput produces asynchronously for throughputWindow and returns the
// acknowledged MB/s, counting until the last record is acknowledged.
func throughput(ctx context.Context, cl *kgo.Client) (float64, error) {
	value := randomValue()
	var acked atomic.Int64
	var firstErr atomic.Value
	cb := func(_ *kgo.Record, err error) {
		if err != nil {
			firstErr.CompareAndSwap(nil, err)
			return
		}
		acked.Add(1)
	}
	start := time.Now()
	for time.Since(start) < throughputWindow {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: value}, cb)
	}
	fctx, cancel := context.WithTimeout(ctx, flushBound)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return 0, err
	}
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(acked.Load()*recordBytes) / 1e6 / time.Since(start).Seconds(), nil
}

func median(rs []result) result {
	return result{
		mbps: medianOf(rs, func(r result) float64 { return r.mbps }),
		p50:  time.Duration(medianOf(rs, func(r result) float64 { return float64(r.p50) })),
		p99:  time.Duration(medianOf(rs, func(r result) float64 { return float64(r.p99) })),
		n:    rs[0].n,
	}
}

// medianOf is the median of get over rs.
func medianOf[T any](rs []T, get func(T) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = get(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func printTable(med map[string]result) {
	relay := med["TCP relay (mTLS)"]
	w := os.Stdout
	fmt.Fprintf(w, "\nProduce through each path (kgo -> kfake, 1 broker, %d B records; %d rounds; %s)\n", recordBytes, rounds, pathOrderNote)
	fmt.Fprintf(w, "| path | throughput MB/s | vs relay | p50 | p99 | p99 vs relay |\n|---|---|---|---|---|---|\n")
	for _, name := range pathNames {
		r := med[name]
		fmt.Fprintf(w, "| %s | %.1f | %.0f %% | %s | %s | %.2f× |\n", pad(name, 16), r.mbps, r.mbps/relay.mbps*100,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), float64(r.p99)/float64(relay.p99))
	}
	plain, mtls := med["direct plaintext"], med["direct mTLS"]
	fmt.Fprintf(w, "mTLS itself, direct: p99 %.2f× plaintext's (Uber reports about 2.5×)\n", float64(mtls.p99)/float64(plain.p99))
	fmt.Fprintf(w, "targets: gateway throughput ≥ 90 %% of relay's, p99 ≤ 1.25× relay's; latency samples per path %d\n", relay.n)
}

// randomValue is a record value of recordBytes random bytes: zeros would
// compress to nothing and measure the compressor, not the path.
func randomValue() []byte {
	v := make([]byte, recordBytes)
	_, _ = rand.Read(v)
	return v
}
