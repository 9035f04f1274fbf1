package deepstream

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"golang.org/x/sys/unix"

	"github.com/edgeid/edgeid/helper/holdexec"
)

// tracerEnv makes the test binary a tracer process: it attaches to the pid
// in the variable, says "attached" on stdout and stays until stdin closes.
const tracerEnv = "DEEPSTREAM_TEST_TRACE_PID"

func TestMain(m *testing.M) {
	if pid := os.Getenv(tracerEnv); pid != "" {
		os.Exit(runTracer(pid))
	}
	os.Exit(m.Run())
}

func runTracer(pidText string) int {
	runtime.LockOSThread()
	pid, err := strconv.Atoi(pidText)
	if err == nil {
		err = unix.PtraceAttach(pid)
	}
	if err == nil {
		var ws unix.WaitStatus
		_, err = unix.Wait4(pid, &ws, unix.WALL, nil)
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("attached")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// realPipeline is a DeepStream app on disk: a copy of a real program under
// the name deepstream-test5-app, and the test5 config beside it.
type realPipeline struct {
	dir, app, config string
	exeSum, cfgSum   string
}

func newRealPipeline(t *testing.T, program string) *realPipeline {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(program)
	if err != nil {
		t.Fatal(err)
	}
	p := &realPipeline{dir: dir, app: filepath.Join(dir, "deepstream-test5-app"), config: filepath.Join(dir, "test5.txt")}
	if err := os.WriteFile(p.app, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join("testdata", "test5_kafka.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	exeSum, cfgSum := sha256.Sum256(data), sha256.Sum256(cfg)
	p.exeSum, p.cfgSum = hex.EncodeToString(exeSum[:]), hex.EncodeToString(cfgSum[:])
	return p
}

// want is the selector set of the pipeline, held (trusted names and
// launch:held) or not (self-reported claims).
func (p *realPipeline) want(held bool) []string {
	claims := []string{
		"broker:kafka.example.org:9093",
		"config_path:" + p.config,
		"config_sha256:" + p.cfgSum,
		"proto:kafka",
		"publish_topic:detections",
		"subscribe_topic:site-a-commands",
		"subscribe_topic:site-a-config",
	}
	want := []string{"app:deepstream-test5-app", "exe_sha256:" + p.exeSum}
	if held {
		want = append(append(want, "launch:held"), claims...)
	} else {
		want = append(want, selfReportedAll(claims...)...)
	}
	slices.Sort(want)
	return want
}

// command is the pipeline's command line, run in its directory.
func (p *realPipeline) command(args ...string) *exec.Cmd {
	cmd := exec.Command(p.app, append([]string{"-c", "test5.txt"}, args...)...)
	cmd.Dir = p.dir
	return cmd
}

// withoutContainerID drops container_id, which depends on where the test
// runs.
func withoutContainerID(sels []string) []string {
	return slices.DeleteFunc(slices.Clone(sels), func(s string) bool { return strings.HasPrefix(s, "container_id:") })
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %v", name, err)
	}
	return p
}

// buildStandin builds the static stand-in DeepStream app.
func buildStandin(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "deepstream-test5-app")
	cmd := exec.Command("go", "build", "-o", out, "github.com/edgeid/edgeid/test/standin/deepstream-test5-app")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build stand-in: %v\n%s", err, msg)
	}
	return out
}

// TestAttestHeldChildRealProc runs the trust model on the real /proc: this
// test process launches an app held at exec (as edgeid-helper does) and is
// attested. The held child's argv-derived selectors are trusted only while
// the kernel shows it held by the caller at the entry of its new image.
func TestAttestHeldChildRealProc(t *testing.T) {
	startHeld := func(t *testing.T, p *realPipeline) (*holdexec.Held, *exec.Cmd) {
		t.Helper()
		cmd := p.command()
		held, err := holdexec.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if held.Kill() != nil {
				_ = cmd.Process.Kill() // released
			}
			_ = cmd.Wait()
		})
		return held, cmd
	}

	t.Run("dynamic binary held at exec", func(t *testing.T) {
		// sleep is dynamically linked: its pc is ld.so's entry at AT_BASE.
		p := newRealPipeline(t, lookPath(t, "sleep"))
		held, _ := startHeld(t, p)
		tp := loadPlugin(t, realProc{}, "")
		assertSelectors(t, withoutContainerID(tp.attest(t, os.Getpid())), p.want(true))
		// The held child calling for itself would be a self-caller.
		assertSelectors(t, withoutContainerID(tp.attest(t, held.Pid())), p.want(false))
		t.Run("no children considered at depth 0", func(t *testing.T) {
			assertSelectors(t, loadPlugin(t, realProc{}, "child_depth = 0").attest(t, os.Getpid()), nil)
		})
	})

	// The stand-in is a static Go binary that parses its -c config and then
	// runs until killed.
	standin := buildStandin(t)

	t.Run("static binary held at exec", func(t *testing.T) {
		// A static binary's pc is AT_ENTRY.
		p := newRealPipeline(t, standin)
		startHeld(t, p)
		tp := loadPlugin(t, realProc{}, "")
		assertSelectors(t, withoutContainerID(tp.attest(t, os.Getpid())), p.want(true))
	})

	t.Run("released child", func(t *testing.T) {
		p := newRealPipeline(t, standin)
		held, _ := startHeld(t, p)
		if err := held.Release(); err != nil {
			t.Fatal(err)
		}
		waitState(t, held.Pid(), 'S')
		tp := loadPlugin(t, realProc{}, "")
		assertSelectors(t, withoutContainerID(tp.attest(t, os.Getpid())), p.want(false))
		if !strings.Contains(tp.logs.String(), "not in a ptrace stop") {
			t.Fatalf("debug log does not give the reason:\n%s", tp.logs)
		}
	})

	t.Run("self-caller", func(t *testing.T) {
		p := newRealPipeline(t, standin)
		cmd := p.command()
		startChildRunning(t, cmd)
		tp := loadPlugin(t, realProc{}, "")
		assertSelectors(t, withoutContainerID(tp.attest(t, cmd.Process.Pid)), p.want(false))
	})

	t.Run("child traced by another process", func(t *testing.T) {
		p := newRealPipeline(t, standin)
		cmd := p.command()
		startChildRunning(t, cmd)
		stopTracer := attachTracer(t, cmd.Process.Pid)
		defer stopTracer()
		tp := loadPlugin(t, realProc{}, "")
		assertSelectors(t, withoutContainerID(tp.attest(t, os.Getpid())), p.want(false))
		if !strings.Contains(tp.logs.String(), "not by the caller") {
			t.Fatalf("debug log does not name the foreign tracer:\n%s", tp.logs)
		}
	})

	t.Run("grandchild held by the caller at exec", func(t *testing.T) {
		// Everything but the parent is right: the caller traces the
		// process, which is stopped at the entry of its new image, but
		// its parent is another process.
		p := newRealPipeline(t, standin)
		pid := seizeGrandchildAtExec(t, p)
		// The other facts hold: traced by this process, stopped in execve at
		// the entry of the new image.
		a := newRealAttestation()
		proc, err := a.track(pid, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.inspect(proc); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		status, err := parseStatus(data)
		if err != nil || status.state != 't' || status.tracerPid == 0 {
			t.Fatalf("grandchild status %+v, %v", status, err)
		}
		data, _ = os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		sc, err := parseSyscall(data)
		if err != nil {
			t.Fatal(err)
		}
		entry, err := a.imageEntry(proc)
		if err != nil || sc.pc != entry || sc.nr != unix.SYS_EXECVE {
			t.Fatalf("grandchild is not at its exec entry: syscall %q, entry %#x, %v", data, entry, err)
		}
		a.closeAll()

		tp := loadPlugin(t, realProc{}, "child_depth = 2")
		assertSelectors(t, withoutContainerID(tp.attest(t, os.Getpid())), p.want(false))
		if !strings.Contains(tp.logs.String(), "not a direct child of the caller") {
			t.Fatalf("debug log does not give the reason for pid %d:\n%s", pid, tp.logs)
		}
	})
}

