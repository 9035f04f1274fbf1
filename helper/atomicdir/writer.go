package atomicdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"
	"golang.org/x/sys/unix"
)

// DataLink is the name of the symlink that points at the current version.
const DataLink = "..data"

// VersionsDir is the directory, inside the target directory, that holds the
// version directories. Keeping them there means that the only change a
// rotation makes to the target directory itself is the "..data" rename, so
// a consumer that watches the target directory wakes up after the swap,
// not while the new version is being written.
const VersionsDir = "..versions"

const (
	versionPrefix = ".."
	tmpLinkSuffix = "_tmp"
	dirMode       = 0o755
)

// File is one file of a set.
type File struct {
	// Name is a plain file name: no directory separators, and it must not
	// start with "..".
	Name string
	// Data is the full content of the file.
	Data []byte
	// Mode is the permission the file gets on every write.
	Mode fs.FileMode
}

// Writer publishes file sets into one directory. It is safe for concurrent
// use; writes are serialised.
type Writer struct {
	dir   string
	hooks hooks
	// loaded is set once the state on disk was read.
	loaded bool
	// current and previous are the versions "..data" points at and
	// pointed at before the last Write.
	current, previous string
	// linked holds the public names already linked into "..data".
	linked map[string]bool
	// unsettled is set between a swap and the directory fsync.
	unsettled bool
	// umask is the process umask when known, else 0o777 (always chmod).
	umask fs.FileMode
	// durable is false on a memory file system (tmpfs, ramfs), where
	// fsync has nothing to make durable and is skipped.
	durable bool
	// prepared is the version directory Prepare made for the next Write,
	// "" when there is none; preparedFiles are the files in it.
	prepared      string
	preparedFiles map[string]shape
	// lastSet holds the shape of each file of the last Write, for Prepare.
	lastSet map[string]shape

	mu sync.Mutex
}

// hooks are the OS calls tests replace to simulate crashes.
type hooks struct {
	now func() time.Time
	// syncFile fsyncs a file, or only its data (fdatasync) when
	// dataOnly is set.
	syncFile func(f *os.File, dataOnly bool) error
	syncDir  func(string) error
	// beforeSwap runs after the new version is complete and synced, before
	// "..data" moves. Tests use it to crash mid-rotation.
	beforeSwap func(version string) error
}

// New returns a Writer for dir, creating dir (mode 0755) when it is missing.
// It reads the process umask once, to skip the chmod a file does not need.
func New(dir string) (*Writer, error) {
	if dir == "" {
		return nil, errors.New("atomicdir: directory is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("atomicdir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(abs, VersionsDir), dirMode); err != nil {
		return nil, fmt.Errorf("atomicdir: create directory: %w", err)
	}
	w := &Writer{
		dir:     abs,
		umask:   readUmask(),
		durable: !inMemory(abs),
		hooks: hooks{
			now:        time.Now,
			syncFile:   syncFile,
			syncDir:    fsutil.SyncDir,
			beforeSwap: func(string) error { return nil },
		},
	}
	return w, nil
}

// Dir returns the absolute target directory.
func (w *Writer) Dir() string { return w.dir }

// Path returns the user-visible path of a file name.
func (w *Writer) Path(name string) string { return filepath.Join(w.dir, name) }

// Write publishes files as one new version and returns the version's
// directory name. Either every file changes or none does. When Write
// returns, readers see the new version; call Settle afterwards (once the
// consumers were told) to make the swap durable and remove old versions.
func (w *Writer) Write(files []File) (string, error) {
	if err := validate(files); err != nil {
		return "", err
	}
	w.mu.Lock()
	defer w.mu.Unlock()

	if !w.loaded {
		// First write of this process: pick up the state on disk and
		// remove what an interrupted earlier process left behind.
		w.current = w.readCurrent()
		w.prune(w.current)
		w.loaded = true
	}
	previous := w.current

	version, err := w.writeVersion(files)
	if err != nil {
		return "", err
	}
	if err := w.hooks.beforeSwap(version); err != nil {
		return "", err
	}
	if err := w.swap(version); err != nil {
		_ = os.RemoveAll(filepath.Join(w.dir, VersionsDir, version))
		return "", err
	}
	w.current, w.previous = version, previous
	w.unsettled = true
	w.lastSet = shapeOf(files)
	if err := w.linkNames(files); err != nil {
		return version, err
	}
	return version, nil
}

// Settle fsyncs the target directory, which makes the last swap durable,
// and removes every version except the current one and the one before it
// (kept for readers that resolved "..data" just before it moved). Until
// Settle runs, a power loss may bring back the previous version, which is
// complete; Write leaves this work for later so that a rotation reaches its
// readers sooner.
func (w *Writer) Settle() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	if w.unsettled && w.durable {
		if err = w.hooks.syncDir(w.dir); err != nil {
			err = fmt.Errorf("atomicdir: sync directory: %w", err)
		} else {
			w.unsettled = false
		}
	}
	if !w.durable {
		w.unsettled = false
	}
	w.prune(w.current, w.previous, w.prepared)
	return err
}

