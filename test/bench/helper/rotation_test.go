package helperbench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"golang.org/x/sys/unix"
)

const (
	td     = "example.org"
	idApp  = "spiffe://example.org/edge/site-a/app"
	idPeer = "spiffe://example.org/edge/site-a/peer"
)

// pushWatcher records when this process received each SVID serial.
type pushWatcher struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (w *pushWatcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range c.SVIDs {
		if s.ID.String() != idApp {
			continue
		}
		k := s.Certificates[0].SerialNumber.Text(16)
		if _, ok := w.seen[k]; !ok {
			w.seen[k] = now
		}
	}
}

func (w *pushWatcher) OnX509ContextWatchError(error) {}

func (w *pushWatcher) pushed(serial string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[serial]
	return t, ok
}

// contender is one helper process being measured.
type contender struct {
	name    string
	bin     string
	root    string
	extra   string
	certDir string
	sigLog  string
	proc    *harness.Process

	mu      sync.Mutex
	visible map[string]time.Time // serial -> first time svid.pem holds it
	matched map[string]time.Time // serial -> first time svid.pem and svid_key.pem pair up
}

// watchDir records, for every inotify event in the contender's cert_dir,
// the serial then visible at svid.pem.
func (c *contender) watchDir(ctx context.Context, b *testing.B) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, c.certDir, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_CREATE); err != nil {
		b.Fatal(err)
	}
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 64*1024)
		for ctx.Err() == nil {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(fds, 200); n <= 0 {
				continue
			}
			now := time.Now()
			if _, err := unix.Read(fd, buf); err != nil {
				continue
			}
			if s, err := serialOf(filepath.Join(c.certDir, "svid.pem")); err == nil {
				c.mu.Lock()
				if _, ok := c.visible[s]; !ok {
					c.visible[s] = now
				}
				c.mu.Unlock()
			}
			cert, cerr := os.ReadFile(filepath.Join(c.certDir, "svid.pem"))
			key, kerr := os.ReadFile(filepath.Join(c.certDir, "svid_key.pem"))
			if cerr == nil && kerr == nil {
				if pair, err := tls.X509KeyPair(cert, key); err == nil {
					if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err == nil {
						s := leaf.SerialNumber.Text(16)
						c.mu.Lock()
						if _, ok := c.matched[s]; !ok {
							c.matched[s] = now
						}
						c.mu.Unlock()
					}
				}
			}
		}
	}()
}

func serialOf(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		return "", fmt.Errorf("no PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", err
	}
	return c.SerialNumber.Text(16), nil
}

func readSignals(path string) []time.Time {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []time.Time
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n, err := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64); err == nil {
			out = append(out, time.Unix(0, n))
		}
	}
	return out
}

type stats struct{ p50, p99, max time.Duration }

