package deepstream

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgeid/edgeid/helper/holdexec"
)

// TestAttestHeldChildRealProc runs the trust model's main path on the real
// /proc: this test process launches an app held at exec (as edgeid-helper
// does) and is attested; the plugin must see the held child as the app.
func TestAttestHeldChildRealProc(t *testing.T) {
	dir := t.TempDir()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("sleep not found: %v", err)
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(dir, "deepstream-test5-app")
	if err := os.WriteFile(app, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join("testdata", "test5_kafka.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "test5.txt"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(app, "-c", "test5.txt")
	cmd.Dir = dir
	held, err := holdexec.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = held.Kill()
		_ = cmd.Wait()
	})

	exeSum := sha256.Sum256(data)
	cfgSum := sha256.Sum256(cfg)
	want := []string{
		"app:deepstream-test5-app",
		"broker:kafka.example.org:9093",
		"config_path:" + filepath.Join(dir, "test5.txt"),
		"config_sha256:" + hex.EncodeToString(cfgSum[:]),
		"exe_sha256:" + hex.EncodeToString(exeSum[:]),
		"proto:kafka",
		"publish_topic:detections",
		"subscribe_topic:site-a-commands",
		"subscribe_topic:site-a-config",
	}
	tp := loadPlugin(t, "/proc", "")
	got := tp.attest(t, os.Getpid())
	// container_id depends on where the test runs; everything else is fixed.
	got = slices.DeleteFunc(got, func(s string) bool { return len(s) > 13 && s[:13] == "container_id:" })
	assertSelectors(t, got, want)
	assertSelectors(t, tp.attest(t, held.Pid()), got)

	t.Run("no children considered at depth 0", func(t *testing.T) {
		assertSelectors(t, loadPlugin(t, "/proc", "child_depth = 0").attest(t, os.Getpid()), nil)
	})
}
