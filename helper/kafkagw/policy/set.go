package policy

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// maxCacheEntries bounds the decision cache; past it, decisions are
// computed and not stored.
const maxCacheEntries = 1 << 16

// Rule is one validated allow or deny rule.
type Rule struct {
	Name       string
	Deny       bool
	Actors     []ActorPattern
	Resources  []ResourcePattern
	Operations []Operation
}

// Set is an immutable policy with its own decision cache.
type Set struct {
	allowIfNoACL bool
	rules        []Rule
	index        map[ResourceType]*typeIndex

	cache      sync.Map // cacheKey -> Decision
	cacheCount atomic.Int64
}

type typeIndex struct {
	literal  map[string][]int
	prefixes []prefixRule
	wildcard []int
}

type prefixRule struct {
	prefix string
	rule   int
}

type cacheKey struct {
	actor string
	res   Resource
	op    Operation
}

// NewSet builds a policy from validated rules.
func NewSet(allowIfNoACL bool, rules []Rule) *Set {
	s := &Set{allowIfNoACL: allowIfNoACL, rules: rules, index: map[ResourceType]*typeIndex{}}
	for i, r := range rules {
		for _, p := range r.Resources {
			ti := s.index[p.Type]
			if ti == nil {
				ti = &typeIndex{literal: map[string][]int{}}
				s.index[p.Type] = ti
			}
			switch {
			case p.PatternType == PatternPrefixed:
				ti.prefixes = append(ti.prefixes, prefixRule{p.Name, i})
			case p.Name == "*":
				ti.wildcard = append(ti.wildcard, i)
			default:
				ti.literal[p.Name] = append(ti.literal[p.Name], i)
			}
		}
	}
	return s
}

// AllowIfNoACL is the allow_if_no_acl setting.
func (s *Set) AllowIfNoACL() bool { return s.allowIfNoACL }

// Rules returns the rules, allow blocks first, in file order.
func (s *Set) Rules() []Rule { return s.rules }

// Decide decides whether actor (a SPIFFE ID string) may perform op on res.
// An actor that is not a SPIFFE ID is matched only by "*" rules.
func (s *Set) Decide(actor string, res Resource, op Operation) Decision {
	key := cacheKey{actor, res, op}
	if d, ok := s.cache.Load(key); ok {
		return d.(Decision)
	}
	d := s.decide(actor, res, op)
	if s.cacheCount.Load() < maxCacheEntries {
		if _, loaded := s.cache.LoadOrStore(key, d); !loaded {
			s.cacheCount.Add(1)
		}
	}
	return d
}

// DecideUncached decides without reading or filling the cache.
func (s *Set) DecideUncached(actor string, res Resource, op Operation) Decision {
	return s.decide(actor, res, op)
}

func (s *Set) decide(actor string, res Resource, op Operation) Decision {
	candidates := s.covering(res)
	if len(candidates) == 0 {
		if s.allowIfNoACL {
			return Decision{Allowed: true, Reason: "no_acl"}
		}
		return Decision{Allowed: false, Reason: "no_acl"}
	}
	id, idErr := spiffeid.FromString(actor)
	allowed := false
	for _, i := range candidates {
		r := &s.rules[i]
		if !matchActor(r.Actors, id, idErr == nil) {
			continue
		}
		if r.Deny {
			for _, o := range r.Operations {
				if o == op || o == All {
					return Decision{Allowed: false, Reason: "deny_rule"}
				}
			}
			continue
		}
		if !allowed {
			for _, o := range r.Operations {
				if implies(o, op) {
					allowed = true
					break
				}
			}
		}
	}
	if allowed {
		return Decision{Allowed: true, Reason: "allow_rule"}
	}
	return Decision{Allowed: false, Reason: "no_matching_allow"}
}

// covering lists the rules with a resource pattern that matches res,
// whatever their actors and operations (step one of the lookup).
func (s *Set) covering(res Resource) []int {
	ti := s.index[res.Type]
	if ti == nil {
		return nil
	}
	out := append([]int(nil), ti.literal[res.Name]...)
	out = append(out, ti.wildcard...)
	for _, p := range ti.prefixes {
		if strings.HasPrefix(res.Name, p.prefix) {
			out = append(out, p.rule)
		}
	}
	return out
}

func matchActor(ps []ActorPattern, id spiffeid.ID, valid bool) bool {
	for _, p := range ps {
		if p.Kind == ActorAny {
			return true
		}
		if valid && p.Match(id) {
			return true
		}
	}
	return false
}
