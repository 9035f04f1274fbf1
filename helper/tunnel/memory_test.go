package tunnel

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

func heapInUse() uint64 {
	var ms runtime.MemStats
	// Two collections empty the buffer pools too (their victim cache).
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// An edge broker behind a server tunnel holds many long-lived, mostly idle
// connections (MQTT devices). Once a burst is over, an idle connection must
// not keep bulk-transfer buffers.
func TestIdleConnectionsStaySmall(t *testing.T) {
	const conns = 100
	e := newEnv(t)
	server := start(t, Config{Name: "srv", Mode: ModeServer, Target: echoServer(t),
		AllowedSPIFFEIDs: []string{"spiffe://example.org/app"}},
		e.ca.SVID(t, "spiffe://example.org/broker", time.Hour), e.bundles)
	client := start(t, Config{Name: "cli", Mode: ModeClient, Target: server.Addr().String(),
		AllowedSPIFFEIDs: []string{"spiffe://example.org/broker"}},
		e.ca.SVID(t, "spiffe://example.org/app", time.Hour), e.bundles)

	burst := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	got := make([]byte, len(burst))
	before := heapInUse()
	open := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", client.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() { _, _ = c.Write(burst) }()
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if !bytes.Equal(got, burst) {
			t.Fatalf("connection %d: echo differs", i)
		}
	}
	perConn := (int64(heapInUse()) - int64(before)) / conns
	t.Logf("%d idle connections through a client and a server tunnel: %d KiB each (both tunnels, both directions)", conns, perConn>>10)
	// Both tunnels and the echo backend together, goroutine stacks and
	// Go's own TLS state included: about 175 KiB, a little more under
	// -race. Bulk buffers held while idle cost over 1 MiB here.
	if perConn > 256<<10 {
		t.Fatalf("an idle connection costs %d KiB across the two tunnels, want at most 256 KiB", perConn>>10)
	}
}
