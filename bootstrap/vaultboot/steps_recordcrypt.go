package vaultboot

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/edgeid/edgeid/internal/transitpolicy"
	vaultapi "github.com/hashicorp/vault/api"
)

// recordPolicyMarker starts every policy the bootstrap writes for record
// encryption; a policy without it is never changed or deleted.
const recordPolicyMarker = "# edgeid record encryption:"

// RecordEncryptionSummary describes the record encryption setup.
type RecordEncryptionSummary struct {
	TransitMount  string   `json:"transit_mount"`
	CertAuthMount string   `json:"cert_auth_mount"`
	KeyRings      []string `json:"key_rings"`
	// Roles are the cert auth roles (each with the policy of the same
	// name) the configuration wants.
	Roles []string `json:"roles"`
	// Removed are the roles and policies this run deleted: written by an
	// earlier run for identities no longer in the configuration.
	Removed []string `json:"removed,omitempty"`
}

// renderRecordPolicy is the policy of one identity: vaultkms's producer
// policy for each ring it produces to, its consumer policy for each ring
// it consumes from, its rewrap policy for each ring it re-wraps, and
// nothing else.
func renderRecordPolicy(rc *recordCrypt, role recordRole) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s written by edgeid bootstrap for %s; edit the topology, not this policy.\n", recordPolicyMarker, role.id)
	for _, ring := range role.produce {
		fmt.Fprintf(&b, "\n# Produce to key ring %s: make data keys, not decrypt them.\n%s", ring, transitpolicy.Producer(rc.transitMount, ring))
	}
	for _, ring := range role.consume {
		fmt.Fprintf(&b, "\n# Consume from key ring %s: unwrap data keys.\n%s", ring, transitpolicy.Consumer(rc.transitMount, ring))
	}
	for _, ring := range role.rewrap {
		fmt.Fprintf(&b, "\n# Re-wrap data keys of key ring %s with its newest version: never sees a key.\n%s", ring, transitpolicy.Rewrap(rc.transitMount, ring))
	}
	return b.String()
}

// stepRecordEncryption sets up Transit, cert auth and the identities'
// roles and policies, and removes the grants of identities no longer
// configured. Without a record_encryption block it only removes.
func (r *run) stepRecordEncryption(ctx context.Context) (bool, error) {
	rc := &r.c.rc
	if !rc.on {
		removed, err := r.removeStaleRecordGrants(ctx, nil)
		if len(removed) > 0 {
			r.sum.RecordEncryption = &RecordEncryptionSummary{TransitMount: rc.transitMount, CertAuthMount: rc.certMount, Removed: removed}
		}
		return len(removed) > 0, err
	}
	changed, err := r.ensureMount(ctx, rc.transitMount, "transit", "edgeid record encryption key rings", nil, 0)
	if err != nil {
		return false, err
	}
	for _, ring := range rc.rings {
		made, err := r.ensureRing(ctx, ring)
		if err != nil {
			return false, err
		}
		changed = changed || made
	}
	enabled, err := r.ensureCertAuth(ctx)
	if err != nil {
		return false, err
	}
	changed = changed || enabled
	wanted := make([]string, 0, len(rc.roles))
	for _, role := range rc.roles {
		wrote, err := r.ensureRecordRole(ctx, role)
		if err != nil {
			return false, err
		}
		changed = changed || wrote
		wanted = append(wanted, role.name)
	}
	removed, err := r.removeStaleRecordGrants(ctx, wanted)
	if err != nil {
		return false, err
	}
	r.sum.RecordEncryption = &RecordEncryptionSummary{TransitMount: rc.transitMount, CertAuthMount: rc.certMount,
		KeyRings: slices.Clone(rc.rings), Roles: wanted, Removed: removed}
	return changed || len(removed) > 0, nil
}

// ensureRing creates the Transit key ring unless it exists; one of
// another type is an error (it is never changed or deleted).
func (r *run) ensureRing(ctx context.Context, ring string) (bool, error) {
	path := r.c.rc.transitMount + "/keys/" + ring
	cur, err := r.v.read(ctx, path)
	if err != nil {
		return false, fmt.Errorf("vaultboot: %w", err)
	}
	if cur != nil {
		if t := str(cur, "type"); t != "aes256-gcm96" {
			return false, fmt.Errorf("vaultboot: Transit key %s exists with type %q, want aes256-gcm96", path, t)
		}
		return false, nil
	}
	if _, err := r.v.write(ctx, path, map[string]any{"type": "aes256-gcm96"}); err != nil {
		return false, fmt.Errorf("vaultboot: create Transit key %s: %w", path, err)
	}
	r.log.Info("Created a Transit key ring", "key", path)
	return true, nil
}

// ensureCertAuth enables the cert auth method unless it is there.
func (r *run) ensureCertAuth(ctx context.Context) (bool, error) {
	mount := r.c.rc.certMount
	exists, err := r.authMounted(ctx, mount, "cert")
	if err != nil || exists {
		return false, err
	}
	if err := r.v.c.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &vaultapi.EnableAuthOptions{Type: "cert", Description: "edgeid record encryption: gateways log in with their SVIDs"}); err != nil {
		return false, fmt.Errorf("vaultboot: enable cert auth: %w", err)
	}
	r.log.Info("Enabled cert auth", "mount", mount)
	return true, nil
}

