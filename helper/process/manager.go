package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgeid/edgeid/helper/holdexec"
)

// Config describes the managed program.
type Config struct {
	// Path and Args are the program and its arguments. Path empty means
	// no program: only the PID file is signalled.
	Path string
	Args []string
	Env  []string
	// Stdin, Stdout and Stderr are attached to the program.
	Stdin          io.Reader
	Stdout, Stderr io.Writer

	// RenewSignal is sent on rotation unless Restart is set; 0 sends none.
	RenewSignal syscall.Signal
	// Restart stops and starts the program on every rotation.
	Restart bool
	// StopTimeout bounds the wait after SIGTERM before SIGKILL.
	StopTimeout time.Duration
	// RestartOnExit starts the program again when it exits on its own,
	// after a backoff that doubles from BackoffMin to BackoffMax and
	// resets once the program has run for BackoffMax.
	RestartOnExit bool
	BackoffMin    time.Duration
	BackoffMax    time.Duration

	// PIDFileName names a file with the PID to send RenewSignal to after
	// each rotation; it is read anew every time.
	PIDFileName string

	// Hold starts the program as soon as Run starts, held at exec (see
	// package holdexec), and lets it run at the first rotation, once the
	// first SVID is on disk. Later starts are not held, except after
	// Rehold.
	Hold bool

	Logger *slog.Logger
	// Hooks observe the manager; nil fields are skipped.
	Hooks Hooks
}

// Hooks observe process events, for metrics and tests.
type Hooks struct {
	// Held runs when the program was started held at exec.
	Held      func(pid int)
	Started   func(pid int)
	Exited    func(pid int, err error, expected bool)
	Signalled func(pid int, sig syscall.Signal)
	// Rotated runs after the manager acted on a rotation.
	Rotated func()
}

// Manager supervises one program.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	rotate chan bool // true: Rotated already signalled the program
	// running is the program while it runs freely and rotations signal
	// it (RenewSignal without Restart), so that Rotated can signal it at
	// once instead of waiting for Run's loop to wake up.
	running atomic.Pointer[child]
	exited  chan *child
	quit    chan struct{}
	rehold  chan struct{}
}

type child struct {
	cmd     *exec.Cmd
	held    *holdexec.Held
	started time.Time
	done    chan struct{}
	err     error
}

// New returns a Manager; call Run to start supervising.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	return &Manager{
		cfg:    cfg,
		log:    cfg.Logger,
		rotate: make(chan bool, 1),
		exited: make(chan *child),
		quit:   make(chan struct{}),
		rehold: make(chan struct{}, 1),
	}
}

// Rehold tells the manager that the workload lost its identity: the agent
// no longer attests the running program as the launch it held (after an
// agent restart, say: only a program still held at exec proves what it was
// started with). With Hold set, the manager stops the program and starts
// it again held at exec, to be released at the next rotation; otherwise,
// or while a held program waits, it does nothing. It never blocks.
func (m *Manager) Rehold() {
	select {
	case m.rehold <- struct{}{}:
	default:
	}
}

// Rotated tells the manager that a new SVID is on disk. It never blocks;
// rotations that arrive while one is being handled coalesce.
func (m *Manager) Rotated() {
	signalled := false
	if c := m.running.Load(); c != nil {
		signalled = m.signal(c, m.cfg.RenewSignal) == nil
	}
	select {
	case m.rotate <- signalled:
	default:
	}
}

// signalsOnRotation reports whether rotations signal a running program.
func (m *Manager) signalsOnRotation() bool {
	return m.cfg.Path != "" && m.cfg.RenewSignal != 0 && !m.cfg.Restart
}

// Run supervises until ctx ends, then stops the program gracefully.
func (m *Manager) Run(ctx context.Context) error {
	defer close(m.quit)
	s := &supervision{m: m, backoff: m.cfg.BackoffMin}
	defer s.pidWG.Wait()

	if m.cfg.Hold && m.cfg.Path != "" {
		// On failure, fall back to an ordinary start at the first rotation.
		_ = s.launchHeld("first SVID")
	}

	defer m.running.Store(nil)
	for {
		if m.signalsOnRotation() {
			m.running.Store(s.cur)
		}
		select {
		case <-ctx.Done():
			s.shutdown()
			return nil
		case signalled := <-m.rotate:
			s.rotated(ctx, signalled)
		case <-m.rehold:
			s.rehold()
		case c := <-m.exited:
			s.exited(c)
		case <-s.restartC:
			s.restartC = nil
			if s.cur == nil {
				s.start()
			}
		}
	}
}

