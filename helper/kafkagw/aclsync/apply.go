package aclsync

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Apply creates and deletes what the plan says, deletions first, and
// reports every ACL the cluster refused.
func Apply(ctx context.Context, adm Admin, p *Plan) error {
	var errs []error
	for _, a := range p.Delete {
		if err := deleteOne(ctx, adm, a); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", a, err))
		}
	}
	for _, a := range p.Create {
		if err := createOne(ctx, adm, a); err != nil {
			errs = append(errs, fmt.Errorf("create %s: %w", a, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("aclsync: %w", errors.Join(errs...))
	}
	return nil
}

// builder describes exactly ACL a: its principal and host, one resource,
// one operation and its pattern type.
func builder(a policy.ACL) (*kadm.ACLBuilder, error) {
	b := kadm.NewACLs().Operations(kmsg.ACLOperation(a.Operation))
	switch a.PatternType {
	case policy.PatternLiteral:
		b.ResourcePatternType(kadm.ACLPatternLiteral)
	case policy.PatternPrefixed:
		b.ResourcePatternType(kadm.ACLPatternPrefixed)
	default:
		return nil, fmt.Errorf("pattern type %q", a.PatternType)
	}
	switch a.ResourceType {
	case policy.Topic:
		b.Topics(a.ResourceName)
	case policy.Group:
		b.Groups(a.ResourceName)
	case policy.Cluster:
		b.Clusters()
	case policy.TransactionalID:
		b.TransactionalIDs(a.ResourceName)
	default:
		return nil, fmt.Errorf("resource type %s", a.ResourceType)
	}
	switch a.Permission {
	case policy.PermissionAllow:
		b.Allow(a.Principal).AllowHosts(a.Host)
	case policy.PermissionDeny:
		b.Deny(a.Principal).DenyHosts(a.Host)
	default:
		return nil, fmt.Errorf("permission %q", a.Permission)
	}
	return b, nil
}

func createOne(ctx context.Context, adm Admin, a policy.ACL) error {
	b, err := builder(a)
	if err != nil {
		return err
	}
	res, err := adm.CreateACLs(ctx, b)
	if err != nil {
		return err
	}
	if len(res) != 1 {
		return fmt.Errorf("%d results for one creation", len(res))
	}
	if res[0].Err != nil {
		return fmt.Errorf("%w %s", res[0].Err, res[0].ErrMessage)
	}
	return nil
}

// deleteOne deletes with a filter that matches a alone: every field is
// given, and the pattern type is literal or prefixed, never "match".
func deleteOne(ctx context.Context, adm Admin, a policy.ACL) error {
	b, err := builder(a)
	if err != nil {
		return err
	}
	res, err := adm.DeleteACLs(ctx, b)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("%w %s", r.Err, r.ErrMessage)
		}
		for _, d := range r.Deleted {
			if d.Err != nil {
				return fmt.Errorf("%w %s", d.Err, d.ErrMessage)
			}
		}
	}
	return nil
}
