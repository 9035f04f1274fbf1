package tunnel

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// These benchmarks run both ends and the tunnel in one process, for
// profiling the copy loops (go test -bench Stream -cpuprofile). The figures
// the README reports come from test/bench/helper, where each tunnel is its
// own process.

const streamChunk = 256 << 10

func streamTo(b *testing.B, c net.Conn) {
	b.Helper()
	defer c.Close()
	chunk := make([]byte, streamChunk)
	b.SetBytes(streamChunk)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

// streamEnv is an app and its peer with SVIDs from one CA.
type streamEnv struct {
	e         *env
	app, peer *x509svid.SVID
}

func newStreamEnv(b *testing.B) streamEnv {
	e := newEnv(b)
	return streamEnv{e, e.ca.SVID(b, "spiffe://example.org/app", time.Hour), e.ca.SVID(b, "spiffe://example.org/peer", time.Hour)}
}

// sink listens, with the peer's mTLS when secure, and discards what it
// receives; it returns the address.
func (s streamEnv) sink(b *testing.B, secure bool) string {
	var ln net.Listener
	var err error
	if secure {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(newSource(s.peer), s.e.bundles, tlsconfig.AuthorizeID(s.app.ID)))
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		b.Fatal(err)
	}
	serve(b, ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	return ln.Addr().String()
}

// dial connects to addr, with the app's mTLS when secure.
func (s streamEnv) dial(b *testing.B, addr string, secure bool) net.Conn {
	var c net.Conn
	var err error
	if secure {
		c, err = tls.Dial("tcp", addr, tlsconfig.MTLSClientConfig(newSource(s.app), s.e.bundles, tlsconfig.AuthorizeID(s.peer.ID)))
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkStreamDirectTLS(b *testing.B) {
	s := newStreamEnv(b)
	streamTo(b, s.dial(b, s.sink(b, true), true))
}

func BenchmarkStreamClientTunnel(b *testing.B) {
	s := newStreamEnv(b)
	tun := start(b, Config{Name: "cli", Mode: ModeClient, Target: s.sink(b, true), AllowedSPIFFEIDs: []string{s.peer.ID.String()}},
		newSource(s.app), s.e.bundles)
	streamTo(b, s.dial(b, tun.Addr().String(), false))
}

func BenchmarkStreamServerTunnel(b *testing.B) {
	s := newStreamEnv(b)
	tun := start(b, Config{Name: "srv", Mode: ModeServer, Target: s.sink(b, false), AllowedSPIFFEIDs: []string{s.app.ID.String()}},
		newSource(s.peer), s.e.bundles)
	streamTo(b, s.dial(b, tun.Addr().String(), true))
}
