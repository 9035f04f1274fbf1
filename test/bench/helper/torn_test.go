package helperbench

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/edgeid/edgeid/helper/atomicdir"
	"github.com/edgeid/edgeid/test/harness"
)

// readOutcome classifies one read of a certificate and its key.
type readOutcome int

const (
	readOK readOutcome = iota
	// readTorn: the certificate or the key does not parse (empty, half
	// written).
	readTorn
	// readMismatched: both parse, but the key is not the certificate's.
	readMismatched
	// readFailed: a file could not be opened at all.
	readFailed
)

// classify parses the first CERTIFICATE block of certPEM and the first
// private key block of keyPEM (both may be the same combined file) and
// checks that they pair up.
func classify(certPEM, keyPEM []byte) readOutcome {
	cert, key := firstBlock(certPEM, "CERTIFICATE"), firstBlock(keyPEM, "PRIVATE KEY")
	if cert == nil || key == nil {
		return readTorn
	}
	c, err := x509.ParseCertificate(cert.Bytes)
	if err != nil {
		return readTorn
	}
	k, err := x509.ParsePKCS8PrivateKey(key.Bytes)
	if err != nil {
		return readTorn
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return readTorn
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(c.PublicKey) {
		return readMismatched
	}
	return readOK
}

func firstBlock(data []byte, typ string) *pem.Block {
	for len(bytes.TrimSpace(data)) > 0 {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			return nil
		}
		if blk.Type == typ {
			return blk
		}
	}
	return nil
}

// tornReader is one read pattern against one helper's cert_dir.
type tornReader struct {
	helper, pattern string
	read            func() readOutcome
	counts          [4]atomic.Int64
}

// twoFiles opens the certificate, then the key, by their public names.
func twoFiles(dir string) func() readOutcome {
	return func() readOutcome {
		cert, err := os.ReadFile(filepath.Join(dir, "svid.pem"))
		if err != nil {
			return readFailed
		}
		key, err := os.ReadFile(filepath.Join(dir, "svid_key.pem"))
		if err != nil {
			return readFailed
		}
		return classify(cert, key)
	}
}

// oneVersion resolves "..data" once and reads both files from that version.
func oneVersion(dir string) func() readOutcome {
	return func() readOutcome {
		files, err := atomicdir.Snapshot(dir, "svid.pem", "svid_key.pem")
		if err != nil {
			return readFailed
		}
		return classify(files["svid.pem"], files["svid_key.pem"])
	}
}

// combined reads the chain and key from the one combined PEM file.
func combined(dir string) func() readOutcome {
	return func() readOutcome {
		data, err := os.ReadFile(filepath.Join(dir, "svid_combined.pem"))
		if err != nil {
			return readFailed
		}
		return classify(data, data)
	}
}

// BenchmarkTornRead runs spiffe-helper v0.11.0 and edgeid-helper side by
// side on one real SPIRE agent with a short SVID and reads their files in
// tight loops across a bounded number of rotations: the two-file reader
// (open the certificate, open the key) on both, and edgeid's one-version
// readers (..data resolved once; the combined PEM), which must never see
// a torn or mismatched pair.
func BenchmarkTornRead(b *testing.B) {
	rotations := 6
	if v, err := strconv.Atoi(os.Getenv("TORN_ROTATIONS")); err == nil && v > 0 {
		rotations = v
	}
	// SPIRE backdates NotBefore by 10 s, and the agent rotates at half the
	// certificate's life (NotAfter - NotBefore): a 30 s SVID rotates every
	// (30 s - 10 s) / 2 = 10 s, a 10 s one at every agent sync.
	const ttl = 30 * time.Second
	a := startAppAgent(b, ttl)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &pushWatcher{seen: map[string]time.Time{}}
	go func() { _ = workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr("unix://"+a.SocketPath)) }()

	dir := harness.ShortTempDir(b)
	shDir, ourDir := startTornHelpers(b, dir, a.SocketPath)
	readers := []*tornReader{
		{helper: "spiffe-helper v0.11.0", pattern: "cert file, then key file", read: twoFiles(shDir)},
		{helper: "edgeid-helper", pattern: "cert file, then key file", read: twoFiles(ourDir)},
		{helper: "edgeid-helper", pattern: "..data resolved once (atomicdir.Snapshot)", read: oneVersion(ourDir)},
		{helper: "edgeid-helper", pattern: "combined PEM (one file)", read: combined(ourDir)},
	}
	start := time.Now()
	pushed0 := w.count()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r.counts[r.read()].Add(1)
			}
		}()
	}
	// Bounded in time whatever the agent does.
	err := harness.Poll(time.Duration(rotations+2)*ttl, func() error {
		if n := w.count() - pushed0; n < rotations {
			return fmt.Errorf("%d of %d rotations so far", n, rotations)
		}
		return nil
	})
	time.Sleep(time.Second) // let the last rotation's writes finish under the readers
	close(stop)
	wg.Wait()
	if err != nil {
		b.Errorf("torn-read benchmark: %v", err)
	}
	reportTorn(b, readers, w.count()-pushed0, time.Since(start), ttl)
}

