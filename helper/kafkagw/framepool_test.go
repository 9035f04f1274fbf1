package kafkagw

import (
	"testing"

	"github.com/edgeid/edgeid/internal/racecheck"
)

// TestFramePoolClasses: every size gets a slice of exactly that length, in
// a buffer of its class (the smallest power-of-two multiple of
// minPooledFrame that holds it); sizes outside the pooled range are
// allocated and not kept.
func TestFramePoolClasses(t *testing.T) {
	for _, n := range []int{0, 1, minPooledFrame - 1, minPooledFrame, minPooledFrame + 1, 1100, 64 << 10, 3<<20 + 5, maxPooledFrame, maxPooledFrame + 1} {
		var f pooledFrame
		b := f.get(n)
		if len(b) != n {
			t.Fatalf("get(%d): len %d", n, len(b))
		}
		pooled := n >= minPooledFrame && n <= maxPooledFrame
		if pooled != (f.buf != nil) {
			t.Fatalf("get(%d): pooled %v, want %v", n, f.buf != nil, pooled)
		}
		if pooled {
			c := cap(*f.buf)
			if c < n || (c > minPooledFrame && c/2 >= n) || c%minPooledFrame != 0 || c&(c-1) != 0 {
				t.Fatalf("get(%d): a buffer of %d bytes is not its class", n, c)
			}
		}
		f.release()
		if f.buf != nil {
			t.Fatalf("get(%d): release kept the buffer", n)
		}
	}
}

// TestSmallProduceFrameAllocatesNothing: a one-record Produce frame of a
// 1 KiB value (the latency benchmark's request) comes from the pool, once
// one has been released.
func TestSmallProduceFrameAllocatesNothing(t *testing.T) {
	if racecheck.Enabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	var f pooledFrame
	f.get(1100)
	f.release()
	if n := testing.AllocsPerRun(100, func() {
		b := f.get(1100)
		b[0] = 1
		f.release()
	}); n != 0 {
		t.Fatalf("a 1,100-byte frame costs %v allocations, want 0", n)
	}
}
