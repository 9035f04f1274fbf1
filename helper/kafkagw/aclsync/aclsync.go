package aclsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Admin is the part of kadm.Client the sync uses.
type Admin interface {
	DescribeACLs(ctx context.Context, b *kadm.ACLBuilder) (kadm.DescribeACLsResults, error)
	CreateACLs(ctx context.Context, b *kadm.ACLBuilder) (kadm.CreateACLsResults, error)
	DeleteACLs(ctx context.Context, b *kadm.ACLBuilder) (kadm.DeleteACLsResults, error)
}

var _ Admin = (*kadm.Client)(nil)

// Plan is what an apply does: the difference between the ACLs a policy
// implies and the ones a cluster holds.
type Plan struct {
	// TrustDomain is the trust domain whose principals are managed.
	TrustDomain string
	// Create are implied by the policy and missing from the cluster.
	Create []policy.ACL
	// Delete are managed ACLs on the cluster the policy no longer implies.
	Delete []policy.ACL
	// Unchanged are implied and present.
	Unchanged []policy.ACL
	// Skipped are policy actors no ACL can express, one line each.
	Skipped []string
	// Unmanaged counts the cluster's ACLs outside the managed principals
	// that the policy does not imply; they are left alone.
	Unmanaged int
}

// Empty reports whether applying the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Create) == 0 && len(p.Delete) == 0 }

// ManagedPrefix is the principal prefix of trust domain td's ACLs.
func ManagedPrefix(td string) string { return "User:spiffe://" + td + "/" }

// TrustDomain returns the one trust domain the policy's actors name; a
// policy naming none or several needs it given explicitly.
func TrustDomain(set *policy.Set) (string, error) {
	var tds []string
	for _, r := range set.Rules() {
		for _, a := range r.Actors {
			if a.TrustDomain != "" && !slices.Contains(tds, a.TrustDomain) {
				tds = append(tds, a.TrustDomain)
			}
		}
	}
	switch len(tds) {
	case 1:
		return tds[0], nil
	case 0:
		return "", errors.New("aclsync: the policy names no trust domain; give one")
	default:
		slices.Sort(tds)
		return "", fmt.Errorf("aclsync: the policy names several trust domains (%s); give the one to manage", strings.Join(tds, ", "))
	}
}

// Compute plans the sync of set's ACLs onto a cluster holding have,
// managing the principals of trust domain td.
func Compute(set *policy.Set, td string, have []policy.ACL) *Plan {
	want, skipped := set.ACLs()
	p := &Plan{TrustDomain: td, Skipped: skipped}
	wanted := make(map[policy.ACL]bool, len(want))
	for _, a := range want {
		wanted[a] = true
	}
	present := make(map[policy.ACL]bool, len(have))
	prefix := ManagedPrefix(td)
	for _, a := range have {
		if present[a] {
			continue
		}
		present[a] = true
		switch {
		case wanted[a]:
			p.Unchanged = append(p.Unchanged, a)
		case strings.HasPrefix(a.Principal, prefix):
			p.Delete = append(p.Delete, a)
		default:
			p.Unmanaged++
		}
	}
	for _, a := range want {
		if !present[a] {
			p.Create = append(p.Create, a)
		}
	}
	for _, l := range [][]policy.ACL{p.Create, p.Delete, p.Unchanged} {
		slices.SortFunc(l, compareACL)
	}
	return p
}

func compareACL(a, b policy.ACL) int { return strings.Compare(a.String(), b.String()) }

// Write prints the plan as a diff: "+" to create, "-" to delete, "="
// unchanged, then the skipped actors and a summary line.
func (p *Plan) Write(w io.Writer) {
	for _, a := range p.Create {
		fmt.Fprintf(w, "+ %s\n", a)
	}
	for _, a := range p.Delete {
		fmt.Fprintf(w, "- %s\n", a)
	}
	for _, a := range p.Unchanged {
		fmt.Fprintf(w, "= %s\n", a)
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(w, "! not expressible as an ACL: %s\n", s)
	}
	fmt.Fprintf(w, "%d to create, %d to delete, %d unchanged, %d skipped actor(s); %d other ACL(s) outside %s* left alone\n",
		len(p.Create), len(p.Delete), len(p.Unchanged), len(p.Skipped), p.Unmanaged, ManagedPrefix(p.TrustDomain))
}

// Fetch lists every ACL the cluster holds.
func Fetch(ctx context.Context, adm Admin) ([]policy.ACL, error) {
	b := kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).
		Allow().Deny().AllowHosts().DenyHosts().Operations()
	res, err := adm.DescribeACLs(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("aclsync: describe ACLs: %w", err)
	}
	var out []policy.ACL
	for _, r := range res {
		if r.Err != nil {
			return nil, fmt.Errorf("aclsync: describe ACLs: %w %s", r.Err, r.ErrMessage)
		}
		for _, d := range r.Described {
			out = append(out, policy.ACL{
				Principal: d.Principal, Host: d.Host,
				ResourceType: policy.ResourceType(d.Type), ResourceName: d.Name,
				PatternType: d.Pattern.String(), Operation: policy.Operation(d.Operation),
				Permission: permissionName(d.Permission),
			})
		}
	}
	return out, nil
}

func permissionName(p kmsg.ACLPermissionType) string {
	switch p {
	case kmsg.ACLPermissionTypeAllow:
		return policy.PermissionAllow
	case kmsg.ACLPermissionTypeDeny:
		return policy.PermissionDeny
	}
	return p.String()
}
