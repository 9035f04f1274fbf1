package tunnel

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
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

func BenchmarkStreamDirectTLS(b *testing.B) {
	e := newEnv(b)
	app, peer := e.ca.SVID(b, "spiffe://example.org/app", time.Hour), e.ca.SVID(b, "spiffe://example.org/peer", time.Hour)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(newSource(peer), e.bundles, tlsconfig.AuthorizeID(app.ID)))
	if err != nil {
		b.Fatal(err)
	}
	serve(b, ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	c, err := tls.Dial("tcp", ln.Addr().String(), tlsconfig.MTLSClientConfig(newSource(app), e.bundles, tlsconfig.AuthorizeID(peer.ID)))
	if err != nil {
		b.Fatal(err)
	}
	streamTo(b, c)
}

func BenchmarkStreamClientTunnel(b *testing.B) {
	e := newEnv(b)
	app, peer := e.ca.SVID(b, "spiffe://example.org/app", time.Hour), e.ca.SVID(b, "spiffe://example.org/peer", time.Hour)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(newSource(peer), e.bundles, tlsconfig.AuthorizeID(app.ID)))
	if err != nil {
		b.Fatal(err)
	}
	serve(b, ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	tun := start(b, Config{Name: "cli", Mode: ModeClient, Target: ln.Addr().String(), AllowedSPIFFEIDs: []string{peer.ID.String()}},
		newSource(app), e.bundles)
	c, err := net.Dial("tcp", tun.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	streamTo(b, c)
}

func BenchmarkStreamServerTunnel(b *testing.B) {
	e := newEnv(b)
	app, peer := e.ca.SVID(b, "spiffe://example.org/app", time.Hour), e.ca.SVID(b, "spiffe://example.org/peer", time.Hour)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	serve(b, ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	tun := start(b, Config{Name: "srv", Mode: ModeServer, Target: ln.Addr().String(), AllowedSPIFFEIDs: []string{app.ID.String()}},
		newSource(peer), e.bundles)
	c, err := tls.Dial("tcp", tun.Addr().String(), tlsconfig.MTLSClientConfig(newSource(app), e.bundles, tlsconfig.AuthorizeID(peer.ID)))
	if err != nil {
		b.Fatal(err)
	}
	streamTo(b, c)
}