func summarize(d []time.Duration) stats {
	if len(d) == 0 {
		return stats{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) time.Duration {
		i := int(p*float64(len(d))+0.5) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return stats{p50: pct(0.50), p99: pct(0.99), max: d[len(d)-1]}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// startAppAgent starts a real SPIRE server and agent and registers idApp
// for this process's uid with an SVID of ttl; it returns once the agent
// serves that SVID.
func startAppAgent(b *testing.B, ttl time.Duration) *harness.SpireAgent {
	s := harness.StartSpireServer(b, harness.ServerConfig{TrustDomain: td, X509SVIDTTL: ttl})
	token := s.JoinToken(b, "")
	a := harness.StartSpireAgent(b, harness.AgentConfig{Server: s, JoinToken: token})
	s.CreateEntry(b, harness.Entry{
		ParentID: harness.JoinTokenAgentID(td, token), SPIFFEID: idApp,
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}, X509SVIDTTL: ttl, Hint: "app",
	})
	harness.FetchX509SVIDFor(b, a.SocketPath, idApp)
	return a
}

// BenchmarkRotation runs spiffe-helper v0.11.0 and edgeid-helper (same PEM
// outputs, and a second one with every output) against one agent with a
// 10 s SVID, one helper at a time, each running a program it signals with
// SIGUSR1, and reports rotation latency and RSS.
func BenchmarkRotation(b *testing.B) {
	shBin := harness.SpiffeHelperBin(b)
	ourBin := harness.BuildBinary(b, "./helper/cmd/edgeid-helper", "edgeid-helper").Path
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	a := startAppAgent(b, 10*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &pushWatcher{seen: map[string]time.Time{}}
	go func() {
		_ = workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr("unix://"+a.SocketPath))
	}()

	dir := harness.ShortTempDir(b)
	base := func(certDir string) string {
		return `agent_address = "` + a.SocketPath + `"
cert_dir = "` + certDir + `"
hint = "app"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
cmd = "` + self + `"
renew_signal = "SIGUSR1"
`
	}
	full := `combined_pem_file_name = "svid_combined.pem"
pkcs12 {
  keystore_file_name = "keystore.p12"
  truststore_file_name = "truststore.p12"
}
kafka {
  bootstrap_servers = "127.0.0.1:9093"
  endpoint_identification_algorithm = "none"
  deepstream_partition_key = "sensor.id"
  java_keystore_type = "PKCS12"
  librdkafka_file_name = "kafka.properties"
}
`
	// tmpfs is where keys usually belong (no fsync cost); /tmp here is ext4.
	shm, err := os.MkdirTemp("/dev/shm", "edgeid-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(shm)
	contenders := []*contender{
		{name: "spiffe-helper v0.11.0 (ext4)", bin: shBin, root: dir},
		{name: "edgeid-helper, same PEM files (ext4)", bin: ourBin, root: dir},
		{name: "edgeid-helper, every output (ext4)", bin: ourBin, root: dir, extra: full},
		{name: "spiffe-helper v0.11.0 (tmpfs)", bin: shBin, root: shm},
		{name: "edgeid-helper, same PEM files (tmpfs)", bin: ourBin, root: shm},
	}
	// Each helper runs alone against the agent for its rotations, so that
	// no other helper's writes, fsyncs or CPU time land in its figures.
	const rotations = 60
	fmt.Printf("\nRotation latency from the agent's push (n = %d rotations of a 10 s SVID per helper, each helper alone on the agent):\n", rotations)
	fmt.Println("  cert = new svid.pem readable; pair = svid.pem and svid_key.pem readable as a matching pair; signal = SIGUSR1 received by the program")
	fmt.Printf("%-45s %12s %12s %12s | %12s %12s | %12s %12s %12s | %8s\n", "helper", "cert p50", "cert p99", "cert max", "pair p50", "pair p99", "signal p50", "signal p99", "signal max", "RSS")
	for i, c := range contenders {
		c.certDir = filepath.Join(c.root, fmt.Sprintf("c%d", i))
		c.sigLog = filepath.Join(dir, fmt.Sprintf("c%d.signals", i))
		c.visible = map[string]time.Time{}
		c.matched = map[string]time.Time{}
		if err := os.MkdirAll(c.certDir, 0o755); err != nil {
			b.Fatal(err)
		}
		conf := base(c.certDir) + c.extra
		confPath := filepath.Join(dir, fmt.Sprintf("c%d.conf", i))
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			b.Fatal(err)
		}
		c.watchDir(ctx, b)
		env := append(harness.CleanEnv(dir), "EDGEID_BENCH_ROLE=signal-receiver", "EDGEID_BENCH_SIGLOG="+c.sigLog)
		c.proc = harness.StartProcess(b, harness.ProcessSpec{Name: fmt.Sprintf("helper-%d", i), Bin: c.bin, Args: []string{"-config", confPath}, Dir: dir, Env: env})

		w.mu.Lock()
		start := len(w.seen)
		w.mu.Unlock()
		harness.Eventually(b, 4*time.Minute, func() error {
			w.mu.Lock()
			n := len(w.seen) - start
			w.mu.Unlock()
			if n < rotations+1 {
				return fmt.Errorf("%s: %d SVIDs pushed so far", c.name, n)
			}
			return nil
		})
		time.Sleep(2 * time.Second)
		c.report(b, i, w)
		c.proc.Stop()
	}
	fmt.Println("metrics c0..c4 follow the rows in order; \"every output\" = PEM + combined PEM + PKCS#12 keystore/truststore + librdkafka, DeepStream and Java configs")
}

// report prints the contender's row: its rotation latencies from the
// agent's push, and its RSS.
func (c *contender) report(b *testing.B, i int, w *pushWatcher) {
	var fileLat []time.Duration
	c.mu.Lock()
	type ev struct {
		serial string
		at     time.Time
	}
	var evs []ev
	for serial, at := range c.visible {
		evs = append(evs, ev{serial, at})
	}
	c.mu.Unlock()
	sort.Slice(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	if len(evs) < 2 {
		b.Errorf("%s: published %d SVIDs", c.name, len(evs))
		return
	}
	for _, e := range evs[1:] { // the first is the startup fetch, not a rotation
		if p, ok := w.pushed(e.serial); ok {
			fileLat = append(fileLat, e.at.Sub(p))
		}
	}
	// Each rotation is matched to the first signal after its files were
	// swapped in (the helpers also signal on bundle-only updates, which
	// do not count here).
	sigs := readSignals(c.sigLog)
	sort.Slice(sigs, func(i, j int) bool { return sigs[i].Before(sigs[j]) })
	var sigLat []time.Duration
	for _, e := range evs[1:] {
		p, ok := w.pushed(e.serial)
		if !ok {
			continue
		}
		for _, sig := range sigs {
			if !sig.Before(e.at.Add(-5 * time.Millisecond)) {
				if sig.Sub(e.at) < 500*time.Millisecond {
					sigLat = append(sigLat, sig.Sub(p))
				}
				break
			}
		}
	}
	var pairLat []time.Duration
	c.mu.Lock()
	for serial, at := range c.matched {
		if p, ok := w.pushed(serial); ok && at.After(p) && at.Sub(p) < 2*time.Second {
			if first, ok := c.visible[serial]; ok && first.Equal(evs[0].at) {
				continue // the startup write
			}
			pairLat = append(pairLat, at.Sub(p))
		}
	}
	c.mu.Unlock()
	fs, ss, ps := summarize(fileLat), summarize(sigLat), summarize(pairLat)
	rss := harness.RSSKB(c.proc.PID())
	fmt.Printf("%-45s %12s %12s %12s | %12s %12s | %12s %12s %12s | %5.1f MB   (n=%d/%d/%d)\n", c.name, ms(fs.p50), ms(fs.p99), ms(fs.max), ms(ps.p50), ms(ps.p99), ms(ss.p50), ms(ss.p99), ms(ss.max), float64(rss)/1024, len(fileLat), len(pairLat), len(sigLat))
	b.ReportMetric(float64(ps.p50.Microseconds())/1000, fmt.Sprintf("c%d-pair-p50-ms", i))
	b.ReportMetric(float64(fs.p50.Microseconds())/1000, fmt.Sprintf("c%d-file-p50-ms", i))
	b.ReportMetric(float64(fs.p99.Microseconds())/1000, fmt.Sprintf("c%d-file-p99-ms", i))
	b.ReportMetric(float64(ss.p50.Microseconds())/1000, fmt.Sprintf("c%d-signal-p50-ms", i))
	b.ReportMetric(float64(ss.p99.Microseconds())/1000, fmt.Sprintf("c%d-signal-p99-ms", i))
	b.ReportMetric(float64(rss)/1024, fmt.Sprintf("c%d-rss-MB", i))
}
