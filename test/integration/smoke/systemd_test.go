package smoke

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/test/harness"
)

// TestDeployUnitVerifies renders the systemd unit deploy-cloud.sh and
// deploy-edge.sh install, and checks it with systemd-analyze verify (systemd
// is not PID 1 here, so the unit cannot be started: verify is the closest
// check). The unit must carry the hardening the README promises.
func TestDeployUnitVerifies(t *testing.T) {
	analyze := harness.RequireCommand(t, "systemd-analyze")
	root := harness.RepoRoot(t)
	bin := harness.BuildEdgeidBinDir(t)
	dir := t.TempDir()
	for _, role := range []string{"cloud", "edge"} {
		host := map[string]string{"cloud": "cloud", "edge": "edge-a-1"}[role]
		env := filepath.Join(dir, role+".env")
		content := strings.Join([]string{
			"EDGEID_TOPOLOGY=" + filepath.Join(root, "conf", "topology.hcl"),
			"EDGEID_HOST=" + host,
			"EDGEID_ROOT=" + filepath.Join(dir, "state"),
			"EDGEID_BIN_DIR=" + bin,
			"EDGEID_TRUST_BUNDLE=" + filepath.Join(dir, "trust-bundle.pem"),
		}, "\n") + "\n"
		if err := os.WriteFile(env, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(filepath.Join(root, "scripts", "deploy-"+role+".sh"), "--unit", env).Output()
		if err != nil {
			t.Fatalf("deploy-%s.sh --unit: %v", role, err)
		}
		unit := filepath.Join(dir, "edgeid-"+host+".service")
		if err := os.WriteFile(unit, out, 0o644); err != nil {
			t.Fatal(err)
		}
		msg, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
		t.Logf("systemd-analyze verify %s:\n%s", filepath.Base(unit), msg)
		if err != nil {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, msg)
		}
		if strings.Contains(string(msg), filepath.Base(unit)) {
			t.Errorf("systemd-analyze reports on the unit itself:\n%s", msg)
		}
		for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=" + filepath.Join(dir, "state"),
			"PrivateTmp=yes", "CapabilityBoundingSet=CAP_SETUID CAP_SETGID", "CAP_SYS_PTRACE"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("the %s unit lacks %q:\n%s", role, want, out)
			}
		}
	}
}
