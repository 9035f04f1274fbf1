package kafkagw

import (
	"math/bits"
	"sync"
)

// Request frames are read into pooled buffers by size class: allocating
// and zeroing a fresh one per request cost about a sixth of a cloud
// gateway's CPU at full produce speed (bulk Produce batches of up to a few
// MiB), and at one small request at a time it was most of what the gateway
// allocates (a 1 KiB record's Produce frame: 1.1 KB of about 1.8 KB per
// request), which sets how often the process collects garbage. Frames
// under minPooledFrame (Metadata, heartbeats, commits) are allocated.
const (
	minPooledFrame = 1 << 10
	// maxPooledFrame: larger frames (up to max_frame_bytes) are allocated.
	maxPooledFrame = 64 << 20
)

// framePools holds buffers by size class: class i has capacity
// minPooledFrame << i, up to maxPooledFrame (class 16).
var framePools [17]sync.Pool

// pooledFrame is one buffer taken from framePools for one request frame.
type pooledFrame struct {
	buf *[]byte
}

// get returns an n-byte slice, pooled when n is in the pooled range.
func (f *pooledFrame) get(n int) []byte {
	if n < minPooledFrame || n > maxPooledFrame {
		return make([]byte, n)
	}
	class := bits.Len(uint((n - 1) / minPooledFrame))
	if b, ok := framePools[class].Get().(*[]byte); ok {
		f.buf = b
	} else {
		b := make([]byte, minPooledFrame<<class)
		f.buf = &b
	}
	return (*f.buf)[:n]
}

// release gives the buffer back. Call it only once nothing refers to the
// frame any more.
func (f *pooledFrame) release() {
	if f.buf == nil {
		return
	}
	class := bits.Len(uint((cap(*f.buf) - 1) / minPooledFrame))
	framePools[class].Put(f.buf)
	f.buf = nil
}
