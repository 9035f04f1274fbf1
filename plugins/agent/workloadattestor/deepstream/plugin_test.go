package deepstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
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
	"golang.org/x/sys/unix"
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

// procEnv gives a test plugin its view of the system.
type procEnv interface{ apply(h *hooks) }

// realProc is the real /proc, cgroup file system and pidfds.
type realProc struct{}

func (realProc) apply(*hooks) {}

// fakeProc is a fake /proc plus a container root file system and a fake
// cgroup mount. Its pid handles report a process alive while its directory
// exists.
type fakeProc struct {
	t      *testing.T
	proc   string // fake /proc
	rootfs string // the "container" root
	cgroup string // fake cgroup root (cgroup v2 unless fsTypes says otherwise)

	fsTypes map[string]int64  // statfs answers, by path
	owners  map[string]uint32 // owner of a cgroup directory; default root
	parents map[int]int       // parent of a pid, from the children lists
}

type fakeProcess struct {
	exe      string // absolute path inside rootfs
	args     []string
	cwd      string // absolute path inside rootfs
	cgroup   string
	maps     string
	children []int
	hostRoot string // root link target; default rootfs

	ppid      int    // default: the process that lists it as a child, else 1
	startTime uint64 // default 1000
	// held makes it a child held at exec by its parent (static binary,
	// entry fakeEntry) unless the fields below say otherwise.
	held    bool
	state   byte   // default 'S', 't' when held
	tracer  int    // TracerPid; default the parent when held
	syscall string // default "running", or stopped in execve at fakeEntry when held
	auxv    []byte // default AT_ENTRY fakeEntry, AT_BASE 0
}

// fakeEntry is the entry point of the fake static executables.
const fakeEntry = 0x401000

// auxvBytes encodes auxv pairs, AT_NULL appended.
func auxvBytes(pairs ...uint64) []byte {
	pairs = append(pairs, atNull, 0)
	out := make([]byte, 0, len(pairs)*8)
	for _, v := range pairs {
		out = binary.NativeEndian.AppendUint64(out, v)
	}
	return out
}

func execveStop(pc uint64) string {
	return fmt.Sprintf("%d 0x5566aa 0x7ffd10 0x7ffd40 0x0 0x0 0x0 0x7ffdf0 %#x\n", unix.SYS_EXECVE, pc)
}

