package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Modes.
const (
	ModeClient = "client"
	ModeServer = "server"
)

// handshakeTimeout bounds a TLS handshake.
const handshakeTimeout = 10 * time.Second

// CipherSuites are the TLS 1.2 suites the tunnel allows: ECDHE with
// AES-GCM. TLS 1.3 suites are fixed by Go and all AEAD.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// Config is one tunnel.
type Config struct {
	Name   string
	Mode   string
	Listen string
	Target string
	// AllowedSPIFFEIDs authorise the peer (see NewMatcher).
	AllowedSPIFFEIDs []string
	// MaxConnLifetime closes connections older than this; 0 never does.
	MaxConnLifetime time.Duration
	DialTimeout     time.Duration
	Logger          *slog.Logger
	Metrics         Metrics
}

// Metrics receive tunnel events; nil fields are skipped.
type Metrics struct {
	// Accepted counts a proxied connection whose peer was authorised.
	Accepted func(tunnel string)
	// Rejected counts a connection refused at the TLS handshake
	// (unauthorised peer, bad certificate) or whose target was down.
	Rejected func(tunnel, reason string)
	// Active moves the number of open proxied connections by delta.
	Active func(tunnel string, delta int)
	// Bytes counts bytes proxied: "in" toward Target, "out" back.
	Bytes func(tunnel, direction string, n int64)
}

// Tunnel forwards connections between plaintext and SPIFFE mTLS.
type Tunnel struct {
	cfg     Config
	log     *slog.Logger
	tls     *tls.Config
	matcher *Matcher

	ln net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// New builds a tunnel that takes its SVID from svids and verifies peers
// against bundles.
func New(cfg Config, svids x509svid.Source, bundles x509bundle.Source) (*Tunnel, error) {
	if cfg.Mode != ModeClient && cfg.Mode != ModeServer {
		return nil, fmt.Errorf("tunnel %s: mode %q is not client or server", cfg.Name, cfg.Mode)
	}
	m, err := NewMatcher(cfg.AllowedSPIFFEIDs)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	authorizer := tlsconfig.AdaptMatcher(spiffeid.Matcher(m.Match))
	var tc *tls.Config
	if cfg.Mode == ModeServer {
		tc = tlsconfig.MTLSServerConfig(svids, bundles, authorizer)
	} else {
		tc = tlsconfig.MTLSClientConfig(svids, bundles, authorizer)
	}
	tc.MinVersion = tls.VersionTLS12
	tc.CipherSuites = CipherSuites
	return &Tunnel{
		cfg:     cfg,
		log:     cfg.Logger.With("tunnel", cfg.Name, "mode", cfg.Mode),
		tls:     tc,
		matcher: m,
		conns:   map[net.Conn]struct{}{},
	}, nil
}

// Listen binds the listen address. Serve may be called afterwards.
func (t *Tunnel) Listen() error {
	ln, err := net.Listen("tcp", t.cfg.Listen)
	if err != nil {
		return fmt.Errorf("tunnel %s: listen: %w", t.cfg.Name, err)
	}
	t.ln = ln
	t.log.Info("Tunnel listening", "listen", ln.Addr().String(), "target", t.cfg.Target)
	return nil
}

// Addr is the bound address, after Listen.
func (t *Tunnel) Addr() net.Addr {
	if t.ln == nil {
		return nil
	}
	return t.ln.Addr()
}

// Serve accepts connections until ctx ends, then closes the listener and
// every open connection.
func (t *Tunnel) Serve(ctx context.Context) error {
	if t.ln == nil {
		if err := t.Listen(); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = t.ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer t.closeAll()
	var delay time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("tunnel %s: accept: %w", t.cfg.Name, err)
		}
		delay = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.handle(ctx, c)
		}()
	}
}

func (t *Tunnel) handle(ctx context.Context, raw net.Conn) {
	in := raw
	var out net.Conn
	var err error
	if t.cfg.Mode == ModeServer {
		in, out, err = t.acceptServer(ctx, raw)
	} else {
		out, err = t.dialClient(ctx)
	}
	if err != nil {
		_ = raw.Close()
		return
	}
	t.track(in, out, true)
	defer t.track(in, out, false)
	if t.cfg.Metrics.Accepted != nil {
		t.cfg.Metrics.Accepted(t.cfg.Name)
	}
	if t.cfg.Metrics.Active != nil {
		t.cfg.Metrics.Active(t.cfg.Name, 1)
		defer t.cfg.Metrics.Active(t.cfg.Name, -1)
	}
	if t.cfg.MaxConnLifetime > 0 {
		timer := time.AfterFunc(t.cfg.MaxConnLifetime, func() {
			t.log.Debug("Closing connection at max_conn_lifetime")
			_ = in.Close()
			_ = out.Close()
		})
		defer timer.Stop()
	}
	t.pipe(in, out)
}

// acceptServer completes the TLS handshake on a server-mode connection,
// which authorises the client, then dials the plaintext target.
func (t *Tunnel) acceptServer(ctx context.Context, raw net.Conn) (net.Conn, net.Conn, error) {
	bc := newBufferedConn(raw)
	tc := tls.Server(bc, t.tls)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		t.reject("handshake", "Refused connection", raw.RemoteAddr(), err)
		return nil, nil, err
	}
	peer := peerID(tc)
	out, err := (&net.Dialer{Timeout: t.cfg.DialTimeout}).DialContext(ctx, "tcp", t.cfg.Target)
	if err != nil {
		t.reject("target", "Unable to reach target", raw.RemoteAddr(), err)
		_ = tc.Close()
		return nil, nil, err
	}
	t.log.Debug("Accepted connection", "peer", peer, "remote", raw.RemoteAddr().String())
	return &secureConn{Conn: tc, raw: bc}, out, nil
}

