package attack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

// A run of `edgeid up` on conf/topology.hcl (two sites, managed Vault, the
// demo broker), as `make demo` starts it.
type demoRun struct {
	t      *testing.T
	bin    string
	runDir string
	common []string
}

func startDemo(t *testing.T, extra ...string) *demoRun {
	t.Helper()
	harness.SpireServerBin(t)
	harness.VaultBin(t)
	harness.RequireCommand(t, "kcat")
	d := &demoRun{t: t, bin: harness.BuildEdgeidBinDir(t), runDir: harness.ShortTempDir(t)}
	d.common = append([]string{"-f", filepath.Join(harness.RepoRoot(t), "conf", "topology.hcl"), "--run-dir", d.runDir, "--bin-dir", d.bin}, extra...)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(d.runDir, "*", "logs", "*.log"))
			for _, l := range logs {
				data, _ := os.ReadFile(l)
				lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
				t.Logf("---- %s ----\n%s", l, strings.Join(lines[max(0, len(lines)-20):], "\n"))
			}
		}
		if out, err := d.edgeid(2*time.Minute, "down"); err != nil {
			t.Errorf("edgeid down: %v\n%s", err, out)
		}
	})
	start := time.Now()
	out, err := d.edgeid(5*time.Minute, "up", "--step-timeout", "2m")
	t.Logf("edgeid up %s (%s):\n%s", strings.Join(extra, " "), time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("edgeid up: %v", err)
	}
	return d
}

func (d *demoRun) edgeid(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "edgeid"), append(args, d.common...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "EDGEID_CACHE=" + os.Getenv("EDGEID_CACHE")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// processes is `edgeid status -o json`'s process list.
type processes []struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Running bool   `json:"running"`
	UID     *int   `json:"uid"`
	WantUID int    `json:"want_uid"`
}

