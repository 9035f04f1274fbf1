package kafkagw

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/helper/kafkagw/wire"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// session is one client connection and its upstream connection.
type session struct {
	g            *Gateway
	upstreamAddr string
	actor        string
	client       net.Conn
	clientW      *frameWriter // used by the writer goroutine only
	log          *slog.Logger

	pending chan *exchange           // in request order, toward the writer
	up      atomic.Pointer[upstream] // replaced by the reader goroutine only
	pol     *policy.Set              // the policy for the request being planned

	// Used by the reader goroutine only, one request at a time.
	frames  wire.FrameReader // reads the client's frames
	buf     pooledFrame      // the frame being handled
	prefix  [4]byte          // scratch for parts
	fwd     [3][]byte        // scratch for parts
	scratch sealScratch      // sealing and re-encoding a request

	// Used by the upstream reader only (one at a time).
	fetchScratch fetchScratch // opening a Fetch response

	failOnce sync.Once
	ctx      context.Context // the session's; set before its goroutines start
	cancel   context.CancelFunc
}

// exchange is one request that gets a response.
type exchange struct {
	api      string
	key      int16
	version  int16
	corr     int32
	flexible bool // request flexibility
	start    time.Time
	// fix edits the parsed upstream response; nil passes it through.
	fix  fixFunc
	done chan result
}

type result struct {
	frame []byte // response frame without its size prefix
	err   error
}

// exchanges recycles exchanges and their result channels: two
// allocations fewer per request, which the tail latency of a busy gateway
// feels (garbage collection assists fall on the goroutines that allocate).
var exchanges = sync.Pool{New: func() any { return &exchange{done: make(chan result, 1)} }}

// newExchange returns an exchange for the request of header h.
func newExchange(h wire.RequestHeader) *exchange {
	ex := exchanges.Get().(*exchange)
	*ex = exchange{api: kmsg.NameForKey(h.Key), key: h.Key, version: h.Version, corr: h.CorrelationID,
		flexible: h.Flexible, start: time.Now(), done: ex.done}
	return ex
}

// release gives ex back once its result has been taken from done and
// nothing refers to it any more: only the writer, after writing it.
func (ex *exchange) release() {
	ex.fix = nil
	exchanges.Put(ex)
}

// upstream is one connection to the broker. Its reader answers the
// exchanges sent to inflight, in order, and closes done when inflight is
// closed and drained, or on error.
type upstream struct {
	conn     net.Conn
	frames   wire.FrameReader // used by readUpstream only
	w        *frameWriter     // used by the reader of the client only
	born     time.Time
	inflight chan *exchange
	done     chan struct{}
	retired  sync.Once
}

// retire closes inflight (once): the connection takes no more requests.
func (u *upstream) retire() { u.retired.Do(func() { close(u.inflight) }) }

func newSession(g *Gateway, upstreamAddr string, client net.Conn, actor string) *session {
	log := g.log.With("remote", client.RemoteAddr().String(), "upstream", upstreamAddr)
	if actor != "" {
		log = log.With("actor", actor)
	}
	return &session{
		g: g, upstreamAddr: upstreamAddr, actor: actor, client: client, clientW: newFrameWriter(client), log: log,
		pending: make(chan *exchange, g.cfg.MaxInFlight), frames: wire.FrameReader{R: client},
	}
}

// run serves the connection until the client leaves, an error, or ctx
// ends; it returns after every goroutine of the session has ended.
func (s *session) run(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	s.ctx, s.cancel = ctx, cancel
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.write(ctx)
	}()
	err := s.read(ctx)
	close(s.pending)
	if err != nil {
		s.fail(err)
	}
	wg.Wait()
	if up := s.up.Load(); up != nil {
		up.retire() // read has returned: nothing sends any more
		_ = up.conn.Close()
		<-up.done
	}
	_ = s.client.Close()
}

// fail ends the session: both connections close, every goroutine returns.
func (s *session) fail(err error) {
	s.failOnce.Do(func() {
		if !isClosed(err) {
			s.log.Warn("Closing connection", "error", err.Error())
		}
		s.cancel()
		_ = s.client.Close()
		if up := s.up.Load(); up != nil {
			_ = up.conn.Close()
		}
	})
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, io.EOF)
}

// read reads, plans and forwards requests until the client leaves.
func (s *session) read(ctx context.Context) error {
	if err := s.connect(ctx); err != nil {
		return err
	}
	frameStarted := func() { _ = s.client.SetReadDeadline(time.Now().Add(s.g.cfg.FrameTimeout)) }
	for {
		if err := s.readOne(ctx, frameStarted); err != nil {
			return err
		}
	}
}

