package attack

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

// The deepstream identity attacks share one node: a real SPIRE server and
// agent with the deepstream plugin and SPIRE's unix attestor
// (discover_workload_path), the deployed pipeline (the stand-in
// deepstream-test5-app and a Python pipeline) owned by root, the victim's
// launcher, and the attacker's tools.

const dsTrustDomain = "example.org"

// SPIFFE IDs of the entries, each written the way edgeid renders it or the
// way an entry that trusts claims would be written.
const (
	// Held pipelines, pinned to the launcher (edgeid's rendering).
	dsIDPipeline = "spiffe://example.org/edge/site-a/deepstream/cam-pipeline"
	dsIDPython   = "spiffe://example.org/edge/site-a/deepstream/py-pipeline"
	// launch:held and the trusted names, without the launcher's unix pins.
	dsIDHeldNoLauncher = "spiffe://example.org/weak/held-without-launcher-pin"
	// Protection off: entries on self-reported claims.
	dsIDClaimsBinary = "spiffe://example.org/weak/claims/cam-pipeline"
	dsIDClaimsPython = "spiffe://example.org/weak/claims/py-pipeline"
	// Bound to the victim's container by container_id alone.
	dsIDContainer = "spiffe://example.org/edge/site-a/deepstream/cam-pipeline-in-container"
)

// dsEnv is the node of the deepstream attacks.
type dsEnv struct {
	t      *testing.T
	dir    string // world-readable work area
	server *harness.SpireServer
	agent  *harness.SpireAgent

	// Deployed by root.
	standin  string // deepstream-test5-app
	launcher string // the victim's launcher (stands for edgeid-helper)
	config   string // the pipeline config
	pyApp    string // deepstream_test_4.py
	python   string // /usr/bin/python3 resolved
	// Tools.
	fetch, flood string
	// Per-uid writable directories.
	victimDir, attackerDir string

	cfgHash, standinHash, pythonHash, scriptHash string
	containerID                                  string
	agentID                                      string
}

// createEntries registers entries under the agent.
func (e *dsEnv) createEntries(entries ...harness.Entry) {
	e.t.Helper()
	for _, en := range entries {
		en.ParentID = e.agentID
		e.server.CreateEntry(e.t, en)
	}
}

// addWeakEntries registers the entries without the protections: on
// self-reported claims without launch:held and unix pins, and with
// launch:held but without the launcher's unix pins.
func (e *dsEnv) addWeakEntries() {
	e.t.Helper()
	e.createEntries(
		harness.Entry{SPIFFEID: dsIDHeldNoLauncher, Selectors: []string{
			"deepstream:launch:held",
			"deepstream:app:deepstream-test5-app",
			"deepstream:exe_sha256:" + e.standinHash,
			"deepstream:config_sha256:" + e.cfgHash,
			"deepstream:publish_topic:detections",
		}},
		harness.Entry{SPIFFEID: dsIDClaimsBinary, Selectors: []string{
			"deepstream:app:deepstream-test5-app",
			"deepstream:exe_sha256:" + e.standinHash,
			"deepstream:self_reported:config_sha256:" + e.cfgHash,
			"deepstream:self_reported:publish_topic:detections",
		}},
		harness.Entry{SPIFFEID: dsIDClaimsPython, Selectors: []string{
			"deepstream:self_reported:app:deepstream_test_4.py",
			"deepstream:exe_sha256:" + e.pythonHash,
			"deepstream:self_reported:script_sha256:" + e.scriptHash,
			"deepstream:self_reported:config_sha256:" + e.cfgHash,
			"deepstream:self_reported:publish_topic:detections",
		}},
	)
}

