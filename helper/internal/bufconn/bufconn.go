// Package bufconn is the net.Conn that the helper's TLS proxies (the
// tunnel and the Kafka gateway) put under a tls.Conn, so that bulk
// traffic costs a few system calls per hundred kilobytes rather than one
// or two per 16 KiB TLS record.
//
// Reads: Go's TLS reads the network a record at a time. After a read that
// filled the caller's buffer, Conn pulls whatever else is already queued
// into a pooled buffer, without blocking, and serves the next reads from
// it; the buffer goes back to the pool once drained, so an idle
// connection holds none.
//
// Writes: between BeginBatch and EndBatch, the TLS records of one
// application write are gathered and leave together (in pieces of at most
// BatchFlushAt bytes) instead of one system call per record. Outside a
// batch (handshake messages, alerts) every write goes straight out.
package bufconn

import (
	"crypto/tls"
	"net"
	"sync"
	"syscall"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

const (
	// BulkSize is a pooled buffer for gathering what is already queued.
	BulkSize = 128 << 10
	// BatchFlushAt is how much a batch gathers before it writes: a large
	// application write leaves in pieces of this size, and a batch buffer
	// never grows much past it.
	BatchFlushAt = 256 << 10
)

var (
	bulkPool  = sync.Pool{New: func() any { b := make([]byte, BulkSize); return &b }}
	batchPool = sync.Pool{New: func() any { b := make([]byte, 0, BatchFlushAt+maxRecordOverhead); return &b }}
)

// maxRecordOverhead is one full TLS record with its header and AEAD tag:
// the most a write can add past BatchFlushAt before the batch writes.
const maxRecordOverhead = 16<<10 + 5 + 256

// GetBulk returns a BulkSize buffer from the pool; give it back with PutBulk.
func GetBulk() *[]byte { return bulkPool.Get().(*[]byte) }

// PutBulk returns a buffer GetBulk gave.
func PutBulk(b *[]byte) { bulkPool.Put(b) }

// Conn wraps a raw connection for a tls.Conn to use.
type Conn struct {
	net.Conn

	// rbuf holds received bytes the TLS layer has not read yet, rbuf[r:w].
	rbuf *[]byte
	r, w int

	mu       sync.Mutex
	batching bool
	wbuf     *[]byte
}

// New wraps c.
func New(c net.Conn) *Conn { return &Conn{Conn: c} }

// Read serves queued bytes first; a read that fills p pulls what else is
// already queued.
func (b *Conn) Read(p []byte) (int, error) {
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
		bulk := GetBulk()
		if m := ReadQueued(b.Conn, *bulk); m > 0 {
			b.rbuf, b.r, b.w = bulk, 0, m
		} else {
			PutBulk(bulk)
		}
	}
	return n, err
}

// Write gathers p inside a batch and writes it straight out otherwise.
func (b *Conn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.batching {
		return b.Conn.Write(p)
	}
	if len(*b.wbuf) > 0 && len(*b.wbuf)+len(p) > BatchFlushAt {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	*b.wbuf = append(*b.wbuf, p...)
	return len(p), nil
}

// BeginBatch starts gathering writes.
func (b *Conn) BeginBatch() {
	b.mu.Lock()
	b.batching = true
	b.wbuf = batchPool.Get().(*[]byte)
	b.mu.Unlock()
}

// EndBatch writes what was gathered and gives the buffer back.
func (b *Conn) EndBatch() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	err := b.flushLocked()
	if cap(*b.wbuf) <= BatchFlushAt+maxRecordOverhead {
		batchPool.Put(b.wbuf)
	}
	b.wbuf = nil
	return err
}

func (b *Conn) flushLocked() error {
	var err error
	if len(*b.wbuf) > 0 {
		_, err = b.Conn.Write(*b.wbuf)
	}
	*b.wbuf = (*b.wbuf)[:0]
	return err
}

type closeWriter interface{ CloseWrite() error }

// CloseWrite half-closes the TCP connection, for tls.Conn.CloseWrite users
// that reach the raw connection.
func (b *Conn) CloseWrite() error {
	if cw, ok := b.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadQueued fills p with what c has already received, without blocking,
// and returns how much it read. Errors and EOF are left for the next
// blocking Read to report.
func ReadQueued(c net.Conn, p []byte) int {
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

// TLSConn is a tls.Conn over a Conn, with the Conn at hand for batching.
type TLSConn struct {
	*tls.Conn
	Raw *Conn
}

// PeerID is the SPIFFE ID of the peer's verified certificate, "" without
// one (before the handshake, or a peer that sent none).
func (c *TLSConn) PeerID() string {
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return ""
	}
	return id.String()
}

// Server is tls.Server over New(raw).
func Server(raw net.Conn, cfg *tls.Config) *TLSConn {
	bc := New(raw)
	return &TLSConn{Conn: tls.Server(bc, cfg), Raw: bc}
}

// Client is tls.Client over New(raw).
func Client(raw net.Conn, cfg *tls.Config) *TLSConn {
	bc := New(raw)
	return &TLSConn{Conn: tls.Client(bc, cfg), Raw: bc}
}
