package helper

import (
	"crypto/tls"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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

	// Phase 2: SIGKILL the helper as soon as a rotation starts writing its
	// new version (into the version directory it prepared after the last
	// rotation), check the set, restart, repeat.
	versionsDir := filepath.Join(certDir, "..versions")
	// A rotation into a prepared directory takes well under a millisecond:
	// the goroutine that kills must not wait for a P behind the readers.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(runtime.NumCPU() + 2))
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, versionsDir, unix.IN_CREATE|unix.IN_ONLYDIR); err != nil {
		t.Fatal(err)
	}
	// At least minKills kills, and more (up to maxKills) until one lands
	// before the swap: whether the kill beats the helper's fsyncs depends
	// on the machine's load, so it is retried, bounded, rather than hoped.
	midWrite, kills := 0, 0
	const minKills, maxKills = 3, 12
	for k := 1; k <= maxKills && (k <= minKills || midWrite == 0); k++ {
		kills = k
		before, _ := os.Readlink(filepath.Join(certDir, "..data"))
		created := waitVersionWrite(t, fd, versionsDir, 60*time.Second)
		if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.Done()
		after, _ := os.Readlink(filepath.Join(certDir, "..data"))
		if after == before {
			midWrite++
		}
		t.Logf("kill %d: new version %s being written, ..data %s -> %s after SIGKILL", k, created, before, after)
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
		drain(fd)
	}
	t.Logf("phase 2: %d of %d SIGKILLs landed before the swap (mid-rotation)", midWrite, kills)
	if midWrite == 0 {
		t.Errorf("no SIGKILL landed mid-rotation; the crash path was not exercised")
	}
	// Leftovers of killed writes are gone: current, previous and the
	// next version prepared after the last rotation, nothing more.
	entries, _ := os.ReadDir(filepath.Join(certDir, "..versions"))
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

// waitVersionWrite waits until a rotation starts filling the version
// directory the helper prepared after the previous rotation (fd watches
// versionsDir for new directories), that is, until a file of a complete
// prepared directory is opened again, which happens only while a new
// version is written, before its swap. It returns the directory's name.
func waitVersionWrite(t *testing.T, fd int, versionsDir string, timeout time.Duration) string {
	t.Helper()
	type watched struct {
		name   string
		closed map[string]bool // files written and closed once (prepared)
	}
	dirs := map[int32]*watched{}
	watch := func(name string) *watched {
		wd, err := unix.InotifyAddWatch(fd, filepath.Join(versionsDir, name), unix.IN_OPEN|unix.IN_MODIFY|unix.IN_CLOSE_WRITE)
		if err != nil {
			return nil
		}
		w := &watched{name: name, closed: map[string]bool{}}
		dirs[int32(wd)] = w
		return w
	}
	// The directory prepared after the last rotation: wait until it holds
	// every file of the current version, at its size.
	harness.Eventually(t, 10*time.Second, func() error {
		name, files, err := preparedDir(versionsDir)
		if err != nil {
			return err
		}
		if w := watch(name); w != nil {
			for _, f := range files {
				w.closed[f] = true
			}
		}
		return nil
	})
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 64*1024)
	for time.Now().Before(deadline) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 500)
		if err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		if n <= 0 {
			continue
		}
		r, err := unix.Read(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= r; {
			ev := (*unix.InotifyEvent)(unsafePointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			w := dirs[ev.Wd]
			switch {
			case ev.Mask&unix.IN_CREATE != 0 && ev.Mask&unix.IN_ISDIR != 0 && strings.HasPrefix(name, "..2"):
				watch(name)
			case w != nil && ev.Mask&unix.IN_CLOSE_WRITE != 0:
				w.closed[name] = true
			case w != nil && ev.Mask&(unix.IN_OPEN|unix.IN_MODIFY) != 0 && w.closed[name]:
				return w.name
			}
		}
	}
	t.Fatalf("no prepared version filled within %s", timeout)
	return ""
}

// preparedDir returns the version directory under versionsDir that is
// neither current nor previous and holds every file of the current version
// at the same size, and those files' names.
func preparedDir(versionsDir string) (string, []string, error) {
	cur, err := os.Readlink(filepath.Join(filepath.Dir(versionsDir), "..data"))
	if err != nil {
		return "", nil, err
	}
	curDir := filepath.Join(filepath.Dir(versionsDir), cur)
	want, err := os.ReadDir(curDir)
	if err != nil {
		return "", nil, err
	}
	entries, err := os.ReadDir(versionsDir)
	if err != nil {
		return "", nil, err
	}
	var names []string
	for _, e := range want {
		names = append(names, e.Name())
	}
next:
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "..2") || e.Name() == filepath.Base(cur) {
			continue
		}
		for _, n := range names {
			a, err1 := os.Stat(filepath.Join(curDir, n))
			b, err2 := os.Stat(filepath.Join(versionsDir, e.Name(), n))
			if err1 != nil || err2 != nil || a.Size() != b.Size() {
				continue next
			}
		}
		return e.Name(), names, nil
	}
	return "", nil, fmt.Errorf("no complete prepared version in %s yet", versionsDir)
}

func drain(fd int) {
	buf := make([]byte, 64*1024)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(fds, 0); n <= 0 {
			return
		}
		if _, err := unix.Read(fd, buf); err != nil {
			return
		}
	}
}
