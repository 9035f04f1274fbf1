package deepstream

import (
	"bufio"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// matchAny reports whether name matches one of the glob patterns.
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
