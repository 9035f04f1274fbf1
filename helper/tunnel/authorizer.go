package tunnel

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// pattern is one parsed allowed_spiffe_ids entry.
type pattern struct {
	td     spiffeid.TrustDomain
	exact  string // full ID, for exact entries
	prefix string // path prefix without the trailing "/*", for prefix entries
	any    bool   // whole trust domain
}

// Matcher authorises peer IDs against allowed_spiffe_ids entries.
type Matcher struct {
	patterns []pattern
}

// NewMatcher parses entries: "spiffe://td/exact/id", "spiffe://td/prefix/*"
// or "spiffe://td" (or "spiffe://td/*").
func NewMatcher(entries []string) (*Matcher, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("tunnel: no allowed SPIFFE IDs")
	}
	m := &Matcher{}
	for _, e := range entries {
		base, wildcard := strings.CutSuffix(e, "/*")
		if id, err := spiffeid.FromString(base); err == nil && id.Path() != "" {
			p := pattern{td: id.TrustDomain()}
			if wildcard {
				p.prefix = id.Path()
			} else {
				p.exact = id.String()
			}
			m.patterns = append(m.patterns, p)
			continue
		}
		if !strings.HasPrefix(base, "spiffe://") {
			return nil, fmt.Errorf("tunnel: %q is not a SPIFFE ID, \"spiffe://td/prefix/*\" or \"spiffe://td\"", e)
		}
		td, err := spiffeid.TrustDomainFromString(base)
		if err != nil {
			return nil, fmt.Errorf("tunnel: %q: %w", e, err)
		}
		m.patterns = append(m.patterns, pattern{td: td, any: true})
	}
	return m, nil
}

// Match returns nil when id is allowed. It has the signature of
// spiffeid.Matcher.
func (m *Matcher) Match(id spiffeid.ID) error {
	for _, p := range m.patterns {
		if p.td != id.TrustDomain() {
			continue
		}
		switch {
		case p.any:
			return nil
		case p.exact != "":
			if id.String() == p.exact {
				return nil
			}
		default:
			if strings.HasPrefix(id.Path(), p.prefix+"/") {
				return nil
			}
		}
	}
	return fmt.Errorf("tunnel: peer %q is not in allowed_spiffe_ids", id)
}
