//go:build linux

package holdexec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procState returns the state letter of pid from /proc/<pid>/stat, or ""
// when the process is gone.
func procState(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

func shell(t *testing.T) string {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("sh not found: %v", err)
	}
	return sh
}

func TestHeldChildShowsTargetAndDoesNotRun(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	sh := shell(t)
	var out bytes.Buffer
	cmd := exec.Command(sh, "-c", `echo ran > "$1"; echo hello`, "sh", marker)
	cmd.Stdout = &out
	held, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	pid := held.Pid()
	if pid != cmd.Process.Pid {
		t.Fatalf("Pid() = %d, cmd.Process.Pid = %d", pid, cmd.Process.Pid)
	}

	// While held, /proc already shows the new program and its arguments.
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	wantExe, _ := filepath.EvalSymlinks(sh)
	if exe != wantExe {
		t.Fatalf("/proc/%d/exe = %q, want %q", pid, exe, wantExe)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"); len(got) != 5 || got[1] != "-c" || got[4] != marker {
		t.Fatalf("cmdline = %q", got)
	}
	if st := procState(pid); st != "t" {
		t.Fatalf("state of held child = %q, want t (tracing stop)", st)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("held child ran: stat marker = %v", err)
	}

	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("Wait after Release: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("released child did not run: %v", err)
	}
	if out.String() != "hello\n" {
		t.Fatalf("stdout = %q", out.String())
	}
	if err := held.Release(); !errors.Is(err, ErrDone) {
		t.Fatalf("second Release = %v, want ErrDone", err)
	}
	if err := held.Kill(); !errors.Is(err, ErrDone) {
		t.Fatalf("Kill after Release = %v, want ErrDone", err)
	}
}

func TestKillHeldChild(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	cmd := exec.Command(shell(t), "-c", `echo ran > "$1"`, "sh", marker)
	held, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := held.Kill(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("Wait = %v, want an ExitError", err)
	}
	if ws := exitErr.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("status = %v, want killed by SIGKILL", ws)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("killed child ran: %v", err)
	}
	if err := held.Release(); !errors.Is(err, ErrDone) {
		t.Fatalf("Release after Kill = %v, want ErrDone", err)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(exec.Command(filepath.Join(t.TempDir(), "missing"))); err == nil || !strings.Contains(err.Error(), "holdexec: start") {
		t.Fatalf("Start(missing) = %v", err)
	}
	cmd := exec.Command(shell(t), "-c", "true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	if _, err := Start(cmd); err == nil || !strings.Contains(err.Error(), "Ptrace is set") {
		t.Fatalf("Start(Ptrace) = %v", err)
	}
}

func TestKeepsCallerSysProcAttr(t *testing.T) {
	cmd := exec.Command(shell(t), "-c", "exit 0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	held, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := syscall.Getpgid(held.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if pgid != held.Pid() {
		t.Fatalf("pgid = %d, want %d (Setpgid kept)", pgid, held.Pid())
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestManyHeldChildren(t *testing.T) {
	var cmds []*exec.Cmd
	var helds []*Held
	for i := 0; i < 5; i++ {
		cmd := exec.Command(shell(t), "-c", "exit "+strconv.Itoa(i))
		h, err := Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		cmds, helds = append(cmds, cmd), append(helds, h)
	}
	for i := len(helds) - 1; i >= 0; i-- {
		if err := helds[i].Release(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		err := cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != i {
			t.Fatalf("child %d exit code %d (%v)", i, code, err)
		}
	}
}

// TestLauncherDeathKillsHeldChild runs this test binary as a launcher that
// holds a child and exits without releasing it: PTRACE_O_EXITKILL must kill
// the child rather than let it run without its certificates.
func TestLauncherDeathKillsHeldChild(t *testing.T) {
	if os.Getenv("HOLDEXEC_TEST_LAUNCHER") == "1" {
		cmd := exec.Command("sleep", "30")
		held, err := Start(cmd)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println(held.Pid())
		os.Exit(0)
	}
	launcher := exec.Command(os.Args[0], "-test.run=^TestLauncherDeathKillsHeldChild$")
	launcher.Env = append(os.Environ(), "HOLDEXEC_TEST_LAUNCHER=1")
	out, err := launcher.Output()
	if err != nil {
		t.Fatalf("launcher: %v (%s)", err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
	if err != nil {
		t.Fatalf("launcher output %q", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := procState(pid)
		if st == "" || st == "Z" || st == "X" {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("held child %d still alive (state %s) after its launcher exited", pid, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
