// Package svidsource is a Workload API X.509 source for edgeid's own
// long-running programs (the demo broker, the cloud Kafka gateway, the ACL
// sync): it keeps the SVID of a chosen SPIFFE ID and the bundles, updated
// by the agent's stream, under one lock. go-spiffe's X509Source (v2.6.0)
// reads its bundle set without the lock its watcher writes under, which
// the race detector reports; this one does not.
package svidsource

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Source implements x509svid.Source and x509bundle.Source.
type Source struct {
	want    spiffeid.ID // zero: the agent's default SVID
	mu      sync.RWMutex
	svid    *x509svid.SVID
	bundles *x509bundle.Set
	lastErr error
	ready   chan struct{}
	once    sync.Once
	cancel  context.CancelFunc
	done    chan struct{}
}

// New watches the Workload API at addr until Close and returns once it
// holds an SVID (of id, when id is not zero and the agent offers it;
// else the agent's default), or fails after wait.
func New(ctx context.Context, addr string, id spiffeid.ID, wait time.Duration) (*Source, error) {
	wctx, cancel := context.WithCancel(context.Background())
	s := &Source{want: id, ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = workloadapi.WatchX509Context(wctx, s, workloadapi.WithAddr(addr))
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-s.ready:
		return s, nil
	case <-timer.C:
	case <-ctx.Done():
	}
	s.mu.RLock()
	err := s.lastErr
	s.mu.RUnlock()
	s.Close()
	if err == nil {
		err = errors.New("no update")
	}
	return nil, fmt.Errorf("svidsource: no X.509 SVID from %s within %s: %w", addr, wait, err)
}

// OnX509ContextUpdate keeps the wanted SVID and the bundles.
func (s *Source) OnX509ContextUpdate(c *workloadapi.X509Context) {
	svid := c.DefaultSVID()
	for _, v := range c.SVIDs {
		if !s.want.IsZero() && v.ID == s.want {
			svid = v
		}
	}
	s.mu.Lock()
	s.svid, s.bundles, s.lastErr = svid, c.Bundles, nil
	s.mu.Unlock()
	s.once.Do(func() { close(s.ready) })
}

// OnX509ContextWatchError keeps the error for New's message; the stream
// is retried by go-spiffe.
func (s *Source) OnX509ContextWatchError(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

// GetX509SVID returns the current SVID.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.svid == nil {
		return nil, errors.New("svidsource: no X.509 SVID yet")
	}
	return s.svid, nil
}

// GetX509BundleForTrustDomain returns the current bundle of td.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.bundles == nil {
		return nil, errors.New("svidsource: no X.509 bundles yet")
	}
	return s.bundles.GetX509BundleForTrustDomain(td)
}

// Close stops watching and waits for the stream to end.
func (s *Source) Close() {
	s.cancel()
	<-s.done
}
