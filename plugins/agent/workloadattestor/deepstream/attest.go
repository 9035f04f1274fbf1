package deepstream

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Bounds on the /proc files read per process.
const (
	maxCmdlineBytes  = 128 << 10
	maxMapsBytes     = 8 << 20
	maxCgroupBytes   = 64 << 10
	maxChildrenBytes = 64 << 10
	maxVersionBytes  = 4 << 10
	maxConfigArgs    = 8
)

// attestation is the state of one Attest call.
type attestation struct {
	p   *Plugin
	cfg *configuration
	ctx context.Context
	log hclog.Logger

	visited   int
	tracked   []*process
	bytesLeft int64 // byte budget left
	bytesRead int64
	halt      error // what stopped the attestation: a spent budget
}

// process is what the attestor learned about one pid.
type process struct {
	pid    int
	parent *process // nil for the caller
	handle pidHandle
	dir    string // <procDir>/<pid>

	// First snapshot of kernel facts (see track).
	stat       procStat
	status     procStatus // children only
	syscall    []byte     // children in a ptrace stop only
	syscallErr error

	exe     string   // /proc/<pid>/exe target, agent's view
	exeView string   // the same in the process's view ("" if unknown)
	args    []string // argv
	rootDir string   // agent's view of the process's root
	cwd     string   // process's view of its working directory ("" if unknown)

	app        string // app selector value
	appFromArg bool   // app names the script from argv (interpreter apps)
	script     string // process-view script path, for interpreter apps
	configArgs []string

	// held: a child of the caller provably held at exec, whose argv-derived
	// selectors are facts rather than claims.
	held bool
}

// run attests the process pid: it finds the DeepStream apps the
// attestation covers, computes their selectors, checks that no process
// changed meanwhile and merges the result.
func (a *attestation) run(pid int) ([]string, error) {
	defer a.closeAll()
	caller, err := a.track(pid, nil)
	if err == nil {
		err = a.inspect(caller)
	}
	if err != nil {
		return nil, a.inspectFailed(pid, err)
	}
	apps := a.appsOf(caller)
	sets := make([][]string, len(apps))
	for i, app := range apps {
		sets[i] = a.selectors(app)
	}
	if halt := a.halted(); halt != nil {
		return nil, a.exhausted(pid, halt)
	}
	apps, sets, err = a.recheckAll(pid, caller, apps, sets)
	if err != nil {
		return nil, err
	}
	return a.merge(apps, sets), nil
}

// inspectFailed returns the error of an attestation that could not inspect
// its caller.
func (a *attestation) inspectFailed(pid int, err error) error {
	if halt := a.halted(); halt != nil {
		return a.exhausted(pid, halt)
	}
	if errors.Is(err, os.ErrNotExist) {
		return status.Errorf(codes.NotFound, "process %d not found", pid)
	}
	return status.Errorf(codes.Internal, "unable to inspect process %d: %v", pid, err)
}

// appsOf returns the DeepStream apps an attestation of caller covers: the
// caller itself, or else its nearest DeepStream descendants, each marked
// held when the caller provably held it at exec.
func (a *attestation) appsOf(caller *process) []*process {
	if a.classify(caller) {
		return []*process{caller}
	}
	apps := a.findChildApps(caller, 1)
	for _, app := range apps {
		if app == caller {
			continue
		}
		if why := a.heldAtExec(app, caller); why != "" {
			a.log.Debug("DeepStream app is not held at exec by the caller; its argv-derived selectors are self-reported", "app_pid", app.pid, "reason", why)
		} else {
			app.held = true
		}
	}
	return apps
}

// recheckAll checks, after everything was read, that the caller and each
// app are still the processes that were read. An app that changed is
// dropped with its selectors; when the caller changed, no app remains. The
// error is that of a spent budget.
func (a *attestation) recheckAll(pid int, caller *process, apps []*process, sets [][]string) ([]*process, [][]string, error) {
	if a.p.hooks.beforeRecheck != nil {
		a.p.hooks.beforeRecheck()
	}
	if a.p.hooks.skipRecheck {
		return apps, sets, nil
	}
	if err := a.recheck(caller); err != nil {
		if halt := a.halted(); halt != nil {
			return nil, nil, a.exhausted(pid, halt)
		}
		a.log.Warn("Caller changed while it was attested; returning no selectors", "error", err)
		return nil, nil, nil
	}
	var keptApps []*process
	var keptSets [][]string
	for i, app := range apps {
		if err := a.recheck(app); err != nil {
			if halt := a.halted(); halt != nil {
				return nil, nil, a.exhausted(pid, halt)
			}
			a.log.Warn("DeepStream process changed while it was attested; it yields no selectors", "app_pid", app.pid, "error", err)
			continue
		}
		keptApps, keptSets = append(keptApps, app), append(keptSets, sets[i])
	}
	return keptApps, keptSets, nil
}

