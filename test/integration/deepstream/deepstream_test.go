package deepstream

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/test/harness"
)

const (
	trustDomain  = "example.org"
	pipelineID   = "spiffe://example.org/edge/site-a/deepstream/cam-pipeline"
	claimsID     = "spiffe://example.org/edge/site-a/deepstream/cam-pipeline-self-reported"
	containerID  = "spiffe://example.org/edge/site-a/deepstream/cam-pipeline-in-container"
	decoyID      = "spiffe://example.org/edge/site-a/deepstream/other-topic"
	publishTopic = "detections"
)

// result is what the stand-in and the test helper write after fetching.
type result struct {
	SPIFFEIDs               []string `json:"spiffe_ids"`
	Error                   string   `json:"error"`
	ChildPID                int      `json:"child_pid"`
	ChildStartedBeforeFetch bool     `json:"child_started_before_fetch"`
}

// buildStatic builds a Go main without cgo, so that it also runs inside a
// bare chroot.
func buildStatic(t *testing.T, pkg, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = harness.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}

// env is one SPIRE server + agent with the deepstream attestor loaded.
type env struct {
	t        *testing.T
	dir      string
	agent    *harness.SpireAgent
	standin  string // the stand-in binary, named deepstream-test5-app
	helper   string // the minimal helper
	config   string // the good test5 config
	cfgDir   string
	cfgHash  string
	mu       sync.Mutex
	children []*exec.Cmd
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	plugin := harness.BuildPlugin(t, "./plugins/cmd/edgeid-workloadattestor-deepstream")
	e.standin = filepath.Join(e.dir, "bin", "deepstream-test5-app")
	e.helper = filepath.Join(e.dir, "bin", "testhelper")
	buildStatic(t, "./test/standin/deepstream-test5-app", e.standin)
	buildStatic(t, "./test/integration/deepstream/testhelper", e.helper)

	e.cfgDir = filepath.Join(e.dir, "configs")
	for _, name := range []string{"test5_kafka.txt", "cfg_kafka.txt", "config_infer_primary.txt"} {
		copyFile(t, filepath.Join(harness.RepoRoot(t), "plugins/agent/workloadattestor/deepstream/testdata", name), filepath.Join(e.cfgDir, name), 0o644)
	}
	e.config = filepath.Join(e.cfgDir, "test5_kafka.txt")
	sum, err := harness.FileSHA256(e.config)
	if err != nil {
		t.Fatal(err)
	}
	e.cfgHash = sum

	server := harness.StartSpireServer(t, harness.ServerConfig{TrustDomain: trustDomain})
	token := server.JoinToken(t, "")
	e.agent = harness.StartSpireAgent(t, harness.AgentConfig{
		Server:    server,
		JoinToken: token,
		Plugins: fmt.Sprintf(`    WorkloadAttestor "deepstream" {
        plugin_cmd = %q
        plugin_checksum = %q
        plugin_data {
            child_depth = 1
        }
    }
`, plugin.Path, plugin.Checksum),
	})
	agentID := harness.JoinTokenAgentID(trustDomain, token)
	// The pipeline as its launcher holds it at exec: config selectors are
	// facts only then.
	server.CreateEntry(t, harness.Entry{ParentID: agentID, SPIFFEID: pipelineID, Selectors: []string{
		"deepstream:launch:held",
		"deepstream:app:deepstream-test5-app",
		"deepstream:publish_topic:" + publishTopic,
		"deepstream:config_sha256:" + e.cfgHash,
	}})
	// The same pipeline as it describes itself when it calls the Workload
	// API (or runs unheld): an entry that trusts claims.
	server.CreateEntry(t, harness.Entry{ParentID: agentID, SPIFFEID: claimsID, Selectors: []string{
		"deepstream:app:deepstream-test5-app",
		"deepstream:self_reported:publish_topic:" + publishTopic,
		"deepstream:self_reported:config_sha256:" + e.cfgHash,
	}})
	server.CreateEntry(t, harness.Entry{ParentID: agentID, SPIFFEID: decoyID, Selectors: []string{
		"deepstream:app:deepstream-test5-app",
		"deepstream:publish_topic:other-topic",
	}})
	server.CreateEntry(t, harness.Entry{ParentID: agentID, SPIFFEID: containerID, Selectors: []string{
		"deepstream:app:deepstream-test5-app",
		"deepstream:self_reported:config_path:/configs/test5_kafka.txt",
	}})
	return e
}

