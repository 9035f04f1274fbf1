package process

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

type recorder struct {
	mu      sync.Mutex
	started []int
	exits   []bool // expected?
	signals []int
	rotated int
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		Started:   func(pid int) { r.mu.Lock(); r.started = append(r.started, pid); r.mu.Unlock() },
		Exited:    func(_ int, _ error, exp bool) { r.mu.Lock(); r.exits = append(r.exits, exp); r.mu.Unlock() },
		Signalled: func(pid int, _ syscall.Signal) { r.mu.Lock(); r.signals = append(r.signals, pid); r.mu.Unlock() },
		Rotated:   func() { r.mu.Lock(); r.rotated++; r.mu.Unlock() },
	}
}

func (r *recorder) snapshot() (started []int, exits []bool, signals []int, rotated int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.started...), append([]bool(nil), r.exits...), append([]int(nil), r.signals...), r.rotated
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func run(t *testing.T, cfg Config) (*Manager, func()) {
	t.Helper()
	m := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	return m, func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return")
		}
	}
}

func fileLines(path string) []string {
	data, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestSignalOnRotation(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	rec := &recorder{}
	m, stop := run(t, Config{
		Path: "/bin/sh", Args: []string{"-c", `trap 'echo usr1 >> ` + out + `' USR1; trap 'echo term >> ` + out + `; exit 0' TERM; echo ready >> ` + out + `; while :; do sleep 0.05; done`},
		RenewSignal: syscall.SIGUSR1, RestartOnExit: true, StopTimeout: 5 * time.Second, Hooks: rec.hooks(),
	})
	if started, _, _, _ := rec.snapshot(); len(started) != 0 {
		t.Fatal("program started before the first SVID")
	}
	m.Rotated()
	waitFor(t, "program ready", func() bool { return len(fileLines(out)) == 1 })
	for i := 0; i < 3; i++ {
		m.Rotated()
		n := i + 2
		waitFor(t, "usr1 handled", func() bool { return len(fileLines(out)) == n })
	}
	stop()
	lines := fileLines(out)
	if strings.Join(lines, ",") != "ready,usr1,usr1,usr1,term" {
		t.Fatalf("events %v", lines)
	}
	started, exits, signals, _ := rec.snapshot()
	if len(started) != 1 || len(signals) != 3 || len(exits) != 1 || !exits[0] {
		t.Fatalf("started %v signals %v exits %v", started, signals, exits)
	}
}

func TestRestartOnRotation(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	rec := &recorder{}
	m, stop := run(t, Config{
		Path: "/bin/sh", Args: []string{"-c", `trap 'echo term $$ >> ` + out + `; exit 0' TERM; echo start $$ >> ` + out + `; while :; do sleep 0.05; done`},
		Restart: true, RenewSignal: syscall.SIGUSR1, StopTimeout: 5 * time.Second, Hooks: rec.hooks(),
	})
	for i := 1; i <= 3; i++ {
		m.Rotated()
		n := 2*i - 1
		waitFor(t, "start "+strconv.Itoa(i), func() bool { return len(fileLines(out)) == n })
	}
	stop()
	lines := fileLines(out)
	// start A, term A, start B, term B, start C, term C: graceful each time.
	if len(lines) != 6 {
		t.Fatalf("events %v", lines)
	}
	for i := 0; i < 6; i += 2 {
		a, b := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if a[0] != "start" || b[0] != "term" || a[1] != b[1] {
			t.Fatalf("events %v", lines)
		}
	}
	if _, _, signals, _ := rec.snapshot(); len(signals) != 0 {
		t.Fatalf("restart mode must not send renew_signal, sent %v", signals)
	}
}

func TestStopTimeoutKills(t *testing.T) {
	rec := &recorder{}
	m, stop := run(t, Config{
		Path: "/bin/sh", Args: []string{"-c", `trap '' TERM; while :; do sleep 0.05; done`},
		Restart: true, StopTimeout: 300 * time.Millisecond, Hooks: rec.hooks(),
	})
	m.Rotated()
	waitFor(t, "start", func() bool { s, _, _, _ := rec.snapshot(); return len(s) == 1 })
	t0 := time.Now()
	m.Rotated()
	waitFor(t, "restart", func() bool { s, _, _, _ := rec.snapshot(); return len(s) == 2 })
	if d := time.Since(t0); d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("restart of a TERM-ignoring program took %v, want about the 300ms stop timeout", d)
	}
	stop()
}

func TestRestartOnExitWithBackoff(t *testing.T) {
	rec := &recorder{}
	m, stop := run(t, Config{
		Path: "/bin/sh", Args: []string{"-c", "exit 3"},
		RestartOnExit: true, BackoffMin: 50 * time.Millisecond, BackoffMax: 400 * time.Millisecond, Hooks: rec.hooks(),
	})
	t0 := time.Now()
	m.Rotated()
	waitFor(t, "4 starts", func() bool { s, _, _, _ := rec.snapshot(); return len(s) >= 4 })
	// Backoffs 50 + 100 + 200 ms before the 4th start.
	if d := time.Since(t0); d < 350*time.Millisecond {
		t.Fatalf("4 starts in %v: backoff not applied", d)
	}
	stop()
	// The first three exits are the program's own; the last one may be
	// the stop at the end of the test, which is on purpose.
	_, exits, _, _ := rec.snapshot()
	if len(exits) < 3 {
		t.Fatalf("%d exits recorded, want at least 3", len(exits))
	}
	for i, exp := range exits[:3] {
		if exp {
			t.Fatalf("exit %d, on the program's own, was reported as expected", i+1)
		}
	}
}

