// Package fsutil holds edgeid's file-system primitives that several parts
// share: the atomic file write every component uses, in the manner of
// SPIRE's pkg/common/diskutil.
//
//	path.tmpXXXX  ── write, chmod, chown, fsync ──▶ rename to path ──▶ fsync dir
//
// A reader, or a crash at any point, sees either the old file or the whole
// new one, with its final mode and owner: the temporary file gets both
// before it is renamed into place, so no moment exists in which the new
// content is readable by someone it was not meant for.
package fsutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Owner is a file's uid and gid. The zero value is root's.
type Owner struct {
	UID, GID int
}

// Keep leaves a new file owned by the writing process.
var Keep = Owner{UID: -1, GID: -1}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory: written, given mode, synced and renamed into place, then the
// directory is synced so that the rename survives a crash. The mode is
// applied even when path exists. The parent directory must exist.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return WriteFileAtomicOwned(path, data, mode, Keep)
}

// WriteFileAtomicOwned is WriteFileAtomic for a file owned by owner (a uid
// or gid of -1 keeps the writer's). Changing the owner needs privilege.
func WriteFileAtomicOwned(path string, data []byte, mode os.FileMode, owner Owner) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	if owner != Keep {
		if err := tmp.Chown(owner.UID, owner.GID); err != nil {
			return fmt.Errorf("fsutil: chown %s: %w", path, err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("fsutil: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsutil: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("fsutil: %w", err)
	}
	committed = true
	return SyncDir(dir)
}

// WriteIfChanged writes data to path like WriteFileAtomic, unless path
// already holds exactly data with mode. It reports whether it wrote.
func WriteIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if info, err := os.Stat(path); err == nil && info.Mode().Perm() == mode.Perm() {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			return false, nil
		}
	}
	if err := WriteFileAtomic(path, data, mode); err != nil {
		return false, err
	}
	return true, nil
}

// WriteFileAtomicMkdir is WriteFileAtomicOwned into a directory that is
// made first (0755, with its parents, see MkdirAll) when it is missing. An
// existing directory keeps its mode.
func WriteFileAtomicMkdir(path string, data []byte, mode os.FileMode, owner Owner) error {
	if err := MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return WriteFileAtomicOwned(path, data, mode, owner)
}

// MkdirAll makes dir and any missing parents with mode perm (less the
// umask), like os.MkdirAll, and syncs the parent of each directory it
// makes, so that the new directories survive a crash. Existing directories
// are left as they are.
func MkdirAll(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("fsutil: %s exists and is not a directory", d)
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("fsutil: %w", err)
		}
		missing = append(missing, d)
		if parent := filepath.Dir(d); parent == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], perm); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("fsutil: %w", err)
		}
		if err := SyncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

// MkdirAllMode is MkdirAll that also gives dir itself exactly mode perm,
// when it existed already too: a directory an older version made too open
// is closed again.
func MkdirAllMode(dir string, perm os.FileMode) error {
	if err := MkdirAll(dir, perm); err != nil {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	if st.Mode().Perm() != perm {
		if err := os.Chmod(dir, perm); err != nil {
			return fmt.Errorf("fsutil: %w", err)
		}
	}
	return nil
}

// SyncDir fsyncs a directory, making renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("fsutil: sync %s: %w", dir, err)
	}
	return nil
}

// MkdirOwned makes dir if needed and gives it mode and owner, also when it
// exists: a directory that an older version made too open is closed again.
// Its parent must exist.
func MkdirOwned(dir string, mode os.FileMode, owner Owner) error {
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("fsutil: %w", err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("fsutil: %s exists and is not a directory", dir)
	}
	if owner != Keep {
		if err := os.Lchown(dir, owner.UID, owner.GID); err != nil {
			return fmt.Errorf("fsutil: chown %s: %w", dir, err)
		}
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("fsutil: %w", err)
	}
	return nil
}

// ReadFileLimited reads a whole file of at most limit bytes; a longer one
// is an error naming the path and the limit, read no further than limit+1
// bytes.
func ReadFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over the %d byte limit", path, limit)
	}
	return b, nil
}
