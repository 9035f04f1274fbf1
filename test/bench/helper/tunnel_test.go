package helperbench

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

const (
	streamBytes = 256 << 20
	pingSize    = 1024
	pings       = 3000
)

// backend serves two protocols on one listener: a first byte 'S' starts a
// sink that reads a length-prefixed stream and answers with one byte; 'P'
// starts an echo of fixed-size messages.
func backend(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var kind [1]byte
			if _, err := io.ReadFull(c, kind[:]); err != nil {
				return
			}
			switch kind[0] {
			case 'S':
				var n [8]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint64(n[:]))); err != nil {
					return
				}
				_, _ = c.Write([]byte{1})
			case 'P':
				buf := make([]byte, pingSize)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}
		}()
	}
}

// throughput streams streamBytes and returns MiB/s.
func throughput(dial func() (net.Conn, error)) (float64, error) {
	c, err := dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	hdr := make([]byte, 9)
	hdr[0] = 'S'
	binary.BigEndian.PutUint64(hdr[1:], streamBytes)
	start := time.Now()
	if _, err := c.Write(hdr); err != nil {
		return 0, err
	}
	chunk := make([]byte, 256<<10)
	for sent := 0; sent < streamBytes; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			return 0, err
		}
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return 0, err
	}
	return float64(streamBytes) / (1 << 20) / time.Since(start).Seconds(), nil
}

// pingLatency returns round-trip times of pingSize request/responses on one
// connection, after a warm-up.
func pingLatency(dial func() (net.Conn, error)) ([]time.Duration, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Write([]byte{'P'}); err != nil {
		return nil, err
	}
	buf := make([]byte, pingSize)
	out := make([]time.Duration, 0, pings)
	for i := 0; i < pings+200; i++ {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		if i >= 200 {
			out = append(out, time.Since(t0))
		}
	}
	return out, nil
}

func pick(id string) workloadapi.X509SourceOption {
	return workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
		for _, s := range svids {
			if s.ID.String() == id {
				return s
			}
		}
		return svids[0]
	})
}

