package atomicdir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func set(v int) []File {
	// "cert" and "key" carry the same version; "big" is large enough that a
	// torn read would show as a short or mixed file.
	return []File{
		{Name: "cert.pem", Data: []byte(fmt.Sprintf("cert-%06d", v)), Mode: 0o644},
		{Name: "key.pem", Data: []byte(fmt.Sprintf("key-%06d", v)), Mode: 0o600},
		{Name: "big.bin", Data: bytes.Repeat([]byte(fmt.Sprintf("%06d", v)), 20000), Mode: 0o644},
	}
}

func TestWriteLayoutAndModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "certs")
	w, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 3; v++ {
		if _, err := w.Write(set(v)); err != nil {
			t.Fatalf("write %d: %v", v, err)
		}
		if err := w.Settle(); err != nil {
			t.Fatal(err)
		}
		for _, f := range set(v) {
			got, err := os.ReadFile(filepath.Join(dir, f.Name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, f.Data) {
				t.Fatalf("%s: content of version %d not published", f.Name, v)
			}
			st, err := os.Stat(filepath.Join(dir, f.Name))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != f.Mode {
				t.Fatalf("%s: mode %v, want %v (umask must not matter)", f.Name, st.Mode().Perm(), f.Mode)
			}
		}
	}
	// Current and previous versions only.
	entries, _ := os.ReadDir(filepath.Join(dir, VersionsDir))
	versions := 0
	for _, e := range entries {
		if isVersionName(e.Name()) {
			versions++
		}
	}
	if versions != 2 {
		t.Fatalf("%d version directories on disk, want 2 (current + previous)", versions)
	}
}

func TestWriteReplacesRegularFilesAndRemovesDroppedNames(t *testing.T) {
	dir := t.TempDir()
	// A file left by another tool, with a wrong mode.
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte("old"), 0o666); err != nil {
		t.Fatal(err)
	}
	w, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(set(1)); err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(filepath.Join(dir, "key.pem"))
	if err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("key.pem is not a link into ..data: %v %v", st, err)
	}
	st, _ = os.Stat(filepath.Join(dir, "key.pem"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := w.Write(set(2)[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "big.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("big.bin still present after it left the set: %v", err)
	}
}

func TestValidateNames(t *testing.T) {
	w, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"a/b", "path separator"},
		{"..data", `must not start with ".."`},
		{"", "invalid file name"},
	} {
		_, err := w.Write([]File{{Name: tc.name, Data: []byte("x"), Mode: 0o644}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("name %q: error %v, want %q", tc.name, err, tc.want)
		}
	}
	_, err = w.Write([]File{{Name: "a", Mode: 0o644}, {Name: "a", Mode: 0o644}})
	if err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("duplicate: %v", err)
	}
}

// TestConcurrentReader checks the guarantee under load: a reader that
// resolves ..data once never sees files from two versions, and a reader of
// single files never sees a torn file.
func TestConcurrentReader(t *testing.T) {
	dir := t.TempDir()
	w, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(set(0)); err != nil {
		t.Fatal(err)
	}
	var (
		stop                  atomic.Bool
		reads, mismatch, torn atomic.Int64
		wg                    sync.WaitGroup
	)
	check := func(files map[string][]byte) {
		c := strings.TrimPrefix(string(files["cert.pem"]), "cert-")
		k := strings.TrimPrefix(string(files["key.pem"]), "key-")
		if c != k {
			mismatch.Add(1)
		}
		if b, ok := files["big.bin"]; ok && !bytes.Equal(b, bytes.Repeat(b[:6], 20000)) {
			torn.Add(1)
		}
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(20 * time.Second)
			for !stop.Load() && time.Now().Before(deadline) {
				files, err := Snapshot(dir, "cert.pem", "key.pem", "big.bin")
				if err != nil {
					t.Logf("snapshot: %v", err)
					torn.Add(1)
					continue
				}
				check(files)
				// Single-file reads through the public names.
				b, err := os.ReadFile(filepath.Join(dir, "big.bin"))
				if err != nil || len(b) != 120000 || !bytes.Equal(b, bytes.Repeat(b[:6], 20000)) {
					t.Logf("read: %v len %d", err, len(b))
					torn.Add(1)
				}
				reads.Add(1)
			}
		}()
	}
	// Real rotations are seconds apart; a short pause keeps a descheduled
	// reader within the one-previous-version grace the writer keeps.
	for v := 1; v <= 150; v++ {
		if _, err := w.Write(set(v)); err != nil {
			t.Fatal(err)
		}
		if err := w.Settle(); err != nil {
			t.Fatal(err)
		}
		// Half of the versions go through a prepared directory.
		if v%2 == 0 {
			if err := w.Prepare(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads across 150 versions", reads.Load())
	if reads.Load() < 200 {
		t.Fatalf("only %d reads", reads.Load())
	}
	if mismatch.Load() != 0 || torn.Load() != 0 {
		t.Fatalf("%d mismatched and %d torn reads", mismatch.Load(), torn.Load())
	}
}

// TestCrashBeforeSwapKeepsPreviousSet simulates a kill after the new version
// is written but before ..data moves, then a restart writing again.
func TestCrashBeforeSwapKeepsPreviousSet(t *testing.T) {
	dir := t.TempDir()
	w, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(set(1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Prepare(); err != nil {
		t.Fatal(err)
	}
	crash := errors.New("killed")
	w.hooks.beforeSwap = func(string) error { return crash }
	if _, err := w.Write(set(2)); !errors.Is(err, crash) {
		t.Fatalf("want simulated crash, got %v", err)
	}
	files, err := Snapshot(dir, "cert.pem", "key.pem")
	if err != nil {
		t.Fatal(err)
	}
	if string(files["cert.pem"]) != "cert-000001" || string(files["key.pem"]) != "key-000001" {
		t.Fatalf("after crash the set is %q/%q, want version 1", files["cert.pem"], files["key.pem"])
	}
	// A new process (new Writer) cleans the leftover and publishes.
	w2, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Write(set(3)); err != nil {
		t.Fatal(err)
	}
	if err := w2.Settle(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, VersionsDir))
	versions := 0
	for _, e := range entries {
		if isVersionName(e.Name()) {
			versions++
		}
	}
	if versions != 2 {
		t.Fatalf("%d versions after restart, want 2 (leftover removed)", versions)
	}
}

func TestWriteFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "jwt.token")
	for _, data := range []string{"one", "two"} {
		if err := WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if string(got) != data {
			t.Fatalf("got %q", got)
		}
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
}

func TestRestartRemovesLinksOfDroppedNames(t *testing.T) {
	dir := t.TempDir()
	w, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(set(1)); err != nil {
		t.Fatal(err)
	}
	w2, _ := New(dir)
	if _, err := w2.Write(set(2)[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "big.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("link of a dropped name survived a restart: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "cert.pem")); string(got) != "cert-000002" {
		t.Fatalf("cert.pem %q", got)
	}
}
