package deepstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	"github.com/spiffe/spire-plugin-sdk/plugintest"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const testContainerID = "3f2a9c1b7d6e5f40a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"

// syncBuffer collects plugin logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeProc is a fake /proc plus a container root file system.
type fakeProc struct {
	t      *testing.T
	proc   string // fake /proc
	rootfs string // the "container" root
}

type fakeProcess struct {
	exe      string // absolute path inside rootfs
	args     []string
	cwd      string // absolute path inside rootfs
	cgroup   string
	maps     string
	children []int
	hostRoot string // root link target; default rootfs
}

func newFakeProc(t *testing.T) *fakeProc {
	t.Helper()
	base := t.TempDir()
	f := &fakeProc{t: t, proc: filepath.Join(base, "proc"), rootfs: filepath.Join(base, "rootfs")}
	f.mkdir("/")
	if err := os.MkdirAll(f.proc, 0o755); err != nil {
		t.Fatal(err)
	}
	// A DeepStream install with an absolute in-root symlink, as shipped.
	f.write("/opt/nvidia/deepstream/deepstream-7.1/bin/deepstream-test5-app", "ELF test5 binary v1")
	f.write("/opt/nvidia/deepstream/deepstream-7.1/version", "Version: 7.1.0\n")
	f.symlink("/opt/nvidia/deepstream/deepstream-7.1", "/opt/nvidia/deepstream/deepstream")
	f.write("/usr/bin/edgeid-helper", "ELF helper")
	f.write("/usr/bin/python3.11", "ELF python")
	f.write("/usr/bin/sleep", "ELF sleep")
	for _, name := range []string{"test5_kafka.txt", "cfg_kafka.txt", "config_infer_primary.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		f.write("/configs/"+name, string(data))
	}
	return f
}

func (f *fakeProc) host(p string) string { return filepath.Join(f.rootfs, p) }

