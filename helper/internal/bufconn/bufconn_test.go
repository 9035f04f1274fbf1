package bufconn

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/internal/testpki"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// counted counts the blocking Reads and the Writes made on a TCP
// connection; its SyscallConn stays reachable for ReadQueued.
type counted struct {
	*net.TCPConn
	reads, writes atomic.Int64
}

func (c *counted) Read(p []byte) (int, error)  { c.reads.Add(1); return c.TCPConn.Read(p) }
func (c *counted) Write(p []byte) (int, error) { c.writes.Add(1); return c.TCPConn.Write(p) }

// pair is a TLS connection whose client end runs over a Conn over a counted
// TCP connection, and whose server end is plain crypto/tls over TCP.
type pair struct {
	client *TLSConn
	raw    *counted
	server *tls.Conn
}

func newPair(t *testing.T, bufferedServer bool) (*pair, *counted, *tls.Conn) {
	t.Helper()
	ca := testpki.NewCA(t, "example.org", false)
	td := spiffeid.RequireTrustDomainFromString("example.org")
	srvCfg := tlsconfig.MTLSServerConfig(ca.SVID(t, "spiffe://example.org/server", time.Hour), ca.Bundle(), tlsconfig.AuthorizeMemberOf(td))
	cliCfg := tlsconfig.MTLSClientConfig(ca.SVID(t, "spiffe://example.org/client", time.Hour), ca.Bundle(), tlsconfig.AuthorizeMemberOf(td))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srvRaw, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	cr := &counted{TCPConn: raw.(*net.TCPConn)}
	sr := &counted{TCPConn: srvRaw.(*net.TCPConn)}
	t.Cleanup(func() { raw.Close(); srvRaw.Close() })
	p := &pair{raw: cr}
	var srvUnder net.Conn = sr
	if bufferedServer {
		srvUnder = New(sr)
	}
	p.server = tls.Server(srvUnder, srvCfg)
	p.client = Client(cr, cliCfg)
	errs := make(chan error, 1)
	go func() { errs <- p.server.Handshake() }()
	if err := p.client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return p, sr, p.server
}

const bulk = 1 << 20 // 64 full TLS records

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBatchGathersRecords: one 1 MiB write inside a batch leaves in a few
// system calls (pieces of at most BatchFlushAt), outside a batch in one
// per 16 KiB record; the bytes arrive intact either way.
func TestBatchGathersRecords(t *testing.T) {
	for _, batched := range []bool{true, false} {
		p, _, server := newPair(t, false)
		data := randomBytes(t, bulk)
		got := make(chan []byte, 1)
		go func() {
			b := make([]byte, bulk)
			_, _ = io.ReadFull(server, b)
			got <- b
		}()
		before := p.raw.writes.Load()
		if batched {
			p.client.Raw.BeginBatch()
		}
		_, err := p.client.Write(data)
		if batched {
			if ferr := p.client.Raw.EndBatch(); err == nil {
				err = ferr
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(<-got, data) {
			t.Fatalf("batched=%v: the server read other bytes than were written", batched)
		}
		writes := p.raw.writes.Load() - before
		t.Logf("batched=%v: %d system-call writes for 1 MiB", batched, writes)
		if max := int64(bulk/BatchFlushAt + 2); batched && writes > max {
			t.Errorf("batched: %d writes, want at most %d", writes, max)
		}
		if !batched && writes < bulk/(16<<10) {
			t.Errorf("unbatched: %d writes, want one per record (%d): the batch is not off", writes, bulk/(16<<10))
		}
	}
}

// TestReadPullsQueued: 1 MiB already received is read by the TLS layer in
// a few blocking reads over a Conn, against several times more straight
// over TCP (Go's TLS reads the network about a record at a time); the
// bytes arrive intact either way.
func TestReadPullsQueued(t *testing.T) {
	reads := map[bool]int64{}
	for _, buffered := range []bool{true, false} {
		p, srvRaw, server := newPair(t, buffered)
		data := randomBytes(t, bulk)
		// A writer goroutine sends the MiB; the server starts reading once
		// the writer has stopped (done, or blocked on full socket buffers),
		// so that what the reads find queued does not depend on the
		// machine's load.
		go func() { _, _ = p.client.Write(data) }()
		waitStill(&p.raw.writes)
		before := srvRaw.reads.Load()
		b := make([]byte, bulk)
		if _, err := io.ReadFull(server, b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("buffered=%v: read other bytes than were written", buffered)
		}
		reads[buffered] = srvRaw.reads.Load() - before
		t.Logf("buffered=%v: %d blocking reads for 1 MiB (64 records)", buffered, reads[buffered])
	}
	if reads[true]*3 > reads[false] {
		t.Errorf("over a Conn %d blocking reads, straight over TCP %d: want at most a third", reads[true], reads[false])
	}
}

// waitStill returns once n has not changed for 30 ms (at most 5 s).
func waitStill(n *atomic.Int64) {
	last, still := n.Load(), 0
	for deadline := time.Now().Add(5 * time.Second); still < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		if cur := n.Load(); cur != last {
			last, still = cur, 0
		} else {
			still++
		}
	}
}

// TestPeerID: the SPIFFE ID of the certificate the peer presented, and ""
// before a handshake.
func TestPeerID(t *testing.T) {
	p, _, _ := newPair(t, false)
	if got, want := p.client.PeerID(), "spiffe://example.org/server"; got != want {
		t.Fatalf("PeerID after the handshake = %q, want %q", got, want)
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if got := Client(c1, &tls.Config{}).PeerID(); got != "" {
		t.Fatalf("PeerID before a handshake = %q, want \"\"", got)
	}
}
