package atomicdir

import (
	"os"
	"sync/atomic"
	"testing"
)

// TestFsyncSkippedOnTmpfs checks that files on a disk file
// system are fsynced before the swap, and that on tmpfs (/dev/shm), where
// nothing survives a power loss, the fsyncs are skipped.
func TestFsyncSkippedOnTmpfs(t *testing.T) {
	files := []File{{Name: "svid.pem", Data: []byte("cert"), Mode: 0o644}, {Name: "svid_key.pem", Data: []byte("key"), Mode: 0o600}}
	count := func(dir string) int {
		w, err := New(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n atomic.Int32 // the files are synced concurrently
		w.hooks.syncFile = func(f *os.File, dataOnly bool) error { n.Add(1); return syncFile(f, dataOnly) }
		if _, err := w.Write(files); err != nil {
			t.Fatal(err)
		}
		if err := w.Settle(); err != nil {
			t.Fatal(err)
		}
		return int(n.Load())
	}
	if !inMemory("/dev/shm") {
		t.Fatal("/dev/shm is not tmpfs on this machine; the test needs it")
	}
	shm, err := os.MkdirTemp("/dev/shm", "atomicdir")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shm)
	if n := count(shm); n != 0 {
		t.Errorf("on tmpfs: %d file fsyncs, want 0", n)
	}
	if disk := t.TempDir(); !inMemory(disk) {
		if n := count(disk); n != len(files) {
			t.Errorf("on %s: %d file fsyncs, want %d", disk, n, len(files))
		}
	}
}
