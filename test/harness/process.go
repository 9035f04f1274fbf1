package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logTailLines is how many lines of each process log a failing test prints.
const logTailLines = 60

// Process is a program started by the harness. Its standard output and
// error go to LogPath. It is stopped when the test ends, and its log tail is
// printed if the test failed.
type Process struct {
	// Name labels the process in messages and log dumps.
	Name string
	// LogPath receives the process's standard output and error.
	LogPath string

	bin  string
	args []string
	dir  string
	env  []string
	cred *syscall.Credential

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// ProcessSpec describes a program to run.
type ProcessSpec struct {
	// Name labels the process; its log is <Dir>/<Name>.log.
	Name string
	// Bin and Args are the program and its arguments.
	Bin  string
	Args []string
	// Dir is the working directory and where the log goes.
	Dir string
	// Env is the whole environment. When nil the process gets a minimal
	// clean one (PATH, HOME=Dir), never the test's own: SPIRE's built-in
	// vault plugin, for one, lets VAULT_ADDR override its configuration.
	Env []string
	// Credential, when set, runs the process as another user (PostgreSQL
	// refuses to run as root).
	Credential *syscall.Credential
}

// StartProcess starts a program and registers its cleanup with t.
func StartProcess(t testing.TB, spec ProcessSpec) *Process {
	t.Helper()
	env := spec.Env
	if env == nil {
		env = CleanEnv(spec.Dir)
	}
	p := &Process{
		Name:    spec.Name,
		LogPath: filepath.Join(spec.Dir, spec.Name+".log"),
		bin:     spec.Bin,
		args:    spec.Args,
		dir:     spec.Dir,
		env:     env,
		cred:    spec.Credential,
	}
	if err := p.start(); err != nil {
		t.Fatalf("harness: start %s: %v", p.Name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			p.DumpLog(t)
		}
		p.Stop()
	})
	return p
}

// CleanEnv returns a minimal environment for a child process: the PATH,
// HOME set to home, and nothing else.
func CleanEnv(home string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
}

func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running", p.Name)
		}
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== harness: starting %s %v at %s\n", p.bin, p.args, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	cmd.Stdout = logf
	cmd.Stderr = logf
	// A process group of its own, so that stopping it also stops the
	// plugin processes SPIRE starts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Restart starts the process again with the same arguments after it has
// stopped.
func (p *Process) Restart(t testing.TB) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatalf("harness: restart %s: %v", p.Name, err)
	}
}

// PID returns the process ID of the current run.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Exited reports whether the current run has ended, and with what error.
func (p *Process) Exited() (bool, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Done returns a channel closed when the current run ends.
func (p *Process) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Stop sends SIGTERM to the process group, waits up to 10 s, then kills it.
// It is a no-op when the process is not running.
func (p *Process) Stop() {
	p.signalAndWait(syscall.SIGTERM, 10*time.Second)
}

// Kill sends SIGKILL to the process group and waits for it to end.
func (p *Process) Kill() {
	p.signalAndWait(syscall.SIGKILL, 10*time.Second)
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return errors.New("not started")
	}
	return p.cmd.Process.Signal(sig)
}

func (p *Process) signalAndWait(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// DumpLog prints the last lines of the process log through t.Log.
func (p *Process) DumpLog(t testing.TB) {
	t.Helper()
	t.Logf("---- last %d lines of %s (%s) ----\n%s", logTailLines, p.Name, p.LogPath, tail(p.LogPath, logTailLines))
}

// Log returns the whole log so far.
func (p *Process) Log() string {
	data, _ := os.ReadFile(p.LogPath)
	return string(data)
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = redactSecretLine(l)
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// secretLinePrefixes start the lines of a dev Vault's banner that hold its
// root token and unseal key: a dumped log never shows them.
var secretLinePrefixes = [][]byte{[]byte("Root Token:"), []byte("Unseal Key:")}

func redactSecretLine(l []byte) []byte {
	trimmed := bytes.TrimSpace(l)
	for _, p := range secretLinePrefixes {
		if bytes.HasPrefix(trimmed, p) {
			return append(append([]byte{}, p...), " (redacted)"...)
		}
	}
	return l
}

// RSSKB returns the resident set size of process pid in KiB (VmRSS), or
// 0 when it cannot be read.
func RSSKB(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: pick a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Eventually calls fn until it returns nil or timeout passes, then fails the
// test with fn's last error.
func Eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	if err := Poll(timeout, fn); err != nil {
		t.Fatalf("harness: condition not met within %s: %v", timeout, err)
	}
}

// Poll calls fn every 100 ms until it returns nil or timeout passes, and
// returns fn's last error.
func Poll(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ShortTempDir returns a new temporary directory with a short path, for
// Unix sockets (whose paths are limited to 107 bytes), removed at cleanup.
// Others may search it (0755): edgeid runs its services under accounts of
// their own, which must reach the run directory below it.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "eid")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return dir
}

func itoa(i int) string { return strconv.Itoa(i) }
