package helper

import (
	"crypto/tls"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/edgeid/edgeid/test/harness"
	"golang.org/x/sys/unix"
)

// readerStats counts what concurrent readers saw.
type readerStats struct {
	reads            atomic.Int64
	snapshotMismatch atomic.Int64
	snapshotTorn     atomic.Int64
	combinedBad      atomic.Int64
	naiveTorn        atomic.Int64
	naiveMismatch    atomic.Int64
	firstErrMu       sync.Mutex
	firstErr         string
	serials          sync.Map
}

func (s *readerStats) note(format string, args ...any) {
	s.firstErrMu.Lock()
	defer s.firstErrMu.Unlock()
	if s.firstErr == "" {
		s.firstErr = fmt.Sprintf(format, args...)
	}
}

// readLoop reads the files the way consumers do, until stop closes:
//   - snapshot: open the current version directory once ("..data") and
//     read cert and key relative to it, as a careful consumer does;
//   - combined: read the one combined PEM file (cert chain + key);
//   - naive: read svid.pem, then svid_key.pem, by their public names.
func readLoop(dir string, stats *readerStats, stop <-chan struct{}) {
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return
		default:
		}
		stats.reads.Add(1)

		if root, err := os.OpenRoot(filepath.Join(dir, "..data")); err != nil {
			stats.snapshotTorn.Add(1)
			stats.note("snapshot open: %v", err)
		} else {
			c, cerr := fs.ReadFile(root.FS(), "svid.pem")
			k, kerr := fs.ReadFile(root.FS(), "svid_key.pem")
			root.Close()
			if cerr != nil || kerr != nil {
				stats.snapshotTorn.Add(1)
				stats.note("snapshot read: %v %v", cerr, kerr)
			} else if leaf, ok, err := parseSet(c, k); err != nil {
				stats.snapshotTorn.Add(1)
				stats.note("snapshot parse: %v", err)
			} else if !ok {
				stats.snapshotMismatch.Add(1)
			} else {
				stats.serials.Store(leaf.SerialNumber.Text(16), true)
			}
		}

		if b, err := os.ReadFile(filepath.Join(dir, "svid_combined.pem")); err != nil {
			stats.combinedBad.Add(1)
			stats.note("combined read: %v", err)
		} else if _, err := tls.X509KeyPair(b, b); err != nil {
			stats.combinedBad.Add(1)
			stats.note("combined parse: %v", err)
		}

		c, cerr := os.ReadFile(filepath.Join(dir, "svid.pem"))
		k, kerr := os.ReadFile(filepath.Join(dir, "svid_key.pem"))
		if cerr != nil || kerr != nil {
			stats.naiveTorn.Add(1)
			stats.note("naive read: %v %v", cerr, kerr)
		} else if _, ok, err := parseSet(c, k); err != nil {
			stats.naiveTorn.Add(1)
			stats.note("naive parse: %v", err)
		} else if !ok {
			stats.naiveMismatch.Add(1)
		}
	}
}

func countSerials(s *readerStats) int {
	n := 0
	s.serials.Range(func(any, any) bool { n++; return true })
	return n
}