// setupDS starts the node. The agent runs as root, as a node's agent does.
func setupDS(t *testing.T) *dsEnv {
	t.Helper()
	requireRoot(t)
	dir, err := os.MkdirTemp("", "edgeid-attack-ds-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &dsEnv{t: t, dir: dir, containerID: strings.Repeat("c0ffee", 10) + "c0de"}
	dsMust(t, os.Chmod(dir, 0o755))
	deploy := filepath.Join(dir, "deploy")
	for _, d := range []string{"bin", "configs", "apps"} {
		dsMust(t, os.MkdirAll(filepath.Join(deploy, d), 0o755))
	}
	e.victimDir = e.userDir("victim", victimUID)
	e.attackerDir = e.userDir("attacker", attackerUID)

	plugin := harness.BuildPlugin(t, "./plugins/cmd/edgeid-workloadattestor-deepstream")
	e.standin = filepath.Join(deploy, "bin", "deepstream-test5-app")
	e.launcher = filepath.Join(deploy, "bin", "edgeid-launcher")
	dsBuildStatic(t, "./test/standin/deepstream-test5-app", e.standin)
	dsBuildStatic(t, "./test/integration/attack/dslaunch", e.launcher)
	e.fetch = filepath.Join(dir, "tools", "dsfetch")
	e.flood = filepath.Join(dir, "tools", "dsflood")
	dsBuildStatic(t, "./test/integration/attack/dsfetch", e.fetch)
	dsBuildStatic(t, "./test/integration/attack/dsflood", e.flood)

	testdata := filepath.Join(harness.RepoRoot(t), "plugins/agent/workloadattestor/deepstream/testdata")
	for _, name := range []string{"test5_kafka.txt", "cfg_kafka.txt"} {
		dsCopyFile(t, filepath.Join(testdata, name), filepath.Join(deploy, "configs", name), 0o644)
	}
	e.config = filepath.Join(deploy, "configs", "test5_kafka.txt")
	e.pyApp = filepath.Join(deploy, "apps", "deepstream_test_4.py")
	dsMust(t, os.WriteFile(e.pyApp, []byte("# Stand-in for NVIDIA's deepstream_test_4.py: runs until killed.\nimport time\ntime.sleep(3600)\n"), 0o644))
	e.python, err = filepath.EvalSymlinks("/usr/bin/python3")
	if err != nil {
		t.Fatalf("the Python attack needs /usr/bin/python3 (Debian package python3, scripts/install-deps.sh): %v", err)
	}
	e.cfgHash = dsSHA(t, e.config)
	e.standinHash = dsSHA(t, e.standin)
	e.pythonHash = dsSHA(t, e.python)
	e.scriptHash = dsSHA(t, e.pyApp)

	e.server = harness.StartSpireServer(t, harness.ServerConfig{TrustDomain: dsTrustDomain})
	token := e.server.JoinToken(t, "")
	e.agent = harness.StartSpireAgent(t, harness.AgentConfig{
		Server:         e.server,
		JoinToken:      token,
		NoUnixAttestor: true,
		Plugins: fmt.Sprintf(`    WorkloadAttestor "unix" {
        plugin_data {
            discover_workload_path = true
        }
    }
    WorkloadAttestor "deepstream" {
        plugin_cmd = %q
        plugin_checksum = %q
        plugin_data {}
    }
`, plugin.Path, plugin.Checksum),
	})
	// Every local user reaches the Workload API, as on a node.
	dsMust(t, os.Chmod(e.agent.Dir, 0o755))
	dsMust(t, os.Chmod(e.agent.SocketPath, 0o777))

	e.agentID = harness.JoinTokenAgentID(dsTrustDomain, token)
	launcherPins := []string{fmt.Sprintf("unix:uid:%d", victimUID), "unix:path:" + e.launcher}
	e.createEntries(
		harness.Entry{SPIFFEID: dsIDPipeline, X509SVIDTTL: 20 * time.Second, Selectors: append([]string{
			"deepstream:launch:held",
			"deepstream:app:deepstream-test5-app",
			"deepstream:exe_sha256:" + e.standinHash,
			"deepstream:config_sha256:" + e.cfgHash,
			"deepstream:publish_topic:detections",
		}, launcherPins...)},
		harness.Entry{SPIFFEID: dsIDPython, Selectors: append([]string{
			"deepstream:launch:held",
			"deepstream:app:deepstream_test_4.py",
			"deepstream:exe_sha256:" + e.pythonHash,
			"deepstream:script_sha256:" + e.scriptHash,
			"deepstream:config_sha256:" + e.cfgHash,
			"deepstream:publish_topic:detections",
		}, launcherPins...)},
		// Bound to the container by container_id alone, so that nothing
		// but that fact keeps the attacker of case c out.
		harness.Entry{SPIFFEID: dsIDContainer, Selectors: []string{
			"deepstream:app:deepstream-test5-app",
			"deepstream:exe_sha256:" + e.standinHash,
			"deepstream:container_id:" + e.containerID,
		}},
	)
	return e
}

// userDir makes a directory owned by uid under the work area.
func (e *dsEnv) userDir(name string, uid int) string {
	d := filepath.Join(e.dir, name)
	dsMust(e.t, os.MkdirAll(d, 0o755))
	dsMust(e.t, os.Chown(d, uid, uid))
	return d
}

// startAs starts a program as uid in its own process group, killed (with
// its group) at cleanup; its output goes to a log file under the work area.
func (e *dsEnv) startAs(uid int, name string, args ...string) *exec.Cmd {
	e.t.Helper()
	cmd := asUser(exec.Command(name, args...), uid)
	logPath := filepath.Join(e.dir, fmt.Sprintf("%s-%d.log", filepath.Base(name), time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	dsMust(e.t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	dsMust(e.t, cmd.Start())
	e.t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
		if e.t.Failed() {
			data, _ := os.ReadFile(logPath)
			e.t.Logf("%s output:\n%s", filepath.Base(name), data)
		}
	})
	return cmd
}

// dsFetchResult is what dsfetch and the stand-in write.
type dsFetchResult struct {
	SPIFFEIDs []string `json:"spiffe_ids"`
	Error     string   `json:"error"`
}

// waitResult waits for a result file.
func (e *dsEnv) waitResult(path string, timeout time.Duration) dsFetchResult {
	e.t.Helper()
	var r dsFetchResult
	harness.Eventually(e.t, timeout, func() error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return json.Unmarshal(data, &r)
	})
	return r
}

// dsLaunchEvent is a line of the launcher's log.
type dsLaunchEvent struct {
	Time  time.Time `json:"time"`
	SVIDs []struct {
		ID        string    `json:"id"`
		Serial    string    `json:"serial"`
		NotBefore time.Time `json:"not_before"`
		NotAfter  time.Time `json:"not_after"`
	} `json:"svids"`
	Error string `json:"error"`
}

func (ev dsLaunchEvent) ids() []string {
	var out []string
	for _, s := range ev.SVIDs {
		out = append(out, s.ID)
	}
	slices.Sort(out)
	return out
}

// readLaunchLog reads a launcher's log.
func dsReadLaunchLog(t *testing.T, path string) []dsLaunchEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []dsLaunchEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev dsLaunchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("launcher log line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

// launchVictim starts the victim's launcher (as victimUID) holding app,
// and waits for its first SVIDs. waitFile, when set, delays the launch
// until the test creates it; before that, prepare runs with the
// launcher's pid.
func (e *dsEnv) launchVictim(name string, prepare func(pid int), app ...string) (string, []string) {
	e.t.Helper()
	logPath := filepath.Join(e.victimDir, name+".jsonl")
	args := []string{"-socket", e.agent.SocketPath, "-log", logPath, "-timeout", "60s"}
	var waitFile string
	if prepare != nil {
		waitFile = filepath.Join(e.dir, name+".go")
		args = append(args, "-wait-file", waitFile)
	}
	cmd := e.startAs(victimUID, e.launcher, append(append(args, "--"), app...)...)
	if prepare != nil {
		prepare(cmd.Process.Pid)
		dsMust(e.t, os.WriteFile(waitFile, nil, 0o644))
	}
	var ids []string
	harness.Eventually(e.t, 90*time.Second, func() error {
		for _, ev := range dsReadLaunchLog(e.t, logPath) {
			if len(ev.SVIDs) > 0 {
				ids = ev.ids()
				return nil
			}
		}
		return fmt.Errorf("no SVID yet for the victim's %s", name)
	})
	return logPath, ids
}

// wantIDs checks the exact set of SPIFFE IDs a process got.
func dsWantIDs(t *testing.T, what string, got []string, errText string, want ...string) {
	t.Helper()
	got = slices.Clone(got)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: SPIFFE IDs = %q (error %q), want %q", what, got, errText, want)
		return
	}
	t.Logf("%s: SPIFFE IDs %q (error %q), as expected", what, got, errText)
	if len(want) == 0 && !strings.Contains(errText, "PermissionDenied") {
		t.Errorf("%s: error = %q, want the agent's PermissionDenied (no identity issued)", what, errText)
	}
}

func dsBuildStatic(t *testing.T, pkg, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = harness.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	dsMust(t, os.Chmod(filepath.Dir(out), 0o755))
	dsMust(t, os.Chmod(out, 0o755))
}

func dsCopyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	dsMust(t, err)
	dsMust(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	dsMust(t, os.WriteFile(dst, data, mode))
	dsMust(t, os.Chmod(dst, mode))
}

func dsSHA(t *testing.T, path string) string {
	t.Helper()
	s, err := harness.FileSHA256(path)
	dsMust(t, err)
	return s
}

func dsMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
