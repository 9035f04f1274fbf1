package deepstream

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// container_id is a kernel fact only when the runtime set it: the id must
// come from a runtime-specific component of a cgroup path, and that cgroup
// directory and each of its ancestors up to the hierarchy root must be
// owned by root. A delegated subtree (systemd Delegate=, rootless
// containers, a user's own cgroup) is chowned to its user, who could name a
// directory after any container; such a subtree yields no container_id.

const maxCgroupPathDepth = 64

// cgroupEntry is one line of /proc/<pid>/cgroup: "ID:CONTROLLERS:PATH".
type cgroupEntry struct {
	hierarchy   int
	controllers string // "" for the cgroup v2 hierarchy
	path        string
}

// parseCgroupFile parses /proc/<pid>/cgroup strictly: every line has three
// fields, a numeric hierarchy id that appears once, and an absolute path.
// (The kernel refuses newlines in cgroup names, so a name cannot inject a
// line; the check on repeated ids makes sure of it.)
func parseCgroupFile(data []byte) ([]cgroupEntry, error) {
	var out []cgroupEntry
	seen := map[int]bool{}
	text := strings.TrimSuffix(string(data), "\n")
	if text == "" {
		return nil, nil
	}
	for i, line := range strings.Split(text, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("cgroup line %d: want ID:CONTROLLERS:PATH", i+1)
		}
		id, err := strconv.Atoi(parts[0])
		if err != nil || id < 0 {
			return nil, fmt.Errorf("cgroup line %d: bad hierarchy id %q", i+1, parts[0])
		}
		if seen[id] {
			return nil, fmt.Errorf("cgroup line %d: hierarchy %d repeats", i+1, id)
		}
		seen[id] = true
		if !strings.HasPrefix(parts[2], "/") {
			return nil, fmt.Errorf("cgroup line %d: path %q is not absolute", i+1, parts[2])
		}
		out = append(out, cgroupEntry{hierarchy: id, controllers: parts[1], path: parts[2]})
	}
	return out, nil
}

var (
	hex64 = `([0-9a-f]{64})`
	// Components that name a container by themselves (systemd cgroup
	// driver of docker, containerd, cri-o and podman; cgroupfs driver of
	// cri-o and podman).
	scopePattern = regexp.MustCompile(`^(?:docker-|cri-containerd-|crio-|libpod-)` + hex64 + `(?:\.scope)?$`)
	bareID       = regexp.MustCompile(`^` + hex64 + `$`)
)

var errConflictingIDs = errors.New("conflicting container ids")

// containerIDInPath finds the container id in one cgroup path. It returns
// the id and the number of path components up to and including the one
// that named it (the outermost match), or "" when the path names no
// container. A path that names two different containers is an error.
//
// Shapes: docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
// crio-<id>, libpod-<id>.scope, libpod-<id> anywhere; a bare <id> under
// "docker" (/docker/<id>) or under a pod<uid> directory inside a kubepods
// tree (the kubelet's, and KubeEdge edged's, cgroupfs driver).
func containerIDInPath(p string) (string, int, error) {
	comps := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(comps) > maxCgroupPathDepth {
		return "", 0, fmt.Errorf("cgroup path has more than %d components", maxCgroupPathDepth)
	}
	var id string
	depth := 0
	inKubepods := false
	for i, c := range comps {
		if c == "" || c == "." || c == ".." {
			if c == "" && i == len(comps)-1 {
				break
			}
			return "", 0, fmt.Errorf("cgroup path %q has an empty, . or .. component", p)
		}
		var found string
		if m := scopePattern.FindStringSubmatch(c); m != nil {
			found = m[1]
		} else if bareID.MatchString(c) && i > 0 {
			prev := comps[i-1]
			if prev == "docker" || (inKubepods && strings.HasPrefix(prev, "pod") && len(prev) > len("pod")) {
				found = c
			}
		}
		if c == "kubepods" || strings.HasPrefix(c, "kubepods-") || strings.HasPrefix(c, "kubepods.") {
			inKubepods = true
		}
		if found == "" {
			continue
		}
		if id == "" {
			id, depth = found, i+1
		} else if found != id {
			return "", 0, fmt.Errorf("%w in cgroup path %q", errConflictingIDs, p)
		}
	}
	return id, depth, nil
}

// cgroupStat is what the ownership rule needs to know about a directory.
type cgroupStat struct {
	uid   uint32
	isDir bool
}

func lstatCgroup(p string) (cgroupStat, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return cgroupStat{}, err
	}
	return cgroupStat{uid: st.Uid, isDir: st.Mode&unix.S_IFMT == unix.S_IFDIR}, nil
}

