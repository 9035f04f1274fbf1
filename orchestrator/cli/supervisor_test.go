package cli

import (
	"slices"
	"testing"
)

// TestSuperviseArgs: up's flags are passed on less -supervise in each
// form; a flag value "supervise" is a value, not the flag.
func TestSuperviseArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"-f", "t.hcl", "--supervise"}, []string{"supervise", "-f", "t.hcl"}},
		{[]string{"-supervise", "--run-dir", "supervise"}, []string{"supervise", "--run-dir", "supervise"}},
		{[]string{"--supervise=true", "--step-timeout", "2m"}, []string{"supervise", "--step-timeout", "2m"}},
		{[]string{"-supervise=1", "--host", "edge-a"}, []string{"supervise", "--host", "edge-a"}},
	} {
		if got := superviseArgs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("superviseArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