// supervision is the state of one Run: the running program, the one held
// at exec, and the pending restart with its backoff.
type supervision struct {
	m        *Manager
	cur      *child
	held     *child
	restartC <-chan time.Time
	backoff  time.Duration
	pidWG    sync.WaitGroup
}

// start starts the program, or schedules a restart if that fails.
func (s *supervision) start() {
	m := s.m
	c, err := m.start()
	if err != nil {
		m.log.Error("Unable to start program", "cmd", m.cfg.Path, "error", err)
		if m.cfg.RestartOnExit {
			s.restartC = time.After(s.backoff)
			s.backoff = min(s.backoff*2, m.cfg.BackoffMax)
		}
		return
	}
	s.cur = c
	s.restartC = nil
}

// launchHeld starts the program held at exec, to be released at the
// rotation named by until.
func (s *supervision) launchHeld(until string) error {
	m := s.m
	c, err := m.launch(true)
	if err != nil {
		m.log.Error("Unable to start program held at exec", "cmd", m.cfg.Path, "error", err)
		return err
	}
	s.held = c
	m.log.Info("Started program held at exec until the "+until, "cmd", m.cfg.Path, "pid", c.cmd.Process.Pid)
	if m.cfg.Hooks.Held != nil {
		m.cfg.Hooks.Held(c.cmd.Process.Pid)
	}
	return nil
}

// shutdown kills a held program and stops the running one.
func (s *supervision) shutdown() {
	s.m.running.Store(nil)
	if s.held != nil {
		_ = s.held.held.Kill()
		_ = s.held.cmd.Wait()
	}
	if s.cur != nil {
		s.m.stop(s.cur)
	}
}

// rotated handles a new SVID on disk: signal the PID file's process,
// release, start, restart or signal the program.
func (s *supervision) rotated(ctx context.Context, signalled bool) {
	m := s.m
	if m.cfg.PIDFileName != "" && m.cfg.RenewSignal != 0 {
		s.pidWG.Add(1)
		go func() {
			defer s.pidWG.Done()
			m.signalPIDFile(ctx)
		}()
	}
	if m.cfg.Path != "" {
		switch {
		case s.held != nil:
			c := s.held
			s.held = nil
			if err := m.release(c); err != nil {
				m.log.Error("Unable to release held program", "pid", c.cmd.Process.Pid, "error", err)
				s.start()
			} else {
				s.cur = c
			}
		case s.cur == nil:
			// First SVID, or the program is down: start it now
			// (spiffe-helper semantics) instead of waiting for the
			// backoff.
			s.start()
		case m.cfg.Restart:
			m.log.Info("Restarting program for the new SVID", "pid", s.cur.cmd.Process.Pid)
			m.stop(s.cur)
			s.cur = nil
			s.start()
		case m.cfg.RenewSignal != 0 && !signalled:
			_ = m.signal(s.cur, m.cfg.RenewSignal)
		}
	}
	if m.cfg.Hooks.Rotated != nil {
		m.cfg.Hooks.Rotated()
	}
}

// rehold stops the running program and starts it again held at exec (see
// Manager.Rehold).
func (s *supervision) rehold() {
	m := s.m
	if !m.cfg.Hold || m.cfg.Path == "" || s.held != nil {
		return
	}
	if s.cur != nil {
		m.log.Warn("Identity lost: restarting the program held at exec so that the agent can attest its launch again", "pid", s.cur.cmd.Process.Pid)
		m.stop(s.cur)
		s.cur = nil
	}
	s.restartC = nil
	if s.launchHeld("next SVID") != nil {
		s.start()
	}
}

// exited handles the program exiting on its own: restart it after the
// backoff, which resets once the program ran for BackoffMax.
func (s *supervision) exited(c *child) {
	m := s.m
	if c != s.cur {
		return // already stopped on purpose
	}
	s.cur = nil
	pid := c.cmd.Process.Pid
	m.log.Warn("Program exited", "cmd", m.cfg.Path, "pid", pid, "error", errString(c.err))
	if m.cfg.Hooks.Exited != nil {
		m.cfg.Hooks.Exited(pid, c.err, false)
	}
	if !m.cfg.RestartOnExit {
		return
	}
	if time.Since(c.started) >= m.cfg.BackoffMax {
		s.backoff = m.cfg.BackoffMin
	}
	m.log.Info("Restarting program after backoff", "cmd", m.cfg.Path, "backoff", s.backoff.String())
	s.restartC = time.After(s.backoff)
	s.backoff = min(s.backoff*2, m.cfg.BackoffMax)
}

