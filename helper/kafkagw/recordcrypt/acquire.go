package recordcrypt

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// acquire returns the data key to seal one more record with under r,
// counting that use. The common case is two atomic operations; a due key
// takes the slow path.
func (p *Producer) acquire(ctx context.Context, r *ring) (*dek, error) {
	if p.closed.Load() {
		return nil, errors.New("recordcrypt: producer closed")
	}
	d := r.cur.Load()
	if d != nil {
		if n := d.uses.Add(1); p.fresh(d, n, p.cfg.now()) {
			return d, nil
		}
	}
	return p.acquireSlow(ctx, r, d)
}

// acquireN is acquire's fast path for n records at once: the current key
// of r, counted for n uses, when it can take all of them; nil when it
// cannot (none yet, due within n, or the producer closed), for the caller
// to take the key record by record. The n uses stay counted either way: a
// key retires at most that much early, never late.
func (p *Producer) acquireN(r *ring, n uint64) *dek {
	if p.closed.Load() {
		return nil
	}
	d := r.cur.Load()
	if d == nil || n > p.cfg.maxRecords {
		return nil
	}
	if u := d.uses.Add(n); p.fresh(d, u, p.cfg.now()) {
		return d
	}
	return nil
}

func (p *Producer) fresh(d *dek, n uint64, now time.Time) bool {
	return n <= p.cfg.maxRecords && now.Sub(d.created) < p.cfg.maxAge
}

func (p *Producer) withinGrace(d *dek, n uint64, now time.Time) bool {
	return n <= p.cfg.maxRecords+p.cfg.outageRecords && now.Sub(d.created) < p.cfg.maxAge+p.cfg.outageAge
}

// acquireSlow handles a missing or due key d: one caller at a time asks
// the KMS for a new key (at most once per RetryInterval while it fails);
// the others wait for it or, while the KMS is failing, keep using d
// within its outage bound.
func (p *Producer) acquireSlow(ctx context.Context, r *ring, d *dek) (*dek, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("recordcrypt: waiting for a data key of %q: %w", r.name, err)
		}
		r.mu.Lock()
		if cur := r.cur.Load(); cur != d {
			r.mu.Unlock()
			if cur == nil {
				return nil, errors.New("recordcrypt: producer closed")
			}
			if n := cur.uses.Add(1); p.fresh(cur, n, p.cfg.now()) {
				return cur, nil
			}
			d = cur
			continue
		}
		now := p.cfg.now()
		n := uint64(0)
		if d != nil {
			n = d.uses.Load()
		}
		if r.refreshing == nil && (r.failingFrom.IsZero() || now.Sub(r.lastAttempt) >= p.cfg.retry) {
			if nd, ok := p.refresh(ctx, r, now); ok {
				return nd, nil
			}
			continue
		}
		// While the KMS is healthy a due key is never used: wait for the
		// refresh in flight. While it fails, the held key serves within
		// its outage bound.
		if ch := r.refreshing; ch != nil && (d == nil || r.failingFrom.IsZero() || !p.withinGrace(d, n, now)) {
			r.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, fmt.Errorf("recordcrypt: waiting for a data key of %q: %w", r.name, ctx.Err())
			}
			continue
		}
		if d != nil && p.withinGrace(d, n, now) {
			r.mu.Unlock()
			return d, nil
		}
		err := p.failClosed(r, d, n)
		r.mu.Unlock()
		return nil, err
	}
}

// refresh asks the KMS for a new key of r. It is entered with r.mu held
// and releases it. It reports the new key, already counted for one use,
// or false (r.lastErr set) when the KMS failed.
func (p *Producer) refresh(ctx context.Context, r *ring, now time.Time) (*dek, bool) {
	ch := make(chan struct{})
	r.refreshing, r.lastAttempt = ch, now
	r.mu.Unlock()
	dk, err := p.kms.GenerateDataKey(ctx, r.name)
	var nd *dek
	if err == nil {
		nd, err = newSealingDEK(r.name, dk.Plaintext, dk.Wrapped, p.cfg.now())
	}
	r.mu.Lock()
	r.refreshing = nil
	close(ch)
	if err != nil && ctx.Err() != nil {
		// The caller gave up: that says nothing about the KMS.
		r.lastAttempt = time.Time{}
		r.mu.Unlock()
		return nil, false
	}
	if err != nil {
		if r.failingFrom.IsZero() {
			r.failingFrom = now
		}
		r.lastErr = err
		r.mu.Unlock()
		p.cfg.log.Warn("Cannot get a new data key from the KMS", "key_ring", r.name, "error", err)
		return nil, false
	}
	if p.closed.Load() {
		nd.zero()
		r.lastErr = errors.New("recordcrypt: producer closed")
		r.mu.Unlock()
		return nil, false
	}
	nd.uses.Add(1)
	if old := r.cur.Swap(nd); old != nil {
		old.zero()
	}
	r.failingFrom, r.lastErr, r.closedLogged = time.Time{}, nil, false
	r.mu.Unlock()
	return nd, true
}

// failClosed is the error of a ring with no usable key; r.mu is held.
func (p *Producer) failClosed(r *ring, d *dek, n uint64) error {
	if r.lastErr == nil {
		r.lastErr = errors.New("recordcrypt: no data key yet")
	}
	if d == nil {
		return fmt.Errorf("recordcrypt: key ring %q: no data key: %w", r.name, r.lastErr)
	}
	if !r.closedLogged {
		r.closedLogged = true
		p.cfg.log.Error("Refusing to encrypt: the KMS keeps failing and the data key reached its outage bound",
			"key_ring", r.name, "failing_since", r.failingFrom, "uses", n, "age", p.cfg.now().Sub(d.created).Round(time.Second))
	}
	return fmt.Errorf("%w: key ring %q: no new data key from the KMS since %s (%w); the current key, %s old, "+
		"has reached its bound of %d records or %s: refusing to encrypt",
		ErrOutageBound, r.name, r.failingFrom.UTC().Format(time.RFC3339), r.lastErr,
		p.cfg.now().Sub(d.created).Round(time.Second), p.cfg.maxRecords+p.cfg.outageRecords, p.cfg.maxAge+p.cfg.outageAge)
}
