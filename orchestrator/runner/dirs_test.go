package runner

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/edgeid/edgeid/orchestrator/render"
)

func TestHostDirModes(t *testing.T) {
	// Under a restrictive umask, and over a private directory an earlier
	// version left open: the modes are still exact.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, render.PrivateSocketDir), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := makeHostDirs(root); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]os.FileMode{
		"run": 0o755, render.PublicSocketDir: 0o755, render.PrivateSocketDir: 0o700, "pids": 0o755, "logs": 0o755,
	} {
		st, err := os.Stat(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", dir, got, want)
		}
	}
}
