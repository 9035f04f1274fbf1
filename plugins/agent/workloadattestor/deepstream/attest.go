package deepstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ds "github.com/edgeid/edgeid/plugins/common/deepstream"
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

func (a *attestation) run(pid int) ([]string, error) {
	defer a.closeAll()
	caller, err := a.track(pid, nil)
	if err == nil {
		err = a.inspect(caller)
	}
	if err != nil {
		if halt := a.halted(); halt != nil {
			return nil, a.exhausted(pid, halt)
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, status.Errorf(codes.NotFound, "process %d not found", pid)
		}
		return nil, status.Errorf(codes.Internal, "unable to inspect process %d: %v", pid, err)
	}
	var apps []*process
	if a.classify(caller) {
		apps = []*process{caller}
	} else {
		apps = a.findChildApps(caller, 1)
	}
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
	sets := make([][]string, len(apps))
	for i, app := range apps {
		sets[i] = a.selectors(app)
	}
	if halt := a.halted(); halt != nil {
		return nil, a.exhausted(pid, halt)
	}

	if a.p.hooks.beforeRecheck != nil {
		a.p.hooks.beforeRecheck()
	}
	if !a.p.hooks.skipRecheck {
		if err := a.recheck(caller); err != nil {
			if halt := a.halted(); halt != nil {
				return nil, a.exhausted(pid, halt)
			}
			a.log.Warn("Caller changed while it was attested; returning no selectors", "error", err)
			return nil, nil
		}
		var keptApps []*process
		var keptSets [][]string
		for i, app := range apps {
			if err := a.recheck(app); err != nil {
				if halt := a.halted(); halt != nil {
					return nil, a.exhausted(pid, halt)
				}
				a.log.Warn("DeepStream process changed while it was attested; it yields no selectors", "app_pid", app.pid, "error", err)
				continue
			}
			keptApps, keptSets = append(keptApps, app), append(keptSets, sets[i])
		}
		apps, sets = keptApps, keptSets
	}

	switch len(apps) {
	case 0:
		return nil, nil
	case 1:
		return sets[0], nil
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
			return nil, nil
		}
	}
	return sets[0], nil
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

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// classify decides whether proc is a DeepStream app and fills in its app
// name and config arguments.
func (a *attestation) classify(proc *process) bool {
	base := path.Base(proc.exe)
	var appArgs []string
	if len(proc.args) > 0 {
		appArgs = proc.args[1:]
	}
	switch {
	case matchAny(a.cfg.appNames, base):
		proc.app = base
	case matchAny(a.cfg.interpreters, base):
		script, rest, ok := scriptOf(appArgs)
		if !ok || !matchAny(a.cfg.scriptNames, path.Base(script)) {
			return false
		}
		abs, err := cleanAbs(proc.cwd, script)
		if err != nil {
			a.warn(a.log, "Unable to resolve DeepStream script path", "script", script, "error", err)
			return false
		}
		proc.app, proc.appFromArg, proc.script, appArgs = path.Base(script), true, abs, rest
	case a.loadsLibrary(proc):
		proc.app = base
	default:
		return false
	}
	proc.configArgs = configArgs(appArgs)
	return true
}

// loadsLibrary reports whether proc maps a library whose basename starts
// with one of the configured prefixes.
func (a *attestation) loadsLibrary(proc *process) bool {
	if len(a.cfg.libraryPrefixes) == 0 {
		return false
	}
	f, err := os.Open(filepath.Join(proc.dir, "maps"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(a.meter(f, maxMapsBytes))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		i := strings.IndexByte(line, '/')
		if i < 0 {
			continue
		}
		name := path.Base(line[i:])
		for _, prefix := range a.cfg.libraryPrefixes {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		}
	}
	return false
}

// scriptOf finds the script a Python interpreter runs in its arguments, and
// the script's own arguments. `-c` and `-m` run no script file.
func scriptOf(args []string) (string, []string, bool) {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "-c" || arg == "-m" || arg == "-":
			return "", nil, false
		case arg == "--":
			if i+1 < len(args) {
				return args[i+1], args[i+2:], true
			}
			return "", nil, false
		case arg == "-W" || arg == "-X" || arg == "--check-hash-based-pycs":
			i++
		case strings.HasPrefix(arg, "-"):
			if strings.ContainsAny(arg[1:2], "cm") && !strings.HasPrefix(arg, "--") {
				return "", nil, false
			}
		default:
			return arg, args[i+1:], true
		}
	}
	return "", nil, false
}

// configArgs extracts the config files given with -c / --cfg-file, in the
// GOption forms DeepStream apps accept: "-c F", "-cF", "--cfg-file F" and
// "--cfg-file=F". The flag may repeat. A flag without a value yields "" so
// that the caller can report it.
func configArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args) && len(out) < maxConfigArgs; i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return out
		case arg == "-c" || arg == "--cfg-file":
			if i+1 < len(args) {
				out = append(out, args[i+1])
				i++
			} else {
				out = append(out, "")
			}
		case strings.HasPrefix(arg, "--cfg-file="):
			out = append(out, strings.TrimPrefix(arg, "--cfg-file="))
		case strings.HasPrefix(arg, "-c") && !strings.HasPrefix(arg, "--"):
			out = append(out, arg[2:])
		}
	}
	return out
}

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

