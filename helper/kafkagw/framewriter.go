package kafkagw

import (
	"bufio"
	"net"

	"github.com/edgeid/edgeid/helper/internal/bufconn"
)

// frameWriterBuffer is one TLS record's worth: a small frame and its size
// prefix leave in one record and one system call.
const frameWriterBuffer = 16 << 10

// frameWriter writes size-prefixed frames to one connection. A TCP
// connection gets the prefix and the frame's parts in one writev. TLS has
// no writev: each Write is a record of its own, so the parts go through a
// small buffer and the 4-byte prefix never becomes a record by itself (a
// frame larger than the buffer leaves as one full record, then the rest
// in one Write). Over a bufconn, the records of one frame leave together
// (bufconn batches), not in one system call per 16 KiB record.
type frameWriter struct {
	conn  net.Conn
	bw    *bufio.Writer // nil on a TCP connection
	batch *bufconn.Conn // the raw connection under a TLS one, or nil
}

func newFrameWriter(c net.Conn) *frameWriter {
	if _, ok := c.(*net.TCPConn); ok {
		return &frameWriter{conn: c}
	}
	w := &frameWriter{conn: c, bw: bufio.NewWriterSize(c, frameWriterBuffer)}
	if tc, ok := c.(*bufconn.TLSConn); ok {
		w.batch = tc.Raw
	}
	return w
}

// write sends the parts of one frame (its size prefix first) and flushes.
func (w *frameWriter) write(parts ...[]byte) error {
	if w.bw == nil {
		bufs := net.Buffers(parts)
		_, err := bufs.WriteTo(w.conn)
		return err
	}
	if w.batch != nil {
		w.batch.BeginBatch()
	}
	err := w.writeBuffered(parts)
	if w.batch != nil {
		if ferr := w.batch.EndBatch(); err == nil {
			err = ferr
		}
	}
	return err
}

func (w *frameWriter) writeBuffered(parts [][]byte) error {
	for _, p := range parts {
		if _, err := w.bw.Write(p); err != nil {
			return err
		}
	}
	return w.bw.Flush()
}