func newFakeProc(t *testing.T) *fakeProc {
	t.Helper()
	base := t.TempDir()
	f := &fakeProc{
		t: t, proc: filepath.Join(base, "proc"), rootfs: filepath.Join(base, "rootfs"), cgroup: filepath.Join(base, "cgroup"),
		fsTypes: map[string]int64{}, owners: map[string]uint32{}, parents: map[int]int{},
	}
	f.fsTypes[f.cgroup] = unix.CGROUP2_SUPER_MAGIC
	f.mkdir("/")
	for _, d := range []string{f.proc, f.cgroup} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
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

func (f *fakeProc) apply(h *hooks) {
	h.procDir = f.proc
	h.cgroupRoot = f.cgroup
	h.statfs = func(p string) (int64, error) {
		if _, err := os.Stat(p); err != nil {
			return 0, err
		}
		return f.fsTypes[p], nil
	}
	h.lstat = func(p string) (cgroupStat, error) {
		fi, err := os.Lstat(p)
		if err != nil {
			return cgroupStat{}, err
		}
		return cgroupStat{uid: f.owners[p], isDir: fi.IsDir()}, nil
	}
	h.openPid = func(pid int) (pidHandle, error) {
		dir := filepath.Join(f.proc, strconv.Itoa(pid))
		if _, err := os.Stat(dir); err != nil {
			return nil, os.ErrNotExist
		}
		return fakeHandle(dir), nil
	}
}

// fakeHandle is alive while its /proc directory exists.
type fakeHandle string

func (h fakeHandle) alive() error {
	if _, err := os.Stat(string(h)); err != nil {
		return fmt.Errorf("process has exited: %w", err)
	}
	return nil
}

func (fakeHandle) Close() error { return nil }

// cgroupDir creates the directory of cgroup line e in the fake cgroup
// mount: the v2 root for "0::", else a v1 hierarchy named after its
// controllers.
func (f *fakeProc) cgroupDir(line string) {
	parts := strings.SplitN(line, ":", 3)
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
		return
	}
	mount := f.cgroup
	if parts[1] != "" {
		mount = filepath.Join(f.cgroup, strings.TrimPrefix(parts[1], "name="))
		f.fsTypes[mount] = unix.CGROUP_SUPER_MAGIC
	}
	if err := os.MkdirAll(filepath.Join(mount, parts[2]), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

// procDir is the fake /proc/<pid>.
func (f *fakeProc) procDir(pid int) string { return filepath.Join(f.proc, strconv.Itoa(pid)) }

// writeProc writes one file of the fake /proc/<pid>.
func (f *fakeProc) writeProc(pid int, name, content string) {
	if err := os.WriteFile(filepath.Join(f.procDir(pid), name), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func statLine(pid int, comm string, state byte, ppid int, start uint64) string {
	return fmt.Sprintf("%d (%s) %c %d %d %d 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 %d 1234567 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
		pid, comm, state, ppid, pid, pid, start)
}

func statusText(pid int, comm string, state byte, ppid, tracer int, vcs, nvcs uint64) string {
	name := map[byte]string{'t': "t (tracing stop)", 'S': "S (sleeping)", 'R': "R (running)"}[state]
	if name == "" {
		name = string(state)
	}
	return fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\t%s\nTgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t%d\nTracerPid:\t%d\nUid:\t0\t0\t0\t0\nThreads:\t1\nvoluntary_ctxt_switches:\t%d\nnonvoluntary_ctxt_switches:\t%d\n",
		comm, name, pid, pid, ppid, tracer, vcs, nvcs)
}

func (f *fakeProc) add(pid int, p fakeProcess) {
	dir := filepath.Join(f.proc, strconv.Itoa(pid))
	task := filepath.Join(dir, "task", strconv.Itoa(pid))
	if err := os.MkdirAll(task, 0o755); err != nil {
		f.t.Fatal(err)
	}
	for _, c := range p.children {
		f.parents[c] = pid
	}
	if p.ppid == 0 {
		p.ppid = f.parents[pid]
		if p.ppid == 0 {
			p.ppid = 1
		}
	}
	if p.startTime == 0 {
		p.startTime = 1000
	}
	if p.state == 0 {
		p.state = 'S'
		if p.held {
			p.state = 't'
		}
	}
	if p.held && p.tracer == 0 {
		p.tracer = p.ppid
	}
	if p.syscall == "" {
		p.syscall = "running"
		if p.held {
			p.syscall = execveStop(fakeEntry)
		}
	}
	if p.auxv == nil {
		p.auxv = auxvBytes(atEntry, fakeEntry, atBase, 0)
	}
	for _, line := range strings.Split(p.cgroup, "\n") {
		f.cgroupDir(line)
	}
	comm := filepath.Base(p.exe)
	f.writeFile(filepath.Join(dir, "stat"), statLine(pid, comm, p.state, p.ppid, p.startTime))
	f.writeFile(filepath.Join(dir, "status"), statusText(pid, comm, p.state, p.ppid, p.tracer, 3, 2))
	f.writeFile(filepath.Join(dir, "syscall"), p.syscall)
	f.writeFile(filepath.Join(dir, "auxv"), string(p.auxv))
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

func (f *fakeProc) writeFile(name, content string) {
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
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

// wantTest5 is what a user expects for the test5 pipeline in testdata:
// when held at exec by its launcher, launch:held and the config selectors
// under their names; otherwise the config selectors as self-reported claims.
func (f *fakeProc) wantTest5(held bool) []string {
	claims := []string{
		"config_path:/configs/test5_kafka.txt",
		"config_sha256:" + f.sha("/configs/test5_kafka.txt"),
		"proto:kafka",
		"broker:kafka.example.org:9093",
		"publish_topic:detections",
		"subscribe_topic:site-a-commands",
		"subscribe_topic:site-a-config",
	}
	want := []string{
		"app:deepstream-test5-app",
		"exe_sha256:" + f.sha(test5Process.exe),
		"version:7.1",
		"container_id:" + testContainerID,
	}
	if held {
		want = append(want, "launch:held")
		want = append(want, claims...)
	} else {
		want = append(want, selfReportedAll(claims...)...)
	}
	slices.Sort(want)
	return want
}

// selfReportedAll prefixes each selector with "self_reported:".
func selfReportedAll(sels ...string) []string {
	out := make([]string, len(sels))
	for i, s := range sels {
		out[i] = selfReported + s
	}
	return out
}

type testPlugin struct {
	plugin *Plugin
	wa     *workloadattestorv1.WorkloadAttestorPluginClient
	config *configv1.ConfigServiceClient
	logs   *syncBuffer
}

func loadPlugin(t *testing.T, env procEnv, hclConfig string) *testPlugin {
	t.Helper()
	tp := &testPlugin{
		plugin: New(),
		wa:     new(workloadattestorv1.WorkloadAttestorPluginClient),
		config: new(configv1.ConfigServiceClient),
		logs:   new(syncBuffer),
	}
	env.apply(&tp.plugin.hooks)
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
	// An app that calls the Workload API itself may have rewritten its own
	// argv and cwd: its config selectors are claims.
	f := newFakeProc(t)
	f.add(200, test5Process)
	tp := loadPlugin(t, f, "")
	assertSelectors(t, tp.attest(t, 200), f.wantTest5(false))
}

func TestAttestChildOfHelper(t *testing.T) {
	f := newFakeProc(t)
	f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper", "run"}, children: []int{150, 200}})
	f.add(150, fakeProcess{exe: "/usr/bin/sleep", args: []string{"sleep", "1"}})
	held := test5Process
	held.held = true
	f.add(200, held)
	tp := loadPlugin(t, f, "")
	assertSelectors(t, tp.attest(t, 100), f.wantTest5(true))

	t.Run("a child that runs is self-reported", func(t *testing.T) {
		f.add(300, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper", "run"}, children: []int{301}})
		f.add(301, test5Process)
		assertSelectors(t, tp.attest(t, 300), f.wantTest5(false))
	})
	t.Run("depth 0 attests the caller only", func(t *testing.T) {
		tp := loadPlugin(t, f, "child_depth = 0")
		assertSelectors(t, tp.attest(t, 100), nil)
	})
}

func TestAttestGrandchildNeedsDepth(t *testing.T) {
	f := newFakeProc(t)
	f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{150}})
	f.add(150, fakeProcess{exe: "/usr/bin/sleep", args: []string{"sh"}, children: []int{200}})
	// Held, but by its parent 150, not by the caller: a grandchild is
	// never held by the caller.
	held := test5Process
	held.held = true
	f.add(200, held)
	assertSelectors(t, loadPlugin(t, f, "").attest(t, 100), nil)
	assertSelectors(t, loadPlugin(t, f, "child_depth = 2").attest(t, 100), f.wantTest5(false))
}

func TestAttestNotDeepStream(t *testing.T) {
	f := newFakeProc(t)
	f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{150}})
	f.add(150, fakeProcess{exe: "/usr/bin/sleep", args: []string{"sleep", "-c", "/configs/test5_kafka.txt"}})
	tp := loadPlugin(t, f, "")
	assertSelectors(t, tp.attest(t, 100), nil)
	assertSelectors(t, tp.attest(t, 150), nil)
}

func TestAttestSeveralChildren(t *testing.T) {
	f := newFakeProc(t)
	f.write("/configs/other.txt", "[sink0]\nenable=1\ntype=6\ntopic=other\n")
	f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{200, 201}})
	held := test5Process
	held.held = true
	f.add(200, held)
	f.add(201, held)
	tp := loadPlugin(t, f, "")
	assertSelectors(t, tp.attest(t, 100), f.wantTest5(true))

	// Two different pipelines: their selectors must not be merged.
	f.add(300, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{203, 202}})
	f.add(203, held)
	other := held
	other.args = []string{"deepstream-test5-app", "-c", "other.txt"}
	f.add(202, other)
	assertSelectors(t, tp.attest(t, 300), nil)
	if !strings.Contains(tp.logs.String(), "several different DeepStream apps") {
		t.Fatalf("no warning logged:\n%s", tp.logs)
	}

	// The same pipeline, once held and once running: a held child and one
	// that may have rewritten its argv are different, too.
	f.add(400, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{401, 402}})
	f.add(401, held)
	f.add(402, test5Process)
	assertSelectors(t, tp.attest(t, 400), nil)
}