func (f *fakeProc) mkdir(p string) {
	if err := os.MkdirAll(f.host(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeProc) write(p, content string) {
	f.mkdir(filepath.Dir(p))
	if err := os.WriteFile(f.host(p), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeProc) symlink(target, p string) {
	f.mkdir(filepath.Dir(p))
	if err := os.Symlink(target, f.host(p)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeProc) add(pid int, p fakeProcess) {
	dir := filepath.Join(f.proc, strconv.Itoa(pid))
	task := filepath.Join(dir, "task", strconv.Itoa(pid))
	if err := os.MkdirAll(task, 0o755); err != nil {
		f.t.Fatal(err)
	}
	root := p.hostRoot
	if root == "" {
		root = f.rootfs
	}
	if p.cwd == "" {
		p.cwd = "/"
	}
	var kids []string
	for _, c := range p.children {
		kids = append(kids, strconv.Itoa(c))
	}
	must := func(err error) {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	must(os.Symlink(filepath.Join(root, p.exe), filepath.Join(dir, "exe")))
	must(os.Symlink(root, filepath.Join(dir, "root")))
	must(os.Symlink(filepath.Join(root, p.cwd), filepath.Join(dir, "cwd")))
	must(os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(p.args, "\x00")+"\x00"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "cgroup"), []byte(p.cgroup), 0o644))
	must(os.WriteFile(filepath.Join(dir, "maps"), []byte(p.maps), 0o644))
	must(os.WriteFile(filepath.Join(task, "children"), []byte(strings.Join(kids, " ")), 0o644))
}

func (f *fakeProc) sha(p string) string {
	data, err := os.ReadFile(f.host(p))
	if err != nil {
		f.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

var test5Process = fakeProcess{
	exe:    "/opt/nvidia/deepstream/deepstream-7.1/bin/deepstream-test5-app",
	args:   []string{"deepstream-test5-app", "-c", "test5_kafka.txt"},
	cwd:    "/configs",
	cgroup: "0::/system.slice/docker-" + testContainerID + ".scope\n",
}

// wantTest5 is what a user expects for the test5 pipeline in testdata.
func (f *fakeProc) wantTest5() []string {
	want := []string{
		"app:deepstream-test5-app",
		"exe_sha256:" + f.sha(test5Process.exe),
		"config_path:/configs/test5_kafka.txt",
		"config_sha256:" + f.sha("/configs/test5_kafka.txt"),
		"proto:kafka",
		"broker:kafka.example.org:9093",
		"publish_topic:detections",
		"subscribe_topic:site-a-commands",
		"subscribe_topic:site-a-config",
		"version:7.1",
		"container_id:" + testContainerID,
	}
	slices.Sort(want)
	return want
}

type testPlugin struct {
	plugin *Plugin
	wa     *workloadattestorv1.WorkloadAttestorPluginClient
	config *configv1.ConfigServiceClient
	logs   *syncBuffer
}

func loadPlugin(t *testing.T, procDir, hclConfig string) *testPlugin {
	t.Helper()
	tp := &testPlugin{
		plugin: New(),
		wa:     new(workloadattestorv1.WorkloadAttestorPluginClient),
		config: new(configv1.ConfigServiceClient),
		logs:   new(syncBuffer),
	}
	tp.plugin.hooks.procDir = procDir
	plugintest.ServeInBackground(t, plugintest.Config{
		PluginServer:   workloadattestorv1.WorkloadAttestorPluginServer(tp.plugin),
		PluginClient:   tp.wa,
		ServiceServers: []pluginsdk.ServiceServer{configv1.ConfigServiceServer(tp.plugin)},
		ServiceClients: []pluginsdk.ServiceClient{tp.config},
		Logger:         hclog.New(&hclog.LoggerOptions{Output: tp.logs, Level: hclog.Debug}),
	})
	if hclConfig != "-" {
		if _, err := tp.config.Configure(context.Background(), &configv1.ConfigureRequest{
			HclConfiguration:  hclConfig,
			CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: "example.org"},
		}); err != nil {
			t.Fatalf("Configure: %v", err)
		}
	}
	return tp
}

func (tp *testPlugin) attest(t *testing.T, pid int) []string {
	t.Helper()
	resp, err := tp.wa.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: int32(pid)})
	if err != nil {
		t.Fatalf("Attest(%d): %v", pid, err)
	}
	return resp.SelectorValues
}

func assertSelectors(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("selectors:\n got  %q\n want %q", got, want)
	}
}

func TestAttestDirectCaller(t *testing.T) {
	f := newFakeProc(t)
	f.add(200, test5Process)
	tp := loadPlugin(t, f.proc, "")
	assertSelectors(t, tp.attest(t, 200), f.wantTest5())
}

func TestAttestChildOfHelper(t *testing.T) {
	f := newFakeProc(t)
	f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper", "run"}, children: []int{150, 200}})
	f.add(150, fakeProcess{exe: "/usr/bin/sleep", args: []string{"sleep", "1"}})
	f.add(200, test5Process)
	tp := loadPlugin(t, f.proc, "")
	assertSelectors(t, tp.attest(t, 100), f.wantTest5())

	t.Run("depth 0 attests the caller only", func(t *testing.T) {
		tp := loadPlugin(t, f.proc, "child_depth = 0")
		assertSelectors(t, tp.attest(t, 100), nil)
	})
}

func TestAttestGrandchildNeedsDepth(t *testing.T) {
	f := newFakeProc(t)
	f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{150}})
	f.add(150, fakeProcess{exe: "/usr/bin/sleep", args: []string{"sh"}, children: []int{200}})
	f.add(200, test5Process)
	assertSelectors(t, loadPlugin(t, f.proc, "").attest(t, 100), nil)
	assertSelectors(t, loadPlugin(t, f.proc, "child_depth = 2").attest(t, 100), f.wantTest5())
}

func TestAttestNotDeepStream(t *testing.T) {
	f := newFakeProc(t)
	f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{150}})
	f.add(150, fakeProcess{exe: "/usr/bin/sleep", args: []string{"sleep", "-c", "/configs/test5_kafka.txt"}})
	tp := loadPlugin(t, f.proc, "")
	assertSelectors(t, tp.attest(t, 100), nil)
	assertSelectors(t, tp.attest(t, 150), nil)
}

