package kubeedge

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// chainCacheSize is the default bound of the verified-chain cache (one
// entry per node certificate; about 2 KiB each).
const chainCacheSize = 16384

// chainCache remembers chains that verified, keyed by the SHA-256 of their
// exact DER bytes and bound to the CA bundle generation they verified
// against. A reloaded bundle (CA added or removed) makes every older entry a
// miss. Entries are only used within the chain's validity.
type chainCache struct {
	max     int
	mu      sync.Mutex
	entries map[[sha256.Size]byte]chainEntry
}

type chainEntry struct {
	bundle *loadedBundle
	v      *verified
}

func newChainCache(max int) *chainCache {
	return &chainCache{max: max, entries: make(map[[sha256.Size]byte]chainEntry)}
}

// chainKey hashes the certificates with their lengths, so that no two
// different chains share a key.
func chainKey(ders [][]byte) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	for _, d := range ders {
		binary.BigEndian.PutUint32(n[:], uint32(len(d)))
		h.Write(n[:])
		h.Write(d)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (c *chainCache) enabled() bool { return c != nil && c.max > 0 }

func (c *chainCache) get(key [sha256.Size]byte, bundle *loadedBundle, now time.Time) (*verified, bool) {
	if c == nil || c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if e.bundle != bundle || now.Before(e.v.leaf.NotBefore) || now.After(e.v.notAfter) {
		delete(c.entries, key)
		return nil, false
	}
	return e.v, true
}

func (c *chainCache) put(key [sha256.Size]byte, bundle *loadedBundle, v *verified) {
	if c == nil || c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Evict an arbitrary tenth; a miss only costs a verification.
		drop := c.max / 10
		for k := range c.entries {
			if drop <= 0 {
				break
			}
			delete(c.entries, k)
			drop--
		}
	}
	c.entries[key] = chainEntry{bundle: bundle, v: v}
}
