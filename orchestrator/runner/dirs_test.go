package runner

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// TestHostDirModes: under a restrictive umask, and over a private directory
// an earlier version left open, install gives every directory of a host its
// exact mode and owner, parents before children, so a 0700 parent never
// hides run/public from workloads.
func TestHostDirModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "host")
	if err := os.MkdirAll(filepath.Join(root, render.PrivateSocketDir), 0o777); err != nil {
		t.Fatal(err)
	}
	me := render.Account{UID: os.Getuid(), GID: os.Getgid()}
	h := &render.Host{Name: "h", Root: root}
	plan := samplePlanFor(t, root)
	h.Dirs = plan.Host("edge-a-1").Dirs
	for i := range h.Dirs {
		// Owned by whoever runs the test: chown needs root.
		h.Dirs[i].Owner = me
	}
	if _, err := render.Install(h, os.Geteuid() == 0); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]os.FileMode{
		"": 0o755, "run": 0o755, render.PublicSocketDir: 0o755, render.PrivateSocketDir: 0o700,
		"pids": 0o755, "logs": 0o700, "spire": 0o700, "workloads": 0o755,
		"workloads/deepstream_cam-pipeline": 0o700,
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

// samplePlanFor builds conf/topology.hcl as an embedded run whose every
// host lives at root, with placeholder programs.
func samplePlanFor(t *testing.T, root string) *render.Plan {
	t.Helper()
	top, err := topology.ParseFile(filepath.Join("..", "..", "conf", "topology.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := render.Build(top, render.Env{
		Embedded: true,
		HostRoot: func(string) string { return root },
		HostAddr: func(string) string { return "127.0.0.1" },
		Port:     func(_, _ string, def int) int { return def },
		Bins:     render.Binaries{Helper: "/bin/edgeid-helper"},
		HashFile: func(string) (string, error) { return "00", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}