func TestAttestSeveralChildren(t *testing.T) {
	f := newFakeProc(t)
	f.write("/configs/other.txt", "[sink0]\nenable=1\ntype=6\ntopic=other\n")
	f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{200, 201}})
	f.add(200, test5Process)
	same := test5Process
	f.add(201, same)
	tp := loadPlugin(t, f.proc, "")
	assertSelectors(t, tp.attest(t, 100), f.wantTest5())

	// Two different pipelines: their selectors must not be merged.
	f.add(300, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{200, 202}})
	other := test5Process
	other.args = []string{"deepstream-test5-app", "-c", "other.txt"}
	f.add(202, other)
	assertSelectors(t, tp.attest(t, 300), nil)
	if !strings.Contains(tp.logs.String(), "several different DeepStream apps") {
		t.Fatalf("no warning logged:\n%s", tp.logs)
	}
}

func TestAttestPythonScript(t *testing.T) {
	f := newFakeProc(t)
	f.write("/apps/deepstream_test_4.py", "print('pipeline')\n")
	f.add(400, fakeProcess{
		exe:  "/usr/bin/python3.11",
		args: []string{"python3", "-u", "deepstream_test_4.py", "--cfg-file=/configs/test5_kafka.txt"},
		cwd:  "/apps",
	})
	f.add(401, fakeProcess{exe: "/usr/bin/python3.11", args: []string{"python3", "other.py"}, cwd: "/apps"})
	f.add(402, fakeProcess{exe: "/usr/bin/python3.11", args: []string{"python3", "-c", "import deepstream_x"}, cwd: "/apps"})
	tp := loadPlugin(t, f.proc, "")
	got := tp.attest(t, 400)
	for _, want := range []string{
		"app:deepstream_test_4.py",
		"exe_sha256:" + f.sha("/usr/bin/python3.11"),
		"script_sha256:" + f.sha("/apps/deepstream_test_4.py"),
		"config_path:/configs/test5_kafka.txt",
		"publish_topic:detections",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q in %q", want, got)
		}
	}
	assertSelectors(t, tp.attest(t, 401), nil)
	assertSelectors(t, tp.attest(t, 402), nil)
}

func TestAttestLibraryMatch(t *testing.T) {
	f := newFakeProc(t)
	f.write("/usr/local/bin/cam-pipeline", "ELF custom app")
	proc := fakeProcess{
		exe:  "/usr/local/bin/cam-pipeline",
		args: []string{"cam-pipeline", "-c", "/configs/test5_kafka.txt"},
		maps: "7f00-7f01 r-xp 00000000 08:01 1234 /usr/lib/x86_64-linux-gnu/libc.so.6\n" +
			"7f02-7f03 r-xp 00000000 08:01 1235 /opt/nvidia/deepstream/deepstream-7.1/lib/libnvds_meta.so\n",
	}
	f.add(500, proc)
	tp := loadPlugin(t, f.proc, "")
	got := tp.attest(t, 500)
	if !slices.Contains(got, "app:cam-pipeline") || !slices.Contains(got, "publish_topic:detections") {
		t.Fatalf("selectors %q", got)
	}
	assertSelectors(t, loadPlugin(t, f.proc, "disable_library_match = true").attest(t, 500), nil)
	assertSelectors(t, loadPlugin(t, f.proc, `library_prefixes = ["libother_"]`).attest(t, 500), nil)
}

func TestAttestModelHashes(t *testing.T) {
	f := newFakeProc(t)
	f.write("/models/Primary_Detector/resnet18_trafficcamnet.etlt_b1_gpu0_int8.engine", "engine bytes")
	f.write("/models/Primary_Detector/resnet18_trafficcamnet.onnx", "onnx bytes")
	f.add(200, test5Process)
	without := loadPlugin(t, f.proc, "").attest(t, 200)
	with := loadPlugin(t, f.proc, "hash_models = true").attest(t, 200)
	want := append(slices.Clone(without),
		"model_sha256:"+f.sha("/models/Primary_Detector/resnet18_trafficcamnet.etlt_b1_gpu0_int8.engine"),
		"model_sha256:"+f.sha("/models/Primary_Detector/resnet18_trafficcamnet.onnx"))
	slices.Sort(want)
	// cal_trt.bin is referenced but absent: skipped with a warning.
	assertSelectors(t, with, want)
}