// newRealAttestation is an attestation on the real /proc with the default
// configuration, for tests that call its steps directly.
func newRealAttestation() *attestation {
	cfg, cfgStatus := buildConfig(&configv1.ConfigureRequest{})
	if err := cfgStatus.Err(); err != nil {
		panic(err)
	}
	p := New()
	return &attestation{p: p, cfg: cfg, ctx: context.Background(), log: p.log, bytesLeft: cfg.maxAttestationBytes}
}

// waitState waits until pid's state (from stat) is state.
func waitState(t *testing.T, pid int, state byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if st, err := parseStat(data); err == nil && st.state == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not reach state %c", pid, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startChildRunning starts cmd as an ordinary child, killed at cleanup,
// and waits until it has exec'd (its exe is cmd.Path).
func startChildRunning(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		if exe == cmd.Path {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not exec %s", cmd.Process.Pid, cmd.Path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// attachTracer makes another process (this test binary in tracer mode)
// ptrace-attach pid. The returned function ends the tracer.
func attachTracer(t *testing.T, pid int) func() {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), tracerEnv+"="+strconv.Itoa(pid))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "attached" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("tracer: %q", line)
	}
	return func() {
		stdin.Close()
		_ = cmd.Wait()
	}
}

// seizeGrandchildAtExec starts sh, whose child stops itself and then execs
// the pipeline; this test process seizes that grandchild from a locked OS
// thread and lets it run into its exec stop. It returns the grandchild's
// pid, held by this process but parented by sh.
func seizeGrandchildAtExec(t *testing.T, p *realPipeline) int {
	t.Helper()
	sh := lookPath(t, "sh")
	script := `sh -c 'kill -STOP $$; exec "$0" -c test5.txt' "$0"; sleep 300`
	outer := exec.Command(sh, "-c", script, p.app)
	outer.Dir = p.dir
	outer.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := outer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-outer.Process.Pid, syscall.SIGKILL)
		_ = outer.Wait()
	})
	// Find the inner sh once it has stopped itself.
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for pid == 0 {
		if time.Now().After(deadline) {
			t.Fatal("inner sh did not stop")
		}
		time.Sleep(10 * time.Millisecond)
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", outer.Process.Pid, outer.Process.Pid))
		fields := strings.Fields(string(data))
		if len(fields) != 1 {
			continue
		}
		n, _ := strconv.Atoi(fields[0])
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if st, err := parseStat(stat); err == nil && st.state == 'T' {
			pid = n
		}
	}
	done := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		// ptrace requests come from the tracing thread, which must stay
		// alive until the test ends.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		result <- traceToExec(pid)
		<-done
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}()
	t.Cleanup(func() { close(done) })
	select {
	case err := <-result:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("grandchild did not reach its exec stop")
	}
	return pid
}

func traceToExec(pid int) error {
	if err := unix.PtraceSeize(pid); err != nil {
		return fmt.Errorf("seize: %w", err)
	}
	if err := unix.PtraceSetOptions(pid, unix.PTRACE_O_TRACEEXEC|unix.PTRACE_O_EXITKILL); err != nil {
		return fmt.Errorf("set options: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return err
	}
	for range 20 {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
			return fmt.Errorf("wait: %w", err)
		}
		if !ws.Stopped() {
			return fmt.Errorf("grandchild ended: %v", ws)
		}
		if ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() == unix.PTRACE_EVENT_EXEC {
			return nil
		}
		sig := 0
		if ws.TrapCause() == -1 && ws.StopSignal() != unix.SIGSTOP && ws.StopSignal() != unix.SIGTRAP {
			sig = int(ws.StopSignal())
		}
		if err := unix.PtraceCont(pid, sig); err != nil {
			return fmt.Errorf("continue: %w", err)
		}
	}
	return fmt.Errorf("no exec stop after 20 stops")
}
