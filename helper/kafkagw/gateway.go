package kafkagw

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeid/edgeid/helper/internal/bufconn"
	"github.com/edgeid/edgeid/helper/internal/localpeer"
	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/helper/tunnel"
	"github.com/edgeid/edgeid/internal/logonce"
	"github.com/edgeid/edgeid/internal/tlspolicy"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Sources are where the gateway takes its SVID and trust bundles; a
// workloadapi.X509Source is both, and tests use in-memory ones.
type Sources struct {
	SVIDs   x509svid.Source
	Bundles x509bundle.Source
}

// Gateway is a running Kafka gateway.
type Gateway struct {
	cfg         Config
	log         *slog.Logger
	serverTLS   *tls.Config // cloud: client-facing
	upstreamTLS *tls.Config // nil: plaintext upstream
	versions    map[int16]int16
	denials     *denialLog
	// handshakes lets one refused handshake per client host per
	// tunnel.RefusalLogInterval be logged; every one is counted.
	handshakes *logonce.Limiter[string]
	policy     atomic.Pointer[policy.Set]
	crypt      *crypt // nil: no record encryption

	mu        sync.Mutex
	ctx       context.Context
	listeners map[string]*listener // by upstream address
	bootstrap []*listener
	nextPort  int
	sessions  map[*session]struct{}
	wg        sync.WaitGroup
}

// listener is the gateway's stand-in for one upstream broker.
type listener struct {
	upstream string
	ln       net.Listener
	port     int
}

// New validates cfg and builds a gateway; Start binds its listeners.
func New(c Config, src Sources) (*Gateway, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("kafkagw %s: trust_domain: %w", cfg.Name, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g := &Gateway{
		cfg: cfg, log: cfg.Logger.With("gateway", cfg.Name, "mode", cfg.Mode),
		versions:   supportedVersions(cfg.Mode),
		denials:    newDenialLog(cfg.DenialLogInterval),
		handshakes: logonce.New[string](tunnel.RefusalLogInterval),
		listeners:  map[string]*listener{},
		sessions:   map[*session]struct{}{},
		nextPort:   cfg.PortMin,
	}
	if cfg.Policy != nil {
		g.policy.Store(cfg.Policy)
	}
	if cfg.Mode == ModeCloud {
		if src.SVIDs == nil || src.Bundles == nil {
			return nil, fmt.Errorf("kafkagw %s: cloud mode needs an SVID and bundle source", cfg.Name)
		}
		g.serverTLS = hardened(tlsconfig.MTLSServerConfig(src.SVIDs, src.Bundles, tlsconfig.AuthorizeMemberOf(td)))
	}
	if cfg.Mode == ModeEdge || cfg.UpstreamTLS {
		if src.SVIDs == nil || src.Bundles == nil {
			return nil, fmt.Errorf("kafkagw %s: upstream mTLS needs an SVID and bundle source", cfg.Name)
		}
		authorize := tlsconfig.AuthorizeMemberOf(td)
		if len(cfg.UpstreamIDs) > 0 {
			m, err := tunnel.NewMatcher(cfg.UpstreamIDs)
			if err != nil {
				return nil, fmt.Errorf("kafkagw %s: upstream_spiffe_ids: %w", cfg.Name, err)
			}
			authorize = tlsconfig.AdaptMatcher(m.Match)
		}
		// GetClientCertificate asks the source on every handshake, so a
		// new upstream connection always presents the current SVID.
		g.upstreamTLS = hardened(tlsconfig.MTLSClientConfig(src.SVIDs, src.Bundles, authorize))
	}
	if cfg.Encrypt != nil {
		ec := *cfg.Encrypt
		if g.crypt, err = newCrypt(ec, src.SVIDs, g); err != nil {
			return nil, fmt.Errorf("kafkagw %s: %w", cfg.Name, err)
		}
		// Produce and Fetch v13+ name topics by id only: the filter
		// needs names.
		g.versions[0] = min(g.versions[0], 12)
		g.versions[1] = min(g.versions[1], 12)
	}
	return g, nil
}

func hardened(c *tls.Config) *tls.Config {
	c.MinVersion = tls.VersionTLS12
	c.CipherSuites = tlspolicy.CipherSuites
	return c
}

// Start binds one listener per bootstrap upstream and serves until ctx
// ends. It returns once the listeners are bound.
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	if g.ctx != nil {
		g.mu.Unlock()
		return errors.New("kafkagw: already started")
	}
	g.ctx = ctx
	g.mu.Unlock()
	for _, u := range g.cfg.Upstreams {
		l, err := g.listenerFor(u)
		if err != nil {
			return err
		}
		g.bootstrap = append(g.bootstrap, l)
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		<-ctx.Done()
		g.closeAll()
	}()
	return nil
}

// Run is Start, then waiting for ctx to end and every connection to close.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	g.Wait()
	return nil
}

// Wait waits for every listener and connection goroutine to end, then
// zeroes the data keys the encryption filter holds.
func (g *Gateway) Wait() {
	g.wg.Wait()
	g.crypt.close()
}

// BootstrapAddrs are the advertised addresses of the bootstrap listeners,
// in the order of Config.Upstreams: what clients use as bootstrap servers.
func (g *Gateway) BootstrapAddrs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, len(g.bootstrap))
	for i, l := range g.bootstrap {
		out[i] = net.JoinHostPort(g.cfg.AdvertisedHost, strconv.Itoa(l.port))
	}
	return out
}

// Policy is the policy in force.
func (g *Gateway) Policy() *policy.Set { return g.policy.Load() }

