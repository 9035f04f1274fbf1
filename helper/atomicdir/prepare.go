package atomicdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// shape is what Prepare needs to know of a file: its mode and its size.
type shape struct {
	mode fs.FileMode
	size int64
}

// Prepare makes the directory of the next version ahead of time: a version
// directory holding, for each name of the last Write, a file of the same
// size filled with zeros (never key material), with its mode, all synced.
// The next Write with the same names then only overwrites data: a file
// whose size did not change (a key or a bundle usually keeps its size) is
// made durable with fdatasync, since neither its blocks nor its size
// change, and no directory needs a sync. That takes most of a durable
// rotation's cost off its critical path. Call it after Settle, in a
// long-running writer; a one-shot writer has no use for it. The prepared
// directory is named when it is made, and a later process removes it on
// its first Write if this one never used it.
func (w *Writer) Prepare() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.prepared != "" || len(w.lastSet) == 0 {
		return nil
	}
	// The errors below already name the package and the step.
	preparing := func(err error) error { return fmt.Errorf("%w (preparing the next version)", err) }
	version, vdir, err := w.makeVersionDir()
	if err != nil {
		return preparing(err)
	}
	opened := make([]pending, 0, len(w.lastSet))
	for name, sh := range w.lastSet {
		f, err := writeOne(vdir, File{Name: name, Data: make([]byte, sh.size), Mode: sh.mode}, w.umask)
		if f != nil {
			opened = append(opened, pending{f: f})
		}
		if err != nil {
			closeAll(opened)
			_ = os.RemoveAll(vdir)
			return preparing(err)
		}
	}
	if err := w.syncAll(opened, vdir, filepath.Dir(vdir)); err != nil {
		_ = os.RemoveAll(vdir)
		return preparing(err)
	}
	w.prepared = version
	w.preparedFiles = w.lastSet
	return nil
}

// errNotPrepared means the prepared version does not fit a Write.
var errNotPrepared = errors.New("atomicdir: prepared version does not fit")

// fillPrepared writes files into the prepared version directory and syncs
// them. It fails when the names differ from the prepared ones or a
// prepared file no longer has the size it was made with.
func (w *Writer) fillPrepared(version string, files []File) error {
	if len(files) != len(w.preparedFiles) {
		return errNotPrepared
	}
	for _, file := range files {
		if _, ok := w.preparedFiles[file.Name]; !ok {
			return errNotPrepared
		}
	}
	vdir := filepath.Join(w.dir, VersionsDir, version)
	opened := make([]pending, 0, len(files))
	for _, file := range files {
		p, err := fillOne(vdir, file, w.preparedFiles[file.Name].size)
		if p.f != nil {
			opened = append(opened, p)
		}
		if err != nil {
			closeAll(opened)
			return err
		}
	}
	return w.syncAll(opened)
}

// fillOne overwrites one prepared file of the given size with file's data,
// setting its mode when it changed.
func fillOne(vdir string, file File, size int64) (pending, error) {
	f, err := os.OpenFile(filepath.Join(vdir, file.Name), os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return pending{}, err
	}
	p := pending{f: f}
	st, err := f.Stat()
	if err != nil {
		return p, err
	}
	if !st.Mode().IsRegular() || st.Size() != size {
		return p, errNotPrepared
	}
	chmod := st.Mode().Perm() != file.Mode.Perm()
	if chmod {
		if err := f.Chmod(file.Mode.Perm()); err != nil {
			return p, err
		}
	}
	if int64(len(file.Data)) != size {
		if err := f.Truncate(int64(len(file.Data))); err != nil {
			return p, err
		}
	}
	// Same size and mode, blocks already allocated: only data changes.
	p.dataOnly = int64(len(file.Data)) == size && !chmod
	if _, err := f.WriteAt(file.Data, 0); err != nil {
		return p, err
	}
	return p, nil
}

// shapeOf returns the mode and size of each file of a set.
func shapeOf(files []File) map[string]shape {
	m := make(map[string]shape, len(files))
	for _, f := range files {
		m[f.Name] = shape{mode: f.Mode, size: int64(len(f.Data))}
	}
	return m
}
