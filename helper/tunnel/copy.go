package tunnel

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// Buffers. A tunnel in front of a broker holds many long-lived connections
// that are idle most of the time (MQTT devices), so a connection blocked
// waiting for data holds only small buffers. Bulk buffers come from a pool
// once data is there, for as long as a burst lasts.
const (
	// plainReadSize is the buffer a plaintext reader blocks on.
	plainReadSize = 4 << 10
	// maxRecord is the largest TLS record payload, and the buffer a TLS
	// reader blocks on: a tls.Conn then never holds back decrypted bytes.
	maxRecord = 16 << 10
	// bulkSize is a pooled buffer for gathering what is already queued.
	bulkSize = 128 << 10
	// maxBatchKeep bounds a write-batch buffer returned to its pool.
	maxBatchKeep = 4 * bulkSize
)

var (
	bulkPool  = sync.Pool{New: func() any { b := make([]byte, bulkSize); return &b }}
	batchPool = sync.Pool{New: func() any { b := make([]byte, 0, bulkSize+bulkSize/8); return &b }}
)

type closeWriter interface{ CloseWrite() error }

func (t *Tunnel) copy(dst, src net.Conn, direction string) {
	var w io.Writer = dst
	if t.cfg.Metrics.Bytes != nil {
		w = &countingWriter{w: dst, count: func(n int64) { t.cfg.Metrics.Bytes(t.cfg.Name, direction, n) }}
	}
	var err error
	if sc, ok := src.(*secureConn); ok {
		err = copyFromTLS(w, sc.Conn)
	} else {
		var batch *bufferedConn
		if sc, ok := dst.(*secureConn); ok {
			batch = sc.raw
		}
		err = copyPlain(w, batch, src)
	}
	if err != nil {
		// One side failed: tear the whole connection down.
		_ = dst.Close()
		_ = src.Close()
		return
	}
	if cw, ok := dst.(closeWriter); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
}

// secureConn is the TLS side of a proxied connection with the raw
// connection under it.
type secureConn struct {
	*tls.Conn
	raw *bufferedConn
}

// copyPlain copies a plaintext connection to w. When batch is set (w writes
// to TLS over batch), the records sealed from one read leave in one system
// call. A full read means more is queued: the rest is gathered without
// blocking, so a burst is sealed and sent in large pieces. It returns nil
// at EOF.
func copyPlain(w io.Writer, batch *bufferedConn, src net.Conn) error {
	small := make([]byte, plainReadSize)
	for {
		n, err := src.Read(small)
		data := small[:n]
		var bulk *[]byte
		if n == len(small) && err == nil {
			bulk = bulkPool.Get().(*[]byte)
			m := copy(*bulk, data)
			m += readQueued(src, (*bulk)[m:])
			data = (*bulk)[:m]
		}
		if len(data) > 0 {
			if batch != nil {
				batch.beginBatch()
			}
			_, werr := w.Write(data)
			if batch != nil {
				if ferr := batch.endBatch(); werr == nil {
					werr = ferr
				}
			}
			if werr != nil {
				err = werr
			}
		}
		if bulk != nil {
			bulkPool.Put(bulk)
		}
		if err != nil {
			return endOfStream(err)
		}
	}
}

// past is a deadline that has always passed.
var past = time.Unix(1, 0)

// copyFromTLS copies decrypted data to dst. A tls.Conn returns one record
// per Read; after a blocking Read it drains the records already received
// (a read deadline in the past makes Read return at once when a record
// would need more network input) and writes them in one call, so the
// plaintext side sees far fewer writes for bulk traffic without waiting for
// data that has not arrived. It returns nil at EOF.
func copyFromTLS(dst io.Writer, src *tls.Conn) error {
	small := make([]byte, maxRecord)
	for {
		n, err := src.Read(small)
		data := small[:n]
		var bulk *[]byte
		if n > 0 && err == nil {
			bulk = bulkPool.Get().(*[]byte)
			buf := *bulk
			n = copy(buf, data)
			_ = src.SetReadDeadline(past)
			for n+maxRecord <= len(buf) {
				m, rerr := src.Read(buf[n:])
				n += m
				if rerr != nil {
					var ne net.Error
					if !errors.As(rerr, &ne) || !ne.Timeout() {
						err = rerr
					}
					break
				}
			}
			_ = src.SetReadDeadline(time.Time{})
			data = buf[:n]
		}
		if len(data) > 0 {
			if _, werr := dst.Write(data); werr != nil {
				err = werr
			}
		}
		if bulk != nil {
			bulkPool.Put(bulk)
		}
		if err != nil {
			return endOfStream(err)
		}
	}
}

// endOfStream is nil for io.EOF, a stream's normal end, and err otherwise.
func endOfStream(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// readQueued fills p with what c has already received, without blocking,
// and returns how much it read. Errors and EOF are left for the next
// blocking Read to report.
func readQueued(c net.Conn, p []byte) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	total := 0
	for total < len(p) {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = syscall.Read(int(fd), p[total:])
			return true // one attempt; never wait for more
		}); err != nil || rerr != nil || n <= 0 {
			break
		}
		total += n
	}
	return total
}

// bufferedConn is a net.Conn under a tls.Conn. Its reads pull what is
// already queued into a pooled buffer after a read that filled the caller's
// buffer (Go's TLS reads the network a record at a time, which would cost
// one system call per 16 KiB record of a bulk transfer), and give the buffer
// back once it is drained. Its writes can be gathered: between beginBatch
// and endBatch, the TLS records of one application write go out in one
// system call instead of one per 16 KiB record.
type bufferedConn struct {
	net.Conn

	// rbuf holds received bytes the TLS layer has not read yet, rbuf[r:w].
	rbuf *[]byte
	r, w int

	mu       sync.Mutex
	batching bool
	wbuf     *[]byte
}

func newBufferedConn(c net.Conn) *bufferedConn { return &bufferedConn{Conn: c} }

func (b *bufferedConn) Read(p []byte) (int, error) {
	if b.rbuf != nil {
		n := copy(p, (*b.rbuf)[b.r:b.w])
		b.r += n
		if b.r == b.w {
			bulkPool.Put(b.rbuf)
			b.rbuf = nil
		}
		return n, nil
	}
	n, err := b.Conn.Read(p)
	if n == len(p) && err == nil {
		bulk := bulkPool.Get().(*[]byte)
		if m := readQueued(b.Conn, *bulk); m > 0 {
			b.rbuf, b.r, b.w = bulk, 0, m
		} else {
			bulkPool.Put(bulk)
		}
	}
	return n, err
}

func (b *bufferedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching {
		*b.wbuf = append(*b.wbuf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func (b *bufferedConn) beginBatch() {
	b.mu.Lock()
	b.batching = true
	b.wbuf = batchPool.Get().(*[]byte)
	b.mu.Unlock()
}

// endBatch writes what was gathered and gives the buffer back.
func (b *bufferedConn) endBatch() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	var err error
	if len(*b.wbuf) > 0 {
		_, err = b.Conn.Write(*b.wbuf)
	}
	if cap(*b.wbuf) <= maxBatchKeep {
		*b.wbuf = (*b.wbuf)[:0]
		batchPool.Put(b.wbuf)
	}
	b.wbuf = nil
	return err
}

// CloseWrite half-closes the TCP connection, for tls.Conn.CloseWrite users
// that reach the raw connection.
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return nil
}

type countingWriter struct {
	w     io.Writer
	count func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if n > 0 {
		c.count(int64(n))
	}
	return n, err
}
