package deepstream

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/edgeid/edgeid/helper/holdexec"
)

// Attack (d) of the attack suite, at the plugin level on the real /proc:
// the recheck cannot be switched off in the plugin binary SPIRE loads, so
// this is where the suite shows what it prevents.
//
// TestHeldChildPidReuseRealProc launches a pipeline held at exec, lets the
// plugin read it, and then (through the beforeRecheck seam) kills it, reaps
// it, and starts an impostor under another uid at the same pid, as a child
// of the same caller (ns_last_pid chooses the next pid). Without the
// recheck, the impostor's pid is attested with the victim's selectors,
// launch:held included; with it, the attestation returns nothing.
func TestHeldChildPidReuseRealProc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: it writes /proc/sys/kernel/ns_last_pid and runs the impostor as another uid")
	}
	sleep := lookPath(t, "sleep")
	for _, recheck := range []bool{false, true} {
		t.Run(fmt.Sprintf("recheck=%v", recheck), func(t *testing.T) {
			p := newRealPipeline(t, sleep)
			cmd := p.command()
			held, err := holdexec.Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			victim := held.Pid()
			t.Cleanup(func() {
				_ = held.Kill()
				_ = cmd.Wait()
			})
			// A directory the impostor's uid can reach (t.TempDir's parent
			// is private).
			dir, err := os.MkdirTemp("", "ds-impostor-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			impostorBin := filepath.Join(dir, "impostor")
			copyExec(t, sleep, impostorBin)

			var impostor *exec.Cmd
			tp := loadPlugin(t, realProc{}, "")
			tp.plugin.hooks.skipRecheck = !recheck
			tp.plugin.hooks.beforeRecheck = func() {
				if err := held.Kill(); err != nil {
					t.Errorf("kill victim: %v", err)
				}
				_ = cmd.Wait() // reaped: the pid is free
				impostor, err = startAtPid(victim, impostorBin, "300")
				if err != nil {
					t.Errorf("impostor: %v", err)
				}
			}
			got := withoutContainerID(tp.attest(t, os.Getpid()))
			if impostor == nil {
				t.Fatal("no impostor at the victim's pid")
			}
			t.Cleanup(func() {
				_ = impostor.Process.Kill()
				_ = impostor.Wait()
			})
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", victim))
			if exe != impostorBin {
				t.Fatalf("pid %d runs %q, want the impostor", victim, exe)
			}
			if !recheck {
				// What the recheck prevents.
				assertSelectors(t, got, p.want(true))
				return
			}
			assertSelectors(t, got, nil)
			if !strings.Contains(tp.logs.String(), "changed while it was attested") {
				t.Fatalf("no warning logged:\n%s", tp.logs)
			}
		})
	}
}

func copyExec(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// startAtPid starts bin as a child of this process, running as another
// uid, with the given pid: it sets ns_last_pid to pid-1 and forks, retrying
// (at most 50 times) when another process takes the pid first.
func startAtPid(pid int, bin string, args ...string) (*exec.Cmd, error) {
	for range 50 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 64199, Gid: 64199, Groups: []uint32{}}}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		if cmd.Process.Pid == pid {
			return cmd, nil
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return nil, fmt.Errorf("pid %d was taken by another process 50 times", pid)
}
