// Package atomicfile writes files so that a reader, or a process that
// crashes half-way, never leaves a partial file behind: the data goes to a
// temporary file in the same directory, is flushed to disk, and is then
// renamed over the target, after which the directory itself is flushed.
package atomicfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, created with permission perm. The
// directory holding path must exist. The file never exists with other
// content than either its old one or data, and never with a wider mode
// than perm.
func Write(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	// CreateTemp makes the file 0600; narrow or widen it to perm before any
	// byte is written.
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("atomicfile: close %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	return syncDir(dir)
}

// WriteIfChanged writes data to path like Write, unless path already holds
// exactly data with mode perm. It reports whether it wrote.
func WriteIfChanged(path string, data []byte, perm os.FileMode) (bool, error) {
	if info, err := os.Stat(path); err == nil && info.Mode().Perm() == perm {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			return false, nil
		}
	}
	if err := Write(path, data, perm); err != nil {
		return false, err
	}
	return true, nil
}

// MkdirAll creates dir and its parents with mode perm, and makes sure dir
// itself ends up with exactly perm even when it existed already.
func MkdirAll(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if info.Mode().Perm() != perm {
		if err := os.Chmod(dir, perm); err != nil {
			return fmt.Errorf("atomicfile: %w", err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync directory %s: %w", dir, err)
	}
	return nil
}
