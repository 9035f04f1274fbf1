package atomicdir

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/edgeid/edgeid/internal/fsutil"
)

// Snapshot reads names from the version that dir's "..data" points at when
// Snapshot starts. It opens the version directory once and reads every file
// relative to it, so the files always come from the same version even when
// a Write swaps "..data" meanwhile. This is how a consumer that reads
// several files (a certificate and its key) should read them.
//
// The writer keeps the previous version for readers in flight; a reader
// descheduled across more rotations than that can find its version
// retired. Snapshot then starts again from the new "..data" (a bounded
// number of times), so it still returns one whole version, never a mix and
// never a spurious error.
func Snapshot(dir string, names ...string) (map[string][]byte, error) {
	const attempts = 8
	var err error
	for range attempts {
		var target string
		if target, err = os.Readlink(filepath.Join(dir, DataLink)); err != nil {
			return nil, fmt.Errorf("atomicdir: resolve current version: %w", err)
		}
		var out map[string][]byte
		if out, err = snapshotVersion(filepath.Join(dir, target), names); err == nil {
			return out, nil
		}
		if now, lerr := os.Readlink(filepath.Join(dir, DataLink)); lerr != nil || now == target {
			// The version is still current: the error is real.
			return nil, err
		}
	}
	return nil, err
}

// snapshotVersion reads names from one version directory.
func snapshotVersion(version string, names []string) (map[string][]byte, error) {
	root, err := os.OpenRoot(version)
	if err != nil {
		return nil, fmt.Errorf("atomicdir: open current version: %w", err)
	}
	defer root.Close()
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		data, err := fs.ReadFile(root.FS(), name)
		if err != nil {
			return nil, fmt.Errorf("atomicdir: read %s: %w", name, err)
		}
		out[name] = data
	}
	return out, nil
}

// WriteFile replaces one file atomically: it writes a temporary file in the
// same directory with mode, fsyncs it, renames it over path and fsyncs the
// directory. Use it for single files that change on their own (JWT SVIDs,
// PID files); use a Writer for sets.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	if err := fsutil.WriteFileAtomic(path, data, mode.Perm()); err != nil {
		return fmt.Errorf("atomicdir: write %s: %w", filepath.Base(path), err)
	}
	return nil
}
