package fleet

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// OpTimeout bounds one attestation.
const OpTimeout = 30 * time.Second

// Op is one operation on one node.
type Op func(ctx context.Context, n *Node) error

// Result is what one phase achieved.
type Result struct {
	// Ops is the number of operations that succeeded; Failures counts
	// failed attempts (including retried ones); Dropped counts operations
	// an open-loop phase could not start because too many were in flight.
	Ops, Failures, Dropped int
	// Elapsed is from the start of the phase to its last success.
	Elapsed time.Duration
	// FirstOK is from the start of the phase to its first success.
	FirstOK time.Duration
	// Latencies of the successful operations, sorted.
	Latencies []time.Duration
	// FirstErr is the first failure, for the report.
	FirstErr error
}

// PerSecond is successes per second of Elapsed.
func (r *Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Percentile returns the p-th (0..1) latency of the successes.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[min(len(r.Latencies)-1, int(p*float64(len(r.Latencies))))]
}

// recorder collects a phase's outcomes from many goroutines.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	res   Result
}

func (rec *recorder) do(ctx context.Context, op Op, n *Node) error {
	opCtx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	t0 := time.Now()
	err := op(opCtx, n)
	now := time.Now()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if err != nil {
		rec.res.Failures++
		if rec.res.FirstErr == nil {
			rec.res.FirstErr = err
		}
		return err
	}
	if rec.res.Ops == 0 {
		rec.res.FirstOK = now.Sub(rec.start)
	}
	rec.res.Ops++
	rec.res.Elapsed = now.Sub(rec.start)
	rec.res.Latencies = append(rec.res.Latencies, now.Sub(t0))
	return nil
}

func (rec *recorder) result() Result {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	res := rec.res
	slices.Sort(res.Latencies)
	return res
}

// RunAll runs op once for every node with at most concurrency in flight.
// A failed node is tried again after retry when retry is positive (a
// restart storm: agents keep trying while the server comes back), and
// given up when retry is zero. ctx bounds the whole phase.
func RunAll(ctx context.Context, nodes []*Node, concurrency int, retry time.Duration, op Op) Result {
	rec := &recorder{start: time.Now()}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(concurrency, len(nodes)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(nodes) || ctx.Err() != nil {
					return
				}
				for rec.do(ctx, op, nodes[i]) != nil && retry > 0 && sleep(ctx, retry) {
				}
			}
		}()
	}
	wg.Wait()
	return rec.result()
}

// RunRate starts op at a steady rate (per second) for d, cycling through
// the nodes, as a fleet whose agents renew on a schedule does. At most
// maxInFlight run at once; a start beyond that is counted as Dropped, so a
// server that cannot keep up shows as drops and latency, not as a slower
// schedule.
func RunRate(ctx context.Context, nodes []*Node, rate float64, d time.Duration, maxInFlight int, op Op) Result {
	rec := &recorder{start: time.Now()}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; ; i++ {
		at := rec.start.Add(time.Duration(i) * interval)
		if at.Sub(rec.start) >= d || !sleep(ctx, time.Until(at)) {
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			rec.mu.Lock()
			rec.res.Dropped++
			rec.mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(n *Node) {
			defer wg.Done()
			defer func() { <-sem }()
			_ = rec.do(ctx, op, n)
		}(nodes[i%len(nodes)])
	}
	wg.Wait()
	res := rec.result()
	// The offered window, not the last success, is the rate's denominator.
	res.Elapsed = max(res.Elapsed, d)
	return res
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