func TestAttestYAMLConfig(t *testing.T) {
	f := newFakeProc(t)
	f.write("/configs/test5.yml", "application:\n  enable-perf-measurement: 1\n")
	p := test5Process
	p.args = []string{"deepstream-test5-app", "-c", "test5.yml"}
	f.add(200, p)
	got := loadPlugin(t, f.proc, "").attest(t, 200)
	if !slices.Contains(got, "config_path:/configs/test5.yml") || !slices.Contains(got, "config_sha256:"+f.sha("/configs/test5.yml")) {
		t.Fatalf("selectors %q", got)
	}
}

func TestAttestHashCache(t *testing.T) {
	f := newFakeProc(t)
	f.add(200, test5Process)
	tp := loadPlugin(t, f.proc, "")
	first := tp.attest(t, 200)
	if n := tp.plugin.hashes.len(); n != 1 {
		t.Fatalf("cache has %d entries after the first attestation, want 1 (the executable)", n)
	}
	assertSelectors(t, tp.attest(t, 200), first)
	if n := tp.plugin.hashes.len(); n != 1 {
		t.Fatalf("cache has %d entries after a repeat, want 1", n)
	}

	// Replace the binary with one of the same size and put the old mtime
	// back: the changed ctime must still invalidate the cached hash.
	exe := f.host(test5Process.exe)
	st, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(exe, []byte("ELF test5 binary v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(exe, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	second := tp.attest(t, 200)
	if slices.Contains(second, "exe_sha256:"+strings.TrimPrefix(first[slices.IndexFunc(first, func(s string) bool { return strings.HasPrefix(s, "exe_sha256:") })], "exe_sha256:")) {
		t.Fatalf("stale exe hash after the binary changed: %q", second)
	}
	if !slices.Contains(second, "exe_sha256:"+f.sha(test5Process.exe)) {
		t.Fatalf("exe hash is not the new binary's: %q", second)
	}
}

func TestAttestBadConfigs(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fakeProc) []string // returns the app's argv
		wantLog string
	}{
		{
			name:    "missing file",
			setup:   func(f *fakeProc) []string { return []string{"-c", "/configs/nope.txt"} },
			wantLog: "no such file or directory",
		},
		{
			name:    "unreadable: a directory",
			setup:   func(f *fakeProc) []string { return []string{"-c", "/configs"} },
			wantLog: "is not a regular file",
		},
		{
			name: "unreadable: a FIFO must not block",
			setup: func(f *fakeProc) []string {
				if err := syscall.Mkfifo(f.host("/configs/fifo.txt"), 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"-c", "/configs/fifo.txt"}
			},
			wantLog: "is not a regular file",
		},
		{
			name: "huge file",
			setup: func(f *fakeProc) []string {
				f.write("/configs/huge.txt", "[application]\n"+strings.Repeat("#"+strings.Repeat("x", 1000)+"\n", 300))
				return []string{"-c", "/configs/huge.txt"}
			},
			wantLog: "file exceeds size limit",
		},
		{
			name: "binary garbage",
			setup: func(f *fakeProc) []string {
				garbage := make([]byte, 4096)
				for i := range garbage {
					garbage[i] = byte(i * 7)
				}
				f.write("/configs/garbage.txt", string(garbage))
				return []string{"-c", "/configs/garbage.txt"}
			},
			wantLog: "not valid UTF-8",
		},
		{
			name: "duplicate groups",
			setup: func(f *fakeProc) []string {
				f.write("/configs/dup.txt", "[sink1]\nenable=1\ntype=6\ntopic=detections\n[sink1]\ntopic=stolen\n")
				return []string{"-c", "/configs/dup.txt"}
			},
			wantLog: "duplicate group [sink1]",
		},
		{
			name: "duplicate keys",
			setup: func(f *fakeProc) []string {
				f.write("/configs/dupkey.txt", "[sink1]\nenable=1\ntype=6\ntopic=detections\ntopic=stolen\n")
				return []string{"-c", "/configs/dupkey.txt"}
			},
			wantLog: `duplicate key \"topic\"`,
		},
		{
			name:    "dot-dot escape in -c",
			setup:   func(f *fakeProc) []string { return []string{"-c", "../../../../../etc/passwd"} },
			wantLog: "path escapes the process root",
		},
		{
			name: "dot-dot escape in msg-broker-config",
			setup: func(f *fakeProc) []string {
				f.write("/configs/esc.txt", "[sink1]\nenable=1\ntype=6\ntopic=detections\nmsg-broker-config=../../../../host/cfg_kafka.txt\n")
				return []string{"-c", "/configs/esc.txt"}
			},
			wantLog: "path escapes the process root",
		},
		{
			name: "symlink escaping the root stays inside it",
			setup: func(f *fakeProc) []string {
				// A valid config outside the container root must not be read.
				outside := filepath.Join(filepath.Dir(f.rootfs), "outside.txt")
				if err := os.WriteFile(outside, []byte("[sink1]\nenable=1\ntype=6\ntopic=detections\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				f.symlink("/../outside.txt", "/configs/link.txt")
				return []string{"-c", "/configs/link.txt"}
			},
			wantLog: "no such file or directory",
		},
		{
			name: "symlink loop",
			setup: func(f *fakeProc) []string {
				f.symlink("/configs/loop-b.txt", "/configs/loop-a.txt")
				f.symlink("/configs/loop-a.txt", "/configs/loop-b.txt")
				return []string{"-c", "/configs/loop-a.txt"}
			},
			wantLog: "too many levels of symbolic links",
		},
		{
			name: "non-UTF-8 text",
			setup: func(f *fakeProc) []string {
				f.write("/configs/latin1.txt", "[sink1]\nenable=1\ntype=6\ntopic=d\xe9tections\n")
				return []string{"-c", "/configs/latin1.txt"}
			},
			wantLog: "line 4: text is not valid UTF-8",
		},
		{
			name: "bad escape in a value",
			setup: func(f *fakeProc) []string {
				f.write("/configs/esc2.txt", "[sink1]\nenable=1\ntype=6\ntopic=det\\qections\n")
				return []string{"-c", "/configs/esc2.txt"}
			},
			wantLog: "invalid escape sequence",
		},
		{
			name: "type is not a number",
			setup: func(f *fakeProc) []string {
				f.write("/configs/type.txt", "[sink1]\nenable=1\ntype=6 # broker\ntopic=detections\n")
				return []string{"-c", "/configs/type.txt"}
			},
			wantLog: "is not an integer",
		},
		{
			name: "several configs",
			setup: func(f *fakeProc) []string {
				return []string{"-c", "/configs/test5_kafka.txt", "--cfg-file=/configs/test5_kafka.txt"}
			},
			wantLog: "the process was given several",
		},
		{
			name:    "-c without a value",
			setup:   func(f *fakeProc) []string { return []string{"-c"} },
			wantLog: "empty path",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeProc(t)
			p := test5Process
			p.args = append([]string{"deepstream-test5-app"}, tt.setup(f)...)
			f.add(200, p)
			tp := loadPlugin(t, f.proc, "max_config_bytes = 65536")
			done := make(chan []string, 1)
			go func() {
				resp, err := tp.wa.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: 200})
				if err != nil {
					t.Errorf("Attest failed, want success without config selectors: %v", err)
				}
				done <- resp.GetSelectorValues()
			}()
			var got []string
			select {
			case got = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Attest did not return within 10s")
			}
			want := []string{
				"app:deepstream-test5-app",
				"container_id:" + testContainerID,
				"exe_sha256:" + f.sha(test5Process.exe),
				"version:7.1",
			}
			assertSelectors(t, got, want)
			logs := tp.logs.String()
			if !strings.Contains(logs, "Ignoring DeepStream config") || !strings.Contains(logs, tt.wantLog) {
				t.Fatalf("log does not warn with %q:\n%s", tt.wantLog, logs)
			}
		})
	}
}

