package deepstream

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// selfReported prefixes argv-derived selectors of a process that was not
// held at exec: they are what the process says about itself.
const selfReported = "self_reported:"

// selectors computes the selector values of a DeepStream process, sorted
// and without duplicates. Kernel facts (app of a binary, exe_sha256,
// version, container_id) keep their names; selectors derived from argv
// and cwd (the script, the config and what it names) keep theirs only for
// a child held at exec, which also gets launch:held, and are
// self_reported:<name> otherwise.
func (a *attestation) selectors(proc *process) []string {
	set := map[string]struct{}{}
	add := func(kind, value string) {
		if value != "" {
			set[kind+":"+value] = struct{}{}
		}
	}
	claim := func(sel string) {
		if proc.held {
			set[sel] = struct{}{}
		} else {
			set[selfReported+sel] = struct{}{}
		}
	}
	log := a.log.With("app_pid", proc.pid, "app", proc.app, "held", proc.held)
	if proc.held {
		add("launch", "held")
	}
	if proc.appFromArg {
		claim("app:" + proc.app)
	} else {
		add("app", proc.app)
	}
	if h, err := a.hashExe(proc); err != nil {
		a.warn(log, "Unable to hash the executable", "error", err)
	} else {
		add("exe_sha256", h)
	}
	add("container_id", a.containerID(proc, log))

	root, err := openRootFS(filepath.Join(proc.dir, "root"))
	if err != nil {
		a.warn(log, "Unable to open the process root; no path-based selectors", "error", err)
	} else {
		defer root.Close()
		if proc.script != "" {
			if h, err := a.hashIn(root, proc.script, a.cfg.maxExeBytes); err != nil {
				a.warn(log, "Unable to hash the script", "script", proc.script, "error", err)
			} else {
				claim("script_sha256:" + h)
			}
		}
		add("version", a.version(root, proc, log))
		switch len(proc.configArgs) {
		case 0:
		case 1:
			arg := proc.configArgs[0]
			sels, err := a.configSelectors(root, proc, arg, log)
			if err != nil {
				a.warn(log, "Ignoring DeepStream config; no config selectors", "config", arg, "error", err)
				break
			}
			for _, s := range sels {
				claim(s)
			}
		default:
			// One process running several pipelines: an SVID matched on one
			// config would also serve the others, so bind none of them.
			a.warn(log, "Ignoring DeepStream configs: the process was given several; no config selectors", "configs", proc.configArgs)
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (a *attestation) hashExe(proc *process) (string, error) {
	f, err := os.Open(filepath.Join(proc.dir, "exe"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	return a.p.hashes.sha256File(a.ctx, f, a.cfg.maxExeBytes)
}

func (a *attestation) hashIn(root *rootFS, p string, max int64) (string, error) {
	f, err := root.open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return a.p.hashes.sha256File(a.ctx, f, max)
}

var versionPattern = regexp.MustCompile(`^Version:\s*([0-9]+)\.([0-9]+)`)

// version reads the DeepStream install's version file, preferring the
// install the executable lives in.
func (a *attestation) version(root *rootFS, proc *process, log hclog.Logger) string {
	var candidates []string
	const base = "/opt/nvidia/deepstream/"
	if rest, ok := strings.CutPrefix(proc.exeView, base); ok {
		if dir, _, ok := strings.Cut(rest, "/"); ok && strings.HasPrefix(dir, "deepstream") {
			candidates = append(candidates, base+dir+"/version")
		}
	}
	candidates = append(candidates, a.cfg.installDir+"/version")
	for _, c := range candidates {
		data, err := a.readRootFile(root, c, maxVersionBytes)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if m := versionPattern.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				return m[1] + "." + m[2]
			}
		}
		log.Debug("Version file has no Version line", "file", c)
	}
	return ""
}
