// Package localpeer tells which local account opened the other end of a
// TCP connection accepted on this host, and admits only the accounts it is
// told to.
//
// A client-mode tunnel and an edge Kafka gateway listen on loopback and
// speak upstream with their workload's SVID. Loopback keeps other hosts
// and other network namespaces out, but not other accounts on the same
// node: without this check any local user could connect and be carried
// upstream as the workload. The kernel records the uid that created every
// socket; localpeer asks for the peer socket of one exact 4-tuple through
// sock_diag (NETLINK_SOCK_DIAG, what ss(8) uses), so it costs one netlink
// round trip per accepted connection whatever the size of the socket
// table. The answer is a kernel fact, not a claim made by the peer.
package localpeer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/logonce"
)

// ErrNotLocal means that no socket of this host (in this network
// namespace) is the connection's other end: the peer is on another host.
var ErrNotLocal = errors.New("the peer socket is not on this host")

// Guard admits connections whose peer socket belongs to one of its uids.
// A nil Guard admits every connection (the check is off).
type Guard struct {
	uids []uint32
	// logs lets one refusal per uid per RefusalLogInterval be logged.
	logs *logonce.Limiter[int64]
	// lookup is OwnerUID; tests replace it.
	lookup func(local, remote netip.AddrPort) (uint32, error)
}

// NewGuard admits the given uids; it needs at least one.
func NewGuard(uids []uint32) (*Guard, error) {
	if len(uids) == 0 {
		return nil, errors.New("localpeer: no uid to admit")
	}
	return &Guard{uids: slices.Clone(uids), lookup: OwnerUID, logs: logonce.New[int64](RefusalLogInterval)}, nil
}

// UIDs are the admitted uids.
func (g *Guard) UIDs() []uint32 {
	if g == nil {
		return nil
	}
	return slices.Clone(g.uids)
}

// Admit checks c, a freshly accepted TCP connection. A peer socket on
// this host must belong to an admitted uid. A peer on another host is
// admitted: it can only reach a listener that was deliberately opened
// beyond loopback (allow_remote_clients), and it is then that listener's
// policy, not a local account's, that applies. A loopback peer whose
// socket cannot be found is refused: it fails closed.
func (g *Guard) Admit(c net.Conn) error {
	if g == nil {
		return nil
	}
	local, err := addrPort(c.LocalAddr())
	if err != nil {
		return err
	}
	remote, err := addrPort(c.RemoteAddr())
	if err != nil {
		return err
	}
	uid, err := g.lookup(local, remote)
	if errors.Is(err, ErrNotLocal) && !remote.Addr().Unmap().IsLoopback() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot tell which local account connected from %s: %w", remote, err)
	}
	if !slices.Contains(g.uids, uid) {
		return &RefusedError{UID: uid, Allowed: g.uids}
	}
	return nil
}

// RefusalLogInterval is how often a refusal of the same local account is
// logged; every refusal is still counted. Another account can connect as
// often as it likes, and must not fill the disk with log lines.
const RefusalLogInterval = time.Minute

// ShouldLog reports whether the refusal err (from Admit) should be logged
// now: the first for an account in each RefusalLogInterval (refusals whose
// account could not be told share one slot).
func (g *Guard) ShouldLog(err error) bool {
	if g == nil || err == nil {
		return false
	}
	key := int64(-1)
	var refused *RefusedError
	if errors.As(err, &refused) {
		key = int64(refused.UID)
	}
	return g.logs.Allow(key, time.Now())
}

// RefusedError is a connection from a local account that is not admitted.
type RefusedError struct {
	UID     uint32
	Allowed []uint32
}

func (e *RefusedError) Error() string {
	allowed := make([]string, len(e.Allowed))
	for i, u := range e.Allowed {
		allowed[i] = strconv.FormatUint(uint64(u), 10)
	}
	return fmt.Sprintf("the connecting socket belongs to uid %d, not to an admitted local account (uid %s)", e.UID, strings.Join(allowed, ", "))
}

func addrPort(a net.Addr) (netip.AddrPort, error) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("localpeer: %v is not a TCP address", a)
	}
	return ta.AddrPort(), nil
}