// merge returns the selectors of the attestation: those of its one app;
// with several apps, their common selectors when all of them have exactly
// the same, and otherwise none.
func (a *attestation) merge(apps []*process, sets [][]string) []string {
	switch len(apps) {
	case 0:
		return nil
	case 1:
		return sets[0]
	}
	// Several DeepStream descendants: their selectors can only be merged
	// when they agree, or a caller could combine the binary of one with the
	// config of another into an identity neither has.
	for _, other := range sets[1:] {
		if !slices.Equal(sets[0], other) {
			pids := make([]int, 0, len(apps))
			for _, app := range apps {
				pids = append(pids, app.pid)
			}
			a.log.Warn("Caller launched several different DeepStream apps; returning no selectors", "children", pids)
			return nil
		}
	}
	return sets[0]
}

// exhausted logs the end of an attestation that ran out of budget, once,
// and returns its error.
func (a *attestation) exhausted(pid int, halt error) error {
	switch {
	case errors.Is(halt, errByteBudget):
		a.log.Warn("Attestation exceeded its byte budget; returning no selectors", "max_attestation_bytes", a.cfg.maxAttestationBytes, "bytes_read", a.bytesRead, "processes", a.visited)
		return status.Errorf(codes.ResourceExhausted, "attestation of pid %d read more than max_attestation_bytes (%d bytes)", pid, a.cfg.maxAttestationBytes)
	case errors.Is(halt, errTimeBudget):
		a.log.Warn("Attestation exceeded its time budget; returning no selectors", "attestation_timeout", a.cfg.attestationTimeout, "bytes_read", a.bytesRead, "processes", a.visited)
		return status.Errorf(codes.ResourceExhausted, "attestation of pid %d took longer than attestation_timeout (%s)", pid, a.cfg.attestationTimeout)
	}
	return status.FromContextError(halt).Err()
}

// findChildApps returns the nearest DeepStream processes among parent's
// descendants, down to the configured depth.
func (a *attestation) findChildApps(parent *process, depth int) []*process {
	if depth > a.cfg.childDepth || a.halted() != nil {
		return nil
	}
	var found []*process
	for _, child := range a.children(parent) {
		if a.halted() != nil {
			return found
		}
		if a.visited >= maxProcesses {
			a.warn(a.log, "Process tree too large; stopping the search", "limit", maxProcesses)
			return found
		}
		proc, err := a.track(child, parent)
		if err == nil {
			err = a.inspect(proc)
		}
		if err != nil {
			a.log.Debug("Skipping child process", "child", child, "error", err)
			continue
		}
		if a.classify(proc) {
			found = append(found, proc)
			continue
		}
		found = append(found, a.findChildApps(proc, depth+1)...)
	}
	return found
}

// children lists the direct children of every thread of parent, from
// /proc/<pid>/task/<tid>/children.
func (a *attestation) children(parent *process) []int {
	tasks, err := os.ReadDir(filepath.Join(parent.dir, "task"))
	if err != nil {
		a.log.Debug("Unable to list threads", "error", err)
		return nil
	}
	var out []int
	for _, t := range tasks {
		data, err := a.readProcFile(filepath.Join(parent.dir, "task", t.Name(), "children"), maxChildrenBytes)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil && n > 0 && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// inspect reads what the process says about itself (executable, argv,
// root and working directory) from /proc.
func (a *attestation) inspect(proc *process) error {
	exe, err := os.Readlink(filepath.Join(proc.dir, "exe"))
	if err != nil {
		return err
	}
	cmdline, err := a.readProcFile(filepath.Join(proc.dir, "cmdline"), maxCmdlineBytes)
	if err != nil {
		return err
	}
	proc.exe = strings.TrimSuffix(exe, " (deleted)")
	cmdline = bytes.TrimSuffix(cmdline, []byte{0})
	if len(cmdline) > 0 {
		proc.args = strings.Split(string(cmdline), "\x00")
	}
	if root, err := os.Readlink(filepath.Join(proc.dir, "root")); err == nil {
		proc.rootDir = root
		if v, ok := stripRoot(root, proc.exe); ok {
			proc.exeView = v
		}
		if cwd, err := os.Readlink(filepath.Join(proc.dir, "cwd")); err == nil {
			if v, ok := stripRoot(root, cwd); ok {
				proc.cwd = v
			}
		}
	}
	return nil
}
