package kubeedge

import (
	"slices"
	"sync"
	"time"
)

// nodeCheckCacheSize bounds the number of nodes whose last successful Node
// check is remembered (about 200 bytes each, plus their label selectors).
// A fleet larger than this keeps the outage grace for the most recently
// checked nodes; the others fail closed during an outage, as with
// node_check_max_staleness = "0s".
const nodeCheckCacheSize = 65536

// nodeCheck is the outcome of one successful Node check.
type nodeCheck struct {
	// uid is the Node's metadata.uid; a Node deleted and created again
	// under the same name has a new one.
	uid string
	// selectors are the node_label and node_uid selectors it produced.
	selectors []string
	// at is when the API server answered.
	at time.Time
}

// nodeCheckCache remembers the last successful Node check of each node, so
// that an agent can re-attest during an API server outage for at most
// node_check_max_staleness after it. Entries are only replaced by a newer
// successful check and dropped by a definite "no" (404, deletionTimestamp,
// wrong label); a cache hit never refreshes an entry.
type nodeCheckCache struct {
	max int
	// maxAge is node_check_max_staleness; older entries are useless and
	// are evicted first.
	maxAge time.Duration

	mu      sync.Mutex
	entries map[string]nodeCheck
}

func newNodeCheckCache(max int, maxAge time.Duration) *nodeCheckCache {
	return &nodeCheckCache{max: max, maxAge: maxAge, entries: make(map[string]nodeCheck)}
}

func (c *nodeCheckCache) enabled() bool { return c != nil && c.max > 0 && c.maxAge > 0 }

// get returns the last successful check of node name.
func (c *nodeCheckCache) get(name string) (nodeCheck, bool) {
	if !c.enabled() {
		return nodeCheck{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[name]
	return e, ok
}

// put records a successful check of node name.
func (c *nodeCheckCache) put(name string, e nodeCheck) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[name]; !ok && len(c.entries) >= c.max {
		c.evict(e.at)
	}
	c.entries[name] = e
}

// drop forgets node name: the API server said no.
func (c *nodeCheckCache) drop(name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, name)
}

// size returns the number of entries.
func (c *nodeCheckCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// evict makes room when the cache is full: it drops every entry past the
// staleness bound and, if that is not enough, the oldest tenth. The caller
// holds c.mu.
func (c *nodeCheckCache) evict(now time.Time) {
	for k, e := range c.entries {
		if now.Sub(e.at) > c.maxAge {
			delete(c.entries, k)
		}
	}
	if len(c.entries) < c.max {
		return
	}
	times := make([]time.Time, 0, len(c.entries))
	for _, e := range c.entries {
		times = append(times, e.at)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	cutoff := times[max(len(times)/10, 1)-1]
	for k, e := range c.entries {
		if !e.at.After(cutoff) {
			delete(c.entries, k)
		}
	}
}
