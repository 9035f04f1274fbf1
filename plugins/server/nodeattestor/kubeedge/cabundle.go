package kubeedge

import (
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/pemutil"
)

// caBundle holds the configured CA files and reloads them when one changes
// on disk, so an operator can add the next CA (or drop the old one) without
// restarting SPIRE.
type caBundle struct {
	paths []string
	// recheck is how often the files are stat'ed for changes; a change
	// takes effect at most this long after it is made.
	recheck time.Duration

	mu        sync.Mutex
	stamps    []fileStamp
	loaded    *loadedBundle
	checkedAt time.Time
}

// bundleRecheck is the default caBundle.recheck.
const bundleRecheck = time.Second

type fileStamp struct {
	modTime time.Time
	size    int64
}

type loadedBundle struct {
	pool *x509.CertPool
	cas  []*x509.Certificate
	fps  map[*x509.Certificate]string
}

// fingerprint returns the SHA-256 fingerprint of ca, precomputed for the
// bundle's CAs.
func (lb *loadedBundle) fingerprint(ca *x509.Certificate) string {
	if fp, ok := lb.fps[ca]; ok {
		return fp
	}
	return fingerprint(ca)
}

func loadCABundle(paths []string) (*caBundle, error) {
	b := &caBundle{paths: paths, recheck: bundleRecheck}
	if _, err := b.current(); err != nil {
		return nil, err
	}
	return b, nil
}

// current returns the bundle, re-reading the files when any changed. When a
// file is missing or broken it fails (closed) instead of using stale CAs.
func (b *caBundle) current() (*loadedBundle, error) {
	b.mu.Lock()
	if b.loaded != nil && time.Since(b.checkedAt) < b.recheck {
		lb := b.loaded
		b.mu.Unlock()
		return lb, nil
	}
	b.mu.Unlock()
	stamps := make([]fileStamp, len(b.paths))
	for i, p := range b.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("ca bundle: %w", err)
		}
		stamps[i] = fileStamp{modTime: fi.ModTime(), size: fi.Size()}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.loaded != nil && slices.Equal(stamps, b.stamps) {
		b.checkedAt = time.Now()
		return b.loaded, nil
	}
	lb := &loadedBundle{pool: x509.NewCertPool(), fps: make(map[*x509.Certificate]string)}
	for _, p := range b.paths {
		cas, err := readCAFile(p)
		if err != nil {
			return nil, err
		}
		for _, ca := range cas {
			lb.pool.AddCert(ca)
			lb.cas = append(lb.cas, ca)
			lb.fps[ca] = fingerprint(ca)
		}
	}
	b.loaded, b.stamps, b.checkedAt = lb, stamps, time.Now()
	return lb, nil
}

func readCAFile(path string) ([]*x509.Certificate, error) {
	raw, err := fsutil.ReadFileLimited(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("ca bundle: %w", err)
	}
	out, err := pemutil.ParseCertificates(raw)
	if err != nil {
		return nil, fmt.Errorf("ca bundle %s: %w", path, err)
	}
	for _, c := range out {
		if !c.IsCA {
			return nil, fmt.Errorf("ca bundle %s: certificate %q is not a CA", path, c.Subject.String())
		}
	}
	return out, nil
}
