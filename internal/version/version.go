// Package version names this build of edgeid and the third-party programs
// it was built for. scripts/versions.sh holds the same pins for the
// scripts and the tool builds; a test keeps the two in step.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Pinned versions of the third-party programs edgeid runs and tests with.
const (
	SPIRE      = "v1.13.3"
	Vault      = "v1.21.0"
	Prometheus = "v3.16.0"
)

// Version is edgeid's version, set at link time
// (-ldflags "-X github.com/edgeid/edgeid/internal/version.Version=v0.3.0");
// a build without it reports "dev" and its VCS revision.
var Version = "dev"

// String is the one-line answer of every edgeid program's `version`:
// the program, edgeid's version (with the VCS revision of a dev build),
// the Go version, and the SPIRE and Vault versions it was built for.
func String(program string) string {
	v := Version
	if v == "dev" {
		if rev := revision(); rev != "" {
			v += "+" + rev
		}
	}
	return fmt.Sprintf("%s %s (%s, %s/%s) for SPIRE %s and Vault %s", program, v, runtime.Version(), runtime.GOOS, runtime.GOARCH, SPIRE, Vault)
}

// revision is the VCS revision the binary was built from (12 hex digits,
// "-dirty" with local changes), when the build recorded one.
func revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}