func TestAttestPythonScript(t *testing.T) {
	f := newFakeProc(t)
	f.write("/apps/deepstream_test_4.py", "print('pipeline')\n")
	python := fakeProcess{
		exe:  "/usr/bin/python3.11",
		args: []string{"python3", "-u", "deepstream_test_4.py", "--cfg-file=/configs/test5_kafka.txt"},
		cwd:  "/apps",
	}
	f.add(400, python)
	f.add(401, fakeProcess{exe: "/usr/bin/python3.11", args: []string{"python3", "other.py"}, cwd: "/apps"})
	f.add(402, fakeProcess{exe: "/usr/bin/python3.11", args: []string{"python3", "-c", "import deepstream_x"}, cwd: "/apps"})
	f.add(500, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{501}})
	heldPython := python
	heldPython.held = true
	f.add(501, heldPython)
	tp := loadPlugin(t, f, "")
	facts := []string{"exe_sha256:" + f.sha("/usr/bin/python3.11")}
	// The script comes from argv: its name (app) and hash are claims unless
	// the interpreter was held at exec.
	argv := []string{
		"app:deepstream_test_4.py",
		"script_sha256:" + f.sha("/apps/deepstream_test_4.py"),
		"config_path:/configs/test5_kafka.txt",
		"publish_topic:detections",
	}
	for _, tt := range []struct {
		name    string
		pid     int
		want    []string
		notWant []string
	}{
		{"calls the API itself", 400, append(slices.Clone(facts), selfReportedAll(argv...)...), append(slices.Clone(argv), "launch:held")},
		{"held by its launcher", 500, append(append(slices.Clone(facts), argv...), "launch:held"), selfReportedAll(argv...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := tp.attest(t, tt.pid)
			for _, want := range tt.want {
				if !slices.Contains(got, want) {
					t.Errorf("missing %q in %q", want, got)
				}
			}
			for _, bad := range tt.notWant {
				if slices.Contains(got, bad) {
					t.Errorf("unexpected %q in %q", bad, got)
				}
			}
		})
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
	tp := loadPlugin(t, f, "")
	got := tp.attest(t, 500)
	// The executable's name is a kernel fact; the topic comes from argv.
	if !slices.Contains(got, "app:cam-pipeline") || !slices.Contains(got, "self_reported:publish_topic:detections") {
		t.Fatalf("selectors %q", got)
	}
	assertSelectors(t, loadPlugin(t, f, "disable_library_match = true").attest(t, 500), nil)
	assertSelectors(t, loadPlugin(t, f, `library_prefixes = ["libother_"]`).attest(t, 500), nil)
}