func (d *demoRun) processes() processes {
	d.t.Helper()
	out, err := d.edgeid(time.Minute, "status", "-o", "json")
	if err != nil {
		d.t.Fatalf("edgeid status: %v\n%s", err, out)
	}
	var st struct {
		Processes processes `json:"processes"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		d.t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return st.Processes
}

func (p processes) uid(t *testing.T, name string) int {
	t.Helper()
	for _, s := range p {
		if s.Name == name {
			if !s.Running || s.UID == nil {
				t.Fatalf("%s is not running: %+v", name, s)
			}
			return *s.UID
		}
	}
	t.Fatalf("no process %s in status", name)
	return 0
}

// probe runs the probe program as uid against targets ("connect:path",
// "read:path") and returns each target's outcome. Every attempt is logged.
func probe(t *testing.T, bin string, uid int, targets []string) map[string]string {
	t.Helper()
	cmd := exec.Command(bin, targets...)
	if uid != 0 {
		asUser(cmd, uid)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe as uid %d: %v\n%s", uid, err, stderr.String())
	}
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r struct{ Op, Path, Result string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("probe output %q: %v", sc.Text(), err)
		}
		t.Logf("uid %d %s %s: %s", uid, r.Op, r.Path, r.Result)
		got[r.Op+":"+r.Path] = r.Result
	}
	if len(got) != len(targets) {
		t.Fatalf("probe answered %d of %d targets", len(got), len(targets))
	}
	return got
}

// buildProbe builds the probe where any uid may run it.
func buildProbe(t *testing.T) string {
	t.Helper()
	out := filepath.Join(harness.ShortTempDir(t), "probe")
	cmd := exec.Command("go", "build", "-o", out, "./test/integration/attack/probe")
	cmd.Dir = harness.RepoRoot(t)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, msg)
	}
	return out
}

// controlTargets are the control plane's sockets and keys in a demo run,
// and site B's workload key (another workload's, for site A's pipeline).
func controlTargets(runDir string) []string {
	p := func(parts ...string) string { return filepath.Join(append([]string{runDir}, parts...)...) }
	return []string{
		"connect:" + p("cloud", "run", "private", "server.sock"),
		"connect:" + p("edge-a-1", "run", "private", "server.sock"),
		"connect:" + p("edge-a-1", "run", "private", "upstream.sock"),
		"read:" + p("edge-a-1", "kubeedge", "certs", "server.key"),
		"read:" + p("cloud", "spire", "server-data", "keys.json"),
		"read:" + p("edge-a-1", "spire", "server-data", "keys.json"),
		"read:" + p("cloud", "vault", "unseal-identity.txt"),
		"read:" + p("cloud", "vault", "bootstrap", "approle", "secret_id"),
		"read:" + p("kubeedge-ca", "rootCA.key"),
		"read:" + p("edge-b-1", "workloads", "deepstream_cam-pipeline", "svid", "svid_key.pem"),
	}
}

// TestControlPlaneOutOfReach: on a node that `edgeid up` set up, neither a
// local user nor a compromised pipeline (site A's, under its own uid) can
// connect to a SPIRE admin socket or an upstream agent, or read a node key,
// a server key, the unseal identity, the AppRole secret, the KubeEdge CA
// key or another workload's key; every process runs as its plan's account,
// and the pipeline keeps its SVID. With --single-uid (no privilege
// separation) the same pipeline reaches all of it: the test shows that the
// protection is what stops it.
func TestControlPlaneOutOfReach(t *testing.T) {
	requireRoot(t)
	probeBin := buildProbe(t)

	t.Run("separated", func(t *testing.T) {
		d := startDemo(t)
		procs := d.processes()
		for _, p := range procs {
			t.Logf("process %s pid %d uid %v (want %d)", p.Name, p.PID, deref(p.UID), p.WantUID)
			if !p.Running || p.UID == nil || *p.UID != p.WantUID || *p.UID == 0 {
				t.Errorf("%s: running %v, uid %v, want uid %d (never root)", p.Name, p.Running, deref(p.UID), p.WantUID)
			}
		}
		pipeline := procs.uid(t, "edge-a-1/helper-deepstream_cam-pipeline")
		targets := controlTargets(d.runDir)
		// The targets exist and root reaches them: a refusal below is the
		// account's, not a missing file.
		for target, res := range probe(t, probeBin, 0, targets) {
			if res != "ok" {
				t.Fatalf("as root, %s: %s (the test's targets are wrong)", target, res)
			}
		}
		for _, uid := range []int{attackerUID, pipeline} {
			for target, res := range probe(t, probeBin, uid, targets) {
				if res != "EACCES" {
					t.Errorf("uid %d %s: %s, want EACCES", uid, target, res)
				}
			}
		}
		// The pipeline still has its identity.
		own := filepath.Join(d.runDir, "edge-a-1", "workloads", "deepstream_cam-pipeline", "svid", "svid_key.pem")
		if res := probe(t, probeBin, pipeline, []string{"read:" + own}); res["read:"+own] != "ok" {
			t.Errorf("the pipeline cannot read its own key: %v", res)
		}
	})

	t.Run("protection off: --single-uid", func(t *testing.T) {
		d := startDemo(t, "--single-uid")
		pipeline := d.processes().uid(t, "edge-a-1/helper-deepstream_cam-pipeline")
		reached := 0
		for target, res := range probe(t, probeBin, pipeline, controlTargets(d.runDir)) {
			if res == "ok" {
				reached++
			} else {
				t.Logf("uid %d %s: %s", pipeline, target, res)
			}
		}
		if reached != len(controlTargets(d.runDir)) {
			t.Errorf("without privilege separation the pipeline reached %d of %d control-plane targets; the demonstration expects all", reached, len(controlTargets(d.runDir)))
		}
	})
}

func deref(p *int) string {
	if p == nil {
		return "unknown"
	}
	return fmt.Sprint(*p)
}
