package monitoring

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/test/harness"
)

// TestAlertRules: promtool accepts conf/prometheus/alerts.yml, and its unit
// tests pass; every rule has a test that shows it firing and one that shows
// it silent.
func TestAlertRules(t *testing.T) {
	promtool := harness.PromtoolBin(t)
	dir := filepath.Join(harness.RepoRoot(t), "conf", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(dir, "alerts.yml")},
		{"test", "rules", filepath.Join(dir, "alerts_test.yml")},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
		}
	}
	rules, err := os.ReadFile(filepath.Join(dir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(dir, "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(rules), -1)
	if len(names) < 8 {
		t.Fatalf("alerts.yml has %d rules, want the 8 edgeid ships", len(names))
	}
	for _, n := range names {
		silent := regexp.MustCompile(`alertname: ` + n[1] + `\s+exp_alerts: \[\]`)
		firing := regexp.MustCompile(`alertname: ` + n[1] + `\s+exp_alerts:\s+- exp_labels`)
		if !silent.Match(tests) || !firing.Match(tests) {
			t.Errorf("alert %s lacks a test that shows it silent and one that shows it firing", n[1])
		}
	}
}
