package runner

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/edgeid/edgeid/internal/fsutil"
)

// KubeEdge's node key stays root's; the agent's group may read it, and
// nobody else may.
func TestGrantGroupReadKeepsOwnerAndClosesOthers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test changes file groups and must run as root (make test does)")
	}
	dir, err := os.MkdirTemp("", "grant")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "server.key")
	if err := os.WriteFile(key, []byte("k"), 0o604); err != nil {
		t.Fatal(err)
	}
	owner := fsutil.Owner{UID: 64301, GID: 64301}
	if err := grantGroupRead(owner, key, "", filepath.Join(dir, "absent.crt")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	uid, gid := int(sys.Uid), int(sys.Gid)
	if uid != 0 || gid != owner.GID || st.Mode().Perm() != 0o640 {
		t.Fatalf("node key is uid %d gid %d mode %v, want root, gid %d, 0640", uid, gid, st.Mode().Perm(), owner.GID)
	}
}
