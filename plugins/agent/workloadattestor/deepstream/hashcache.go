package deepstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// fileKey identifies one version of a file. It holds the (device, inode,
// size, mtime) the design asks for, plus ctime: mtime can be set back with
// utimensat(2), ctime cannot be set by an unprivileged user, so a rewrite
// that restores size and mtime still changes the key.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

func keyOf(st *unix.Stat_t) fileKey {
	return fileKey{
		dev:   uint64(st.Dev),
		ino:   st.Ino,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
	}
}

// hashCache remembers SHA-256 digests of files by fileKey. It is bounded:
// when full, it is emptied (attestation keeps working, only slower once).
type hashCache struct {
	mu      sync.Mutex
	max     int
	entries map[fileKey]string
}

func newHashCache(max int) *hashCache {
	return &hashCache{max: max, entries: make(map[fileKey]string)}
}

func (c *hashCache) get(k fileKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.entries[k]
	return h, ok
}

func (c *hashCache) put(k fileKey, h string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[k] = h
}

func (c *hashCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

var errTooLarge = errors.New("file exceeds size limit")

// sha256File returns the hex SHA-256 of the regular file f, read at most
// max bytes, using the cache when the file is unchanged. A file that changes
// while it is hashed is an error and is not cached, and so is a hash cut
// short by ctx.
func (c *hashCache) sha256File(ctx context.Context, f *os.File, max int64) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", errors.New("not a regular file")
	}
	if st.Size > max {
		return "", fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, st.Size, max)
	}
	key := keyOf(&st)
	if h, ok := c.get(key); ok {
		return h, nil
	}
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx: ctx, r: io.NewSectionReader(f, 0, max+1)})
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	if n > max {
		return "", fmt.Errorf("%w: more than %d bytes", errTooLarge, max)
	}
	var after unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &after); err != nil {
		return "", fmt.Errorf("stat: %w", err)
	}
	if keyOf(&after) != key || n != st.Size {
		return "", errors.New("file changed while it was hashed")
	}
	sum := hex.EncodeToString(h.Sum(nil))
	c.put(key, sum)
	return sum, nil
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
