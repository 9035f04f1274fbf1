package recordcrypt

import (
	"container/list"
	"sync"
	"time"
)

// keyCache is the consumer's bounded LRU of unwrapped data keys, keyed by
// key ring and wrapped key, with short-lived memory of refusals. An
// evicted key is zeroed.
type keyCache struct {
	max    int
	negTTL time.Duration
	now    func() time.Time

	mu      sync.Mutex
	lru     *list.List // of *dek, most recent first
	byKey   map[string]*list.Element
	refused map[string]refusal
	// onEvict, for tests, sees each evicted key before it is zeroed.
	onEvict func(*dek)
}

type refusal struct {
	err   error
	until time.Time
}

func newKeyCache(max int, negTTL time.Duration, now func() time.Time) *keyCache {
	return &keyCache{max: max, negTTL: negTTL, now: now, lru: list.New(),
		byKey: map[string]*list.Element{}, refused: map[string]refusal{}}
}

func cacheKey(ring string, wrapped []byte) string {
	return string(appendCacheKey(nil, ring, wrapped))
}

// appendCacheKey appends the cache's key of a wrapped data key of ring to
// dst: the ring's name, a zero byte (which no ring name has), the wrapped
// key.
func appendCacheKey[R string | []byte](dst []byte, ring R, wrapped []byte) []byte {
	return append(append(append(dst, ring...), 0), wrapped...)
}

// get returns the cached key, or the remembered refusal, or neither. A
// hit allocates nothing: the key is built on the stack (up to its size)
// and looked up as string(bytes), which Go does without a copy.
func (c *keyCache) get(ring, wrapped []byte) (*dek, error) {
	var kb [256]byte
	k := appendCacheKey(kb[:0], ring, wrapped)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[string(k)]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*dek), nil
	}
	if r, ok := c.refused[string(k)]; ok {
		if c.now().Before(r.until) {
			return nil, r.err
		}
		delete(c.refused, string(k))
	}
	return nil, nil
}

// put caches d, or returns the key another caller cached first (zeroing
// d), evicting the least recently used beyond max.
func (c *keyCache) put(d *dek) *dek {
	k := cacheKey(d.ring, d.wrapped)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok {
		d.zero()
		c.lru.MoveToFront(e)
		return e.Value.(*dek)
	}
	c.byKey[k] = c.lru.PushFront(d)
	for c.lru.Len() > c.max {
		c.evict(c.lru.Back())
	}
	return d
}

func (c *keyCache) evict(e *list.Element) {
	d := c.lru.Remove(e).(*dek)
	delete(c.byKey, cacheKey(d.ring, d.wrapped))
	if c.onEvict != nil {
		c.onEvict(d)
	}
	d.zero()
}

// refuse remembers a KMS refusal for negTTL; the memory is bounded like
// the cache.
func (c *keyCache) refuse(ring string, wrapped []byte, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.refused) >= c.max {
		for k, r := range c.refused {
			if !now.Before(r.until) || len(c.refused) >= c.max {
				delete(c.refused, k)
			}
		}
	}
	c.refused[cacheKey(ring, wrapped)] = refusal{err: err, until: now.Add(c.negTTL)}
}

// purge zeroes and drops every key.
func (c *keyCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.lru.Len() > 0 {
		c.evict(c.lru.Back())
	}
}

// len is the number of cached keys.
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
