package daemon

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// svidState is the SVID and bundles of the latest update.
type svidState struct {
	svid    *x509svid.SVID
	bundles *x509bundle.Set
}

// source hands the latest SVID to the tunnels. It implements
// x509svid.Source and x509bundle.Source; a failed update keeps the previous
// state.
type source struct {
	p atomic.Pointer[svidState]
}

func (s *source) set(svid *x509svid.SVID, bundles *x509bundle.Set) {
	s.p.Store(&svidState{svid: svid, bundles: bundles})
}

func (s *source) get() *svidState { return s.p.Load() }

// GetX509SVID returns the current SVID.
func (s *source) GetX509SVID() (*x509svid.SVID, error) {
	st := s.p.Load()
	if st == nil {
		return nil, errors.New("daemon: no SVID yet")
	}
	return st.svid, nil
}

// GetX509BundleForTrustDomain returns the current bundle for td.
func (s *source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	st := s.p.Load()
	if st == nil {
		return nil, errors.New("daemon: no bundle yet")
	}
	b, ok := st.bundles.Get(td)
	if !ok {
		return nil, fmt.Errorf("daemon: no bundle for trust domain %q", td)
	}
	return b, nil
}
