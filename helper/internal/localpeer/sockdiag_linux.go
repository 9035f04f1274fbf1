package localpeer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sizes and offsets of the sock_diag structures (linux/inet_diag.h).
const (
	nlmsgHdrLen  = 16
	sockIDLen    = 48 // inet_diag_sockid
	diagReqLen   = 8 + sockIDLen
	diagMsgUID   = 4 + sockIDLen + 12 // inet_diag_msg.idiag_uid
	diagMsgLen   = diagMsgUID + 8
	allTCPStates = 0xffffffff
)

var seq atomic.Uint32

// OwnerUID returns the uid that owns the TCP socket whose own address is
// remote and whose peer is local: the other end of a connection that was
// accepted at local from remote. It returns ErrNotLocal when no such
// socket exists in this network namespace.
func OwnerUID(local, remote netip.AddrPort) (uint32, error) {
	src, dst := remote, local
	if src.Addr().Is4In6() || dst.Addr().Is4In6() {
		// A dual-stack listener sees IPv4 peers as mapped addresses; the
		// peer socket itself is IPv4 unless it was an IPv6 socket
		// connecting to a mapped address.
		v4src := netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		v4dst := netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
		uid, err := lookup(unix.AF_INET, v4src, v4dst)
		if !errors.Is(err, ErrNotLocal) {
			return uid, err
		}
		return lookup(unix.AF_INET6, src, dst)
	}
	family := unix.AF_INET6
	if src.Addr().Is4() {
		family = unix.AF_INET
	}
	return lookup(family, src, dst)
}

// lookup asks sock_diag for the one TCP socket with this 4-tuple.
func lookup(family int, src, dst netip.AddrPort) (uint32, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 2}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	n := seq.Add(1)
	if err := unix.Sendto(fd, request(n, family, src, dst), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("sock_diag: send: %w", err)
	}
	buf := make([]byte, 4096)
	for {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return 0, fmt.Errorf("sock_diag: receive: %w", err)
		}
		uid, done, err := parseReply(buf[:m], n, src, dst)
		if done {
			return uid, err
		}
	}
}

// request builds one SOCK_DIAG_BY_FAMILY request without NLM_F_DUMP: an
// exact lookup of the socket whose source is src and destination dst.
func request(seq uint32, family int, src, dst netip.AddrPort) []byte {
	b := make([]byte, nlmsgHdrLen+diagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	r := b[nlmsgHdrLen:]
	r[0] = byte(family)
	r[1] = unix.IPPROTO_TCP
	ne.PutUint32(r[4:], allTCPStates)
	putSockID(r[8:], src, dst)
	return b
}

// putSockID writes an inet_diag_sockid: ports and addresses in network
// order, no interface, and the "no cookie" value.
func putSockID(id []byte, src, dst netip.AddrPort) {
	binary.BigEndian.PutUint16(id[0:], src.Port())
	binary.BigEndian.PutUint16(id[2:], dst.Port())
	putAddr(id[4:20], src.Addr())
	putAddr(id[20:36], dst.Addr())
	binary.NativeEndian.PutUint32(id[40:], 0xffffffff)
	binary.NativeEndian.PutUint32(id[44:], 0xffffffff)
}

func putAddr(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
		return
	}
	v := a.As16()
	copy(b, v[:])
}

// parseReply reads the netlink messages of one datagram. done reports that
// the answer to request seq was found (a socket, or an error).
func parseReply(b []byte, seq uint32, src, dst netip.AddrPort) (uid uint32, done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		l := int(ne.Uint32(b[0:]))
		if l < nlmsgHdrLen || l > len(b) {
			return 0, true, errors.New("sock_diag: malformed reply")
		}
		typ, mseq, body := ne.Uint16(b[4:]), ne.Uint32(b[8:]), b[nlmsgHdrLen:l]
		b = b[min(nlmAlign(l), len(b)):]
		if mseq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return 0, true, errors.New("sock_diag: malformed error reply")
			}
			errno := -int32(ne.Uint32(body))
			if errno == 0 {
				continue
			}
			if syscall.Errno(errno) == unix.ENOENT {
				return 0, true, ErrNotLocal
			}
			return 0, true, fmt.Errorf("sock_diag: %w", syscall.Errno(errno))
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(body) < diagMsgLen {
				return 0, true, errors.New("sock_diag: short reply")
			}
			want := make([]byte, sockIDLen)
			putSockID(want, src, dst)
			// The kernel echoes the socket's own id; the interface and
			// cookie are the socket's, so compare ports and addresses.
			if string(body[4:4+36]) != string(want[:36]) {
				return 0, true, errors.New("sock_diag: the reply is for another socket")
			}
			return ne.Uint32(body[diagMsgUID:]), true, nil
		case unix.NLMSG_DONE:
			return 0, true, ErrNotLocal
		}
	}
	return 0, false, nil
}

func nlmAlign(n int) int { return (n + 3) &^ 3 }
