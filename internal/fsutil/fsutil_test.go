package fsutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileAtomicReplacesWithMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "new" || st.Mode().Perm() != 0o600 {
		t.Fatalf("got %q mode %v, want \"new\" 0600", data, st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	// A write that cannot land leaves the old file whole.
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), []byte("y"), 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestReadFileLimited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFileLimited(path, 5); err != nil || string(b) != "12345" {
		t.Fatalf("at the limit: %q, %v", b, err)
	}
	if _, err := ReadFileLimited(path, 4); err == nil || !strings.Contains(err.Error(), "over the 4 byte limit") {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := ReadFileLimited(filepath.Join(t.TempDir(), "none"), 4); !os.IsNotExist(err) {
		t.Fatalf("missing file: %v, want a not-exist error", err)
	}
}

func TestWriteIfChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	for i, tc := range []struct {
		data string
		mode os.FileMode
		want bool
	}{
		{"a", 0o600, true},
		{"a", 0o600, false},
		{"a", 0o644, true},
		{"b", 0o644, true},
		{"b", 0o644, false},
	} {
		wrote, err := WriteIfChanged(path, []byte(tc.data), tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		if wrote != tc.want {
			t.Fatalf("write %d: wrote = %v, want %v", i, wrote, tc.want)
		}
	}
}

func TestMkdirAll(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "a", "b", "c")
	if err := MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b"), dir} {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v, %v", d, st, err)
		}
	}
	// An existing directory keeps its mode.
	if err := MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(base); st.Mode().Perm() != 0o711 {
		t.Fatalf("existing directory's mode changed to %v", st.Mode().Perm())
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(file, "sub"), 0o700); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("MkdirAll below a file: %v", err)
	}
}

func TestMkdirAllModeFixesMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAllMode(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v, %v; want 0700", st.Mode().Perm(), err)
	}
}

func TestWriteFileAtomicMkdir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x", "y", "f")
	if err := WriteFileAtomicMkdir(path, []byte("z"), 0o640, Keep); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	st, _ := os.Stat(path)
	if err != nil || string(data) != "z" || st.Mode().Perm() != 0o640 {
		t.Fatalf("got %q mode %v, %v", data, st.Mode().Perm(), err)
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm()&0o700 != 0o700 {
		t.Fatalf("directory mode %v", st.Mode().Perm())
	}
}