// start launches the program and lets it run.
func (m *Manager) start() (*child, error) {
	c, err := m.launch(false)
	if err != nil {
		return nil, err
	}
	if err := m.release(c); err != nil {
		return nil, err
	}
	return c, nil
}

// launch starts the program, held at exec when hold is set.
func (m *Manager) launch(hold bool) (*child, error) {
	cmd := exec.Command(m.cfg.Path, m.cfg.Args...)
	cmd.Env = m.cfg.Env
	cmd.Stdin = m.cfg.Stdin
	cmd.Stdout = m.cfg.Stdout
	cmd.Stderr = m.cfg.Stderr
	// The program gets its own process group so a stop reaches its
	// children too, and dies with the helper.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	c := &child{cmd: cmd, done: make(chan struct{})}
	if hold {
		h, err := holdexec.Start(cmd)
		if err != nil {
			return nil, fmt.Errorf("process: start %s held: %w", m.cfg.Path, err)
		}
		c.held = h
		return c, nil
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("process: start %s: %w", m.cfg.Path, err)
	}
	return c, nil
}

// release lets a launched program run (detaching a held one) and starts
// the goroutine that reaps it.
func (m *Manager) release(c *child) error {
	cmd := c.cmd
	if c.held != nil {
		if err := c.held.Release(); err != nil {
			_ = c.held.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("process: release %s: %w", m.cfg.Path, err)
		}
	}
	c.started = time.Now()
	go func() {
		c.err = cmd.Wait()
		close(c.done)
		select {
		case m.exited <- c:
		case <-m.quit:
		}
	}()
	m.log.Info("Started program", "cmd", m.cfg.Path, "pid", cmd.Process.Pid, "held", c.held != nil)
	if m.cfg.Hooks.Started != nil {
		m.cfg.Hooks.Started(cmd.Process.Pid)
	}
	return nil
}

// stop sends SIGTERM to the program's group, waits up to StopTimeout, then
// sends SIGKILL.
func (m *Manager) stop(c *child) {
	pid := c.cmd.Process.Pid
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	timer := time.NewTimer(m.cfg.StopTimeout)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		m.log.Warn("Program did not stop in time, killing it", "pid", pid, "stop_timeout", m.cfg.StopTimeout.String())
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-c.done
	}
	if m.cfg.Hooks.Exited != nil {
		m.cfg.Hooks.Exited(pid, c.err, true)
	}
}

func (m *Manager) signal(c *child, sig syscall.Signal) error {
	pid := c.cmd.Process.Pid
	if err := c.cmd.Process.Signal(sig); err != nil {
		m.log.Error("Unable to signal program", "pid", pid, "signal", sig.String(), "error", err)
		return err
	}
	m.log.Info("Signalled program", "pid", pid, "signal", sig.String())
	if m.cfg.Hooks.Signalled != nil {
		m.cfg.Hooks.Signalled(pid, sig)
	}
	return nil
}

// signalPIDFile reads the PID file and signals it, retrying a bounded number
// of times (the file may be rewritten while the program restarts).
func (m *Manager) signalPIDFile(ctx context.Context) {
	delay := 100 * time.Millisecond
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		var pid int
		pid, err = readPID(m.cfg.PIDFileName)
		if err == nil {
			err = syscall.Kill(pid, m.cfg.RenewSignal)
			if err == nil {
				m.log.Info("Signalled PID file process", "pid", pid, "signal", m.cfg.RenewSignal.String())
				if m.cfg.Hooks.Signalled != nil {
					m.cfg.Hooks.Signalled(pid, m.cfg.RenewSignal)
				}
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
	m.log.Error("Unable to signal PID file process", "pid_file_name", m.cfg.PIDFileName, "error", err)
}

func readPID(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("process: read pid file: %w", err)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("process: pid file %s holds no PID", path)
	}
	return pid, nil
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.String()
	}
	return err.Error()
}