// writeVersion creates the versioned directory and its files, all synced.
// When Prepare made a directory for exactly these names, only the data is
// written and synced: the directory entries are durable already.
func (w *Writer) writeVersion(files []File) (string, error) {
	if version := w.prepared; version != "" {
		w.prepared = ""
		if err := w.fillPrepared(version, files); err == nil {
			return version, nil
		}
		// The prepared version is only a shortcut: on any surprise in it,
		// write the version from scratch (which reports a real failure).
		_ = os.RemoveAll(filepath.Join(w.dir, VersionsDir, version))
	}
	version, vdir, err := w.makeVersionDir()
	if err != nil {
		return "", err
	}
	opened := make([]pending, 0, len(files))
	for _, file := range files {
		f, err := writeOne(vdir, file, w.umask)
		if f != nil {
			opened = append(opened, pending{f: f})
		}
		if err != nil {
			closeAll(opened)
			_ = os.RemoveAll(vdir)
			return "", err
		}
	}
	// The version directory's entries, and its own entry in VersionsDir,
	// are synced alongside the files.
	if err := w.syncAll(opened, vdir, filepath.Dir(vdir)); err != nil {
		_ = os.RemoveAll(vdir)
		return "", err
	}
	return version, nil
}

// makeVersionDir creates a new, empty version directory.
func (w *Writer) makeVersionDir() (version, vdir string, err error) {
	version, err = w.newVersionName()
	if err != nil {
		return "", "", err
	}
	vdir = filepath.Join(w.dir, VersionsDir, version)
	if err := os.Mkdir(vdir, dirMode); err != nil {
		return "", "", fmt.Errorf("atomicdir: create version directory: %w", err)
	}
	if dirMode&w.umask != 0 {
		if err := os.Chmod(vdir, dirMode); err != nil {
			_ = os.RemoveAll(vdir)
			return "", "", fmt.Errorf("atomicdir: chmod version directory: %w", err)
		}
	}
	return version, vdir, nil
}

// pending is a written file waiting for its sync; dataOnly means its size
// and blocks did not change, so fdatasync makes it durable.
type pending struct {
	f        *os.File
	dataOnly bool
}