// configSelectors reads one app config and returns its selectors. Any
// error means the config yields no selectors at all.
func (a *attestation) configSelectors(root *rootFS, proc *process, arg string, log hclog.Logger) ([]string, error) {
	cfgPath, err := cleanAbs(proc.cwd, arg)
	if err != nil {
		return nil, err
	}
	data, err := a.readRootFile(root, cfgPath, a.cfg.maxConfigBytes)
	if err != nil {
		return nil, err
	}
	sels := []string{"config_path:" + cfgPath, "config_sha256:" + sha256Hex(data)}
	if ext := path.Ext(cfgPath); ext == ".yml" || ext == ".yaml" {
		// YAML pipeline configs are bound by path and hash only.
		log.Debug("YAML config: only config_path and config_sha256", "config", cfgPath)
		return sels, nil
	}
	lim := a.limits()
	kf, err := ds.Parse(data, lim)
	if err != nil {
		return nil, err
	}
	app, err := ds.ParseApp(kf)
	if err != nil {
		return nil, err
	}
	dir := dirOf(cfgPath)
	ref := func(p string) (string, error) { return cleanAbs(dir, p) }
	addProto := func(lib string) {
		if lib == "" {
			return
		}
		if proto, ok := ds.ProtoFromLib(lib); ok {
			sels = append(sels, "proto:"+proto)
		} else {
			log.Debug("Unknown protocol adaptor library", "lib", lib)
		}
	}
	// brokerFile reads an adaptor config; a missing one is normal (the
	// helper may render it after the first SVID) and only loses fallbacks.
	brokerFile := func(p string) (ds.BrokerSettings, error) {
		if p == "" {
			return ds.BrokerSettings{}, nil
		}
		abs, err := ref(p)
		if err != nil {
			return ds.BrokerSettings{}, err
		}
		kf, err := a.readRootFile(root, abs, a.cfg.maxConfigBytes)
		if err != nil {
			log.Debug("Adaptor config not readable; skipping it", "file", abs, "error", err)
			return ds.BrokerSettings{}, nil
		}
		parsed, err := ds.Parse(kf, lim)
		if err != nil {
			log.Debug("Adaptor config malformed; skipping it", "file", abs, "error", err)
			return ds.BrokerSettings{}, nil
		}
		bs, err := ds.ParseBrokerConfig(parsed)
		if err != nil {
			log.Debug("Adaptor config malformed; skipping it", "file", abs, "error", err)
			return ds.BrokerSettings{}, nil
		}
		return bs, nil
	}
	addBroker := func(connStr string, bs ds.BrokerSettings) {
		if addr, ok := ds.BrokerAddr(connStr); ok {
			sels = append(sels, "broker:"+addr)
		} else if addr, ok := ds.HostPort(bs.Hostname, bs.Port); ok {
			sels = append(sels, "broker:"+addr)
		}
	}
	for _, s := range app.Sinks {
		bs, err := brokerFile(s.BrokerConfig)
		if err != nil {
			return nil, fmt.Errorf("[%s] msg-broker-config: %w", s.Group, err)
		}
		addProto(s.ProtoLib)
		addBroker(s.ConnStr, bs)
		topic := s.Topic
		if topic == "" {
			topic = bs.Topic
		}
		if topic != "" {
			sels = append(sels, "publish_topic:"+topic)
		}
	}
	for _, c := range app.Consumers {
		bs, err := brokerFile(c.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("[%s] config-file: %w", c.Group, err)
		}
		addProto(c.ProtoLib)
		addBroker(c.ConnStr, bs)
		for _, t := range c.Topics {
			sels = append(sels, "subscribe_topic:"+t)
		}
	}
	models, err := a.modelRefs(root, app, ref, log)
	if err != nil {
		return nil, err
	}
	if a.cfg.hashModels {
		for _, m := range models {
			h, err := a.hashIn(root, m, a.cfg.maxModelBytes)
			if err != nil {
				a.warn(log, "Unable to hash model file", "file", m, "error", err)
				continue
			}
			sels = append(sels, "model_sha256:"+h)
		}
	}
	return sels, nil
}

// modelRefs resolves the model files named by the app config and by its
// nvinfer configs. Paths that escape the root make the config invalid.
func (a *attestation) modelRefs(root *rootFS, app *ds.App, ref func(string) (string, error), log hclog.Logger) ([]string, error) {
	var out []string
	for _, m := range app.Models {
		abs, err := ref(m.Path)
		if err != nil {
			return nil, fmt.Errorf("[%s] %s: %w", m.Group, m.Key, err)
		}
		out = append(out, abs)
	}
	for _, ic := range app.InferConfigs {
		abs, err := ref(ic.Path)
		if err != nil {
			return nil, fmt.Errorf("[%s] %s: %w", ic.Group, ic.Key, err)
		}
		if !a.cfg.hashModels {
			continue
		}
		if ext := path.Ext(abs); ext == ".yml" || ext == ".yaml" {
			continue
		}
		data, err := a.readRootFile(root, abs, a.cfg.maxConfigBytes)
		if err != nil {
			a.warn(log, "Unable to read nvinfer config", "file", abs, "error", err)
			continue
		}
		kf, err := ds.Parse(data, a.limits())
		if err != nil {
			a.warn(log, "Malformed nvinfer config", "file", abs, "error", err)
			continue
		}
		refs, err := ds.InferModels(kf)
		if err != nil {
			a.warn(log, "Malformed nvinfer config", "file", abs, "error", err)
			continue
		}
		inferDir := dirOf(abs)
		for _, r := range refs {
			p, err := cleanAbs(inferDir, r.Path)
			if err != nil {
				return nil, fmt.Errorf("%s [%s] %s: %w", abs, r.Group, r.Key, err)
			}
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (a *attestation) limits() ds.Limits {
	lim := ds.DefaultLimits
	lim.MaxBytes = a.cfg.maxConfigBytes
	return lim
}
