package helperbench

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
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
	rounds      = 7
	streamBytes = 128 << 20
	pingSize    = 1024
	pings       = 2000
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
				// Both backends read through one 64 KiB buffer, as a
				// broker does (io.Discard would read 8 KiB at a time,
				// which costs the plain backend system calls a TLS
				// backend saves, since it takes a record per Read).
				if err := sink(c, int64(binary.BigEndian.Uint64(n[:]))); err != nil {
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

// sink reads and drops n bytes from c.
func sink(c net.Conn, n int64) error {
	buf := make([]byte, 64<<10)
	for n > 0 {
		m, err := c.Read(buf[:min(int64(len(buf)), n)])
		n -= int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// serveBackend runs the backend as a process of its own: a plain listener
// and a SPIFFE mTLS listener (idPeer, accepting idApp) with its SVID from
// the agent at agentSocket. It writes "plainAddr tlsAddr" to addrsFile and
// serves until it is killed.
func serveBackend(agentSocket, addrsFile string) error {
	ctx := context.Background()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr("unix://"+agentSocket)), pick(idPeer))
	if err != nil {
		return err
	}
	defer src.Close()
	plainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tlsLn, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeID(spiffeid.RequireFromString(idApp))))
	if err != nil {
		return err
	}
	go backend(plainLn)
	if err := publishAddrs(addrsFile, plainLn.Addr().String(), tlsLn.Addr().String()); err != nil {
		return err
	}
	backend(tlsLn)
	return nil
}