// syncAll fsyncs files and directories concurrently, then closes the files.
// On a disk file system the writeback of every file starts first, so that
// the device sees all the data before the first flush.
func (w *Writer) syncAll(opened []pending, dirs ...string) error {
	if !w.durable {
		closeAll(opened)
		return nil
	}
	for _, p := range opened {
		// Only a head start; the fsync below is what counts.
		_ = unix.SyncFileRange(int(p.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	errs := make([]error, len(opened)+len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Go(func() {
			if err := w.hooks.syncDir(d); err != nil {
				errs[len(opened)+i] = fmt.Errorf("atomicdir: sync %s: %w", filepath.Base(d), err)
			}
		})
	}
	for i, p := range opened {
		wg.Go(func() {
			if err := w.hooks.syncFile(p.f, p.dataOnly); err != nil {
				errs[i] = fmt.Errorf("atomicdir: sync %s: %w", filepath.Base(p.f.Name()), err)
			}
		})
	}
	wg.Wait()
	closeAll(opened)
	return errors.Join(errs...)
}

func closeAll(files []pending) {
	for _, p := range files {
		_ = p.f.Close()
	}
}

func syncFile(f *os.File, dataOnly bool) error {
	if dataOnly {
		return ignoringEINTR(func() error { return unix.Fdatasync(int(f.Fd())) })
	}
	return f.Sync()
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// writeOne creates one file with an exact mode and writes its data. The
// caller syncs and closes the returned file.
func writeOne(vdir string, file File, umask fs.FileMode) (*os.File, error) {
	path := filepath.Join(vdir, file.Name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, file.Mode.Perm())
	if err != nil {
		return nil, fmt.Errorf("atomicdir: create %s: %w", file.Name, err)
	}
	// The umask may have cleared bits; then set the mode explicitly.
	if file.Mode.Perm()&umask != 0 {
		if err := f.Chmod(file.Mode.Perm()); err != nil {
			return f, fmt.Errorf("atomicdir: chmod %s: %w", file.Name, err)
		}
	}
	if len(file.Data) > 0 {
		if _, err := f.Write(file.Data); err != nil {
			return f, fmt.Errorf("atomicdir: write %s: %w", file.Name, err)
		}
	}
	return f, nil
}

// swap points "..data" at version with one rename.
func (w *Writer) swap(version string) error {
	// The new link is made inside VersionsDir and renamed across, so the
	// target directory sees one event: "..data" replaced.
	tmp := filepath.Join(w.dir, VersionsDir, DataLink+tmpLinkSuffix)
	target := filepath.Join(VersionsDir, version)
	if err := os.Symlink(target, tmp); err != nil {
		// A crashed write may have left the temporary link.
		_ = os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			return fmt.Errorf("atomicdir: create data link: %w", err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, DataLink)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("atomicdir: swap data link: %w", err)
	}
	return nil
}

// linkNames makes every user-visible name a symlink into "..data",
// replacing a regular file of the same name in one rename, and removes the
// links of names that left the set. Names linked earlier by this Writer
// are not checked again.
func (w *Writer) linkNames(files []File) error {
	want := make(map[string]bool, len(files))
	if w.linked == nil {
		// First write of this process: adopt the links an earlier process
		// made, so that names no longer in the set are removed below.
		w.linked = map[string]bool{}
		if entries, err := os.ReadDir(w.dir); err == nil {
			for _, e := range entries {
				if e.Type()&fs.ModeSymlink == 0 || e.Name() == DataLink {
					continue
				}
				if cur, err := os.Readlink(filepath.Join(w.dir, e.Name())); err == nil && cur == filepath.Join(DataLink, e.Name()) {
					w.linked[e.Name()] = false
				}
			}
		}
	}
	for _, file := range files {
		want[file.Name] = true
		if w.linked[file.Name] {
			continue
		}
		// Adopted links (false) are checked once like new names.
		target := filepath.Join(DataLink, file.Name)
		path := filepath.Join(w.dir, file.Name)
		if cur, err := os.Readlink(path); err != nil || cur != target {
			tmp := path + ".." + tmpLinkSuffix
			_ = os.Remove(tmp)
			if err := os.Symlink(target, tmp); err != nil {
				return fmt.Errorf("atomicdir: link %s: %w", file.Name, err)
			}
			if err := os.Rename(tmp, path); err != nil {
				_ = os.Remove(tmp)
				return fmt.Errorf("atomicdir: link %s: %w", file.Name, err)
			}
		}
		w.linked[file.Name] = true
	}
	for name := range w.linked {
		if want[name] {
			continue
		}
		path := filepath.Join(w.dir, name)
		if cur, err := os.Readlink(path); err == nil && cur == filepath.Join(DataLink, name) {
			_ = os.Remove(path)
		}
		delete(w.linked, name)
	}
	return nil
}

// prune removes every version except those in keep, including the
// leftovers of an interrupted write or of another process's Prepare. The
// version before the current one stays for readers that resolved "..data"
// just before it moved.
func (w *Writer) prune(keep ...string) {
	root := filepath.Join(w.dir, VersionsDir)
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !isVersionName(name) || slices.Contains(keep, name) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(root, name))
	}
}

// Current returns the version "..data" points at, or "" when none exists.
func (w *Writer) Current() string { return w.readCurrent() }

func (w *Writer) readCurrent() string {
	v, err := os.Readlink(filepath.Join(w.dir, DataLink))
	if err != nil {
		return ""
	}
	return filepath.Base(v)
}

// readUmask reads the process umask from /proc without changing it (the
// umask(2) call would, for a moment, for every goroutine). When it cannot
// be read every file gets an explicit chmod.
func readUmask() fs.FileMode {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return 0o777
			}
			return fs.FileMode(m)
		}
	}
	return 0o777
}

// inMemory reports whether dir is on tmpfs or ramfs, where nothing
// survives a power loss and fsync only costs time.
func inMemory(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}
