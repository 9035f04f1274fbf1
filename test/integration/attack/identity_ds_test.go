package attack

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

// TestDeepStreamIdentityAttacks attacks the deepstream WorkloadAttestor from
// a shell on the edge node: every attack runs as attackerUID against a real
// SPIRE server and agent (agent as root), while the legitimate pipelines
// run as victimUID, launched held at exec by their launcher. The victim's
// entries are rendered the way edgeid renders them: deepstream:launch:held,
// app, exe_sha256 (the deployed binary), config_sha256, publish_topic,
// unix:uid of the victim and unix:path of the launcher.
//
//	a. A copy of the deployed binary (same name, same hash) run by the
//	   attacker with the exact -c config calls the Workload API itself; an
//	   attacker binary renamed deepstream-test5-app does the same; the
//	   attacker's own launcher holds the copy at exec.
//	b. python3 evil.py rewrites its own argv in memory (/proc/self/mem at
//	   arg_start) to "deepstream_test_4.py -c <legit config>", moves into
//	   the victim's app directory and calls the Workload API.
//	c. A process in a delegated cgroup (chowned to the attacker) named
//	   docker-<victim's container id>.scope claims the victim's container.
//	d. Pid reuse on a held child is tested at the plugin level on the real
//	   /proc (TestHeldChildPidReuseRealProc in
//	   plugins/agent/workloadattestor/deepstream): the seam that swaps the
//	   process between the reads and the recheck, and the switch that turns
//	   the recheck off, exist only in the plugin's package, never in the
//	   binary SPIRE loads.
//	e. A caller with 255 children, each mapping a file 2,800 times under a
//	   3 KiB path (8.7 MB of /proc/<pid>/maps each), floods the Workload
//	   API; its attestations stop at max_attestation_bytes while the
//	   victim's 20 s SVID keeps rotating on time.
//
// Every attack must get no SVID. Then, where a protection can be taken
// away through the entries, entries without it are added and the same
// attacks run again and must succeed: entries on self_reported: names
// without launch:held and unix pins (a, b), and an entry with launch:held
// but without the launcher's unix pins (a, the attacker's own launcher).
// So the suite shows the protections matter.
func TestDeepStreamIdentityAttacks(t *testing.T) {
	e := setupDS(t)

	// The legitimate pipelines get their identities.
	pipelineLog, ids := e.launchVictim("pipeline", nil, e.standin, "-c", e.config)
	dsWantIDs(t, "victim's held pipeline", ids, "", dsIDPipeline)
	_, ids = e.launchVictim("python", nil, e.python, e.pyApp, "-c", e.config)
	dsWantIDs(t, "victim's held Python pipeline", ids, "", dsIDPython)

	// The attacker's copy of the deployed binary: same bytes, its own file.
	attackerStandin := filepath.Join(e.attackerDir, "deepstream-test5-app")
	dsCopyFile(t, e.standin, attackerStandin, 0o755)
	dsMust(t, os.Chown(attackerStandin, attackerUID, attackerUID))
	renamed := filepath.Join(e.attackerDir, "own", "deepstream-test5-app")
	dsCopyFile(t, e.fetch, renamed, 0o755)
	ownLauncher := filepath.Join(e.attackerDir, "own", "launcher")
	dsCopyFile(t, e.launcher, ownLauncher, 0o755)

	// a1: the copy calls the Workload API itself with the exact config.
	attackCopy := func(name string) ([]string, string) {
		res := filepath.Join(e.attackerDir, name+".json")
		e.startAs(attackerUID, attackerStandin, "-c", e.config, "-fetch-svid", "-socket", e.agent.SocketPath, "-timeout", "10s", "-result", res, "-exit")
		r := e.waitResult(res, 60*time.Second)
		return r.SPIFFEIDs, r.Error
	}
	// a3: the attacker's own launcher holds the copy at exec.
	attackOwnLauncher := func(name string) ([]string, string) {
		logPath := filepath.Join(e.attackerDir, name+".jsonl")
		e.startAs(attackerUID, ownLauncher, "-socket", e.agent.SocketPath, "-log", logPath, "-timeout", "10s", "--", attackerStandin, "-c", e.config)
		ev := e.waitLaunch(logPath, 60*time.Second)
		return ev.ids(), ev.Error
	}
	// b: python3 evil.py rewrites its argv.
	evil := filepath.Join(e.attackerDir, "evil.py")
	dsMust(t, os.WriteFile(evil, []byte(dsEvilPy), 0o644))
	attackPython := func(name string) ([]string, string) {
		res := filepath.Join(e.attackerDir, name+".json")
		args := []string{evil, e.agent.SocketPath, e.fetch, res, e.config, filepath.Dir(e.pyApp)}
		for range 16 {
			args = append(args, strings.Repeat("p", 32)) // room for the new argv
		}
		e.startAs(attackerUID, "/usr/bin/python3", args...)
		r := e.waitResult(res, 60*time.Second)
		return r.SPIFFEIDs, r.Error
	}

	t.Run("a: the deployed binary's copy with the exact config", func(t *testing.T) {
		got, errText := attackCopy("a1")
		dsWantIDs(t, "attacker's copy calling for itself", got, errText)

		// An attacker binary renamed like the pipeline: its config claim
		// would match, its hash does not.
		res := filepath.Join(e.attackerDir, "a2.json")
		e.startAs(attackerUID, renamed, "-c", e.config, "-socket", e.agent.SocketPath, "-timeout", "10s", "-result", res)
		r := e.waitResult(res, 60*time.Second)
		dsWantIDs(t, "attacker's binary renamed deepstream-test5-app", r.SPIFFEIDs, r.Error)

		got, errText = attackOwnLauncher("a3")
		dsWantIDs(t, "attacker's own launcher holding the copy", got, errText)
	})

	t.Run("b: Python rewrites its argv to the pipeline's", func(t *testing.T) {
		got, errText := attackPython("b")
		dsWantIDs(t, "python3 evil.py with a rewritten argv", got, errText)
		if !strings.Contains(e.agent.Proc.Log(), "self_reported:script_sha256:"+e.scriptHash) {
			t.Errorf("the agent never attested the rewritten argv (no self_reported:script_sha256 in its log)")
		}
	})

	t.Run("c: a delegated cgroup claims the victim's container", func(t *testing.T) {
		base := e.cgroupBase(t)
		victimScope := filepath.Join(base, "docker-"+e.containerID+".scope")
		deleg := filepath.Join(base, "deleg")
		dsMust(t, os.Mkdir(victimScope, 0o755))
		dsMust(t, os.Mkdir(deleg, 0o755))
		for _, p := range []string{deleg, filepath.Join(deleg, "cgroup.procs"), filepath.Join(deleg, "tasks")} {
			dsMust(t, os.Chown(p, attackerUID, attackerUID))
		}
		// The victim's pipeline in its (root-owned) container cgroup is
		// bound to it.
		_, ids := e.launchVictim("container", func(pid int) {
			dsMust(t, os.WriteFile(filepath.Join(victimScope, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0))
		}, e.standin, "-c", e.config)
		dsWantIDs(t, "victim's held pipeline in its container", ids, "", dsIDPipeline, dsIDContainer)

		forged := filepath.Join(deleg, "docker-"+e.containerID+".scope")
		res := filepath.Join(e.attackerDir, "c.json")
		e.startAs(attackerUID, e.fetch, "-join-cgroup", forged, "-exec", "--",
			attackerStandin, "-c", e.config, "-fetch-svid", "-socket", e.agent.SocketPath, "-timeout", "10s", "-result", res, "-exit")
		r := e.waitResult(res, 60*time.Second)
		dsWantIDs(t, "attacker in docker-<victim id>.scope of a delegated cgroup", r.SPIFFEIDs, r.Error)
		if log := e.agent.Proc.Log(); !strings.Contains(log, "Container id comes from a cgroup that is not root's") || !strings.Contains(log, "owned by uid 64199") {
			t.Errorf("the agent log does not show the forged container id being refused")
		}
	})

	t.Run("e: attestation flood while the pipeline rotates", func(t *testing.T) {
		floodLog := filepath.Join(e.attackerDir, "flood.jsonl")
		floodDir := filepath.Join(e.attackerDir, "flood")
		before := strings.Count(e.agent.Proc.Log(), "Attestation exceeded its byte budget")
		cmd := e.startAs(attackerUID, e.flood, "-socket", e.agent.SocketPath, "-dir", floodDir, "-log", floodLog,
			"-children", "255", "-maps", "2800", "-duration", "40s", "-concurrency", "4", "-timeout", "10s")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("dsflood: %v", err)
			}
		case <-time.After(5 * time.Minute):
			t.Fatal("dsflood did not finish within 5 minutes")
		}
		attempts := dsReadFloodLog(t, floodLog)
		if len(attempts) == 0 {
			t.Fatal("the flood made no attempt")
		}
		var start, end time.Time
		for i, a := range attempts {
			t.Logf("flood attempt %d: start %s took %s ids %q error %q", i+1, a.Start.Format("15:04:05.000"), a.Took, a.SPIFFEIDs, a.Error)
			if len(a.SPIFFEIDs) > 0 {
				t.Errorf("flood attempt %d got SVIDs %q", i+1, a.SPIFFEIDs)
			}
			if start.IsZero() || a.Start.Before(start) {
				start = a.Start
			}
			if fin := a.Start.Add(a.Took); fin.After(end) {
				end = fin
			}
		}
		tripped := strings.Count(e.agent.Proc.Log(), "Attestation exceeded its byte budget") - before
		t.Logf("flood: %d attempts from %s to %s; the agent logged %d attestations over max_attestation_bytes",
			len(attempts), start.Format("15:04:05"), end.Format("15:04:05"), tripped)
		if tripped == 0 || !strings.Contains(e.agent.Proc.Log(), "ResourceExhausted") {
			t.Errorf("no attestation of the flood stopped at max_attestation_bytes (agent log)")
		}
		dsCheckRotations(t, dsReadLaunchLog(t, pipelineLog), start, end)
	})

	t.Run("protection off: the same attacks against entries that trust claims", func(t *testing.T) {
		added := time.Now()
		e.addWeakEntries()
		// The entries are created one by one and may reach the agent in
		// different syncs: wait for the agent to have made an SVID of each
		// (SPIRE v1.13.3 logs "Creating X509-SVID" with its spiffe_id), and
		// for the victim's stream to have received the launcher-free one.
		harness.Eventually(t, 60*time.Second, func() error {
			created := strings.Join(harness.SPIRELogLinesSince(t, e.agent.Proc.LogPath, added, `msg="Creating X509-SVID"`), "\n")
			for _, id := range []string{dsIDHeldNoLauncher, dsIDClaimsBinary, dsIDClaimsPython} {
				if !strings.Contains(created, `spiffe_id="`+id+`"`) {
					return fmt.Errorf("the agent has no SVID of the new entry %s yet", id)
				}
			}
			evs := dsReadLaunchLog(t, pipelineLog)
			if len(evs) > 0 && slices.Contains(evs[len(evs)-1].ids(), dsIDHeldNoLauncher) {
				return nil
			}
			return errors.New("the victim's stream has not received the new entry yet")
		})
		got, errText := attackCopy("off-a1")
		dsWantIDs(t, "attacker's copy calling for itself, against claims", got, errText, dsIDClaimsBinary)
		got, errText = attackOwnLauncher("off-a3")
		dsWantIDs(t, "attacker's own launcher, against launch:held without the launcher's pins", got, errText, dsIDHeldNoLauncher)
		got, errText = attackPython("off-b")
		dsWantIDs(t, "python3 evil.py, against claims", got, errText, dsIDClaimsPython)
	})
}