func TestAttestModelHashes(t *testing.T) {
	f := newFakeProc(t)
	f.write("/models/Primary_Detector/resnet18_trafficcamnet.etlt_b1_gpu0_int8.engine", "engine bytes")
	f.write("/models/Primary_Detector/resnet18_trafficcamnet.onnx", "onnx bytes")
	f.add(100, fakeProcess{exe: "/usr/bin/edgeid-helper", args: []string{"edgeid-helper"}, children: []int{200}})
	held := test5Process
	held.held = true
	f.add(200, held)
	without := loadPlugin(t, f, "").attest(t, 100)
	with := loadPlugin(t, f, "hash_models = true").attest(t, 100)
	want := append(slices.Clone(without),
		"model_sha256:"+f.sha("/models/Primary_Detector/resnet18_trafficcamnet.etlt_b1_gpu0_int8.engine"),
		"model_sha256:"+f.sha("/models/Primary_Detector/resnet18_trafficcamnet.onnx"))
	slices.Sort(want)
	// cal_trt.bin is referenced but absent: skipped with a warning.
	assertSelectors(t, with, want)

	// The models come from the config, which comes from argv.
	f.add(201, test5Process)
	got := loadPlugin(t, f, "hash_models = true").attest(t, 201)
	if !slices.Contains(got, "self_reported:model_sha256:"+f.sha("/models/Primary_Detector/resnet18_trafficcamnet.onnx")) {
		t.Fatalf("self-caller's model hash is not self-reported: %q", got)
	}
}