func statfsType(p string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return 0, err
	}
	return int64(st.Type), nil
}

// errCgroupUnchecked means a cgroup's ownership could not be checked (no
// mount found): the id is not used, and the plugin warns once.
var errCgroupUnchecked = errors.New("cgroup cannot be checked")

// cgroupMount returns the directory where e's hierarchy is mounted under
// the cgroup root: <root> itself on a cgroup v2 host, <root>/unified for
// "0::" on a hybrid host, <root>/<controllers> (or <root>/<name> for
// name=<name>, or one of the listed controllers) for cgroup v1.
func (a *attestation) cgroupMount(e cgroupEntry) (string, error) {
	root := a.p.hooks.cgroupRoot
	is := func(dir string, magic int64) bool {
		t, err := a.p.hooks.statfs(dir)
		return err == nil && t == magic
	}
	if e.hierarchy == 0 && e.controllers == "" {
		for _, dir := range []string{root, filepath.Join(root, "unified")} {
			if is(dir, unix.CGROUP2_SUPER_MAGIC) {
				return dir, nil
			}
		}
		return "", fmt.Errorf("%w: no cgroup2 mount at %s or %s/unified", errCgroupUnchecked, root, root)
	}
	if e.controllers == "" || strings.Contains(e.controllers, "/") || strings.Contains(e.controllers, "..") {
		return "", fmt.Errorf("%w: hierarchy %d has controllers %q", errCgroupUnchecked, e.hierarchy, e.controllers)
	}
	candidates := []string{e.controllers}
	if name, ok := strings.CutPrefix(e.controllers, "name="); ok {
		candidates = []string{name}
	} else if strings.Contains(e.controllers, ",") {
		candidates = append(candidates, strings.Split(e.controllers, ",")...)
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if dir := filepath.Join(root, c); is(dir, unix.CGROUP_SUPER_MAGIC) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: no cgroup v1 mount for %q under %s", errCgroupUnchecked, e.controllers, root)
}

// checkCgroupOwner checks that the first depth components of e's path,
// and the hierarchy root, are directories owned by root.
func (a *attestation) checkCgroupOwner(e cgroupEntry, depth int) error {
	mount, err := a.cgroupMount(e)
	if err != nil {
		return err
	}
	comps := strings.Split(strings.TrimPrefix(e.path, "/"), "/")[:depth]
	dir := mount
	for i := -1; i < len(comps); i++ {
		if i >= 0 {
			dir = filepath.Join(dir, comps[i])
		}
		st, err := a.p.hooks.lstat(dir)
		if err != nil {
			return fmt.Errorf("%w: %v", errCgroupUnchecked, err)
		}
		if !st.isDir {
			return fmt.Errorf("%s is not a directory", dir)
		}
		if st.uid != 0 {
			return fmt.Errorf("%s is owned by uid %d, not root (a delegated cgroup)", dir, st.uid)
		}
	}
	return nil
}

// containerID returns the process's container id, or "" when its cgroups
// name none, name conflicting ones, or name one in a cgroup that is not
// root's.
func (a *attestation) containerID(proc *process, log hclog.Logger) string {
	data, err := a.readProcFile(filepath.Join(proc.dir, "cgroup"), maxCgroupBytes)
	if err != nil {
		log.Debug("Unable to read cgroups", "error", err)
		return ""
	}
	entries, err := parseCgroupFile(data)
	if err != nil {
		a.warn(log, "Malformed cgroup file; no container_id", "error", err)
		return ""
	}
	type match struct {
		e     cgroupEntry
		depth int
	}
	var id string
	var matches []match
	for _, e := range entries {
		found, depth, err := containerIDInPath(e.path)
		if err != nil {
			a.warn(log, "Cgroup path names several containers; no container_id", "error", err)
			return ""
		}
		if found == "" {
			continue
		}
		if id != "" && found != id {
			a.warn(log, "Cgroups name different containers; no container_id", "ids", []string{id, found})
			return ""
		}
		id = found
		matches = append(matches, match{e, depth})
	}
	for _, m := range matches {
		if err := a.checkCgroupOwner(m.e, m.depth); err != nil {
			if errors.Is(err, errCgroupUnchecked) {
				a.p.cgroupWarn.Do(func() {
					a.warn(log, "Unable to check the owner of a container's cgroup; no container_id for such processes", "cgroup_root", a.p.hooks.cgroupRoot, "error", err)
				})
				log.Debug("Cgroup not checked; no container_id", "error", err)
				return ""
			}
			a.warn(log, "Container id comes from a cgroup that is not root's; no container_id", "container_id", id, "error", err)
			return ""
		}
	}
	return id
}
