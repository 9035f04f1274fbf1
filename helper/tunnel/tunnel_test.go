package tunnel

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/internal/localpeer"
	"github.com/edgeid/edgeid/helper/internal/testpki"
	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// rotatingSource is an x509svid.Source whose SVID tests replace.
type rotatingSource struct{ p atomic.Pointer[x509svid.SVID] }

func (r *rotatingSource) GetX509SVID() (*x509svid.SVID, error) { return r.p.Load(), nil }

func newSource(s *x509svid.SVID) *rotatingSource {
	r := &rotatingSource{}
	r.p.Store(s)
	return r
}

func TestMatcher(t *testing.T) {
	m, err := NewMatcher([]string{"spiffe://example.org/edge/site-a/app", "spiffe://example.org/cloud/*", "spiffe://partner.test"})
	if err != nil {
		t.Fatal(err)
	}
	for id, ok := range map[string]bool{
		"spiffe://example.org/edge/site-a/app":     true,
		"spiffe://example.org/edge/site-a/app2":    false,
		"spiffe://example.org/edge/site-a/app/sub": false,
		"spiffe://example.org/cloud/kafka":         true,
		"spiffe://example.org/cloud/a/b":           true,
		"spiffe://example.org/cloud":               false,
		"spiffe://example.org/cloudy/x":            false,
		"spiffe://partner.test/anything":           true,
		"spiffe://other.test/cloud/kafka":          false,
	} {
		err := m.Match(spiffeid.RequireFromString(id))
		if (err == nil) != ok {
			t.Errorf("%s: allowed=%v, want %v (%v)", id, err == nil, ok, err)
		}
	}
	for _, bad := range []string{"http://x", "example.org", "spiffe://"} {
		if _, err := NewMatcher([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

type env struct {
	ca, other *testpki.CA
	bundles   *x509bundle.Set
}

func newEnv(t testing.TB) *env {
	ca := testpki.NewCA(t, "example.org", true)
	other := testpki.NewCA(t, "other.test", false)
	return &env{ca: ca, other: other, bundles: x509bundle.NewSet(ca.Bundle())}
}

func start(t testing.TB, cfg Config, svids x509svid.Source, bundles x509bundle.Source) *Tunnel {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	tun, err := New(cfg, svids, bundles)
	if err != nil {
		t.Fatal(err)
	}
	if err := tun.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = tun.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return tun
}

// serve runs handle on every connection ln accepts, each closed after its
// handler, until the test ends.
func serve(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// echoServer echoes every connection and returns its address.
func echoServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, func(c net.Conn) { _, _ = io.Copy(c, c) })
	return ln.Addr().String()
}

type counters struct {
	mu       sync.Mutex
	accepted int
	rejected []string
	bytes    map[string]int64
	active   int
	setups   int
}

func (c *counters) metrics() Metrics {
	c.bytes = map[string]int64{}
	return Metrics{
		Accepted: func(string) { c.mu.Lock(); c.accepted++; c.mu.Unlock() },
		Rejected: func(_, r string) { c.mu.Lock(); c.rejected = append(c.rejected, r); c.mu.Unlock() },
		Active:   func(_ string, d int) { c.mu.Lock(); c.active += d; c.mu.Unlock() },
		Bytes:    func(_, dir string, n int64) { c.mu.Lock(); c.bytes[dir] += n; c.mu.Unlock() },
		Setup:    func(string, time.Duration) { c.mu.Lock(); c.setups++; c.mu.Unlock() },
	}
}

// waitRejected waits up to 5 s for n refusals: a server may record the
// last one just after the client gave up.
func (c *counters) waitRejected(n int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := len(c.rejected)
		c.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClientTunnelListensOnLoopbackOnly: a client tunnel gives its SVID to
// whoever connects, so New refuses any other listen address unless
// AllowRemoteClients is set. Server tunnels authenticate every client and
// may listen anywhere.
func TestClientTunnelListensOnLoopbackOnly(t *testing.T) {
	e := newEnv(t)
	svid := e.ca.SVID(t, "spiffe://example.org/edge/site-a/app", time.Hour)
	for _, tc := range []struct {
		mode, listen string
		allow        bool
		wantErr      bool
	}{
		{ModeClient, "127.0.0.1:0", false, false},
		{ModeClient, "[::1]:0", false, false},
		{ModeClient, "localhost:0", false, false},
		{ModeClient, "0.0.0.0:0", false, true},
		{ModeClient, ":0", false, true},
		{ModeClient, "[::]:0", false, true},
		{ModeClient, "10.1.2.3:0", false, true},
		{ModeClient, "edge-a-1:0", false, true},
		{ModeClient, "0.0.0.0:0", true, false},
		{ModeServer, "0.0.0.0:0", false, false},
	} {
		_, err := New(Config{Name: "t", Mode: tc.mode, Listen: tc.listen, Target: "127.0.0.1:1",
			AllowRemoteClients: tc.allow, AllowedSPIFFEIDs: []string{"spiffe://example.org"}}, svid, e.bundles)
		if gotErr := err != nil; gotErr != tc.wantErr {
			t.Errorf("%s listen %q allow %v: error %v, want error %v", tc.mode, tc.listen, tc.allow, err, tc.wantErr)
		}
		if err != nil && !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s listen %q: error %v is not ErrNotLoopback", tc.mode, tc.listen, err)
		}
	}
}

func TestClientServerPairCarriesTraffic(t *testing.T) {
	e := newEnv(t)
	target := echoServer(t)
	var sm counters
	server := start(t, Config{Name: "srv", Mode: ModeServer, Target: target,
		AllowedSPIFFEIDs: []string{"spiffe://example.org/edge/site-a/*"}, Metrics: sm.metrics()},
		e.ca.SVID(t, "spiffe://example.org/edge/site-a/mosquitto", time.Hour), e.bundles)
	client := start(t, Config{Name: "cli", Mode: ModeClient, Target: server.Addr().String(),
		AllowedSPIFFEIDs: []string{"spiffe://example.org/edge/site-a/mosquitto"}},
		e.ca.SVID(t, "spiffe://example.org/edge/site-a/app", time.Hour), e.bundles)

	c, err := net.Dial("tcp", client.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte("edgeid-"), 50000)
	go func() {
		_, _ = c.Write(msg)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo through the tunnel pair: got %d bytes, want %d", len(got), len(msg))
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		sm.mu.Lock()
		done := sm.active == 0 && sm.bytes["in"] == int64(len(msg)) && sm.bytes["out"] == int64(len(msg))
		sm.mu.Unlock()
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.accepted != 1 || sm.setups != 1 || sm.active != 0 || sm.bytes["in"] != int64(len(msg)) || sm.bytes["out"] != int64(len(msg)) {
		t.Fatalf("server metrics: accepted %d setups observed %d active %d bytes %v", sm.accepted, sm.setups, sm.active, sm.bytes)
	}
}

// roundTrip sends a line through addr and reports whether it came back.
func roundTrip(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	return err
}

func TestWrongIDRefused(t *testing.T) {
	e := newEnv(t)
	target := echoServer(t)
	var sm counters
	server := start(t, Config{Name: "srv", Mode: ModeServer, Target: target,
		AllowedSPIFFEIDs: []string{"spiffe://example.org/app"}, Metrics: sm.metrics()},
		e.ca.SVID(t, "spiffe://example.org/broker", time.Hour), e.bundles)

	cases := []struct {
		name    string
		svid    *x509svid.SVID
		bundles x509bundle.Source
		allowed string
		ok      bool
	}{
		{"allowed client", e.ca.SVID(t, "spiffe://example.org/app", time.Hour), e.bundles, "spiffe://example.org/broker", true},
		{"client ID not allowed", e.ca.SVID(t, "spiffe://example.org/intruder", time.Hour), e.bundles, "spiffe://example.org/broker", false},
		{"client from another trust domain", e.other.SVID(t, "spiffe://other.test/app", time.Hour),
			x509bundle.NewSet(e.ca.Bundle(), e.other.Bundle()), "spiffe://example.org/broker", false},
		{"server ID not the one the client expects", e.ca.SVID(t, "spiffe://example.org/app", time.Hour), e.bundles, "spiffe://example.org/other-broker", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := start(t, Config{Name: "cli", Mode: ModeClient, Target: server.Addr().String(),
				AllowedSPIFFEIDs: []string{tc.allowed}}, tc.svid, tc.bundles)
			err := roundTrip(client.Addr().String())
			if (err == nil) != tc.ok {
				t.Fatalf("round trip error %v, want ok=%v", err, tc.ok)
			}
		})
	}
	sm.waitRejected(3)
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.accepted != 1 || len(sm.rejected) != 3 {
		t.Fatalf("server accepted %d, rejected %v; want 1 and 3", sm.accepted, sm.rejected)
	}
}

func TestNewConnectionsUseRotatedSVID(t *testing.T) {
	e := newEnv(t)
	target := echoServer(t)
	first := e.ca.SVID(t, "spiffe://example.org/broker", time.Hour)
	src := newSource(first)
	server := start(t, Config{Name: "srv", Mode: ModeServer, Target: target,
		AllowedSPIFFEIDs: []string{"spiffe://example.org/app"}}, src, e.bundles)
	clientSVID := e.ca.SVID(t, "spiffe://example.org/app", time.Hour)
	dialSerial := func() string {
		cfg := tlsconfig.MTLSClientConfig(clientSVID, e.bundles, tlsconfig.AuthorizeID(spiffeid.RequireFromString("spiffe://example.org/broker")))
		c, err := tls.Dial("tcp", server.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	// A long-lived connection opened before the rotation.
	if got := dialSerial(); got != first.Certificates[0].SerialNumber.String() {
		t.Fatal("first connection did not present the first SVID")
	}
	second := e.ca.SVID(t, "spiffe://example.org/broker", time.Hour)
	src.p.Store(second)
	if got := dialSerial(); got != second.Certificates[0].SerialNumber.String() {
		t.Fatal("connection opened after the rotation did not present the new SVID")
	}
}

func TestMaxConnLifetime(t *testing.T) {
	e := newEnv(t)
	target := echoServer(t)
	server := start(t, Config{Name: "srv", Mode: ModeServer, Target: target,
		AllowedSPIFFEIDs: []string{"spiffe://example.org/app"}},
		e.ca.SVID(t, "spiffe://example.org/broker", time.Hour), e.bundles)
	client := start(t, Config{Name: "cli", Mode: ModeClient, Target: server.Addr().String(), MaxConnLifetime: 300 * time.Millisecond,
		AllowedSPIFFEIDs: []string{"spiffe://example.org/broker"}},
		e.ca.SVID(t, "spiffe://example.org/app", time.Hour), e.bundles)
	c, err := net.Dial("tcp", client.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t0 := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("connection not closed at max_conn_lifetime: %v", err)
	}
	if d := time.Since(t0); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("closed after %v, want about 300ms", d)
	}
}

func TestTLSPolicy(t *testing.T) {
	e := newEnv(t)
	server := start(t, Config{Name: "srv", Mode: ModeServer, Target: echoServer(t),
		AllowedSPIFFEIDs: []string{"spiffe://example.org/app"}},
		e.ca.SVID(t, "spiffe://example.org/broker", time.Hour), e.bundles)
	clientSVID := e.ca.SVID(t, "spiffe://example.org/app", time.Hour)
	base := func() *tls.Config {
		return tlsconfig.MTLSClientConfig(clientSVID, e.bundles, tlsconfig.AuthorizeAny())
	}
	for _, tc := range []struct {
		name   string
		mutate func(*tls.Config)
		ok     bool
	}{
		{"TLS 1.3", func(c *tls.Config) {}, true},
		{"TLS 1.2 ECDHE AES-GCM", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
		}, true},
		{"TLS 1.2 CBC refused", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
		}, false},
		{"TLS 1.1 refused", func(c *tls.Config) { c.MinVersion = tls.VersionTLS10; c.MaxVersion = tls.VersionTLS11 }, false},
	} {
		cfg := base()
		tc.mutate(cfg)
		c, err := tls.Dial("tcp", server.Addr().String(), cfg)
		if err == nil {
			// TLS 1.3 client certificates are checked after the client's
			// handshake returns; a read surfaces a refusal.
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, rerr := c.Read(make([]byte, 1))
			if rerr != nil && !strings.Contains(rerr.Error(), "timeout") {
				err = rerr
			}
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestClientTunnelCarriesOnlyItsLocalUsers: a client tunnel carries a
// connection only if the connecting socket's owner is one of LocalUsers
// (the kernel's answer, localpeer); this test's own connections are
// refused when only another uid is admitted, and carried when its uid is.
func TestClientTunnelCarriesOnlyItsLocalUsers(t *testing.T) {
	e := newEnv(t)
	target := echoServer(t)
	server := start(t, Config{Name: "srv", Mode: ModeServer, Target: target,
		AllowedSPIFFEIDs: []string{"spiffe://example.org/edge/site-a/*"}},
		e.ca.SVID(t, "spiffe://example.org/edge/site-a/mosquitto", time.Hour), e.bundles)
	svid := e.ca.SVID(t, "spiffe://example.org/edge/site-a/app", time.Hour)
	me := uint32(os.Getuid())
	for _, tc := range []struct {
		name    string
		uids    []uint32
		carried bool
	}{
		{"other account only", []uint32{me + 1}, false},
		{"own account", []uint32{me + 1, me}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			guard, err := localpeer.NewGuard(tc.uids)
			if err != nil {
				t.Fatal(err)
			}
			var cm counters
			client := start(t, Config{Name: "cli", Mode: ModeClient, Target: server.Addr().String(),
				AllowedSPIFFEIDs: []string{"spiffe://example.org/edge/site-a/mosquitto"},
				LocalUsers:       guard, Metrics: cm.metrics()}, svid, e.bundles)
			err = roundTrip(client.Addr().String())
			if carried := err == nil; carried != tc.carried {
				t.Fatalf("uid %d with local users %v: carried %v (%v), want %v", me, tc.uids, carried, err, tc.carried)
			}
			cm.mu.Lock()
			defer cm.mu.Unlock()
			if !tc.carried && (len(cm.rejected) != 1 || cm.rejected[0] != "local_user") {
				t.Fatalf("rejections %v, want one local_user", cm.rejected)
			}
		})
	}
}

// TestRefusalsLoggedOncePerHost: a peer can make handshakes fail at will;
// every refusal is counted, but the same refusal from the same host is
// logged (at warning level) once per RefusalLogInterval.
func TestRefusalsLoggedOncePerHost(t *testing.T) {
	e := newEnv(t)
	var logs harness.SyncBuffer
	var sm counters
	server := start(t, Config{Name: "srv", Mode: ModeServer, Target: echoServer(t),
		AllowedSPIFFEIDs: []string{"spiffe://example.org/app"}, Metrics: sm.metrics(),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))},
		e.ca.SVID(t, "spiffe://example.org/broker", time.Hour), e.bundles)
	intruder := start(t, Config{Name: "cli", Mode: ModeClient, Target: server.Addr().String(),
		AllowedSPIFFEIDs: []string{"spiffe://example.org/broker"}}, e.ca.SVID(t, "spiffe://example.org/intruder", time.Hour), e.bundles)
	for range 4 {
		if err := roundTrip(intruder.Addr().String()); err == nil {
			t.Fatal("the intruder got through")
		}
	}
	sm.waitRejected(4)
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if got := strings.Count(logs.String(), "Refused connection"); len(sm.rejected) != 4 || got != 1 {
		t.Fatalf("4 refused handshakes: %d counted, %d logged; want 4 and 1:\n%s", len(sm.rejected), got, logs.String())
	}
}