// TestAtomicRotation checks that concurrent readers never see a torn file or
// a cert/key mismatch across at least 5 rotations of a 16 s SVID, then
// SIGKILLs the helper in the middle of rotations, restarts it, and checks the
// files stay a valid matched set throughout.
func TestAtomicRotation(t *testing.T) {
	sp := startSPIRE(t, 16*time.Second)
	sp.register(t, idApp, "", 16*time.Second)
	harness.FetchX509SVIDFor(t, sp.agent.SocketPath, idApp)

	dir := harness.ShortTempDir(t)
	certDir := filepath.Join(dir, "certs")
	conf := writeConf(t, dir, "helper.conf", `
agent_address = "`+sp.agent.SocketPath+`"
cert_dir = "`+certDir+`"
spiffe_id = "`+idApp+`"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
combined_pem_file_name = "svid_combined.pem"
`)
	p := startHelper(t, "edgeid-helper", dir, conf, nil)
	harness.Eventually(t, 60*time.Second, func() error {
		_, err := os.Stat(filepath.Join(certDir, "svid_combined.pem"))
		return err
	})

	stats := &readerStats{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readLoop(certDir, stats, stop)
		}()
	}
	stopReaders := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopReaders()

	// Phase 1: at least 5 rotations with readers running.
	serial, err := fileSerial(filepath.Join(certDir, "svid.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		serial = waitSerialChange(t, filepath.Join(certDir, "svid.pem"), serial, 60*time.Second)
		t.Logf("rotation %d: serial %s", i, serial)
	}
	t.Logf("phase 1: %d reads, %d distinct SVIDs seen by readers", stats.reads.Load(), countSerials(stats))

	// Modes are enforced on every write.
	for name, mode := range map[string]os.FileMode{"svid.pem": 0o644, "svid_key.pem": 0o600, "svid_bundle.pem": 0o644, "svid_combined.pem": 0o600} {
		st, err := os.Stat(filepath.Join(certDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}

	// Phase 2: SIGKILL the helper in the middle of a rotation, after it
	// wrote some of the new version's files and before "..data" moves; check
	// the set, restart, repeat, each time at another file.
	versionsDir := filepath.Join(certDir, "..versions")
	const kills = 4
	for k := 1; k <= kills; k++ {
		kill := killWhileFilling(t, p, certDir, k, 60*time.Second)
		<-p.Done()
		after, _ := os.Readlink(filepath.Join(certDir, "..data"))
		t.Logf("kill %d: SIGKILL at file %d of version %s; ..data %s -> %s", k, kill.nth, kill.version, kill.dataBefore, after)
		if after != kill.dataBefore {
			t.Errorf("kill %d: ..data moved to %s although the helper died before its swap", k, after)
		}
		checkSet(t, certDir)

		p.Restart(t)
		// On start the Workload API sends the current SVID at once.
		harness.Eventually(t, 30*time.Second, func() error {
			cur, _ := os.Readlink(filepath.Join(certDir, "..data"))
			if cur == after {
				return fmt.Errorf("no new version after restart yet")
			}
			return nil
		})
		checkSet(t, certDir)
		// The half-written version holds new key material: the restarted
		// helper removes it before its first write.
		if _, err := os.Lstat(filepath.Join(versionsDir, kill.version)); !os.IsNotExist(err) {
			t.Errorf("kill %d: half-written version %s still there after restart (%v)", k, kill.version, err)
		}
	}

	// Leftovers of killed writes are gone: current, previous and the
	// next version prepared after the last rotation, nothing more.
	entries, _ := os.ReadDir(versionsDir)
	versions := 0
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "..2") {
			versions++
		}
	}
	if versions > 3 {
		t.Errorf("%d version directories left, want at most 3", versions)
	}
	serial, _ = fileSerial(filepath.Join(certDir, "svid.pem"))
	waitSerialChange(t, filepath.Join(certDir, "svid.pem"), serial, 60*time.Second)

	stopReaders()
	t.Logf("readers: %d reads; snapshot torn %d mismatched %d; combined PEM bad %d; naive two-file reads torn %d mismatched %d",
		stats.reads.Load(), stats.snapshotTorn.Load(), stats.snapshotMismatch.Load(), stats.combinedBad.Load(),
		stats.naiveTorn.Load(), stats.naiveMismatch.Load())
	if stats.reads.Load() < 1000 {
		t.Errorf("only %d reads", stats.reads.Load())
	}
	if stats.snapshotTorn.Load() != 0 || stats.snapshotMismatch.Load() != 0 || stats.combinedBad.Load() != 0 || stats.naiveTorn.Load() != 0 {
		t.Errorf("readers saw torn or mismatched files; first problem: %s", stats.firstErr)
	}
}

