package deepstream

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	ds "github.com/edgeid/edgeid/plugins/common/deepstream"
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