// dsEvilPy rewrites its own argv in memory to the Python pipeline's, moves
// into the pipeline's directory, connects to the Workload API and lets
// dsfetch speak over that connection, so that the agent attests this
// process.
const dsEvilPy = `import os, socket, subprocess, sys
sock, fetch, result, cfg, appdir = sys.argv[1:6]
with open("/proc/self/stat") as f:
    stat = f.read()
fields = stat[stat.rindex(")") + 2:].split()
arg_start, arg_end = int(fields[48 - 3]), int(fields[49 - 3])
new = b"\0".join([b"python3", b"deepstream_test_4.py", b"-c", cfg.encode()]) + b"\0"
assert len(new) <= arg_end - arg_start, "argv area too small"
with open("/proc/self/mem", "r+b", buffering=0) as mem:
    mem.seek(arg_start)
    mem.write(new.ljust(arg_end - arg_start, b"\0"))
os.chdir(appdir)
with open("/proc/self/cmdline", "rb") as f:
    print("cmdline now:", f.read().rstrip(b"\0").split(b"\0"), "cwd:", os.getcwd(), flush=True)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock)
fd = s.fileno()
sys.exit(subprocess.run([fetch, "-fd", str(fd), "-result", result, "-timeout", "10s"], pass_fds=[fd]).returncode)
`

