package orchestrator

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

// TestSuperviseRestartsInDependencyOrder runs `edgeid supervise` over a demo
// run and kills services under it: each kind of service (Vault, a cloud and
// an edge SPIRE server, the agents, the broker, a helper) comes back with a
// new pid; three dependent services killed at once come back in dependency
// order (upstream agent, then edge server, then edge agent); and while a
// service cannot start, the supervisor's attempts back off by doubling from
// its interval, then it recovers once the service can start again.
func TestSuperviseRestartsInDependencyOrder(t *testing.T) {
	harness.SpireServerBin(t)
	harness.VaultBin(t)
	harness.RequireCommand(t, "kcat")
	bin := harness.BuildEdgeidBinDir(t)
	runDir := harness.ShortTempDir(t)
	common := []string{"-f", filepath.Join(harness.RepoRoot(t), "conf", "topology.hcl"), "--run-dir", runDir, "--bin-dir", bin}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, runDir)
		}
		if out, err := edgeid(t, bin, 2*time.Minute, append([]string{"down"}, common...)...); err != nil {
			t.Errorf("edgeid down: %v\n%s", err, out)
		}
	})
	if out, err := edgeid(t, bin, 5*time.Minute, append([]string{"up", "--step-timeout", "2m"}, common...)...); err != nil {
		t.Fatalf("edgeid up: %v\n%s", err, out)
	}

	supLog := &harness.SyncBuffer{}
	sup := exec.Command(filepath.Join(bin, "edgeid"), append([]string{"supervise", "--interval", "1s", "--step-timeout", "2m"}, common...)...)
	sup.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "EDGEID_CACHE=" + os.Getenv("EDGEID_CACHE")}
	sup.Stdout, sup.Stderr = supLog, supLog
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sup.Process.Signal(syscall.SIGTERM)
		_ = sup.Wait()
		t.Logf("supervisor log:\n%s", supLog.String())
	})

	pids := func() map[string]int {
		out, err := edgeid(t, bin, time.Minute, append([]string{"status", "-o", "json"}, common...)...)
		if err != nil {
			t.Fatalf("edgeid status: %v\n%s", err, out)
		}
		var st struct {
			Processes []struct {
				Name string `json:"name"`
				PID  int    `json:"pid"`
			} `json:"processes"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status: %v", err)
		}
		m := map[string]int{}
		for _, p := range st.Processes {
			m[p.Name] = p.PID
		}
		return m
	}
	// kill SIGKILLs services (with whatever they started: each leads its
	// own session) and waits until every one runs again under a new pid.
	kill := func(names ...string) {
		t.Helper()
		before := pids()
		for _, n := range names {
			pid := before[n]
			if pid == 0 {
				t.Fatalf("%s is not running before the kill", n)
			}
			t.Logf("kill -9 %s (pid %d)", n, pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		start := time.Now()
		harness.Eventually(t, 3*time.Minute, func() error {
			now := pids()
			for _, n := range names {
				if now[n] == 0 || now[n] == before[n] {
					return fmt.Errorf("%s not back yet", n)
				}
			}
			return nil
		})
		t.Logf("%s back after %s", strings.Join(names, ", "), time.Since(start).Round(time.Millisecond))
	}

	t.Run("status --fleet reads every host's endpoint", func(t *testing.T) {
		requireFleetStatus(t, bin, common)
	})

	t.Run("every kind of service comes back", func(t *testing.T) {
		for _, n := range []string{"cloud/vault", "cloud/spire-server", "cloud/spire-agent", "cloud/kafka",
			"edge-a-1/upstream-agent", "edge-a-1/spire-server", "edge-a-1/spire-agent", "edge-a-1/helper-deepstream_cam-pipeline"} {
			kill(n)
		}
	})

	t.Run("dependency order", func(t *testing.T) {
		mark := len(supLog.String())
		kill("edge-b-1/spire-agent", "edge-b-1/spire-server", "edge-b-1/upstream-agent")
		// The processes are back; each phase logs its starts once its
		// services are ready.
		want := []string{"edge-b-1/upstream-agent started", "edge-b-1/spire-server started", "edge-b-1/spire-agent started"}
		var log string
		var order []int
		harness.Eventually(t, time.Minute, func() error {
			log, order = supLog.String()[mark:], nil
			for _, n := range want {
				i := strings.Index(log, n)
				if i < 0 {
					return fmt.Errorf("the supervisor's convergence has not logged %q yet:\n%s", n, log)
				}
				order = append(order, i)
			}
			return nil
		})
		if !(order[0] < order[1] && order[1] < order[2]) {
			t.Fatalf("restart order is not upstream agent → edge server → edge agent:\n%s", log)
		}
	})

	t.Run("backoff while a service cannot start", func(t *testing.T) {
		// The staged helper binary (what the supervisor starts) is
		// replaced by one that exits at once; every convergence then fails.
		staged := filepath.Join(runDir, "bin", "edgeid-helper")
		orig, err := os.ReadFile(staged)
		if err != nil {
			t.Fatal(err)
		}
		replace := func(data []byte) {
			tmp := staged + ".test"
			if err := os.WriteFile(tmp, data, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, staged); err != nil {
				t.Fatal(err)
			}
		}
		replace([]byte("#!/bin/sh\nexit 3\n"))
		restored := false
		defer func() {
			if !restored {
				replace(orig)
			}
		}()
		mark := len(supLog.String())
		p := pids()["edge-a-1/helper-deepstream_cam-pipeline"]
		_ = syscall.Kill(-p, syscall.SIGKILL)
		_ = syscall.Kill(p, syscall.SIGKILL)

		next := regexp.MustCompile(`(?m)^(\S+) supervise: next attempt in (\S+): `)
		var attempts [][]string
		harness.Eventually(t, 3*time.Minute, func() error {
			attempts = next.FindAllStringSubmatch(supLog.String()[mark:], -1)
			if len(attempts) < 4 {
				return fmt.Errorf("%d failed attempts so far", len(attempts))
			}
			return nil
		})
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
		var prev time.Time
		for i, a := range attempts[:4] {
			at, err := time.Parse(time.RFC3339, a[1])
			if err != nil {
				t.Fatal(err)
			}
			d, err := time.ParseDuration(a[2])
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("failed attempt %d at %s, next in %s", i+1, a[1], d)
			if d != want[i] {
				t.Errorf("attempt %d announces a backoff of %s, want %s (doubling from the 1s interval)", i+1, d, want[i])
			}
			// The announced wait is kept: attempts are at least the
			// previous backoff apart (timestamps have 1 s resolution).
			if i > 0 && at.Sub(prev) < want[i-1]-time.Second {
				t.Errorf("attempt %d came %s after the previous one, before its %s backoff", i+1, at.Sub(prev), want[i-1])
			}
			prev = at
		}
		replace(orig)
		restored = true
		start := time.Now()
		harness.Eventually(t, 3*time.Minute, func() error {
			if pids()["edge-a-1/helper-deepstream_cam-pipeline"] == 0 {
				return fmt.Errorf("helper not back")
			}
			return nil
		})
		t.Logf("recovered %s after the helper could start again", time.Since(start).Round(time.Millisecond))
	})
}
