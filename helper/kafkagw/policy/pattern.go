package policy

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Actor kinds.
const (
	ActorExact       = "exact"
	ActorPathPrefix  = "prefix"
	ActorTrustDomain = "trust_domain"
	ActorAny         = "any"
)

// ActorPattern matches SPIFFE IDs: exactly ("spiffe://td/path"), by path
// prefix on a "/" boundary ("spiffe://td/path/*" matches
// spiffe://td/path/x but not spiffe://td/pathx nor spiffe://td/path), by
// trust domain ("spiffe://td" or "spiffe://td/*"), or any authenticated
// actor ("*").
type ActorPattern struct {
	Kind string
	// TrustDomain is set for every kind but ActorAny.
	TrustDomain string
	// Value is the full ID for ActorExact, the path prefix with a trailing
	// "/" for ActorPathPrefix.
	Value string
	raw   string
}

// ParseActor parses one actors entry.
func ParseActor(s string) (ActorPattern, error) {
	if s == "*" {
		return ActorPattern{Kind: ActorAny, raw: s}, nil
	}
	base, wildcard := strings.CutSuffix(s, "/*")
	if id, err := spiffeid.FromString(base); err == nil && id.Path() != "" {
		p := ActorPattern{TrustDomain: id.TrustDomain().Name(), raw: s}
		if wildcard {
			p.Kind, p.Value = ActorPathPrefix, id.Path()+"/"
		} else {
			p.Kind, p.Value = ActorExact, id.String()
		}
		return p, nil
	}
	if !strings.HasPrefix(base, "spiffe://") {
		return ActorPattern{}, fmt.Errorf("%q is not \"*\", a SPIFFE ID, \"spiffe://td/prefix/*\" or \"spiffe://td\"", s)
	}
	td, err := spiffeid.TrustDomainFromString(base)
	if err != nil {
		return ActorPattern{}, fmt.Errorf("%q: %v", s, err)
	}
	return ActorPattern{Kind: ActorTrustDomain, TrustDomain: td.Name(), raw: s}, nil
}

func (p ActorPattern) String() string { return p.raw }

// Match reports whether the actor id (a SPIFFE ID string) matches.
func (p ActorPattern) Match(id spiffeid.ID) bool {
	switch p.Kind {
	case ActorAny:
		return true
	case ActorExact:
		return id.String() == p.Value
	}
	if id.TrustDomain().Name() != p.TrustDomain {
		return false
	}
	if p.Kind == ActorTrustDomain {
		return true
	}
	return strings.HasPrefix(id.Path(), p.Value)
}

// Pattern types of a resource pattern, as Kafka names them.
const (
	PatternLiteral  = "LITERAL"
	PatternPrefixed = "PREFIXED"
)

// ResourcePattern matches resources of one type: a literal name, a
// prefix ("topic:site-a.*") or every name ("topic:*", Kafka's literal
// wildcard).
type ResourcePattern struct {
	Type ResourceType
	// Name is the literal name, the prefix, or "*".
	Name        string
	PatternType string
}

var typeByName = map[string]ResourceType{
	"topic": Topic, "group": Group, "transactional_id": TransactionalID,
}

// ParseResource parses one resources entry: "cluster", or "<type>:<name>"
// where type is topic, group or transactional_id and a name ending in "*"
// is a prefix ("*" alone: every name).
func ParseResource(s string) (ResourcePattern, error) {
	if s == "cluster" || s == "cluster:"+ClusterName {
		return ResourcePattern{Type: Cluster, Name: ClusterName, PatternType: PatternLiteral}, nil
	}
	typ, name, ok := strings.Cut(s, ":")
	rt, known := typeByName[typ]
	if !ok || !known {
		return ResourcePattern{}, fmt.Errorf("%q is not \"cluster\" or \"topic:NAME\", \"group:NAME\", \"transactional_id:NAME\"", s)
	}
	if name == "" {
		return ResourcePattern{}, fmt.Errorf("%q has an empty name", s)
	}
	if name == "*" {
		return ResourcePattern{Type: rt, Name: "*", PatternType: PatternLiteral}, nil
	}
	if prefix, ok := strings.CutSuffix(name, "*"); ok {
		if strings.Contains(prefix, "*") {
			return ResourcePattern{}, fmt.Errorf("%q: \"*\" is allowed only at the end", s)
		}
		return ResourcePattern{Type: rt, Name: prefix, PatternType: PatternPrefixed}, nil
	}
	if strings.Contains(name, "*") {
		return ResourcePattern{}, fmt.Errorf("%q: \"*\" is allowed only at the end", s)
	}
	return ResourcePattern{Type: rt, Name: name, PatternType: PatternLiteral}, nil
}

func (p ResourcePattern) String() string {
	if p.Type == Cluster {
		return "cluster"
	}
	if p.PatternType == PatternPrefixed {
		return p.Type.String() + ":" + p.Name + "*"
	}
	return p.Type.String() + ":" + p.Name
}