// serveRelay runs a plain TCP relay to target as a process of its own: the
// extra loopback hop every tunnel adds, with nothing else (no TLS, and the
// kernel moves the bytes: Go splices one TCP connection into another). It
// writes its address to addrsFile and serves until it is killed.
func serveRelay(target, addrsFile string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := publishAddrs(addrsFile, ln.Addr().String()); err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(u, c)
				_ = u.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			_, _ = io.Copy(c, u)
			_ = c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

// publishAddrs writes addrs, space-separated, to file in one rename.
func publishAddrs(file string, addrs ...string) error {
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(addrs, " ")+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// readAddrs waits for a process to publish its addresses in file.
func readAddrs(b *testing.B, file string, addrs ...*string) {
	b.Helper()
	harness.Eventually(b, 30*time.Second, func() error {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		fields := strings.Fields(string(data))
		if len(fields) != len(addrs) {
			return fmt.Errorf("addresses %q in %s, want %d", data, file, len(addrs))
		}
		for i, a := range addrs {
			*a = fields[i]
		}
		return nil
	})
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

// connectsPerRound is how many new connections connectLatency opens.
const connectsPerRound = 100

// connectLatency opens connectsPerRound connections one after another and
// times each from the dial to its first pingSize echo.
func connectLatency(dial func() (net.Conn, error)) ([]time.Duration, error) {
	msg := make([]byte, 1+pingSize)
	msg[0] = 'P'
	buf := make([]byte, pingSize)
	out := make([]time.Duration, 0, connectsPerRound)
	for range connectsPerRound {
		start := time.Now()
		c, err := dial()
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Write(msg)
		if err == nil {
			_, err = io.ReadFull(c, buf)
		}
		c.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
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

	// The backend is a process of its own, as the far end of any real
	// connection is: the direct path then pays the same hand-offs between
	// processes as the tunnel paths, and only what the tunnel adds shows.
	dir := harness.ShortTempDir(b)
	addrsFile := filepath.Join(dir, "backend.addrs")
	harness.StartProcess(b, harness.ProcessSpec{Name: "backend", Bin: os.Args[0], Dir: dir,
		Env: append(harness.CleanEnv(dir), "EDGEID_BENCH_ROLE=backend", "EDGEID_BENCH_AGENT="+a.SocketPath, "EDGEID_BENCH_ADDRS="+addrsFile)})
	var plainAddr, tlsAddr, relayAddr string
	readAddrs(b, addrsFile, &plainAddr, &tlsAddr)
	relayFile := filepath.Join(dir, "relay.addrs")
	harness.StartProcess(b, harness.ProcessSpec{Name: "relay", Bin: os.Args[0], Dir: dir,
		Env: append(harness.CleanEnv(dir), "EDGEID_BENCH_ROLE=relay", "EDGEID_BENCH_TARGET="+tlsAddr, "EDGEID_BENCH_ADDRS="+relayFile)})
	readAddrs(b, relayFile, &relayAddr)
	clientTLS := tlsconfig.MTLSClientConfig(appSrc, appSrc, tlsconfig.AuthorizeID(spiffeid.RequireFromString(idPeer)))

	startTunnel := func(name, id, mode, target, allowed string, extra ...string) string {
		listen := "127.0.0.1:" + strconv.Itoa(harness.FreePort(b))
		conf := filepath.Join(dir, name+".conf")
		text := fmt.Sprintf("agent_address = %q\nspiffe_id = %q\ntunnel %q {\n mode = %q\n listen = %q\n target = %q\n allowed_spiffe_ids = [%q]\n%s}\n",
			a.SocketPath, id, name, mode, listen, target, allowed, strings.Join(extra, "\n"))
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
	server := startTunnel("server", idPeer, "server", plainAddr, idApp)
	client := startTunnel("client", idApp, "client", server, idPeer)
	clientOnly := startTunnel("client-only", idApp, "client", tlsAddr, idPeer)
	// The same client tunnel without the local-user check (helper/README.md,
	// "Local accounts"): what the check costs a new connection.
	clientAny := startTunnel("client-any", idApp, "client", tlsAddr, idPeer, " allow_any_local_user = true\n")

	paths := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"plain TCP (no TLS, reference)", func() (net.Conn, error) { return net.Dial("tcp", plainAddr) }},
		{"direct Go TLS (SPIFFE mTLS)", func() (net.Conn, error) { return tls.Dial("tcp", tlsAddr, clientTLS) }},
		{"direct Go TLS through a TCP relay (the hop alone, reference)", func() (net.Conn, error) { return tls.Dial("tcp", relayAddr, clientTLS) }},
		{"Go TLS client -> server tunnel -> plain backend", func() (net.Conn, error) { return tls.Dial("tcp", server, clientTLS) }},
		{"plain client -> client tunnel -> Go TLS backend", func() (net.Conn, error) { return net.Dial("tcp", clientOnly) }},
		{"plain client -> client tunnel -> server tunnel -> backend", func() (net.Conn, error) { return net.Dial("tcp", client) }},
	}
	b.StopTimer()
	// The paths take turns, round after round, so that a slow spell of this
	// shared machine lands on all of them alike; each figure is the median
	// of the rounds, with the range beside it.
	mibs := make([][]float64, len(paths))
	p50s := make([][]time.Duration, len(paths))
	p99s := make([][]time.Duration, len(paths))
	for r := 0; r < rounds; r++ {
		for i, p := range paths {
			v, err := throughput(p.dial)
			if err != nil {
				b.Fatalf("%s: throughput: %v", p.name, err)
			}
			mibs[i] = append(mibs[i], v)
			lat, err := pingLatency(p.dial)
			if err != nil {
				b.Fatalf("%s: latency: %v", p.name, err)
			}
			st := summarize(lat)
			p50s[i] = append(p50s[i], st.p50)
			p99s[i] = append(p99s[i], st.p99)
		}
	}
	connects := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		paths[1],
		{"plain client -> client tunnel (local-user check, the default) -> Go TLS backend", paths[4].dial},
		{"plain client -> client tunnel (allow_any_local_user) -> Go TLS backend", func() (net.Conn, error) { return net.Dial("tcp", clientAny) }},
	}
	setup := make([][]time.Duration, len(connects))
	for r := 0; r < rounds; r++ {
		for i, c := range connects {
			lat, err := connectLatency(c.dial)
			if err != nil {
				b.Fatalf("%s: connect: %v", c.name, err)
			}
			setup[i] = append(setup[i], summarize(lat).p50)
		}
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	defer func() {
		fmt.Printf("\nNew connection to its first %d B echo (dial, TLS handshake, tunnel setup), %d connections per round, %d rounds; median of the rounds' p50 [min-max]:\n", pingSize, connectsPerRound, rounds)
		for i, c := range connects {
			m := median(setup[i])
			fmt.Printf("%-80s %8.1fµs [%7.1f-%7.1f]\n", c.name, us(m), us(slices.Min(setup[i])), us(slices.Max(setup[i])))
			b.ReportMetric(us(m), fmt.Sprintf("connect%d-p50-µs", i))
		}
	}()
	directMiBs, directP50 := median(mibs[1]), median(p50s[1])
	fmt.Printf("\nTunnel on loopback: %d rounds, the paths taking turns; each round streams %d MiB and times %d x %d B request/response on one connection. Median of the rounds [min-max]:\n",
		rounds, streamBytes>>20, pings, pingSize)
	fmt.Printf("%-62s %20s %10s %22s %10s %12s\n", "path", "MiB/s", "vs direct", "p50", "p99", "added p50")
	for i, p := range paths {
		m, p50 := median(mibs[i]), median(p50s[i])
		fmt.Printf("%-62s %6.0f [%5.0f-%5.0f] %9.0f%% %7.1fµs [%5.1f-%5.1f] %8.1fµs %10.1fµs\n", p.name,
			m, slices.Min(mibs[i]), slices.Max(mibs[i]), 100*m/directMiBs,
			us(p50), us(slices.Min(p50s[i])), us(slices.Max(p50s[i])), us(median(p99s[i])), us(p50-directP50))
		b.ReportMetric(m, fmt.Sprintf("path%d-MiB/s", i))
		b.ReportMetric(us(p50), fmt.Sprintf("path%d-p50-µs", i))
	}
}

// median returns the middle value (the upper middle for an even count).
func median[T cmp.Ordered](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
