// Package logonce bounds how often a repeated event is logged: once per
// key per interval, in bounded memory. Refusals that a client can provoke
// at will (denied requests, refused connections) are counted every time
// but logged through it, so that nobody can fill a disk with them.
package logonce

import (
	"sync"
	"time"
)

// DefaultMaxKeys bounds a limiter's memory; when full, entries older than
// the interval are dropped, and if that frees nothing, all are.
const DefaultMaxKeys = 10000

// Limiter says whether an event of key k should be logged now.
type Limiter[K comparable] struct {
	interval time.Duration
	maxKeys  int

	mu   sync.Mutex
	last map[K]time.Time
}

// New returns a limiter that lets one event per key through per interval.
func New[K comparable](interval time.Duration) *Limiter[K] {
	return &Limiter[K]{interval: interval, maxKeys: DefaultMaxKeys, last: map[K]time.Time{}}
}

// Allow reports whether the event k, happening at now, should be logged,
// and if so records it.
func (l *Limiter[K]) Allow(k K, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[k]; ok && now.Sub(t) < l.interval {
		return false
	}
	if len(l.last) >= l.maxKeys {
		for key, t := range l.last {
			if now.Sub(t) >= l.interval {
				delete(l.last, key)
			}
		}
		if len(l.last) >= l.maxKeys {
			clear(l.last)
		}
	}
	l.last[k] = now
	return true
}