// start starts a command whose result file the test reads; it is killed when
// the test ends.
func (e *env) start(name string, args ...string) {
	e.t.Helper()
	cmd := exec.Command(name, args...)
	logf, err := os.Create(filepath.Join(e.dir, filepath.Base(name)+fmt.Sprintf("-%d.log", time.Now().UnixNano())))
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that cleanup also kills what it launched
	// (a released app outlives a killed helper otherwise).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.children = append(e.children, cmd)
	e.mu.Unlock()
	e.t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
	})
}

// waitResult waits for a result file.
func (e *env) waitResult(path string, timeout time.Duration) result {
	e.t.Helper()
	var r result
	harness.Eventually(e.t, timeout, func() error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return json.Unmarshal(data, &r)
	})
	return r
}

func (e *env) resultPath(name string) string {
	return filepath.Join(e.dir, name+".json")
}

// direct runs the stand-in (or another binary) as a Workload API caller.
func (e *env) direct(name, bin, config string, timeout time.Duration) result {
	e.t.Helper()
	res := e.resultPath(name)
	e.start(bin, "-c", config, "-fetch-svid", "-socket", e.agent.SocketPath, "-timeout", timeout.String(), "-result", res, "-exit")
	return e.waitResult(res, timeout+30*time.Second)
}

// viaHelper runs the minimal helper, which launches child args (held at exec
// when hold is set) and fetches the SVID.
func (e *env) viaHelper(name string, hold bool, timeout time.Duration, child ...string) result {
	e.t.Helper()
	res := e.resultPath(name)
	started := filepath.Join(e.dir, name+".started")
	args := []string{"-socket", e.agent.SocketPath, "-result", res, "-started-file", started, "-timeout", timeout.String()}
	if hold {
		args = append(args, "-hold")
	}
	args = append(args, "--")
	args = append(args, child...)
	if filepath.Base(child[0]) == "deepstream-test5-app" {
		e.start(e.helper, append(args, "-started-file", started)...)
	} else {
		e.start(e.helper, args...)
	}
	return e.waitResult(res, timeout+30*time.Second)
}

func wantIDs(t *testing.T, what string, r result, want ...string) {
	t.Helper()
	got := slices.Clone(r.SPIFFEIDs)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: SPIFFE IDs = %q (error %q), want %q", what, got, r.Error, want)
	}
	if len(want) == 0 && !strings.Contains(r.Error, "PermissionDenied") {
		t.Errorf("%s: error = %q, want the agent's PermissionDenied (no identity issued)", what, r.Error)
	}
}