func TestAttestYAMLConfig(t *testing.T) {
	f := newFakeProc(t)
	f.write("/configs/test5.yml", "application:\n  enable-perf-measurement: 1\n")
	p := test5Process
	p.args = []string{"deepstream-test5-app", "-c", "test5.yml"}
	f.add(200, p)
	got := loadPlugin(t, f, "").attest(t, 200)
	if !slices.Contains(got, "self_reported:config_path:/configs/test5.yml") || !slices.Contains(got, "self_reported:config_sha256:"+f.sha("/configs/test5.yml")) {
		t.Fatalf("selectors %q", got)
	}
}

func TestAttestHashCache(t *testing.T) {
	f := newFakeProc(t)
	f.add(200, test5Process)
	tp := loadPlugin(t, f, "")
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
			tp := loadPlugin(t, f, "max_config_bytes = 65536")
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
	assertSelectors(t, loadPlugin(t, f, "").attest(t, 200), f.wantTest5(false))
}

func TestAttestBrokerFromAdaptorConfig(t *testing.T) {
	f := newFakeProc(t)
	f.write("/configs/amqp.txt", "[sink0]\nenable=1\ntype=6\nmsg-broker-proto-lib=/opt/nvidia/deepstream/deepstream/lib/libnvds_amqp_proto.so\nmsg-broker-config=cfg_amqp.txt\n")
	f.write("/configs/cfg_amqp.txt", "[message-broker]\nhostname = amqp.example.org\nport = 5672\ntopic = events\n")
	p := test5Process
	p.args = []string{"deepstream-test5-app", "-c", "amqp.txt"}
	f.add(200, p)
	got := loadPlugin(t, f, "").attest(t, 200)
	for _, want := range selfReportedAll("proto:amqp", "broker:amqp.example.org:5672", "publish_topic:events") {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q in %q", want, got)
		}
	}
}

