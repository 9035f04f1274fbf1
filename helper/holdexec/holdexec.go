//go:build linux

package holdexec

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrDone is returned by Release and Kill when the Held was already
// released or killed.
var ErrDone = errors.New("holdexec: child already released or killed")

// Held is a child process stopped right after execve.
type Held struct {
	pid int

	mu   sync.Mutex
	done bool
	ops  chan op
}

type opKind int

const (
	opRelease opKind = iota
	opKill
)

type op struct {
	kind   opKind
	result chan error
}

// Start starts cmd held at exec: when Start returns without error, the child
// has replaced its image with cmd.Path and is stopped before its first
// instruction. cmd must not have been started, and cmd.SysProcAttr.Ptrace
// must not be set by the caller. The caller must call Release or Kill, and
// then cmd.Wait.
func Start(cmd *exec.Cmd) (*Held, error) {
	if cmd.Process != nil {
		return nil, errors.New("holdexec: command already started")
	}
	attr := &syscall.SysProcAttr{}
	if cmd.SysProcAttr != nil {
		if cmd.SysProcAttr.Ptrace {
			return nil, errors.New("holdexec: SysProcAttr.Ptrace is set by the caller")
		}
		copied := *cmd.SysProcAttr
		attr = &copied
	}
	attr.Ptrace = true
	cmd.SysProcAttr = attr

	h := &Held{ops: make(chan op)}
	started := make(chan error, 1)
	go h.trace(cmd, started)
	if err := <-started; err != nil {
		return nil, err
	}
	return h, nil
}

// trace starts the child and serves ptrace requests for it from one locked
// OS thread.
func (h *Held) trace(cmd *exec.Cmd, started chan<- error) {
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		started <- fmt.Errorf("holdexec: start %s: %w", cmd.Path, err)
		return
	}
	h.pid = cmd.Process.Pid
	if err := waitExecStop(h.pid); err != nil {
		_ = syscall.Kill(h.pid, syscall.SIGKILL)
		runtime.UnlockOSThread()
		started <- err
		return
	}
	if err := unix.PtraceSetOptions(h.pid, unix.PTRACE_O_EXITKILL); err != nil {
		_ = syscall.Kill(h.pid, syscall.SIGKILL)
		runtime.UnlockOSThread()
		started <- fmt.Errorf("holdexec: set ptrace options for pid %d: %w", h.pid, err)
		return
	}
	started <- nil

	req := <-h.ops
	var err error
	switch req.kind {
	case opRelease:
		if derr := syscall.PtraceDetach(h.pid); derr != nil {
			// Never leave the child stopped or let it run half-released:
			// a failed release kills it.
			_ = syscall.Kill(h.pid, syscall.SIGKILL)
			err = fmt.Errorf("holdexec: release pid %d (child killed): %w", h.pid, derr)
		}
	case opKill:
		if kerr := syscall.Kill(h.pid, syscall.SIGKILL); kerr != nil {
			err = fmt.Errorf("holdexec: kill pid %d: %w", h.pid, kerr)
		}
	}
	// With the child detached or dead this thread traces nothing any more,
	// so it can go back to the scheduler's pool.
	runtime.UnlockOSThread()
	req.result <- err
}

// waitExecStop waits until pid reports its post-exec SIGTRAP stop. The
// status of a stop is not the child's exit, so cmd.Wait still works later.
func waitExecStop(pid int) error {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, syscall.WALL, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("holdexec: wait for pid %d to stop at exec: %w", pid, err)
		}
		if ws.Stopped() && ws.StopSignal() == syscall.SIGTRAP {
			return nil
		}
		if ws.Exited() || ws.Signaled() {
			return fmt.Errorf("holdexec: pid %d ended before it stopped at exec (status %v)", pid, ws)
		}
		// Some other stop (a signal sent to the child before exec
		// completed): the exec stop is still to come, so pass the signal on.
		if ws.Stopped() {
			if err := syscall.PtraceCont(pid, int(ws.StopSignal())); err != nil {
				return fmt.Errorf("holdexec: continue pid %d: %w", pid, err)
			}
		}
	}
}

// Pid is the held child's process id.
func (h *Held) Pid() int { return h.pid }

// Release lets the held child run. If detaching fails, the child is killed
// and the error says so; it never stays stopped. Release returns ErrDone
// when called after Release or Kill.
func (h *Held) Release() error { return h.do(opRelease) }

// Kill kills the held child with SIGKILL without letting it run. It returns
// ErrDone when called after Release or Kill. The caller still reaps the
// child with cmd.Wait.
func (h *Held) Kill() error { return h.do(opKill) }

func (h *Held) do(kind opKind) error {
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return ErrDone
	}
	h.done = true
	h.mu.Unlock()
	result := make(chan error, 1)
	h.ops <- op{kind: kind, result: result}
	return <-result
}