// SetPolicy swaps the policy in. Open connections use it from their next
// request; its decision cache starts empty.
func (g *Gateway) SetPolicy(p *policy.Set) {
	if p != nil {
		g.policy.Store(p)
		g.log.Info("Policy loaded", "rules", len(p.Rules()), "allow_if_no_acl", p.AllowIfNoACL())
	}
}

// Reload reads Config.PolicyFile again. A file that does not parse leaves
// the old policy in force.
func (g *Gateway) Reload() error {
	if g.cfg.PolicyFile == "" {
		return errors.New("kafkagw: no policy file to reload")
	}
	_, err := PolicyWatcher{Path: g.cfg.PolicyFile, Logger: g.log}.reload(g)
	return err
}

// listenerFor returns the listener standing in for upstream, binding and
// serving a new one on first sight.
func (g *Gateway) listenerFor(upstream string) (*listener, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l, ok := g.listeners[upstream]; ok {
		return l, nil
	}
	if g.ctx == nil || g.ctx.Err() != nil {
		return nil, errors.New("kafkagw: gateway is not running")
	}
	ln, err := g.bind()
	if err != nil {
		return nil, fmt.Errorf("kafkagw %s: listener for broker %s: %w", g.cfg.Name, upstream, err)
	}
	l := &listener{upstream: upstream, ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	g.listeners[upstream] = l
	g.log.Info("Gateway listening", "listen", ln.Addr().String(), "upstream", upstream)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.serve(l)
	}()
	return l, nil
}

// bind takes the next free port of the range (an ephemeral port when no
// range is set). Called with g.mu held.
func (g *Gateway) bind() (net.Listener, error) {
	if g.cfg.PortMin == 0 {
		return net.Listen("tcp", net.JoinHostPort(g.cfg.ListenHost, "0"))
	}
	var lastErr error = errors.New("port range exhausted")
	for ; g.nextPort <= g.cfg.PortMax; g.nextPort++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(g.cfg.ListenHost, strconv.Itoa(g.nextPort)))
		if err == nil {
			g.nextPort++
			return ln, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (g *Gateway) serve(l *listener) {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if g.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			g.log.Warn("Accept failed", "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.handle(l, c)
		}()
	}
}

// handle authenticates a client connection and runs its session.
func (g *Gateway) handle(l *listener, raw net.Conn) {
	client, actor := raw, ""
	if err := g.cfg.LocalUsers.Admit(raw); err != nil {
		if g.cfg.LocalUsers.ShouldLog(err) {
			g.log.Warn("Refused connection", "reason", "local_user", "remote", raw.RemoteAddr().String(), "error", err.Error(),
				"note", "further refusals of this account are counted and logged again after "+localpeer.RefusalLogInterval.String())
		}
		g.cfg.Metrics.conn("refused_local_user", 0)
		_ = raw.Close()
		return
	}
	if g.serverTLS != nil {
		tc := bufconn.Server(raw, g.serverTLS)
		hctx, cancel := context.WithTimeout(g.ctx, handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			g.refusedHandshake(raw, err)
			g.cfg.Metrics.conn("refused", 0)
			_ = raw.Close()
			return
		}
		client, actor = tc, tc.PeerID()
	}
	s := newSession(g, l.upstream, client, actor)
	if !g.track(s, true) {
		_ = client.Close()
		return
	}
	defer g.track(s, false)
	g.cfg.Metrics.conn("accepted", 1)
	defer g.cfg.Metrics.conn("", -1)
	s.run(g.ctx)
}

// refusedHandshake logs a refused TLS handshake once per client host per
// tunnel.RefusalLogInterval (at debug level in between).
func (g *Gateway) refusedHandshake(raw net.Conn, err error) {
	host, _, _ := net.SplitHostPort(raw.RemoteAddr().String())
	if g.handshakes.Allow(host, time.Now()) {
		g.log.Warn("Refused connection", "reason", "handshake", "remote", raw.RemoteAddr().String(), "error", err.Error(),
			"note", "further refused handshakes from this host are counted and logged again after "+tunnel.RefusalLogInterval.String())
		return
	}
	g.log.Debug("Refused connection", "reason", "handshake", "remote", raw.RemoteAddr().String(), "error", err.Error())
}

func (g *Gateway) track(s *session, add bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !add {
		delete(g.sessions, s)
		return true
	}
	if g.ctx.Err() != nil {
		return false
	}
	g.sessions[s] = struct{}{}
	return true
}

func (g *Gateway) closeAll() {
	g.mu.Lock()
	var closers []io.Closer
	for _, l := range g.listeners {
		closers = append(closers, l.ln)
	}
	for s := range g.sessions {
		closers = append(closers, s.client)
	}
	g.mu.Unlock()
	for _, c := range closers {
		_ = c.Close()
	}
}

// dialUpstream opens a connection to a broker: mTLS with the current SVID,
// or plaintext to a loopback address.
func (g *Gateway) dialUpstream(ctx context.Context, addr string) (net.Conn, error) {
	if g.upstreamTLS == nil {
		if err := tunnel.RequireLoopback(addr); err != nil {
			return nil, fmt.Errorf("plaintext upstream %s: must be loopback: %w", addr, err)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, g.cfg.DialTimeout)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil || g.upstreamTLS == nil {
		return c, err
	}
	tc := bufconn.Client(c, g.upstreamTLS)
	if err := tc.HandshakeContext(dctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("upstream %s: %w", addr, err)
	}
	return tc, nil
}
