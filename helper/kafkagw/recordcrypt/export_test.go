package recordcrypt

// Hooks for the external tests.

// CurrentKey returns the plaintext data key ring currently seals with (the
// slice itself, so that a test can watch it being zeroed), nil for none.
func (p *Producer) CurrentKey(ring string) []byte {
	p.mu.Lock()
	r := p.rings[ring]
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	if d := r.cur.Load(); d != nil {
		return d.key
	}
	return nil
}

// OnEvict sets a function that sees each evicted key's plaintext slice.
func (o *Opener) OnEvict(f func(key []byte)) {
	o.cache.mu.Lock()
	defer o.cache.mu.Unlock()
	o.cache.onEvict = func(d *dek) { f(d.key) }
}

// CachedKeys is the number of cached unwrapped keys.
func (o *Opener) CachedKeys() int { return o.cache.len() }
