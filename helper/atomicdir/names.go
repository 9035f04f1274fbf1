package atomicdir

// Names of versions and of the files in a set.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// newVersionName names a new version directory: its time, then random
// bytes, so that two writers never pick the same name.
func (w *Writer) newVersionName() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("atomicdir: %w", err)
	}
	ts := w.hooks.now().UTC().Format("2006_01_02_15_04_05.000000000")
	return versionPrefix + ts + "_" + hex.EncodeToString(b[:]), nil
}

func isVersionName(name string) bool {
	return strings.HasPrefix(name, versionPrefix) && name != DataLink &&
		len(name) > len(versionPrefix) && name[len(versionPrefix)] >= '0' && name[len(versionPrefix)] <= '9'
}

func validate(files []File) error {
	if len(files) == 0 {
		return errors.New("atomicdir: no files to write")
	}
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		switch {
		case f.Name == "" || f.Name == "." || f.Name == "..":
			return fmt.Errorf("atomicdir: invalid file name %q", f.Name)
		case strings.ContainsAny(f.Name, `/\`):
			return fmt.Errorf("atomicdir: file name %q must not contain a path separator", f.Name)
		case strings.HasPrefix(f.Name, ".."):
			return fmt.Errorf("atomicdir: file name %q must not start with \"..\"", f.Name)
		case seen[f.Name]:
			return fmt.Errorf("atomicdir: file name %q given twice", f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}