// count is the number of distinct SVIDs pushed so far.
func (w *pushWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// startTornHelpers starts spiffe-helper and edgeid-helper, each with its
// own cert_dir under dir, and waits for both to write their first SVID.
func startTornHelpers(b *testing.B, dir, agentSocket string) (shDir, ourDir string) {
	shDir, ourDir = filepath.Join(dir, "spiffe-helper"), filepath.Join(dir, "edgeid-helper")
	base := func(certDir string) string {
		return fmt.Sprintf(`agent_address = %q
cert_dir = %q
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
`, agentSocket, certDir)
	}
	for _, h := range []struct{ name, bin, certDir, extra string }{
		{"spiffe-helper", harness.SpiffeHelperBin(b), shDir, ""},
		{"edgeid-helper", harness.BuildBinary(b, "./helper/cmd/edgeid-helper", "edgeid-helper").Path, ourDir, "combined_pem_file_name = \"svid_combined.pem\"\n"},
	} {
		if err := os.MkdirAll(h.certDir, 0o755); err != nil {
			b.Fatal(err)
		}
		conf := filepath.Join(dir, h.name+".conf")
		if err := os.WriteFile(conf, []byte(base(h.certDir)+h.extra), 0o644); err != nil {
			b.Fatal(err)
		}
		harness.StartProcess(b, harness.ProcessSpec{Name: h.name, Bin: h.bin, Args: []string{"-config", conf}, Dir: dir})
	}
	harness.Eventually(b, time.Minute, func() error {
		for _, d := range []string{shDir, ourDir} {
			if classify(readBoth(d)) != readOK {
				return fmt.Errorf("%s: no SVID yet", d)
			}
		}
		return nil
	})
	return shDir, ourDir
}

func readBoth(dir string) ([]byte, []byte) {
	cert, _ := os.ReadFile(filepath.Join(dir, "svid.pem"))
	key, _ := os.ReadFile(filepath.Join(dir, "svid_key.pem"))
	return cert, key
}

// reportTorn prints the table and fails the run if a one-version reader
// of edgeid-helper saw anything but whole, matching pairs.
func reportTorn(b *testing.B, readers []*tornReader, rotations int, took, ttl time.Duration) {
	fmt.Printf("\nTorn reads: %d rotations of a %s SVID in %s, both helpers on one agent at once, the four readers in parallel with them\n", rotations, ttl, took.Round(time.Second))
	fmt.Printf("| %-22s | %-42s | %10s | %6s | %10s | %6s |\n", "helper", "reader", "reads", "torn", "mismatched", "failed")
	fmt.Printf("|%s|%s|%s|%s|%s|%s|\n", "---", "---", "---", "---", "---", "---")
	for i, r := range readers {
		ok, torn, mis, failed := r.counts[readOK].Load(), r.counts[readTorn].Load(), r.counts[readMismatched].Load(), r.counts[readFailed].Load()
		fmt.Printf("| %-22s | %-42s | %10d | %6d | %10d | %6d |\n", r.helper, r.pattern, ok+torn+mis+failed, torn, mis, failed)
		b.ReportMetric(float64(torn), fmt.Sprintf("r%d-torn", i))
		b.ReportMetric(float64(mis), fmt.Sprintf("r%d-mismatched", i))
		if i >= 2 && torn+mis+failed != 0 {
			b.Errorf("%s, %s: %d torn, %d mismatched, %d failed reads; want none", r.helper, r.pattern, torn, mis, failed)
		}
	}
}
