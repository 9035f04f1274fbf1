package tunnel

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/edgeid/edgeid/helper/internal/bufconn"
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
	// Bulk buffers are bufconn's pooled ones (bufconn.BulkSize).
)

type closeWriter interface{ CloseWrite() error }

func (t *Tunnel) copy(dst, src net.Conn, direction string) {
	var w io.Writer = dst
	if t.cfg.Metrics.Bytes != nil {
		w = &countingWriter{w: dst, count: func(n int64) { t.cfg.Metrics.Bytes(t.cfg.Name, direction, n) }}
	}
	var err error
	if sc, ok := src.(*bufconn.TLSConn); ok {
		err = copyFromTLS(w, sc.Conn)
	} else {
		var batch *bufconn.Conn
		if sc, ok := dst.(*bufconn.TLSConn); ok {
			batch = sc.Raw
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

// copyPlain copies a plaintext connection to w. When batch is set (w writes
// to TLS over batch), the records sealed from one read leave in one system
// call. A full read means more is queued: the rest is gathered without
// blocking, so a burst is sealed and sent in large pieces. It returns nil
// at EOF.
func copyPlain(w io.Writer, batch *bufconn.Conn, src net.Conn) error {
	small := make([]byte, plainReadSize)
	for {
		n, err := src.Read(small)
		data := small[:n]
		var bulk *[]byte
		if n == len(small) && err == nil {
			bulk = bufconn.GetBulk()
			m := copy(*bulk, data)
			m += bufconn.ReadQueued(src, (*bulk)[m:])
			data = (*bulk)[:m]
		}
		if len(data) > 0 {
			if batch != nil {
				batch.BeginBatch()
			}
			_, werr := w.Write(data)
			if batch != nil {
				if ferr := batch.EndBatch(); werr == nil {
					werr = ferr
				}
			}
			if werr != nil {
				err = werr
			}
		}
		if bulk != nil {
			bufconn.PutBulk(bulk)
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
			bulk = bufconn.GetBulk()
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
			bufconn.PutBulk(bulk)
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
