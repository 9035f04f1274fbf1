package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// lookupUser resolves a user name on this host to its uid and primary gid.
func lookupUser(name string) (int, int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("gid %q: %w", u.Gid, err)
	}
	return uid, gid, nil
}

// singleUIDUsers makes every account of a single-uid run the invoking
// user's uid, so that the plan's unix selectors match what SPIRE sees.
func singleUIDUsers(top *topology.Topology) topology.Users {
	me := topology.User{UID: os.Getuid()}
	for i := range top.Sites {
		for j := range top.Sites[i].Workloads {
			top.Sites[i].Workloads[j].User = me
		}
	}
	return topology.Users{Control: me, KafkaDemo: me, KafkaGateway: me}
}

// chownFiles gives files to owner (fsutil.Keep leaves them as they are).
func chownFiles(owner fsutil.Owner, paths ...string) error {
	if owner == fsutil.Keep {
		return nil
	}
	for _, p := range paths {
		if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
			return fmt.Errorf("runner: %w", err)
		}
	}
	return nil
}

// grantGroupRead lets owner's group read files that another account (root,
// for KubeEdge's edgecore) owns and keeps: the group becomes owner's and
// gains read; the file's owner and its other bits stay, except that
// nobody else may read a file the group may. Empty and missing paths are
// skipped (the agent says so until they appear).
// Every directory above a file must be searchable by others.
func grantGroupRead(owner fsutil.Owner, paths ...string) error {
	if owner == fsutil.Keep {
		return nil
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("runner: %w", err)
		}
		if uid, ok := fileUID(st); ok && uid == owner.UID {
			continue
		}
		if blocked := unsearchable(filepath.Dir(p)); len(blocked) > 0 {
			return fmt.Errorf("runner: %s is below %s, which the agent's account cannot enter; let others search them (KubeEdge's default /etc/kubeedge/certs is 0755)", p, strings.Join(blocked, ", "))
		}
		if err := os.Chown(p, -1, owner.GID); err != nil {
			return fmt.Errorf("runner: %w", err)
		}
		if err := os.Chmod(p, (st.Mode().Perm()|0o040)&^0o007); err != nil {
			return fmt.Errorf("runner: %w", err)
		}
	}
	return nil
}

// chownTree gives dir and everything below it to owner.
func chownTree(owner fsutil.Owner, dir string) error {
	if owner == fsutil.Keep {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, owner.UID, owner.GID)
	})
}

// fileUID is a file's owner.
func fileUID(st os.FileInfo) (int, bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(s.Uid), true
}

// owner is who owns a file the runner writes for a service: the service's
// account when the run separates privileges, else the runner itself.
func (r *Runner) owner(a render.Account) fsutil.Owner {
	if !r.privsep {
		return fsutil.Keep
	}
	return a.Owner()
}

// control is the control plane's account (the SPIRE servers' and agents').
func (r *Runner) control() render.Account {
	for _, ref := range r.services(render.KindSpireServer, "") {
		return ref.s.Account
	}
	for _, ref := range r.services(render.KindSpireAgent, "") {
		return ref.s.Account
	}
	return render.Account{}
}

// cleanEnv is the environment of every process the runner starts: PATH
// only. SPIRE's built-in vault plugin lets VAULT_ADDR and VAULT_TOKEN
// override its configuration, and nothing of the operator's shell should
// leak into a workload.
func cleanEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH")}
}