func TestAttestErrors(t *testing.T) {
	f := newFakeProc(t)
	tp := loadPlugin(t, f, "-")
	_, err := tp.wa.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: 1})
	assertCode(t, err, codes.FailedPrecondition, "not configured")

	tp = loadPlugin(t, f, "")
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
		{name: "budgets", hcl: "max_attestation_bytes = 65536\nattestation_timeout = \"250ms\"", check: func(t *testing.T, c *configuration) {
			if c.maxAttestationBytes != 65536 || c.attestationTimeout != 250*time.Millisecond {
				t.Fatalf("config %+v", c)
			}
		}},
		{name: "budget defaults", hcl: "", check: func(t *testing.T, c *configuration) {
			if c.maxAttestationBytes != 32<<20 || c.attestationTimeout != 5*time.Second {
				t.Fatalf("config %+v", c)
			}
		}},
		{name: "budgets out of range", hcl: "max_attestation_bytes = 1024\nattestation_timeout = \"2m\"",
			wantErr: `max_attestation_bytes: 1024 is out of range (65536..1073741824); attestation_timeout: 2m0s is out of range (100ms..1m0s)`},
		{name: "budgets malformed", hcl: "max_attestation_bytes = -5\nattestation_timeout = \"soon\"",
			wantErr: `max_attestation_bytes: -5 is out of range (65536..1073741824); attestation_timeout: "soon" is not a duration such as "5s"`},
		{name: "unknown key", hcl: "child_dept = 2", wantErr: `An argument named "child_dept" is not expected here`},
		{name: "every problem reported", hcl: "child_depth = 9\nmax_config_bytes = -1\napp_names = [\"[\"]\ninstall_dir = \"rel\"",
			wantErr: `app_names: bad pattern "[": syntax error in pattern; max_config_bytes: -1 is out of range (1..16777216); child_depth: 9 is out of range (0..8); install_dir: "rel" is not an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, cfgStatus := buildConfig(&configv1.ConfigureRequest{HclConfiguration: tt.hcl})
			err := cfgStatus.Err()
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

	tp := loadPlugin(t, realProc{}, "-")
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
	other := strings.Repeat("ab", 32)
	const delegated = 64199
	for _, tt := range []struct {
		name    string
		cgroup  string
		setup   func(f *fakeProc) // ownership and mounts
		want    string
		wantLog string
	}{
		{name: "docker, systemd driver", cgroup: "0::/system.slice/docker-" + id + ".scope\n", want: id},
		{name: "docker, cgroupfs driver, v1", cgroup: "12:memory:/docker/" + id + "\n11:cpu,cpuacct:/docker/" + id + "\n", want: id},
		{name: "containerd, kubepods systemd driver", cgroup: "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b.slice/cri-containerd-" + id + ".scope\n", want: id},
		{name: "containerd, kubepods cgroupfs driver", cgroup: "1:name=systemd:/kubepods/burstable/pod0d1f5c3e-2b4a-4c6d-8e9f-0a1b2c3d4e5f/" + id + "\n", want: id},
		{name: "cri-o scope", cgroup: "0::/kubepods.slice/kubepods-pod1a2b.slice/crio-" + id + ".scope\n", want: id},
		{name: "cri-o cgroupfs", cgroup: "0::/kubepods/besteffort/pod1a2b/crio-" + id + "\n", want: id},
		{name: "podman scope with a nested cgroup", cgroup: "0::/machine.slice/libpod-" + id + ".scope/container\n", want: id},
		{name: "podman cgroupfs", cgroup: "0::/libpod_parent/libpod-" + id + "\n", want: id},
		{name: "the container's own delegated subtree is below the match", cgroup: "0::/machine.slice/libpod-" + id + ".scope/container\n",
			setup: func(f *fakeProc) {
				f.owners[filepath.Join(f.cgroup, "machine.slice/libpod-"+id+".scope/container")] = 1000
			}, want: id},
		{name: "hybrid host: 0:: is the unified mount", cgroup: "9:name=systemd:/\n0::/system.slice/docker-" + id + ".scope\n",
			setup: func(f *fakeProc) {
				if err := os.MkdirAll(filepath.Join(f.cgroup, "unified"), 0o755); err != nil {
					f.t.Fatal(err)
				}
				if err := os.Rename(filepath.Join(f.cgroup, "system.slice"), filepath.Join(f.cgroup, "unified", "system.slice")); err != nil {
					f.t.Fatal(err)
				}
				f.fsTypes[f.cgroup] = unix.TMPFS_MAGIC
				f.fsTypes[filepath.Join(f.cgroup, "unified")] = unix.CGROUP2_SUPER_MAGIC
			}, want: id},
		{name: "conmon is not the container", cgroup: "0::/machine.slice/libpod-conmon-" + id + ".scope\n", want: ""},
		{name: "session scope", cgroup: "0::/user.slice/user-1000.slice/session-2.scope\n", want: ""},
		{name: "32-hex name", cgroup: "4:memory:/process_api/ae2c496ad63035143167885ed841dc48\n", want: ""},
		{name: "bare id outside docker and kubepods", cgroup: "0::/system.slice/" + id + "\n", want: ""},
		{name: "bare id under a pod dir outside kubepods", cgroup: "0::/user.slice/pod1/" + id + "\n", want: ""},
		{name: "two containers on one line", cgroup: "0::/system.slice/docker-" + id + ".scope/docker-" + other + ".scope\n",
			want: "", wantLog: "conflicting container ids"},
		{name: "the same container twice on one line", cgroup: "0::/docker/" + id + "/docker-" + id + ".scope\n", want: id},
		{name: "two containers on two lines", cgroup: "12:memory:/docker/" + id + "\n11:cpu:/docker/" + other + "\n",
			want: "", wantLog: "Cgroups name different containers"},
		{name: "delegated subtree forges a docker scope", cgroup: "0::/user.slice/user-64199.slice/deleg/docker-" + id + ".scope\n",
			setup: func(f *fakeProc) {
				for _, d := range []string{"user.slice/user-64199.slice/deleg", "user.slice/user-64199.slice/deleg/docker-" + id + ".scope"} {
					f.owners[filepath.Join(f.cgroup, d)] = delegated
				}
			}, want: "", wantLog: "owned by uid 64199, not root"},
		{name: "root-owned scope under a delegated ancestor", cgroup: "0::/deleg/docker-" + id + ".scope\n",
			setup: func(f *fakeProc) { f.owners[filepath.Join(f.cgroup, "deleg")] = delegated }, want: "", wantLog: "deleg is owned by uid 64199"},
		{name: "delegated on one of several lines", cgroup: "12:memory:/docker/" + id + "\n1:name=systemd:/docker/" + id + "\n",
			setup: func(f *fakeProc) { f.owners[filepath.Join(f.cgroup, "systemd/docker/"+id)] = delegated }, want: "", wantLog: "not root"},
		{name: "hierarchy not mounted under the cgroup root", cgroup: "12:memory:/docker/" + id + "\n",
			setup: func(f *fakeProc) { delete(f.fsTypes, filepath.Join(f.cgroup, "memory")) }, want: "", wantLog: "Unable to check the owner of a container's cgroup"},
		{name: "repeated hierarchy id", cgroup: "0::/user.slice\n0::/system.slice/docker-" + id + ".scope\n", want: "", wantLog: "hierarchy 0 repeats"},
		{name: "dot-dot component", cgroup: "0::/../system.slice/docker-" + id + ".scope\n", want: "", wantLog: "empty, . or .. component"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeProc(t)
			p := test5Process
			p.cgroup = tt.cgroup
			f.add(200, p)
			if tt.setup != nil {
				tt.setup(f)
			}
			tp := loadPlugin(t, f, "")
			var got string
			for _, s := range tp.attest(t, 200) {
				if v, ok := strings.CutPrefix(s, "container_id:"); ok {
					got = v
				}
			}
			if got != tt.want {
				t.Errorf("container_id = %q, want %q\n%s", got, tt.want, tp.logs)
			}
			if tt.wantLog != "" && !strings.Contains(tp.logs.String(), tt.wantLog) {
				t.Errorf("log does not say %q:\n%s", tt.wantLog, tp.logs)
			}
		})
	}
}

func TestAttestRealProcess(t *testing.T) {
	// The plugin against the real /proc: the test binary itself is no
	// DeepStream app, so it gets no selectors, and that costs no error.
	tp := loadPlugin(t, realProc{}, "")
	assertSelectors(t, tp.attest(t, os.Getpid()), nil)
}
