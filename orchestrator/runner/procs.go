package runner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/orchestrator/render"
)

// process is a service's process as the runner sees it: found by its PID
// file, started, stopped, watched. launcher is the seam for tests.
type process interface {
	// label names it in messages (host/service); logPath is its log.
	label() string
	logPath() string
	pid() int
	start() (bool, error)
	stop(grace time.Duration) error
	exited() (bool, string)
	argvChanged() bool
}

// launcher turns a process description into the process the runner
// drives; nil means the real one (*proc itself).
type launcher func(*proc) process

func (p *proc) label() string   { return p.name }
func (p *proc) logPath() string { return p.logFile }

// proc is a supervised process of the run: its PID file and log live in
// the run directory, so `down` and a later `up` find it.
type proc struct {
	name    string
	argv    []string
	dir     string
	env     []string
	pidFile string
	logFile string
	// account is who the process runs as, with caps as its ambient
	// capabilities, when the run separates privileges (as root).
	account render.Account
	caps    []string
	privsep bool
}

// pid returns the PID of the running process, or 0 when it is not running
// (no PID file, a stale one, or a PID reused by another program).
func (p *proc) pid() int {
	data, err := os.ReadFile(p.pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return 0
	}
	// Guard against PID reuse: the process must run the same program.
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0
	}
	want, err := filepath.EvalSymlinks(p.argv[0])
	if err != nil {
		want = p.argv[0]
	}
	if strings.TrimSuffix(exe, " (deleted)") != want {
		return 0
	}
	return pid
}

var closeInherited sync.Once

// markInheritedCloseOnExec sets close-on-exec on every descriptor above
// standard error. The processes `up` starts outlive it, and must not keep
// open whatever it inherited from its own parent (a lock file held by
// flock(1), say, would stay locked for as long as the run lives).
func markInheritedCloseOnExec() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// start runs the process detached in its own session, logging to its log
// file, unless it already runs. It reports whether it started it.
func (p *proc) start() (bool, error) {
	if p.pid() != 0 {
		return false, nil
	}
	closeInherited.Do(markInheritedCloseOnExec)
	if err := os.MkdirAll(filepath.Dir(p.logFile), 0o755); err != nil {
		return false, err
	}
	logf, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return false, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== edgeid: starting %s at %s\n", strings.Join(p.argv, " "), time.Now().Format(time.RFC3339))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	attr, err := p.sysProcAttr()
	if err != nil {
		return false, err
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start %s: %w", p.name, err)
	}
	if err := fsutil.WriteFileAtomicMkdir(p.pidFile+".argv", []byte(strings.Join(p.argv, "\x00")), 0o644, fsutil.Keep); err != nil {
		_ = cmd.Process.Kill()
		return false, err
	}
	if err := fsutil.WriteFileAtomicMkdir(p.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644, fsutil.Keep); err != nil {
		_ = cmd.Process.Kill()
		return false, err
	}
	// Reap it if it exits while we still run; afterwards init does.
	go func() { _ = cmd.Wait() }()
	return true, nil
}

// sysProcAttr puts the process in a session of its own and, when the run
// separates privileges, under its account (no supplementary groups) with
// only its ambient capabilities.
func (p *proc) sysProcAttr() (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{Setsid: true}
	if !p.privsep {
		return attr, nil
	}
	if p.account.IsRoot() {
		return nil, fmt.Errorf("start %s: refusing to run a service as root", p.name)
	}
	attr.Credential = &syscall.Credential{Uid: uint32(p.account.UID), Gid: uint32(p.account.GID), Groups: []uint32{}}
	for _, c := range p.caps {
		n, ok := capabilities[c]
		if !ok {
			return nil, fmt.Errorf("start %s: unknown capability %q", p.name, c)
		}
		attr.AmbientCaps = append(attr.AmbientCaps, n)
	}
	return attr, nil
}

// capabilities maps the capability names a plan uses to their numbers.
var capabilities = map[string]uintptr{
	render.CapSysPtrace:     unix.CAP_SYS_PTRACE,
	render.CapDacReadSearch: unix.CAP_DAC_READ_SEARCH,
}

// argvChanged reports whether the running process was started with a
// different command line than p's.
func (p *proc) argvChanged() bool {
	data, err := os.ReadFile(p.pidFile + ".argv")
	return err != nil || string(data) != strings.Join(p.argv, "\x00")
}

// exited reports whether a process started by start has already died,
// with the tail of its log to explain why.
func (p *proc) exited() (bool, string) {
	if p.pid() != 0 {
		return false, ""
	}
	return true, logTail(p.logFile, 15)
}

// stop sends SIGTERM to the process's session, waits up to grace, then
// SIGKILLs it. It is a no-op when the process is not running.
func (p *proc) stop(grace time.Duration) error {
	pid := p.pid()
	if pid == 0 {
		os.Remove(p.pidFile)
		return nil
	}
	// The process leads its own session and group (Setsid), so the
	// signal also reaches the plugins or workloads it started.
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	_ = syscall.Kill(pid, syscall.SIGTERM) // in case it leads no group
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	os.Remove(p.pidFile)
	return nil
}

func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(string(data), n)
}

// poll calls fn every interval until it returns nil, ctx ends or timeout
// passes; it returns fn's last error.
func poll(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	interval := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
		if interval < 500*time.Millisecond {
			interval *= 2
		}
	}
}

// permanentError stops poll at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