// dialClient opens the mTLS connection to the target, which authorises the
// server.
func (t *Tunnel) dialClient(ctx context.Context) (net.Conn, error) {
	raw, err := (&net.Dialer{Timeout: t.cfg.DialTimeout}).DialContext(ctx, "tcp", t.cfg.Target)
	if err != nil {
		t.reject("target", "Unable to reach target", nil, err)
		return nil, err
	}
	bc := newBufferedConn(raw)
	c := tls.Client(bc, t.tls)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := c.HandshakeContext(hctx); err != nil {
		_ = raw.Close()
		t.reject("handshake", "Unable to open tunnel to target", nil, err)
		return nil, err
	}
	t.log.Debug("Opened connection", "peer", peerID(c), "target", t.cfg.Target)
	return &secureConn{Conn: c, raw: bc}, nil
}

func (t *Tunnel) reject(reason, msg string, remote net.Addr, err error) {
	args := []any{"reason", reason, "error", err.Error()}
	if remote != nil {
		args = append(args, "remote", remote.String())
	}
	t.log.Warn(msg, args...)
	if t.cfg.Metrics.Rejected != nil {
		t.cfg.Metrics.Rejected(t.cfg.Name, reason)
	}
}

// pipe copies both ways, passing half-closes on, until both sides finish.
func (t *Tunnel) pipe(in, out net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		t.copy(out, in, "in")
	}()
	go func() {
		defer wg.Done()
		t.copy(in, out, "out")
	}()
	wg.Wait()
	_ = in.Close()
	_ = out.Close()
}

type closeWriter interface{ CloseWrite() error }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

func (t *Tunnel) copy(dst, src net.Conn, direction string) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var w io.Writer = dst
	if t.cfg.Metrics.Bytes != nil {
		w = &countingWriter{w: dst, count: func(n int64) { t.cfg.Metrics.Bytes(t.cfg.Name, direction, n) }}
	}
	var err error
	if sc, ok := src.(*secureConn); ok {
		err = copyFromTLS(w, sc.Conn, *bp)
	} else if sc, ok := dst.(*secureConn); ok {
		err = copyToTLS(w, sc, src, *bp)
	} else {
		// Hide dst's ReadFrom so the buffer is used and bytes are counted
		// per write.
		_, err = io.CopyBuffer(writerOnly{w}, src, *bp)
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

// copyToTLS copies src into the TLS connection, sending the records of
// each read in one system call. w counts and writes to dst. It returns nil
// at EOF.
func copyToTLS(w io.Writer, dst *secureConn, src net.Conn, buf []byte) error {
	for {
		n, err := src.Read(buf)
		if n > 0 {
			dst.raw.beginBatch()
			_, werr := w.Write(buf[:n])
			if ferr := dst.raw.endBatch(); werr == nil {
				werr = ferr
			}
			if werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// maxRecord is the largest TLS record payload.
const maxRecord = 16 << 10

// past is a deadline that has always passed.
var past = time.Unix(1, 0)

// copyFromTLS copies decrypted data to dst. A tls.Conn returns one record
// per Read; after a blocking Read it drains the records already received
// (a read deadline in the past makes Read return at once when a record
// would need more network input) and writes them in one call, so the
// plaintext side sees a quarter of the writes for bulk traffic without
// waiting for data that has not arrived. It returns nil at EOF.
func copyFromTLS(dst io.Writer, src *tls.Conn, buf []byte) error {
	for {
		n, err := src.Read(buf)
		if n > 0 && err == nil {
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
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// readBufferSize is the read buffer under each TLS connection: Go's TLS
// reads the network one record at a time, so without it bulk traffic costs
// one read system call per 16 KiB record.
const readBufferSize = 128 << 10

// bufferedConn is a net.Conn whose reads go through a large buffer, and
// whose writes can be gathered: between beginBatch and endBatch, the TLS
// records of one application write go out in one system call instead of
// one per 16 KiB record.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu       sync.Mutex
	batching bool
	wbuf     []byte
}

func newBufferedConn(c net.Conn) *bufferedConn {
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readBufferSize)}
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching {
		b.wbuf = append(b.wbuf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func (b *bufferedConn) beginBatch() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// endBatch writes what was gathered.
func (b *bufferedConn) endBatch() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	if len(b.wbuf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.wbuf)
	if cap(b.wbuf) > 4*readBufferSize {
		b.wbuf = nil
	} else {
		b.wbuf = b.wbuf[:0]
	}
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

type writerOnly struct{ io.Writer }

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

func (t *Tunnel) track(a, b net.Conn, add bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if add {
		t.conns[a] = struct{}{}
		t.conns[b] = struct{}{}
	} else {
		delete(t.conns, a)
		delete(t.conns, b)
	}
}

func (t *Tunnel) closeAll() {
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func peerID(c *tls.Conn) string {
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
