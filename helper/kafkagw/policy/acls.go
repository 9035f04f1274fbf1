package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Permission types of an ACL.
const (
	PermissionAllow = "ALLOW"
	PermissionDeny  = "DENY"
)

// ACL is one Kafka ACL binding a policy implies, with the SPIFFE ID as a
// "User:" principal (for clusters with a SPIFFE principal builder).
type ACL struct {
	Principal    string
	Host         string
	ResourceType ResourceType
	ResourceName string
	PatternType  string
	Operation    Operation
	Permission   string
}

func (a ACL) String() string {
	return fmt.Sprintf("%s %s %s on %s:%s (%s) from %s", a.Permission, a.Principal, a.Operation, a.ResourceType, a.ResourceName, a.PatternType, a.Host)
}

// ACLs lists the Kafka ACLs the policy implies, sorted and without
// duplicates. Kafka principals are literal, so rules whose actors are path
// prefixes or trust domains cannot be expressed; each such actor is
// reported in skipped. "*" becomes "User:*". allow_if_no_acl has no ACL
// form: it is the broker's allow.everyone.if.no.acl.found.
func (s *Set) ACLs() (acls []ACL, skipped []string) {
	seen := map[ACL]bool{}
	for _, r := range s.rules {
		perm := PermissionAllow
		if r.Deny {
			perm = PermissionDeny
		}
		for _, a := range r.Actors {
			var principal string
			switch a.Kind {
			case ActorAny:
				principal = "User:*"
			case ActorExact:
				principal = "User:" + a.Value
			default:
				skipped = append(skipped, fmt.Sprintf("rule %q: actor %q is a pattern; Kafka ACL principals are literal", r.Name, a.String()))
				continue
			}
			for _, res := range r.Resources {
				for _, op := range r.Operations {
					acl := ACL{Principal: principal, Host: "*", ResourceType: res.Type, ResourceName: res.Name,
						PatternType: res.PatternType, Operation: op, Permission: perm}
					if !seen[acl] {
						seen[acl] = true
						acls = append(acls, acl)
					}
				}
			}
		}
	}
	slices.SortFunc(acls, func(a, b ACL) int { return strings.Compare(a.String(), b.String()) })
	return acls, skipped
}