func TestAttestMissingBrokerConfigIsFine(t *testing.T) {
	// The helper renders cfg_kafka.txt after the first SVID: a missing
	// adaptor config must not cost the pipeline its config selectors.
	f := newFakeProc(t)
	if err := os.Remove(f.host("/configs/cfg_kafka.txt")); err != nil {
		t.Fatal(err)
	}
	f.add(200, test5Process)
	assertSelectors(t, loadPlugin(t, f.proc, "").attest(t, 200), f.wantTest5())
}

func TestAttestBrokerFromAdaptorConfig(t *testing.T) {
	f := newFakeProc(t)
	f.write("/configs/amqp.txt", "[sink0]\nenable=1\ntype=6\nmsg-broker-proto-lib=/opt/nvidia/deepstream/deepstream/lib/libnvds_amqp_proto.so\nmsg-broker-config=cfg_amqp.txt\n")
	f.write("/configs/cfg_amqp.txt", "[message-broker]\nhostname = amqp.example.org\nport = 5672\ntopic = events\n")
	p := test5Process
	p.args = []string{"deepstream-test5-app", "-c", "amqp.txt"}
	f.add(200, p)
	got := loadPlugin(t, f.proc, "").attest(t, 200)
	for _, want := range []string{"proto:amqp", "broker:amqp.example.org:5672", "publish_topic:events"} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q in %q", want, got)
		}
	}
}

