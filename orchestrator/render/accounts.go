package render

import (
	"fmt"
	"os"
	"strconv"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// Account is the Unix account a service runs as and that owns its files.
// The zero Account is root, which owns what no service may change.
type Account struct {
	// Name is the user name; empty for an account known by number only.
	Name     string
	UID, GID int
}

// Owner is the account as a file owner.
func (a Account) Owner() fsutil.Owner { return fsutil.Owner{UID: a.UID, GID: a.GID} }

// IsRoot reports whether a is root.
func (a Account) IsRoot() bool { return a.UID == 0 }

// Selector is the SPIRE unix selector that pins a Workload API caller to
// this account: unix:user for named accounts (resolved on the agent's
// host), unix:uid otherwise.
func (a Account) Selector() string {
	if a.Name != "" {
		return "unix:user:" + a.Name
	}
	return "unix:uid:" + strconv.Itoa(a.UID)
}

// String is "name(uid:gid)" or "uid:gid".
func (a Account) String() string {
	if a.Name != "" {
		return fmt.Sprintf("%s(%d:%d)", a.Name, a.UID, a.GID)
	}
	return fmt.Sprintf("%d:%d", a.UID, a.GID)
}

// Capabilities the SPIRE agents that serve workloads keep when they run as
// the control account: reading other accounts' /proc/<pid>/{exe,root,cwd,
// maps,syscall} and hashing files in their 0700 directories.
const (
	CapSysPtrace     = "CAP_SYS_PTRACE"
	CapDacReadSearch = "CAP_DAC_READ_SEARCH"
)

// Dir is a directory a host needs, with its mode and owner. A host's Dirs
// are made in order, parents first.
type Dir struct {
	Path  string
	Mode  os.FileMode
	Owner Account
}

// account resolves a topology user: a number is its own uid and gid; a
// name is looked up on this host.
func (b *builder) account(u topology.User) (Account, error) {
	if u.Name == "" {
		return Account{UID: u.UID, GID: u.UID}, nil
	}
	if b.env.LookupUser == nil {
		return Account{}, fmt.Errorf("render: user %q: no user lookup on this host", u.Name)
	}
	uid, gid, err := b.env.LookupUser(u.Name)
	if err != nil {
		return Account{}, fmt.Errorf("render: user %q: %w (create it, or give a decimal uid in the topology)", u.Name, err)
	}
	if uid == 0 {
		return Account{}, fmt.Errorf("render: user %q is root; edgeid runs no service as root", u.Name)
	}
	return Account{Name: u.Name, UID: uid, GID: gid}, nil
}

func (h *Host) addDir(path string, mode os.FileMode, owner Account) {
	for i, d := range h.Dirs {
		if d.Path == path {
			h.Dirs[i] = Dir{Path: path, Mode: mode, Owner: owner}
			return
		}
	}
	h.Dirs = append(h.Dirs, Dir{Path: path, Mode: mode, Owner: owner})
}