// readOne reads, plans and forwards one request.
func (s *session) readOne(ctx context.Context, frameStarted func()) error {
	cfg := &s.g.cfg
	_ = s.client.SetReadDeadline(time.Now().Add(cfg.IdleTimeout))
	buf := &s.buf
	defer buf.release()
	frame, err := s.frames.Read(cfg.MaxFrameBytes, frameStarted, buf.get)
	if err != nil {
		return err
	}
	cfg.Metrics.addBytes("in", len(frame)+4)
	p, err := s.plan(frame)
	if err != nil {
		return err
	}
	if p.ex != nil && p.ex.fix != nil {
		// A response fix planned for later may still refer to the
		// request: the buffer is left to the garbage collector instead of
		// going back to the pool once sent. (Sealing a Produce request is
		// done by now: its sealed records are in the session's scratch,
		// and whatever parts still refer to the frame are sent below.)
		buf.buf = nil
	}
	if p.ex != nil {
		select {
		case s.pending <- p.ex:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if p.forward != nil {
		if err := s.send(ctx, p.forward, p.ex); err != nil {
			return err
		}
	}
	return nil
}

// send forwards a request frame, first replacing an upstream connection
// older than max_conn_lifetime. ex is nil for a request without response.
func (s *session) send(ctx context.Context, frame [][]byte, ex *exchange) error {
	up := s.up.Load()
	if lt := s.g.cfg.MaxConnLifetime; lt > 0 && time.Since(up.born) > lt {
		if err := s.reconnect(ctx); err != nil {
			return err
		}
		up = s.up.Load()
	}
	if ex != nil {
		select {
		case up.inflight <- ex:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_ = up.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := up.w.write(frame...); err != nil {
		return fmt.Errorf("write upstream: %w", err)
	}
	return nil
}

// connect dials the upstream and starts its reader.
func (s *session) connect(ctx context.Context) error {
	c, err := s.g.dialUpstream(ctx, s.upstreamAddr)
	if err != nil {
		return err
	}
	up := &upstream{conn: c, frames: wire.FrameReader{R: c}, w: newFrameWriter(c), born: time.Now(),
		inflight: make(chan *exchange, s.g.cfg.MaxInFlight), done: make(chan struct{})}
	s.up.Store(up)
	go s.readUpstream(up)
	return nil
}

// reconnect retires the upstream connection between requests: no new
// request goes to it, its reader delivers every response still owed, and
// then a new connection (with the current SVID) takes over. The client
// sees nothing but a pause.
func (s *session) reconnect(ctx context.Context) error {
	old := s.up.Load()
	old.retire()
	select {
	case <-old.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	_ = old.conn.Close()
	s.log.Debug("Replaced upstream connection at max_conn_lifetime", "age", time.Since(old.born).String())
	return s.connect(ctx)
}

// readUpstream reads one response per exchange sent, in order.
func (s *session) readUpstream(up *upstream) {
	defer close(up.done)
	for ex := range up.inflight {
		_ = up.conn.SetReadDeadline(time.Now().Add(s.g.cfg.UpstreamTimeout))
		frame, err := up.frames.Read(s.g.cfg.MaxFrameBytes, nil, nil)
		if err == nil {
			frame, err = s.response(ex, frame)
		}
		if err != nil {
			ex.done <- result{err: fmt.Errorf("upstream: %w", err)}
			s.fail(err)
			return
		}
		ex.done <- result{frame: frame}
	}
}

// response checks the correlation id and applies the exchange's fix.
func (s *session) response(ex *exchange, frame []byte) ([]byte, error) {
	if ex.fix == nil {
		corr, _, err := wire.ResponseHeaderLen(frame, false)
		if err != nil {
			return nil, err
		}
		if corr != ex.corr {
			return nil, fmt.Errorf("correlation id %d, want %d", corr, ex.corr)
		}
		return frame, nil
	}
	version := ex.version
	if ex.key == apiVersionsKey && len(frame) >= 6 && binary.BigEndian.Uint16(frame[4:]) == unsupportedVersion {
		version = 0 // an UNSUPPORTED_VERSION ApiVersions answer is v0
	}
	corr, n, resp, err := wire.ParseResponse(frame, ex.key, version, ex.flexible)
	if err != nil {
		return nil, err
	}
	if corr != ex.corr {
		return nil, fmt.Errorf("correlation id %d, want %d", corr, ex.corr)
	}
	if err := ex.fix(resp); err != nil {
		return nil, err
	}
	return resp.AppendTo(append(make([]byte, 0, len(frame)), frame[:n]...)), nil
}

// write sends responses to the client in request order.
func (s *session) write(ctx context.Context) {
	for ex := range s.pending {
		var r result
		select {
		case r = <-ex.done:
		case <-ctx.Done():
			return
		}
		if r.err != nil {
			s.fail(r.err)
			return
		}
		_ = s.client.SetWriteDeadline(time.Now().Add(writeTimeout))
		var size [4]byte
		binary.BigEndian.PutUint32(size[:], uint32(len(r.frame)))
		if err := s.clientW.write(size[:], r.frame); err != nil {
			s.fail(err)
			return
		}
		s.g.cfg.Metrics.addBytes("out", len(r.frame)+4)
		s.g.cfg.Metrics.observe(ex.api, time.Since(ex.start).Seconds())
		ex.release()
	}
}