// waitLaunch waits for a launcher's first event (an SVID or an error).
func (e *dsEnv) waitLaunch(path string, timeout time.Duration) dsLaunchEvent {
	e.t.Helper()
	var ev dsLaunchEvent
	harness.Eventually(e.t, timeout, func() error {
		evs := dsReadLaunchLog(e.t, path)
		if len(evs) == 0 {
			return errors.New("no launcher event yet")
		}
		// A PermissionDenied is retried by the watcher; wait for its
		// final word (an SVID, or the launcher's timeout).
		for _, x := range evs {
			if len(x.SVIDs) > 0 || strings.HasPrefix(x.Error, "no SVID within") {
				ev = x
				if len(x.SVIDs) == 0 {
					ev.Error = evs[0].Error + "; " + x.Error
				}
				return nil
			}
		}
		return errors.New("launcher still waiting")
	})
	return ev
}

// cgroupBase makes a root-owned directory in the name=systemd cgroup v1
// hierarchy (where this host's delegation happens) and removes it, and
// what the test made under it, at cleanup.
func (e *dsEnv) cgroupBase(t *testing.T) string {
	t.Helper()
	root := "/sys/fs/cgroup/systemd"
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil || st.Type != 0x27e0eb { // CGROUP_SUPER_MAGIC
		t.Fatalf("attack c needs the name=systemd cgroup v1 hierarchy at %s (statfs: %v)", root, err)
	}
	base := filepath.Join(root, fmt.Sprintf("edgeid-attack-ds-%d", os.Getpid()))
	dsMust(t, os.Mkdir(base, 0o755))
	// Registered first, so it runs after the processes are killed.
	t.Cleanup(func() {
		var dirs []string
		_ = filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			for try := 0; try < 50; try++ {
				if err := syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	return base
}

// dsFloodAttempt is a line of dsflood's log.
type dsFloodAttempt struct {
	Start     time.Time     `json:"start"`
	Took      time.Duration `json:"took"`
	SPIFFEIDs []string      `json:"spiffe_ids"`
	Error     string        `json:"error"`
}

func dsReadFloodLog(t *testing.T, path string) []dsFloodAttempt {
	t.Helper()
	f, err := os.Open(path)
	dsMust(t, err)
	defer f.Close()
	var out []dsFloodAttempt
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a dsFloodAttempt
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("flood log line %q: %v", sc.Text(), err)
		}
		out = append(out, a)
	}
	return out
}

// Rotation timing. SPIRE's agent renews an X509-SVID when half of its
// lifetime (NotAfter - NotBefore, NotBefore backdated by the server) is
// left, with a jitter of a tenth of that half, and checks on every sync
// (1 s in the harness). A new SVID is on time when it arrives at most
// dsMaxRotationDelay after that half-life point.
const dsMaxRotationDelay = 4 * time.Second

// dsCheckRotations logs every rotation of the pipeline's SVID and checks
// that those that fall within [start, end] are at least two and on time.
func dsCheckRotations(t *testing.T, events []dsLaunchEvent, start, end time.Time) {
	t.Helper()
	type cert struct {
		serial              string
		notBefore, notAfter time.Time
	}
	var prev *cert
	during := 0
	for _, ev := range events {
		for _, s := range ev.SVIDs {
			if s.ID != dsIDPipeline {
				continue
			}
			if prev != nil && s.Serial == prev.serial {
				continue
			}
			if prev != nil {
				expected := prev.notAfter.Add(-prev.notAfter.Sub(prev.notBefore) / 2)
				delay := ev.Time.Sub(expected)
				in := !ev.Time.Before(start) && !ev.Time.After(end)
				t.Logf("rotation at %s: expected %s, delay %s (during the flood: %v)",
					ev.Time.Format("15:04:05.000"), expected.Format("15:04:05.000"), delay.Round(time.Millisecond), in)
				if in {
					during++
					if delay > dsMaxRotationDelay {
						t.Errorf("rotation at %s came %s after its half-life point, over %s", ev.Time.Format("15:04:05.000"), delay, dsMaxRotationDelay)
					}
				}
			}
			prev = &cert{s.Serial, s.NotBefore, s.NotAfter}
		}
	}
	if during < 2 {
		t.Errorf("%d rotations of the pipeline's SVID during the flood, want at least 2", during)
	}
}
