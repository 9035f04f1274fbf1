package atomicdir

import (
	"bytes"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/edgeid/edgeid/internal/fsutil"
)

// syncCounts counts a Writer's fsyncs.
type syncCounts struct{ files, dataOnly, dirs atomic.Int32 }

// countSyncs makes w count its file (and data-only) and directory fsyncs.
func countSyncs(w *Writer) *syncCounts {
	c := new(syncCounts)
	w.hooks.syncFile = func(f *os.File, dataOnly bool) error {
		c.files.Add(1)
		if dataOnly {
			c.dataOnly.Add(1)
		}
		return syncFile(f, dataOnly)
	}
	w.hooks.syncDir = func(d string) error { c.dirs.Add(1); return fsutil.SyncDir(d) }
	return c
}

// versionDirs lists the version directories on disk.
func versionDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, VersionsDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if isVersionName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func checkPublished(t *testing.T, dir string, files []File) {
	t.Helper()
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.Data) {
			t.Fatalf("%s: %q published, want %q", f.Name, got, f.Data)
		}
		st, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != f.Mode {
			t.Fatalf("%s: mode %v, want %v", f.Name, st.Mode().Perm(), f.Mode)
		}
	}
}

// TestPreparedVersionTakesOnlyDataFsyncs checks that after Prepare the next
// Write uses the prepared directory, syncs only the files' data (no
// directory, and fdatasync for files that kept their size), and publishes
// the right contents and modes whatever the umask.
func TestPreparedVersionTakesOnlyDataFsyncs(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	if inMemory(dir) {
		t.Fatalf("%s is in memory; the test needs a disk file system", dir)
	}
	w, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Prepare(); err != nil {
		t.Fatal(err)
	}
	if n := len(versionDirs(t, dir)); n != 0 {
		t.Fatalf("Prepare before any Write made %d versions, want 0 (nothing to prepare)", n)
	}
	if _, err := w.Write(set(1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Settle(); err != nil {
		t.Fatal(err)
	}
	if err := w.Prepare(); err != nil {
		t.Fatal(err)
	}
	prepared := w.prepared
	if prepared == "" || len(versionDirs(t, dir)) != 2 {
		t.Fatalf("after Prepare: prepared %q, versions %v", prepared, versionDirs(t, dir))
	}
	for _, f := range set(1) {
		st, err := os.Stat(filepath.Join(dir, VersionsDir, prepared, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != int64(len(f.Data)) || st.Mode().Perm() != f.Mode {
			t.Fatalf("prepared %s: size %d mode %v, want %d bytes with %v", f.Name, st.Size(), st.Mode().Perm(), len(f.Data), f.Mode)
		}
		data, err := os.ReadFile(filepath.Join(dir, VersionsDir, prepared, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.Trim(data, "\x00")) != 0 {
			t.Fatalf("prepared %s holds data; it must hold only zeros (never key material)", f.Name)
		}
	}

	c := countSyncs(w)
	version, err := w.Write(set(2))
	if err != nil {
		t.Fatal(err)
	}
	if version != prepared {
		t.Fatalf("Write made version %s, want the prepared %s", version, prepared)
	}
	n := int32(len(set(2)))
	if c.files.Load() != n || c.dataOnly.Load() != n || c.dirs.Load() != 0 {
		t.Fatalf("prepared Write of same-size files: %d file fsyncs (%d data only) and %d directory fsyncs, want %d (%d) and 0",
			c.files.Load(), c.dataOnly.Load(), c.dirs.Load(), n, n)
	}
	checkPublished(t, dir, set(2))
	if err := w.Settle(); err != nil {
		t.Fatal(err)
	}
	if c.dirs.Load() != 1 {
		t.Fatalf("Settle: %d directory fsyncs, want 1", c.dirs.Load())
	}

	// A file that grows or shrinks gets a full fsync (its size changes).
	if err := w.Prepare(); err != nil {
		t.Fatal(err)
	}
	c = countSyncs(w)
	resized := set(3)
	resized[0].Data = append(resized[0].Data, "-longer"...)
	resized[1].Data = resized[1].Data[:3]
	if _, err := w.Write(resized); err != nil {
		t.Fatal(err)
	}
	if c.files.Load() != n || c.dataOnly.Load() != n-2 || c.dirs.Load() != 0 {
		t.Fatalf("prepared Write with two resized files: %d file fsyncs (%d data only) and %d directory fsyncs, want %d (%d) and 0",
			c.files.Load(), c.dataOnly.Load(), c.dirs.Load(), n, n-2)
	}
	checkPublished(t, dir, resized)
}

// TestPreparedVersionThatDoesNotFit checks that a Write whose names or
// modes differ from the prepared ones, or whose prepared files were
// resized behind the writer's back, still publishes exactly what it was
// given.
func TestPreparedVersionThatDoesNotFit(t *testing.T) {
	dir := t.TempDir()
	w, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	write := func(files []File) {
		t.Helper()
		if _, err := w.Write(files); err != nil {
			t.Fatal(err)
		}
		checkPublished(t, dir, files)
		if err := w.Settle(); err != nil {
			t.Fatal(err)
		}
		if err := w.Prepare(); err != nil {
			t.Fatal(err)
		}
	}
	write(set(1))

	// Another mode for one name: the prepared file takes it.
	changed := set(2)
	changed[0].Mode = 0o600
	write(changed)

	// A name fewer: the prepared directory is not used, and goes.
	fewer := set(3)[:2]
	stale := w.prepared
	write(fewer)
	if _, err := os.Stat(filepath.Join(dir, VersionsDir, stale)); !os.IsNotExist(err) {
		t.Fatalf("unused prepared version %s still on disk (%v)", stale, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "big.bin")); !os.IsNotExist(err) {
		t.Fatalf("dropped name still linked (%v)", err)
	}

	// A prepared file someone wrote into: not trusted.
	if err := os.WriteFile(filepath.Join(dir, VersionsDir, w.prepared, "key.pem"), []byte("planted"), 0o600); err != nil {
		t.Fatal(err)
	}
	write(set(4)[:2])

	// Current, previous and the prepared next one; nothing else.
	if n := len(versionDirs(t, dir)); n != 3 {
		t.Fatalf("%d version directories, want 3: %v", n, versionDirs(t, dir))
	}
	// A new process removes the other's prepared directory on its first write.
	w2, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Write(set(5)); err != nil {
		t.Fatal(err)
	}
	if err := w2.Settle(); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, dir, set(5))
	if n := len(versionDirs(t, dir)); n != 2 {
		t.Fatalf("after a restart: %d version directories, want 2: %v", n, versionDirs(t, dir))
	}
}