func TestDeepStreamAttestor(t *testing.T) {
	e := setup(t)

	// 1a. The stand-in calling the Workload API itself: its config
	// selectors are self-reported, so it matches the entry that trusts
	// claims and not the held pipeline's. It also proves the entries
	// reached the agent before the negative cases run.
	wantIDs(t, "stand-in as direct caller", e.direct("direct", e.standin, e.config, 60*time.Second), claimsID)

	// 1b. The stand-in launched by a helper, held at exec until the helper
	// has its SVID: the attestor sees the held child.
	held := e.viaHelper("held", true, 60*time.Second, e.standin, "-c", e.config)
	wantIDs(t, "stand-in held at exec by a helper", held, pipelineID)
	if held.ChildStartedBeforeFetch {
		t.Errorf("the held stand-in ran before its SVID was fetched")
	}
	// 1b'. The same child launched without the hold: self-reported.
	wantIDs(t, "stand-in launched unheld by a helper", e.viaHelper("unheld", false, 60*time.Second, e.standin, "-c", e.config), claimsID)
	// After the release, the app runs.
	harness.Eventually(t, 10*time.Second, func() error {
		_, err := os.Stat(filepath.Join(e.dir, "held.started"))
		return err
	})

	// 1c. The same with the real edgeid-helper (hold_until_svid): the app
	// starts only once its certificate is on disk, and refuses to start
	// without it, as DeepStream does.
	t.Run("edgeid-helper holds the app until its SVID is written", func(t *testing.T) {
		helperBin := harness.BuildBinary(t, "./helper/cmd/edgeid-helper", "edgeid-helper").Path
		certDir := filepath.Join(e.dir, "edgeid-helper-certs")
		if err := os.MkdirAll(certDir, 0o755); err != nil {
			t.Fatal(err)
		}
		started := filepath.Join(e.dir, "edgeid-helper.started")
		svidPath := filepath.Join(certDir, "svid.pem")
		conf := filepath.Join(e.dir, "edgeid-helper.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(`agent_address = %q
cmd = %q
cmd_args = "-c %s -started-file %s -require-file %s"
cert_dir = %q
daemon_mode = true
hold_until_svid = true
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "bundle.pem"
`, e.agent.SocketPath, e.standin, e.config, started, svidPath, certDir)), 0o644); err != nil {
			t.Fatal(err)
		}
		e.start(helperBin, "-config", conf)
		harness.Eventually(t, 60*time.Second, func() error {
			data, err := os.ReadFile(started)
			if err != nil {
				return err
			}
			if string(data) != "ok\n" {
				return fmt.Errorf("stand-in started without its certificate: %q", data)
			}
			return nil
		})
		pemData, err := os.ReadFile(svidPath)
		if err != nil {
			t.Fatal(err)
		}
		certs, err := pemutil.ParseCertificates(pemData)
		if err != nil {
			t.Fatal(err)
		}
		if len(certs[0].URIs) != 1 || certs[0].URIs[0].String() != pipelineID {
			t.Fatalf("edgeid-helper wrote an SVID for %v, want %s", certs[0].URIs, pipelineID)
		}
	})

	// 2. No impersonation. These run in parallel, each trying for 5 s.
	modified := filepath.Join(e.cfgDir, "test5_modified.txt")
	data, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(modified, append(data, []byte("\n# harmless-looking edit\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	otherBin := filepath.Join(e.dir, "bin", "deepstream-app")
	copyFile(t, e.standin, otherBin, 0o755)

	type neg struct {
		name string
		run  func() result
	}
	negs := []neg{
		{"same binary, modified config", func() result { return e.direct("modified", e.standin, modified, 5*time.Second) }},
		{"different binary, same config", func() result { return e.direct("otherbin", otherBin, e.config, 5*time.Second) }},
		{"helper whose child is not the pipeline", func() result {
			return e.viaHelper("unrelated", true, 5*time.Second, "/bin/sleep", "300")
		}},
		{"helper whose child runs a modified config", func() result {
			return e.viaHelper("helper-modified", true, 5*time.Second, e.standin, "-c", modified)
		}},
	}
	results := make([]result, len(negs))
	var wg sync.WaitGroup
	for i, n := range negs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = n.run()
		}()
	}
	wg.Wait()
	for i, n := range negs {
		wantIDs(t, n.name, results[i])
	}

	// 3. Containers: the stand-in in its own mount namespace and chroot. The
	// config path only exists inside it, and config_path is the path as the
	// process sees it.
	t.Run("mount namespace and chroot", func(t *testing.T) {
		unshare := harness.RequireCommand(t, "unshare")
		chroot := harness.RequireCommand(t, "chroot")
		mount := harness.RequireCommand(t, "mount")
		rootfs := filepath.Join(e.dir, "rootfs")
		copyFile(t, e.standin, filepath.Join(rootfs, "usr/bin/deepstream-test5-app"), 0o755)
		for _, name := range []string{"test5_kafka.txt", "cfg_kafka.txt"} {
			copyFile(t, filepath.Join(e.cfgDir, name), filepath.Join(rootfs, "configs", name), 0o644)
		}
		for _, d := range []string{"run/spire", "out", "tmp"} {
			if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		script := fmt.Sprintf(`set -e
%s --bind %q %q
%s --bind %q %q
exec %s %q /usr/bin/deepstream-test5-app -c /configs/test5_kafka.txt -fetch-svid -socket /run/spire/agent.sock -timeout 60s -result /out/result.json -exit`,
			mount, e.agent.Dir, filepath.Join(rootfs, "run/spire"),
			mount, e.dir, filepath.Join(rootfs, "out"),
			chroot, rootfs)
		cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("containerised stand-in: %v\n%s", err, out)
		}
		data, err := os.ReadFile(filepath.Join(e.dir, "result.json"))
		if err != nil {
			t.Fatalf("no result from the containerised stand-in: %v\n%s", err, out)
		}
		var r result
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "stand-in in a mount namespace + chroot", r, claimsID, containerID)
	})
}