func TestNoRestartOnExitWhenDisabled(t *testing.T) {
	rec := &recorder{}
	m, stop := run(t, Config{Path: "/bin/sh", Args: []string{"-c", "exit 0"}, BackoffMin: 10 * time.Millisecond, Hooks: rec.hooks()})
	m.Rotated()
	waitFor(t, "exit", func() bool { _, e, _, _ := rec.snapshot(); return len(e) == 1 })
	time.Sleep(200 * time.Millisecond)
	if s, _, _, _ := rec.snapshot(); len(s) != 1 {
		t.Fatalf("started %d times", len(s))
	}
	// The next rotation starts it again, as spiffe-helper does.
	m.Rotated()
	waitFor(t, "second start", func() bool { s, _, _, _ := rec.snapshot(); return len(s) == 2 })
	stop()
}

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "events")
	pidFile := filepath.Join(dir, "app.pid")
	rec := &recorder{}
	// The "external" program writes its own PID file.
	ext, stopExt := run(t, Config{
		Path: "/bin/sh", Args: []string{"-c", `trap 'echo hup >> ` + out + `' HUP; echo $$ > ` + pidFile + `; while :; do sleep 0.05; done`},
	})
	ext.Rotated()
	defer stopExt()
	waitFor(t, "pid file", func() bool { _, err := readPID(pidFile); return err == nil })

	m, stop := run(t, Config{PIDFileName: pidFile, RenewSignal: syscall.SIGHUP, Hooks: rec.hooks()})
	m.Rotated()
	waitFor(t, "hup", func() bool { return len(fileLines(out)) == 1 })
	stop()
	pid, _ := readPID(pidFile)
	if _, _, signals, _ := rec.snapshot(); len(signals) != 1 || signals[0] != pid {
		t.Fatalf("signals %v, want [%d]", signals, pid)
	}
}

func TestHoldUntilFirstRotation(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	var heldPID atomic.Int64
	rec := &recorder{}
	hooks := rec.hooks()
	hooks.Held = func(pid int) { heldPID.Store(int64(pid)) }
	m, stop := run(t, Config{
		Path: "/bin/sh", Args: []string{"-c", `echo ran >> ` + out + `; trap 'exit 0' TERM; while :; do sleep 0.05; done`},
		Hold: true, Hooks: hooks,
	})
	waitFor(t, "held start", func() bool { return heldPID.Load() != 0 })
	pid := int(heldPID.Load())
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(cmdline), "echo ran") {
		t.Fatalf("held child does not show its final cmdline: %q %v", cmdline, err)
	}
	time.Sleep(300 * time.Millisecond)
	if lines := fileLines(out); len(lines) != 0 {
		t.Fatalf("held program ran before the first SVID: %v", lines)
	}
	m.Rotated()
	waitFor(t, "program ran", func() bool { return len(fileLines(out)) == 1 })
	if started, _, _, _ := rec.snapshot(); len(started) != 1 || started[0] != pid {
		t.Fatalf("started %v, want the held pid %d", started, pid)
	}
	stop()
}

func TestHoldKilledWhenStoppedBeforeSVID(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	var heldPID atomic.Int64
	_, stop := run(t, Config{
		Path: "/bin/sh", Args: []string{"-c", `echo ran >> ` + out},
		Hold: true, Hooks: Hooks{Held: func(pid int) { heldPID.Store(int64(pid)) }},
	})
	waitFor(t, "held start", func() bool { return heldPID.Load() != 0 })
	stop()
	if lines := fileLines(out); len(lines) != 0 {
		t.Fatalf("held program ran although no SVID arrived: %v", lines)
	}
	if err := syscall.Kill(int(heldPID.Load()), 0); err == nil {
		t.Fatal("held program still exists after Run returned")
	}
}

// TestReholdAfterIdentityLoss: a released program whose identity was lost
// is stopped and started again held at exec (it must not run until the
// next SVID), then released at the next rotation. Rehold while a program
// is held changes nothing.
func TestReholdAfterIdentityLoss(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	var heldPIDs []int
	var mu sync.Mutex
	heldCount := func() int { mu.Lock(); defer mu.Unlock(); return len(heldPIDs) }
	rec := &recorder{}
	hooks := rec.hooks()
	hooks.Held = func(pid int) { mu.Lock(); heldPIDs = append(heldPIDs, pid); mu.Unlock() }
	m, stop := run(t, Config{
		Path: "/bin/sh", Args: []string{"-c", `echo ran >> ` + out + `; trap 'exit 0' TERM; while :; do sleep 0.05; done`},
		Hold: true, StopTimeout: 5 * time.Second, Hooks: hooks,
	})
	defer stop()
	waitFor(t, "held start", func() bool { return heldCount() == 1 })
	m.Rotated()
	waitFor(t, "first run", func() bool { return len(fileLines(out)) == 1 })

	m.Rehold()
	waitFor(t, "held again", func() bool { return heldCount() == 2 })
	mu.Lock()
	first, second := heldPIDs[0], heldPIDs[1]
	mu.Unlock()
	if first == second {
		t.Fatalf("rehold kept pid %d", first)
	}
	waitFor(t, "old program gone", func() bool { return syscall.Kill(first, 0) != nil })
	m.Rehold() // while held: nothing
	time.Sleep(300 * time.Millisecond)
	if n := len(fileLines(out)); n != 1 || heldCount() != 2 {
		t.Fatalf("held again program ran (%d runs) or was replaced (%d holds) before the next SVID", n, heldCount())
	}
	m.Rotated()
	waitFor(t, "second run", func() bool { return len(fileLines(out)) == 2 })
	if started, _, _, _ := rec.snapshot(); len(started) != 2 || started[1] != second {
		t.Fatalf("started %v, want the re-held pid %d last", started, second)
	}
}
