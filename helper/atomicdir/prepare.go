package atomicdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Prepare makes the directory of the next version ahead of time: a version
// directory holding an empty file for each name of the last Write, with its
// mode, all synced. The next Write with the same names then only writes and
// fsyncs the data, which takes the directory updates and their fsyncs (most
// of a rotation's cost on a disk file system) off the rotation's critical
// path. Call it after Settle, in a long-running writer; a one-shot writer
// has no use for it. The prepared directory is named when it is made, and a
// later process removes it on its first Write if this one never used it.
func (w *Writer) Prepare() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.prepared != "" || len(w.lastSet) == 0 {
		return nil
	}
	version, vdir, err := w.makeVersionDir()
	if err != nil {
		return fmt.Errorf("atomicdir: prepare: %w", err)
	}
	opened := make([]*os.File, 0, len(w.lastSet))
	for name, mode := range w.lastSet {
		f, err := writeOne(vdir, File{Name: name, Mode: mode}, w.umask)
		if f != nil {
			opened = append(opened, f)
		}
		if err != nil {
			closeAll(opened)
			_ = os.RemoveAll(vdir)
			return fmt.Errorf("atomicdir: prepare: %w", err)
		}
	}
	if err := w.syncAll(opened, vdir, filepath.Dir(vdir)); err != nil {
		_ = os.RemoveAll(vdir)
		return fmt.Errorf("atomicdir: prepare: %w", err)
	}
	w.prepared = version
	w.preparedNames = w.lastSet
	return nil
}

// errNotPrepared means the prepared version does not fit a Write.
var errNotPrepared = errors.New("atomicdir: prepared version does not fit")

// fillPrepared writes files into the prepared version directory and syncs
// them. It fails when the names differ from the prepared ones or a prepared
// file is no longer an empty regular file.
func (w *Writer) fillPrepared(version string, files []File) error {
	if len(files) != len(w.preparedNames) {
		return errNotPrepared
	}
	for _, file := range files {
		if _, ok := w.preparedNames[file.Name]; !ok {
			return errNotPrepared
		}
	}
	vdir := filepath.Join(w.dir, VersionsDir, version)
	opened := make([]*os.File, 0, len(files))
	for _, file := range files {
		f, err := fillOne(vdir, file)
		if f != nil {
			opened = append(opened, f)
		}
		if err != nil {
			closeAll(opened)
			return err
		}
	}
	return w.syncAll(opened)
}

// fillOne writes one prepared file, setting its mode when it changed.
func fillOne(vdir string, file File) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(vdir, file.Name), os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return f, err
	}
	if !st.Mode().IsRegular() || st.Size() != 0 {
		return f, errNotPrepared
	}
	if st.Mode().Perm() != file.Mode.Perm() {
		if err := f.Chmod(file.Mode.Perm()); err != nil {
			return f, err
		}
	}
	if _, err := f.Write(file.Data); err != nil {
		return f, err
	}
	return f, nil
}

// setOf returns the names and modes of a file set.
func setOf(files []File) map[string]fs.FileMode {
	m := make(map[string]fs.FileMode, len(files))
	for _, f := range files {
		m[f.Name] = f.Mode
	}
	return m
}