// BenchmarkTunnel compares a direct Go TLS connection (SPIFFE mTLS, same
// policy as the tunnel) with edgeid-helper's tunnels on loopback.
func BenchmarkTunnel(b *testing.B) {
	ourBin := harness.BuildBinary(b, "./helper/cmd/edgeid-helper", "edgeid-helper").Path
	s := harness.StartSpireServer(b, harness.ServerConfig{TrustDomain: td, X509SVIDTTL: 10 * time.Minute})
	token := s.JoinToken(b, "")
	a := harness.StartSpireAgent(b, harness.AgentConfig{Server: s, JoinToken: token})
	for _, id := range []string{idApp, idPeer} {
		s.CreateEntry(b, harness.Entry{ParentID: harness.JoinTokenAgentID(td, token), SPIFFEID: id,
			Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}})
	}
	harness.FetchX509SVIDFor(b, a.SocketPath, idApp)
	harness.FetchX509SVIDFor(b, a.SocketPath, idPeer)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := workloadapi.WithClientOptions(workloadapi.WithAddr("unix://" + a.SocketPath))
	appSrc, err := workloadapi.NewX509Source(ctx, addr, pick(idApp))
	if err != nil {
		b.Fatal(err)
	}
	defer appSrc.Close()
	peerSrc, err := workloadapi.NewX509Source(ctx, addr, pick(idPeer))
	if err != nil {
		b.Fatal(err)
	}
	defer peerSrc.Close()

	// Plain backend.
	plainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer plainLn.Close()
	go backend(plainLn)

	// Direct: the backend terminates SPIFFE mTLS itself.
	serverTLS := tlsconfig.MTLSServerConfig(peerSrc, peerSrc, tlsconfig.AuthorizeID(spiffeid.RequireFromString(idApp)))
	tlsLn, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		b.Fatal(err)
	}
	defer tlsLn.Close()
	go backend(tlsLn)
	clientTLS := tlsconfig.MTLSClientConfig(appSrc, appSrc, tlsconfig.AuthorizeID(spiffeid.RequireFromString(idPeer)))

	dir := harness.ShortTempDir(b)
	startTunnel := func(name, id, mode, target, allowed string) string {
		listen := "127.0.0.1:" + strconv.Itoa(harness.FreePort(b))
		conf := filepath.Join(dir, name+".conf")
		text := fmt.Sprintf("agent_address = %q\nspiffe_id = %q\ntunnel %q {\n mode = %q\n listen = %q\n target = %q\n allowed_spiffe_ids = [%q]\n}\n",
			a.SocketPath, id, name, mode, listen, target, allowed)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
		p := harness.StartProcess(b, harness.ProcessSpec{Name: name, Bin: ourBin, Args: []string{"-config", conf}, Dir: dir})
		harness.Eventually(b, 60*time.Second, func() error {
			if !strings.Contains(p.Log(), "Tunnel listening") {
				return fmt.Errorf("%s not listening", name)
			}
			return nil
		})
		return listen
	}
	server := startTunnel("server", idPeer, "server", plainLn.Addr().String(), idApp)
	client := startTunnel("client", idApp, "client", server, idPeer)
	clientOnly := startTunnel("client-only", idApp, "client", tlsLn.Addr().String(), idPeer)

	paths := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"plain TCP (no TLS, reference)", func() (net.Conn, error) { return net.Dial("tcp", plainLn.Addr().String()) }},
		{"direct Go TLS (SPIFFE mTLS)", func() (net.Conn, error) { return tls.Dial("tcp", tlsLn.Addr().String(), clientTLS) }},
		{"Go TLS client -> server tunnel -> plain backend", func() (net.Conn, error) { return tls.Dial("tcp", server, clientTLS) }},
		{"plain client -> client tunnel -> Go TLS backend", func() (net.Conn, error) { return net.Dial("tcp", clientOnly) }},
		{"plain client -> client tunnel -> server tunnel -> backend", func() (net.Conn, error) { return net.Dial("tcp", client) }},
	}
	b.StopTimer()
	type result struct {
		mibs     float64
		p50, p99 time.Duration
	}
	results := make([]result, len(paths))
	for i, p := range paths {
		// Best of 3 streams, to damp noise from other work on the machine.
		for r := 0; r < 3; r++ {
			v, err := throughput(p.dial)
			if err != nil {
				b.Fatalf("%s: throughput: %v", p.name, err)
			}
			results[i].mibs = max(results[i].mibs, v)
		}
		// Best p50 of 3 runs, likewise.
		for r := 0; r < 3; r++ {
			lat, err := pingLatency(p.dial)
			if err != nil {
				b.Fatalf("%s: latency: %v", p.name, err)
			}
			st := summarize(lat)
			if r == 0 || st.p50 < results[i].p50 {
				results[i].p50, results[i].p99 = st.p50, st.p99
			}
		}
	}
	direct := results[1]
	fmt.Printf("\nTunnel on loopback: %d MiB stream (best of 3), %d x %d B request/response on one connection (best p50 of 3)\n", streamBytes>>20, pings, pingSize)
	fmt.Printf("%-58s %12s %10s %10s %10s %14s\n", "path", "MiB/s", "vs direct", "p50", "p99", "added p50")
	for i, p := range paths {
		r := results[i]
		fmt.Printf("%-58s %12.0f %9.0f%% %8.1fµs %8.1fµs %12.1fµs\n", p.name, r.mibs, 100*r.mibs/direct.mibs,
			float64(r.p50.Nanoseconds())/1000, float64(r.p99.Nanoseconds())/1000, float64((r.p50-direct.p50).Nanoseconds())/1000)
		b.ReportMetric(r.mibs, fmt.Sprintf("path%d-MiB/s", i))
		b.ReportMetric(float64(r.p50.Nanoseconds())/1000, fmt.Sprintf("path%d-p50-µs", i))
	}
}