// authMounted reports whether an auth method of type typ is at mount; one
// of another type is an error.
func (r *run) authMounted(ctx context.Context, mount, typ string) (bool, error) {
	auths, err := r.v.c.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("vaultboot: list auth methods: %w", err)
	}
	a, ok := auths[mount+"/"]
	if ok && a.Type != typ {
		return false, fmt.Errorf("vaultboot: auth method %s/ exists with type %q, want %s", mount, a.Type, typ)
	}
	return ok, nil
}

// ensureRecordRole writes the identity's policy, then its cert auth role
// (trusting the root of pki_root, bound to its SPIFFE ID), each unless
// Vault holds it already.
func (r *run) ensureRecordRole(ctx context.Context, role recordRole) (bool, error) {
	rc := &r.c.rc
	want := renderRecordPolicy(rc, role)
	cur, err := r.v.read(ctx, "sys/policies/acl/"+role.name)
	if err != nil {
		return false, fmt.Errorf("vaultboot: %w", err)
	}
	changed := false
	if strings.TrimSpace(str(cur, "policy")) != strings.TrimSpace(want) {
		if cur != nil && !strings.HasPrefix(str(cur, "policy"), recordPolicyMarker) {
			return false, fmt.Errorf("vaultboot: policy %s exists and was not written by edgeid; rename or delete it", role.name)
		}
		if _, err := r.v.write(ctx, "sys/policies/acl/"+role.name, map[string]any{"policy": want}); err != nil {
			return false, fmt.Errorf("vaultboot: write policy %s: %w", role.name, err)
		}
		r.log.Info("Wrote a record encryption policy", "policy", role.name, "produce", role.produce, "consume", role.consume)
		changed = true
	}
	ttl := int64(rc.tokenTTL.Seconds())
	diff, err := r.writeRole(ctx, "auth/"+rc.certMount+"/certs/"+role.name, map[string]any{
		"certificate":             strings.TrimSpace(r.rootIssuer.certPEM) + "\n",
		"allowed_uri_sans":        []string{role.id},
		"token_policies":          []string{role.name},
		"token_no_default_policy": true,
		"token_ttl":               ttl,
		"token_max_ttl":           ttl,
	}, "cert auth role "+role.name)
	if err != nil {
		return false, err
	}
	if diff != "" {
		r.log.Info("Wrote a cert auth role", "role", role.name, "spiffe_id", role.id, "reason", diff)
	}
	return changed || diff != "", nil
}

// ownRecordRole reports whether the cert auth role at path is one the
// bootstrap wrote: its only policy is the policy of its own name, which
// carries the marker. (Vault defaults a role's display_name to its name,
// so that proves nothing.) The bootstrap writes the policy before the role
// and deletes the role before the policy, so its roles always pass.
func (r *run) ownRecordRole(ctx context.Context, path, name string) bool {
	role, err := r.v.read(ctx, path)
	if err != nil || !slices.Equal(stringSlice(role["token_policies"]), []string{name}) {
		return false
	}
	pol, err := r.v.read(ctx, "sys/policies/acl/"+name)
	return err == nil && strings.HasPrefix(str(pol, "policy"), recordPolicyMarker)
}

// removeStaleRecordGrants deletes the cert auth roles and policies this
// bootstrap wrote (the trust domain's prefix; see ownRecordRole, and the
// policy's marker) whose names are not in wanted: identities removed from
// the configuration. It returns their names.
func (r *run) removeStaleRecordGrants(ctx context.Context, wanted []string) ([]string, error) {
	rc := &r.c.rc
	var removed []string
	mounted, err := r.authMounted(ctx, rc.certMount, "cert")
	if err != nil {
		return nil, err
	}
	if mounted {
		roles, _, err := r.v.list(ctx, "auth/"+rc.certMount+"/certs")
		if err != nil {
			return nil, fmt.Errorf("vaultboot: %w", err)
		}
		for _, name := range roles {
			if !strings.HasPrefix(name, rc.prefix) || slices.Contains(wanted, name) {
				continue
			}
			path := "auth/" + rc.certMount + "/certs/" + name
			if !r.ownRecordRole(ctx, path, name) {
				r.log.Warn("A cert auth role with edgeid's prefix was not written by edgeid; leaving it", "role", name)
				continue
			}
			if err := r.v.delete(ctx, path); err != nil {
				return nil, fmt.Errorf("vaultboot: %w", err)
			}
			r.log.Info("Deleted a cert auth role no longer in the configuration", "role", name)
			removed = append(removed, "role "+name)
		}
	}
	policies, err := r.v.c.Sys().ListPoliciesWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("vaultboot: list policies: %w", err)
	}
	for _, name := range policies {
		if !strings.HasPrefix(name, rc.prefix) || slices.Contains(wanted, name) {
			continue
		}
		cur, err := r.v.read(ctx, "sys/policies/acl/"+name)
		if err != nil || !strings.HasPrefix(str(cur, "policy"), recordPolicyMarker) {
			r.log.Warn("A policy with edgeid's prefix was not written by edgeid; leaving it", "policy", name)
			continue
		}
		if err := r.v.delete(ctx, "sys/policies/acl/"+name); err != nil {
			return nil, fmt.Errorf("vaultboot: %w", err)
		}
		r.log.Info("Deleted a record encryption policy no longer in the configuration", "policy", name)
		removed = append(removed, "policy "+name)
	}
	return removed, nil
}
