package tunnel

import (
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

	"github.com/edgeid/edgeid/helper/internal/bufconn"
	"github.com/edgeid/edgeid/helper/internal/localpeer"
	"github.com/edgeid/edgeid/internal/logonce"
	"github.com/edgeid/edgeid/internal/loopback"
	"github.com/edgeid/edgeid/internal/tlspolicy"
)

// Modes.
const (
	ModeClient = "client"
	ModeServer = "server"
)

// handshakeTimeout bounds a TLS handshake.
const handshakeTimeout = 10 * time.Second

// Config is one tunnel.
type Config struct {
	Name   string
	Mode   string
	Listen string
	Target string
	// AllowedSPIFFEIDs authorise the peer (see NewMatcher).
	AllowedSPIFFEIDs []string
	// AllowRemoteClients lets a client-mode tunnel listen on an address
	// other than loopback. A client tunnel hands its SVID to whoever
	// connects to Listen, so by default New refuses any Listen host that
	// is not a loopback address or "localhost".
	AllowRemoteClients bool
	// LocalUsers, in client mode, admits only connections whose socket
	// belongs to one of its local accounts (the workload's own, by
	// default). A nil guard admits any local account.
	LocalUsers *localpeer.Guard
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
	// Setup observes, for an accepted connection, the time from accept
	// to both sides connected: the local-user check, the TLS handshake
	// and the dial.
	Setup func(tunnel string, d time.Duration)
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

	// refusals lets one refusal per (reason, peer host) per
	// RefusalLogInterval be logged; every refusal is counted.
	refusals *logonce.Limiter[string]
}

// RefusalLogInterval is how often the same kind of refusal from the same
// peer host is logged: a peer can make connections fail at will and must
// not fill the disk with log lines (every refusal is still counted).
const RefusalLogInterval = time.Minute

// New builds a tunnel that takes its SVID from svids and verifies peers
// against bundles.
func New(cfg Config, svids x509svid.Source, bundles x509bundle.Source) (*Tunnel, error) {
	if cfg.Mode != ModeClient && cfg.Mode != ModeServer {
		return nil, fmt.Errorf("tunnel %s: mode %q is not client or server", cfg.Name, cfg.Mode)
	}
	if cfg.Mode == ModeClient && !cfg.AllowRemoteClients {
		if err := RequireLoopback(cfg.Listen); err != nil {
			return nil, fmt.Errorf("tunnel %s: %w", cfg.Name, err)
		}
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
	tlspolicy.Apply(tc)
	return &Tunnel{
		cfg:      cfg,
		log:      cfg.Logger.With("tunnel", cfg.Name, "mode", cfg.Mode),
		tls:      tc,
		matcher:  m,
		conns:    map[net.Conn]struct{}{},
		refusals: logonce.New[string](RefusalLogInterval),
	}, nil
}

// ErrNotLoopback is returned for a client tunnel whose listen address is not
// a loopback address.
var ErrNotLoopback = errors.New("a client tunnel listens on loopback only (127.0.0.0/8, [::1] or localhost); it gives its identity to anyone who connects, so set allow_remote_clients = true to listen elsewhere")

// RequireLoopback checks that the host of addr ("host:port") names the
// loopback interface (loopback.Host).
func RequireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen %q: %w", addr, err)
	}
	if loopback.Host(host) {
		return nil
	}
	return fmt.Errorf("listen %q: %w", addr, ErrNotLoopback)
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
	start := time.Now()
	in := raw
	var out net.Conn
	var err error
	if t.cfg.Mode == ModeServer {
		in, out, err = t.acceptServer(ctx, raw)
	} else if err = t.cfg.LocalUsers.Admit(raw); err != nil {
		t.refuseLocal(raw, err)
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
	if t.cfg.Metrics.Setup != nil {
		t.cfg.Metrics.Setup(t.cfg.Name, time.Since(start))
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

// refuseLocal counts a connection from a local account that is not
// admitted, and logs it once per account per localpeer.RefusalLogInterval.
func (t *Tunnel) refuseLocal(raw net.Conn, err error) {
	if t.cfg.LocalUsers.ShouldLog(err) {
		t.log.Warn("Refused local connection", "reason", "local_user", "error", err.Error(), "remote", raw.RemoteAddr().String(),
			"note", "further refusals of this account are counted and logged again after "+localpeer.RefusalLogInterval.String())
	}
	if t.cfg.Metrics.Rejected != nil {
		t.cfg.Metrics.Rejected(t.cfg.Name, "local_user")
	}
}

// acceptServer completes the TLS handshake on a server-mode connection,
// which authorises the client, then dials the plaintext target.
func (t *Tunnel) acceptServer(ctx context.Context, raw net.Conn) (net.Conn, net.Conn, error) {
	tc := bufconn.Server(raw, t.tls)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		t.reject("handshake", "Refused connection", raw.RemoteAddr(), err)
		return nil, nil, err
	}
	peer := tc.PeerID()
	out, err := (&net.Dialer{Timeout: t.cfg.DialTimeout}).DialContext(ctx, "tcp", t.cfg.Target)
	if err != nil {
		t.reject("target", "Unable to reach target", raw.RemoteAddr(), err)
		_ = tc.Close()
		return nil, nil, err
	}
	t.log.Debug("Accepted connection", "peer", peer, "remote", raw.RemoteAddr().String())
	return tc, out, nil
}

// dialClient opens the mTLS connection to the target, which authorises the
// server.
func (t *Tunnel) dialClient(ctx context.Context) (net.Conn, error) {
	raw, err := (&net.Dialer{Timeout: t.cfg.DialTimeout}).DialContext(ctx, "tcp", t.cfg.Target)
	if err != nil {
		t.reject("target", "Unable to reach target", nil, err)
		return nil, err
	}
	c := bufconn.Client(raw, t.tls)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := c.HandshakeContext(hctx); err != nil {
		_ = raw.Close()
		t.reject("handshake", "Unable to open tunnel to target", nil, err)
		return nil, err
	}
	t.log.Debug("Opened connection", "peer", c.PeerID(), "target", t.cfg.Target)
	return c, nil
}

func (t *Tunnel) reject(reason, msg string, remote net.Addr, err error) {
	args := []any{"reason", reason, "error", err.Error()}
	key := reason
	if remote != nil {
		args = append(args, "remote", remote.String())
		if host, _, splitErr := net.SplitHostPort(remote.String()); splitErr == nil {
			key += " " + host
		}
	}
	if t.refusals.Allow(key, time.Now()) {
		t.log.Warn(msg, append(args, "note", "the same refusal from this host is counted and logged again after "+RefusalLogInterval.String())...)
	} else {
		t.log.Debug(msg, args...)
	}
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
