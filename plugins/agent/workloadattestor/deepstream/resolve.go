package deepstream

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

var errEscapes = errors.New("path escapes the process root")

// cleanAbs joins p onto dir (when p is relative) and cleans the result
// lexically, the way the process would see it. Unlike path.Clean it refuses
// a ".." that climbs above "/" instead of silently dropping it: such a path
// was written to escape.
func cleanAbs(dir, p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", errors.New("path contains NUL")
	}
	if !strings.HasPrefix(p, "/") {
		if dir == "" {
			return "", errors.New("relative path and unknown working directory")
		}
		p = dir + "/" + p
	}
	var stack []string
	for _, part := range strings.Split(p, "/") {
		switch part {
		case "", ".":
		case "..":
			if len(stack) == 0 {
				return "", fmt.Errorf("%w: %q", errEscapes, p)
			}
			stack = stack[:len(stack)-1]
		default:
			stack = append(stack, part)
		}
	}
	return "/" + strings.Join(stack, "/"), nil
}

// stripRoot turns a path from the agent's view of the filesystem into the
// process's view, given the agent's view of the process's root. It returns
// false when target lies outside root.
func stripRoot(root, target string) (string, bool) {
	if root == "/" || root == "" {
		return target, strings.HasPrefix(target, "/")
	}
	if target == root {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(target, root+"/"); ok {
		return "/" + rest, true
	}
	return "", false
}

// rootFS opens files inside a process's root directory the way the process
// would: absolute symlinks and ".." resolve inside that root
// (openat2 RESOLVE_IN_ROOT), and /proc magic links are refused, so a
// container cannot point the agent at a host file.
type rootFS struct {
	fd int
}

func openRootFS(dir string) (*rootFS, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &rootFS{fd: fd}, nil
}

func (r *rootFS) Close() error {
	return unix.Close(r.fd)
}

// open opens the absolute process-view path p for reading. It refuses
// anything but a regular file, without blocking on FIFOs.
func (r *rootFS) open(p string) (*os.File, error) {
	fd, err := unix.Openat2(r.fd, p, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return f, nil
}

// dirOf is path.Dir for absolute process-view paths.
func dirOf(p string) string { return path.Dir(p) }
