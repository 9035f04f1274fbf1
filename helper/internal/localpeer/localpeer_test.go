package localpeer

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// otherUID is an account the tests connect from (nobody).
const otherUID = 65534

// accepted listens on network/addr, lets connect open the client side, and
// returns the server side of the connection.
func accepted(t *testing.T, network, addr string, connect func(ln net.Listener)) net.Conn {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go connect(ln)
	if err := ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialSelf connects from this process.
func dialSelf(t *testing.T, network string) func(net.Listener) {
	return func(ln net.Listener) {
		c, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		t.Cleanup(func() { c.Close() })
	}
}

// dialAs connects from a python3 process running as uid, which holds the
// connection open until the test ends.
func dialAs(t *testing.T, uid uint32) func(net.Listener) {
	return func(ln net.Listener) {
		a := ln.Addr().(*net.TCPAddr)
		// Debian's python3 (install-deps.sh): a pyenv shim under root's
		// home is out of another account's reach.
		cmd := exec.Command("/usr/bin/python3", "-c",
			"import socket,sys,time; s=socket.create_connection((sys.argv[1], int(sys.argv[2]))); time.sleep(30)",
			a.IP.String(), strconv.Itoa(a.Port))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		if err := cmd.Start(); err != nil {
			t.Errorf("python3 as uid %d: %v", uid, err)
			return
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
}

func TestOwnerUIDOfOwnConnection(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
		{"tcp", "127.0.0.2:0"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			c := accepted(t, tc.network, tc.addr, dialSelf(t, tc.network))
			g, err := NewGuard([]uint32{uint32(os.Getuid())})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Admit(c); err != nil {
				t.Fatalf("own connection refused: %v", err)
			}
		})
	}
}

// TestDualStackListenerSeesIPv4Peer: a listener on [::] receives an IPv4
// peer as a mapped address; the peer socket is still found.
func TestDualStackListenerSeesIPv4Peer(t *testing.T) {
	c := accepted(t, "tcp", "[::]:0", func(ln net.Listener) {
		port := ln.Addr().(*net.TCPAddr).Port
		d, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		t.Cleanup(func() { d.Close() })
	})
	local, _ := addrPort(c.LocalAddr())
	remote, _ := addrPort(c.RemoteAddr())
	uid, err := OwnerUID(local, remote)
	if err != nil || uid != uint32(os.Getuid()) {
		t.Fatalf("OwnerUID(%s, %s) = %d, %v; want %d", local, remote, uid, err, os.Getuid())
	}
}

// TestOtherAccountIsRefused: a connection made by another uid is seen as
// that uid and refused, and admitted once that uid is listed.
func TestOtherAccountIsRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test starts a process as another uid: run it as root")
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			c := accepted(t, "tcp", addr, dialAs(t, otherUID))
			g, _ := NewGuard([]uint32{uint32(os.Getuid())})
			var refused *RefusedError
			if err := g.Admit(c); !errors.As(err, &refused) || refused.UID != otherUID {
				t.Fatalf("connection from uid %d: Admit = %v, want a refusal naming uid %d", otherUID, err, otherUID)
			} else {
				t.Logf("refused: %v", err)
			}
			g2, _ := NewGuard([]uint32{0, otherUID})
			if err := g2.Admit(c); err != nil {
				t.Fatalf("uid %d listed, still refused: %v", otherUID, err)
			}
		})
	}
}

// TestUnknownPeer: a loopback 4-tuple that no socket has fails closed; a
// peer off this host is admitted (only a listener opened beyond loopback
// can see one).
func TestUnknownPeer(t *testing.T) {
	local := netip.MustParseAddrPort("127.0.0.1:1")
	if _, err := OwnerUID(local, netip.MustParseAddrPort("127.0.0.1:2")); !errors.Is(err, ErrNotLocal) {
		t.Fatalf("OwnerUID of a tuple nobody has: %v, want ErrNotLocal", err)
	}
	g, _ := NewGuard([]uint32{0})
	g.lookup = func(netip.AddrPort, netip.AddrPort) (uint32, error) { return 0, ErrNotLocal }
	if err := g.Admit(fakeConn{local: "127.0.0.1:9000", remote: "127.0.0.1:40000"}); err == nil {
		t.Fatal("a loopback peer without a socket was admitted")
	}
	if err := g.Admit(fakeConn{local: "192.0.2.1:9000", remote: "192.0.2.7:40000"}); err != nil {
		t.Fatalf("a peer on another host: %v", err)
	}
}

func TestParseReplyMalformed(t *testing.T) {
	src, dst := netip.MustParseAddrPort("127.0.0.1:2"), netip.MustParseAddrPort("127.0.0.1:1")
	for name, b := range map[string][]byte{
		"short length": {4, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0},
		"long length":  {255, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0},
		"short msg":    {20, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		if _, done, err := parseReply(b, 1, src, dst); !done || err == nil {
			t.Errorf("%s: done %v, err %v; want an error", name, done, err)
		}
	}
}

func TestNilGuardAdmitsAll(t *testing.T) {
	var g *Guard
	if err := g.Admit(fakeConn{local: "127.0.0.1:1", remote: "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewGuard(nil); err == nil {
		t.Fatal("a guard with no uid was built")
	}
}

type fakeConn struct {
	net.Conn
	local, remote string
}

func (f fakeConn) LocalAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(f.local))
}
func (f fakeConn) RemoteAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(f.remote))
}

// TestRefusalsLoggedOncePerAccount: another account can connect at will;
// its refusals are logged once per interval, each account apart, and
// refusals whose account is unknown share one slot.
func TestRefusalsLoggedOncePerAccount(t *testing.T) {
	g, _ := NewGuard([]uint32{0})
	a, b := &RefusedError{UID: 1000, Allowed: []uint32{0}}, &RefusedError{UID: 1001, Allowed: []uint32{0}}
	if !g.ShouldLog(a) || g.ShouldLog(a) || g.ShouldLog(a) {
		t.Fatal("uid 1000: want the first refusal logged and the next ones not")
	}
	if !g.ShouldLog(b) {
		t.Fatal("uid 1001's first refusal was not logged")
	}
	lookup := errors.New("sock_diag: EPERM")
	if !g.ShouldLog(lookup) || g.ShouldLog(errors.New("other")) {
		t.Fatal("refusals of an unknown account: want one logged per interval")
	}
	var nilGuard *Guard
	if nilGuard.ShouldLog(a) || g.ShouldLog(nil) {
		t.Fatal("nothing to log")
	}
}
