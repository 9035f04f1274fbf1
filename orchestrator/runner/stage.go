package runner

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// Programs of an embedded run live where the operator built them: the
// build cache under $HOME and the repository's bin/. Neither is meant to be
// reached by the service accounts (a home directory is often 0700), so a
// run that separates privileges stages every program into <run>/bin:
// root-owned, 0755, unchangeable by any service. A program is staged again
// when its size or modification time changed.

// stageDir is where an embedded run's programs are staged.
func stageDir(runDir string) string { return filepath.Join(runDir, "bin") }

// stagePrograms stages the files named by paths into dir and returns their
// staged paths, in order. A hard link is used where the file system allows
// it, else a copy.
func stagePrograms(dir string, paths []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := fsutil.MkdirOwned(dir, 0o755, fsutil.Owner{}); err != nil {
		return nil, err
	}
	out := make([]string, len(paths))
	for i, src := range paths {
		dst := filepath.Join(dir, filepath.Base(src))
		if err := stageOne(src, dst); err != nil {
			return nil, fmt.Errorf("runner: stage %s: %w", src, err)
		}
		out[i] = dst
	}
	return out, nil
}

func stageOne(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("not a regular file")
	}
	if cur, err := os.Stat(dst); err == nil && cur.Size() == st.Size() && cur.ModTime().Equal(st.ModTime()) && safeProgram(cur) == nil {
		return nil
	}
	tmp := dst + ".staging"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil || safeProgramPath(tmp) != nil {
		os.Remove(tmp)
		if err := copyProgram(src, tmp, st); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return fsutil.SyncDir(filepath.Dir(dst))
}

func copyProgram(src, dst string, st os.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(0o755); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, st.ModTime(), st.ModTime())
}

// safeProgram checks that a staged program is root's and writable by no
// one else, and executable by all.
func safeProgram(st os.FileInfo) error {
	if st.Mode().Perm()&0o022 != 0 || st.Mode().Perm()&0o005 != 0o005 {
		return fmt.Errorf("mode %v", st.Mode().Perm())
	}
	if uid, ok := fileUID(st); ok && uid != 0 {
		return fmt.Errorf("owned by uid %d", uid)
	}
	return nil
}

func safeProgramPath(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	return safeProgram(st)
}

// checkTraversable makes sure every directory from / down to dir can be
// searched by other users: the service accounts reach their configs and
// sockets below it.
func checkTraversable(dir string) error {
	if blocked := unsearchable(dir); len(blocked) > 0 {
		return fmt.Errorf("runner: the run directory %s is below %s, which the service accounts cannot enter; choose a run directory whose parents others may search (for example --run-dir /var/lib/edgeid-demo)", dir, strings.Join(blocked, ", "))
	}
	return nil
}

// unsearchable lists dir and those of its parents that others may not
// search, with their modes.
func unsearchable(dir string) []string {
	var blocked []string
	for d := dir; ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
			blocked = append(blocked, fmt.Sprintf("%s (%v)", d, st.Mode().Perm()))
		}
		if d == filepath.Dir(d) {
			return blocked
		}
	}
}

// stage copies every program of an embedded run into the run directory
// (see stagePrograms) and resolves the programs there.
func (r *Runner) stage() (render.Binaries, error) {
	progs := []*string{&r.cfg.SpireServer, &r.cfg.SpireAgent}
	if r.top.Vault.Managed {
		progs = append(progs, &r.cfg.Vault)
	}
	if r.top.Observability.Metrics {
		progs = append(progs, &r.cfg.Prometheus)
	}
	srcs := make([]string, 0, len(progs)+8)
	for _, p := range progs {
		srcs = append(srcs, *p)
	}
	own := []string{"edgeid", "edgeid-helper", "edgeid-upstreamauthority-vaultpki", "edgeid-nodeattestor-kubeedge-server",
		"edgeid-nodeattestor-kubeedge-agent", "edgeid-workloadattestor-deepstream"}
	for _, s := range r.top.Sites {
		for _, w := range s.Workloads {
			if w.Kind == topology.KindDeepStream && w.Command == "" && !slices.Contains(own, w.App) {
				own = append(own, w.App)
			}
		}
	}
	for _, name := range own {
		srcs = append(srcs, filepath.Join(r.cfg.BinDir, name))
	}
	var staged []string
	if r.cfg.Inspect {
		// status and down only name the staged programs (what the
		// running processes are); they never replace them.
		for _, src := range srcs {
			staged = append(staged, filepath.Join(stageDir(r.cfg.RunDir), filepath.Base(src)))
		}
	} else {
		var err error
		if staged, err = stagePrograms(stageDir(r.cfg.RunDir), srcs); err != nil {
			return render.Binaries{}, err
		}
	}
	for i, p := range progs {
		*p = staged[i]
	}
	r.cfg.BinDir = stageDir(r.cfg.RunDir)
	return r.binaries()
}

// binaries resolves every program and reports all missing ones at once.
func (r *Runner) binaries() (render.Binaries, error) {
	var missing []string
	need := func(path, what string) string {
		abs, err := filepath.Abs(path)
		if err == nil {
			path = abs
		}
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			missing = append(missing, fmt.Sprintf("%s (%s)", path, what))
		}
		return path
	}
	plugin := func(name string) render.Binary {
		p := need(filepath.Join(r.cfg.BinDir, name), "edgeid plugin; run `make build-bin`")
		sum, _ := render.FileSHA256(p)
		return render.Binary{Path: p, Checksum: sum}
	}
	b := render.Binaries{
		SpireServer:    need(r.cfg.SpireServer, "pinned SPIRE; run `make tools`"),
		SpireAgent:     need(r.cfg.SpireAgent, "pinned SPIRE; run `make tools`"),
		Edgeid:         need(filepath.Join(r.cfg.BinDir, "edgeid"), "run `make build-bin`"),
		Helper:         need(filepath.Join(r.cfg.BinDir, "edgeid-helper"), "run `make build-bin`"),
		VaultPKI:       plugin("edgeid-upstreamauthority-vaultpki"),
		KubeEdgeServer: plugin("edgeid-nodeattestor-kubeedge-server"),
		KubeEdgeAgent:  plugin("edgeid-nodeattestor-kubeedge-agent"),
		DeepStream:     plugin("edgeid-workloadattestor-deepstream"),
	}
	if r.top.Vault.Managed && r.isLocal(r.top.Vault.Host) {
		b.Vault = need(r.cfg.Vault, "pinned Vault; run `make tools`")
	}
	if r.cfg.Host == "" && r.top.Observability.Metrics {
		// An embedded run scrapes itself (observability.metrics).
		b.Prometheus = need(r.cfg.Prometheus, "pinned Prometheus; run `make tools`, or set observability { metrics = false }")
	}
	for _, s := range r.top.Sites {
		for _, w := range s.Workloads {
			if w.Kind == topology.KindDeepStream && w.Command == "" && r.isLocal(w.Node) {
				need(filepath.Join(r.cfg.BinDir, w.App), "DeepStream app or stand-in; run `make build-bin`")
			}
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("runner: missing programs:\n  %s", strings.Join(missing, "\n  "))
	}
	return b, nil
}
