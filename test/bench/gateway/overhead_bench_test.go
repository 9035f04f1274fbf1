package gatewaybench

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// overheadRounds bounds BenchmarkSealedRecordBytes: each round measures
// every case once, in turn.
const overheadRounds = 3

// BenchmarkSealedRecordBytes asks how much of record encryption's cost is
// the bytes sealing adds to a record rather than the sealing itself. It
// seals one 1 KiB record through the encrypting gateway, reads it back
// from the broker directly and takes the growth of its encoded record;
// then it produces to the discarding broker (as the target's pairs do) 1
// KiB records through the plain gateway, records grown by that many bytes
// through the plain gateway, and 1 KiB records through the encrypting
// gateway, in turn, overheadRounds times, and prints the median records a
// second and process CPU a record of each.
func BenchmarkSealedRecordBytes(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newCryptRig(b, ctx)
	grow, err := r.sealedGrowth(ctx)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		size int
		enc  bool
	}{
		{"plain gateway, 1,024-byte values", 1 << 10, false},
		{fmt.Sprintf("plain gateway, %d-byte values (+ what sealing adds)", 1<<10+grow), 1<<10 + grow, false},
		{"encrypting gateway, 1,024-byte values", 1 << 10, true},
	}
	type run struct{ krecs, cpuUS float64 }
	runs := make([][]run, len(cases))
	for range b.N * overheadRounds {
		for i, c := range cases {
			s, err := r.produceToSink(ctx, c.size, c.enc)
			if err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
			runs[i] = append(runs[i], run{krecs: float64(s.records) / s.wall / 1e3, cpuUS: s.cpu / float64(s.records) * 1e6})
		}
	}
	w := os.Stdout
	fmt.Fprintf(w, "\nWhat sealing adds to a 1 KiB record (encoded record, read back from the broker): %d bytes\n", grow)
	fmt.Fprintf(w, "| produce to the discarding broker | thousand records/s | process CPU µs a record |\n|---|---|---|\n")
	base := medianOf(runs[0], func(r run) float64 { return r.krecs })
	for i, c := range cases {
		k := medianOf(runs[i], func(r run) float64 { return r.krecs })
		fmt.Fprintf(w, "| %s | %.0f (%.0f %% fewer) | %.2f |\n", c.name, k, (1-k/base)*100, medianOf(runs[i], func(r run) float64 { return r.cpuUS }))
	}
	b.ReportMetric((1-medianOf(runs[1], func(r run) float64 { return r.krecs })/base)*100, "grown_bytes_cost_%")
}

// sealedGrowth is how many bytes longer a 1 KiB record is, encoded, once
// the encrypting gateway has sealed it.
func (r *cryptRig) sealedGrowth(ctx context.Context) (int, error) {
	topic := r.nextTopic()
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.seal.BootstrapAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	drop, err := createTopic(ctx, cl, topic)
	if err != nil {
		return 0, err
	}
	defer drop()
	value := cryptValues(1 << 10)[0]
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		return 0, err
	}
	reader, err := r.ca.SVID(idCryptGW, time.Hour)
	if err != nil {
		return 0, err
	}
	direct, err := kgo.NewClient(kgo.SeedBrokers(r.kf.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DialTLSConfig(mtlsClient(r.ca, svidtest.NewSource(reader))))
	if err != nil {
		return 0, err
	}
	defer direct.Close()
	fctx, fcancel := context.WithTimeout(ctx, flushBound)
	defer fcancel()
	for {
		fs := direct.PollFetches(fctx)
		if err := fctx.Err(); err != nil {
			return 0, fmt.Errorf("reading the sealed record back: %w", err)
		}
		var rec *kgo.Record
		fs.EachRecord(func(x *kgo.Record) { rec = x })
		if rec == nil {
			continue
		}
		if slices.Equal(rec.Value, value) || len(rec.Headers) == 0 {
			return 0, fmt.Errorf("the broker holds the record unsealed")
		}
		return encodedLen(rec) - encodedLen(&kgo.Record{Value: value}), nil
	}
}

// encodedLen is the length of r as a record of a v2 batch, its length
// prefix included.
func encodedLen(r *kgo.Record) int {
	rec := kmsg.Record{Value: r.Value}
	for _, h := range r.Headers {
		rec.Headers = append(rec.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
	}
	body := len(rec.AppendTo(nil)) - 1 // a Length of 0 takes one byte
	return len(binary.AppendVarint(nil, int64(body))) + body
}