// checkSet verifies the published set is complete and matched.
func checkSet(t *testing.T, certDir string) {
	t.Helper()
	root, err := os.OpenRoot(filepath.Join(certDir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	c, err1 := fs.ReadFile(root.FS(), "svid.pem")
	k, err2 := fs.ReadFile(root.FS(), "svid_key.pem")
	b, err3 := fs.ReadFile(root.FS(), "svid_combined.pem")
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatalf("set incomplete: %v %v %v", err1, err2, err3)
	}
	if _, ok, err := parseSet(c, k); err != nil || !ok {
		t.Fatalf("set not a matched pair: ok=%v err=%v", ok, err)
	}
	if _, err := tls.X509KeyPair(b, b); err != nil {
		t.Fatalf("combined PEM: %v", err)
	}
	for _, name := range []string{"svid.pem", "svid_key.pem", "svid_bundle.pem", "svid_combined.pem"} {
		if _, err := os.ReadFile(filepath.Join(certDir, name)); err != nil {
			t.Fatalf("public name %s: %v", name, err)
		}
	}
}

// midRotationKill says where killWhileFilling killed the helper.
type midRotationKill struct {
	version    string // the version directory being filled
	nth        int    // the helper was opening its nth file
	dataBefore string // "..data" while it was being filled
}

// killWhileFilling SIGKILLs the helper in the middle of a rotation: while
// it fills the version directory it prepared after the previous rotation,
// at its nth file, nth going round the files with k. A fanotify permission
// watch on that directory makes the kernel hold the helper's open of that
// file until the helper is dead, so the kill always lands after the files
// before it were written and before "..data" moves, however fast the
// helper is.
func killWhileFilling(t *testing.T, p *harness.Process, certDir string, k int, timeout time.Duration) midRotationKill {
	t.Helper()
	fan, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_LARGEFILE)
	if err != nil {
		t.Fatalf("fanotify_init: %v (this test needs root and a kernel with fanotify permission events)", err)
	}
	// Closing the group lets every open it still holds go on.
	defer unix.Close(fan)
	versionsDir := filepath.Join(certDir, "..versions")
	var marked string // "..data" when the candidates were marked
	nth := 0
	mark := func() error {
		cur, dirs, files, err := preparedDirs(versionsDir)
		if err != nil {
			return err
		}
		for _, d := range dirs {
			err := unix.FanotifyMark(fan, unix.FAN_MARK_ADD, unix.FAN_OPEN_PERM|unix.FAN_EVENT_ON_CHILD, unix.AT_FDCWD, filepath.Join(versionsDir, d))
			if err != nil && err != unix.ENOENT {
				t.Fatalf("fanotify_mark %s: %v", d, err)
			}
		}
		marked, nth = cur, (k-1)%len(files)+1
		return nil
	}
	harness.Eventually(t, 10*time.Second, mark)

	opens := 0
	buf := make([]byte, 4096)
	metaLen := int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fan), Events: unix.POLLIN}}, 200)
		if err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		if n <= 0 {
			// A rotation that began before the marks took hold filled
			// another directory: watch the one prepared after it.
			if cur, _ := os.Readlink(filepath.Join(certDir, "..data")); cur != marked {
				opens = 0
				harness.Eventually(t, 10*time.Second, mark)
			}
			continue
		}
		r, err := unix.Read(fan, buf)
		if err == unix.EAGAIN {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+metaLen <= r; {
			ev := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
			off += int(ev.Event_len)
			if ev.Fd < 0 {
				continue
			}
			path, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", ev.Fd))
			kill := ev.Pid == int32(p.PID()) && ev.Mask&unix.FAN_OPEN_PERM != 0
			if kill {
				opens++
				kill = opens == nth
			}
			if kill {
				if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			resp := unix.FanotifyResponse{Fd: ev.Fd, Response: unix.FAN_ALLOW}
			// The answer to a killed opener's event may find it gone.
			_, _ = unix.Write(fan, (*[unsafe.Sizeof(resp)]byte)(unsafe.Pointer(&resp))[:])
			unix.Close(int(ev.Fd))
			if kill {
				return midRotationKill{version: filepath.Base(filepath.Dir(path)), nth: nth, dataBefore: marked}
			}
		}
	}
	t.Fatalf("the helper filled no prepared version within %s", timeout)
	return midRotationKill{}
}

// preparedDirs returns the version "..data" points at and the version
// directories under versionsDir that hold every file of it at the same
// size: the one prepared for the next rotation, and the previous version
// when its files happen to have the same sizes (the helper never opens
// that one again). It also returns the names of the current files.
func preparedDirs(versionsDir string) (cur string, dirs, files []string, err error) {
	cur, err = os.Readlink(filepath.Join(filepath.Dir(versionsDir), "..data"))
	if err != nil {
		return "", nil, nil, err
	}
	curDir := filepath.Join(filepath.Dir(versionsDir), cur)
	want, err := os.ReadDir(curDir)
	if err != nil {
		return "", nil, nil, err
	}
	entries, err := os.ReadDir(versionsDir)
	if err != nil {
		return "", nil, nil, err
	}
	for _, e := range want {
		files = append(files, e.Name())
	}
next:
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "..2") || e.Name() == filepath.Base(cur) {
			continue
		}
		for _, n := range files {
			a, err1 := os.Stat(filepath.Join(curDir, n))
			b, err2 := os.Stat(filepath.Join(versionsDir, e.Name(), n))
			if err1 != nil || err2 != nil || a.Size() != b.Size() {
				continue next
			}
		}
		dirs = append(dirs, e.Name())
	}
	if len(dirs) == 0 || len(files) == 0 {
		return "", nil, nil, fmt.Errorf("no complete prepared version in %s yet", versionsDir)
	}
	return cur, dirs, files, nil
}