func TestAttestErrors(t *testing.T) {
	f := newFakeProc(t)
	tp := loadPlugin(t, f.proc, "-")
	_, err := tp.wa.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: 1})
	assertCode(t, err, codes.FailedPrecondition, "not configured")

	tp = loadPlugin(t, f.proc, "")
	_, err = tp.wa.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: 4242})
	assertCode(t, err, codes.NotFound, "process 4242 not found")
	_, err = tp.wa.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: -1})
	assertCode(t, err, codes.InvalidArgument, "invalid pid -1")
}

func assertCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msg) {
		t.Fatalf("error = %v, want %v containing %q", err, code, msg)
	}
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name    string
		hcl     string
		wantErr string
		check   func(t *testing.T, c *configuration)
	}{
		{name: "defaults", hcl: "", check: func(t *testing.T, c *configuration) {
			if c.childDepth != 1 || c.maxConfigBytes != DefaultMaxConfigBytes || c.hashModels || c.installDir != DefaultInstallDir ||
				!slices.Equal(c.appNames, []string{"deepstream-*"}) || !slices.Equal(c.libraryPrefixes, []string{"libnvds_"}) {
				t.Fatalf("defaults %+v", c)
			}
		}},
		{name: "all keys", hcl: `app_names = ["deepstream-*", "cam-*"]
interpreters = ["python3"]
script_names = ["ds_*"]
library_prefixes = ["libnvds_", "libnvinfer"]
child_depth = 0
hash_models = true
max_config_bytes = 1024
max_exe_bytes = 2048
max_model_bytes = 4096
install_dir = "/opt/ds"`, check: func(t *testing.T, c *configuration) {
			if c.childDepth != 0 || !c.hashModels || c.maxConfigBytes != 1024 || c.maxExeBytes != 2048 || c.maxModelBytes != 4096 || c.installDir != "/opt/ds" || len(c.appNames) != 2 {
				t.Fatalf("config %+v", c)
			}
		}},
		{name: "unknown key", hcl: "child_dept = 2", wantErr: `An argument named "child_dept" is not expected here`},
		{name: "every problem reported", hcl: "child_depth = 9\nmax_config_bytes = -1\napp_names = [\"[\"]\ninstall_dir = \"rel\"",
			wantErr: `app_names: bad pattern "[": syntax error in pattern; max_config_bytes: -1 is out of range (1..16777216); child_depth: 9 is out of range (0..8); install_dir: "rel" is not an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := buildConfig(tt.hcl)
			if tt.wantErr != "" {
				assertCode(t, err, codes.InvalidArgument, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}

	tp := loadPlugin(t, t.TempDir(), "-")
	resp, err := tp.config.Validate(context.Background(), &configv1.ValidateRequest{HclConfiguration: "child_depth = 20"})
	if err != nil || resp.Valid || len(resp.Notes) != 1 || !strings.Contains(resp.Notes[0], "child_depth") {
		t.Fatalf("Validate = %v, %v", resp, err)
	}
	_, err = tp.config.Configure(context.Background(), &configv1.ConfigureRequest{HclConfiguration: "child_depth = 20"})
	assertCode(t, err, codes.InvalidArgument, "child_depth: 20 is out of range")
}

func TestHelpers(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"-c", "a.txt"}, []string{"a.txt"}},
		{[]string{"-ca.txt", "--cfg-file", "b.txt", "--cfg-file=c.txt"}, []string{"a.txt", "b.txt", "c.txt"}},
		{[]string{"-t", "--", "-c", "x"}, nil},
		{[]string{"-c"}, []string{""}},
		{[]string{"--tiledtext", "-i", "x.mp4"}, nil},
	} {
		if got := configArgs(tt.args); !slices.Equal(got, tt.want) {
			t.Errorf("configArgs(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
	for _, tt := range []struct {
		args   []string
		script string
	}{
		{[]string{"deepstream_test_4.py", "-c", "x"}, "deepstream_test_4.py"},
		{[]string{"-u", "-X", "dev", "-W", "ignore", "app/deepstream_a.py"}, "app/deepstream_a.py"},
		{[]string{"--", "deepstream_b.py"}, "deepstream_b.py"},
		{[]string{"-c", "print(1)"}, ""},
		{[]string{"-m", "deepstream_mod"}, ""},
		{[]string{"-"}, ""},
	} {
		got, _, _ := scriptOf(tt.args)
		if got != tt.script {
			t.Errorf("scriptOf(%q) = %q, want %q", tt.args, got, tt.script)
		}
	}
	for _, tt := range []struct{ dir, p, want, err string }{
		{"/configs", "a.txt", "/configs/a.txt", ""},
		{"/configs", "../models/m.engine", "/models/m.engine", ""},
		{"/configs", "/abs/./x//y", "/abs/x/y", ""},
		{"/configs", "../../x", "", "path escapes the process root"},
		{"", "rel", "", "unknown working directory"},
		{"/", "", "", "empty path"},
	} {
		got, err := cleanAbs(tt.dir, tt.p)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("cleanAbs(%q, %q) = %q, %v; want %q, %q", tt.dir, tt.p, got, err, tt.want, tt.err)
		}
	}
	for _, tt := range []struct{ root, target, want string }{
		{"/", "/configs", "/configs"},
		{"/srv/c", "/srv/c/configs", "/configs"},
		{"/srv/c", "/srv/c", "/"},
		{"/srv/c", "/srv/cx/configs", ""},
	} {
		if got, _ := stripRoot(tt.root, tt.target); got != tt.want {
			t.Errorf("stripRoot(%q, %q) = %q, want %q", tt.root, tt.target, got, tt.want)
		}
	}
}

func TestContainerID(t *testing.T) {
	id := testContainerID
	for _, tt := range []struct{ cgroup, want string }{
		{"0::/system.slice/docker-" + id + ".scope\n", id},
		{"12:memory:/docker/" + id + "\n11:cpu:/docker/" + id + "\n", id},
		{"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b.slice/cri-containerd-" + id + ".scope\n", id},
		{"1:name=systemd:/kubepods/burstable/pod0d1f5c3e-2b4a-4c6d-8e9f-0a1b2c3d4e5f/" + id + "\n", id},
		{"0::/machine.slice/libpod-" + id + ".scope/container\n", id},
		{"0::/user.slice/user-1000.slice/session-2.scope\n", ""},
		{"4:memory:/process_api/ae2c496ad63035143167885ed841dc48\n", ""},
	} {
		f := newFakeProc(t)
		p := test5Process
		p.cgroup = tt.cgroup
		f.add(200, p)
		a := &attestation{p: &Plugin{hooks: hooks{procDir: f.proc}}, log: hclog.NewNullLogger()}
		proc, err := a.inspect(200)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.containerID(proc, hclog.NewNullLogger()); got != tt.want {
			t.Errorf("containerID(%q) = %q, want %q", tt.cgroup, got, tt.want)
		}
	}
}

func TestAttestRealProcess(t *testing.T) {
	// The plugin against the real /proc: the test binary itself is no
	// DeepStream app, so it gets no selectors, and that costs no error.
	tp := loadPlugin(t, "/proc", "")
	assertSelectors(t, tp.attest(t, os.Getpid()), nil)
}
