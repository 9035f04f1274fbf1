package version

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The pins here and in scripts/versions.sh (which builds the tools) agree.
func TestPinsMatchVersionsSh(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "scripts", "versions.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SPIRE_VERSION=" + SPIRE + "\n", "VAULT_VERSION=" + Vault + "\n", "PROMETHEUS_VERSION=" + Prometheus + "\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("scripts/versions.sh does not say %q", strings.TrimSpace(want))
		}
	}
}

func TestString(t *testing.T) {
	s := String("edgeid")
	for _, want := range []string{"edgeid dev", runtime.Version(), "SPIRE " + SPIRE, "Vault " + Vault} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
}
