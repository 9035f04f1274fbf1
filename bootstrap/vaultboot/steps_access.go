package vaultboot

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgeid/edgeid/internal/fsutil"
)

// policyTemplate is the SPIRE server's policy: exactly the calls the
// vault_pki UpstreamAuthority makes, nothing else.
var policyTemplate = template.Must(template.New("policy").Parse(`# {{.Name}}: written by edgeid bootstrap. The SPIRE server's vault_pki
# UpstreamAuthority logs in with AppRole and may only do the following.

# Sign the SPIRE server's CA with the intermediate.
path "{{.Int}}/root/sign-intermediate" {
  capabilities = ["update"]
}

# List the intermediate mount's issuers and read each one's certificate and
# CA chain (issuer/<ref>/json), to build the upstream bundle and watch for a
# new root.
path "{{.Int}}/issuers" {
  capabilities = ["list"]
}
path "{{.Int}}/issuer/+/json" {
  capabilities = ["read"]
}

# Publish the JWT authorities of {{if .TD}}trust domain {{.TD}} only{{else}}each trust domain (set trust_domain to limit this to one){{end}} (KV v2).
path "{{.KV}}/data/edgeid/{{.TDPath}}/jwt-authorities" {
  capabilities = ["create", "update", "read"]
}
path "{{.KV}}/metadata/edgeid/{{.TDPath}}/jwt-authorities" {
  capabilities = ["read"]
}

# Replace its own secret_id before it expires (vault_pki rotate_secret_id):
# make a new one for this role only, response-wrapped (never in a plain
# answer), with no parameter but metadata; look up and destroy its own.
path "auth/{{.AppRole}}/role/{{.Role}}/secret-id" {
  capabilities       = ["update"]
  min_wrapping_ttl   = "1s"
  max_wrapping_ttl   = "5m"
  allowed_parameters = {
    "metadata" = []
  }
}
path "auth/{{.AppRole}}/role/{{.Role}}/secret-id/lookup" {
  capabilities = ["update"]
}
path "auth/{{.AppRole}}/role/{{.Role}}/secret-id/destroy" {
  capabilities = ["update"]
}

# Look up and renew its own token, and check its own capabilities at start.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "sys/capabilities-self" {
  capabilities = ["update"]
}
`))

// renderPolicy returns the policy text for the configuration.
func renderPolicy(c *configuration) string {
	var b strings.Builder
	tdPath := c.trustDomain
	if tdPath == "" {
		tdPath = "+"
	}
	policyTemplate.Execute(&b, map[string]string{"Name": c.policyName, "Int": c.int.path, "Root": c.root.path, "KV": c.kvMount, "TD": c.trustDomain, "TDPath": tdPath, "AppRole": c.approleMount, "Role": c.roleName})
	return b.String()
}

// PolicyText returns the policy the bootstrap writes for a configuration,
// for documentation and review.
func PolicyText(cfg *Config) (string, error) {
	c, err := buildConfig(cfg)
	if err != nil {
		return "", err
	}
	return renderPolicy(c), nil
}

// stepPolicy enables the KV v2 mount and writes the SPIRE server's policy.
func (r *run) stepPolicy(ctx context.Context) (bool, error) {
	changed, err := r.ensureMount(ctx, r.c.kvMount, "kv", "edgeid key/value store (KV v2)", map[string]string{"version": "2"}, 0)
	if err != nil {
		return false, err
	}
	want := renderPolicy(r.c)
	path := "sys/policies/acl/" + r.c.policyName
	cur, err := r.v.read(ctx, path)
	if err != nil {
		return false, fmt.Errorf("vaultboot: %w", err)
	}
	if strings.TrimSpace(str(cur, "policy")) != strings.TrimSpace(want) {
		if _, err := r.v.write(ctx, path, map[string]any{"policy": want}); err != nil {
			return false, fmt.Errorf("vaultboot: write policy %s: %w", r.c.policyName, err)
		}
		r.log.Info("Wrote the policy", "policy", r.c.policyName)
		changed = true
	} else {
		r.log.Info("The policy is up to date", "policy", r.c.policyName)
	}
	tdPath := r.c.trustDomain
	if tdPath == "" {
		tdPath = "+"
		r.log.Warn("No trust_domain in the configuration: the policy lets the SPIRE server publish JWT authorities for every trust domain, and the intermediate has no URI name constraint")
	}
	r.sum.Policy = PolicySummary{Name: r.c.policyName, KVMount: r.c.kvMount, KVPath: r.c.kvMount + "/data/edgeid/" + tdPath + "/jwt-authorities"}
	return changed, nil
}

// stepAppRole enables AppRole, writes the role and the login files.
func (r *run) stepAppRole(ctx context.Context) (bool, error) {
	enabled, err := r.ensureAppRoleMount(ctx)
	if err != nil {
		return false, err
	}
	rolePath := "auth/" + r.c.approleMount + "/role/" + r.c.roleName
	r.warnLegacyRole(ctx)
	wroteRole, err := r.ensureRole(ctx, rolePath)
	if err != nil {
		return false, err
	}
	wroteRoleID, err := r.writeRoleID(ctx, rolePath)
	if err != nil {
		return false, err
	}
	changed := enabled || wroteRole || wroteRoleID

	// secret_ids: one per cloud server (secret_id_file, then each of
	// peer_secret_id_files), each delivered response-wrapped.
	files := append([]string{r.c.secretIDFile}, r.c.peerSecretIDFiles...)
	for _, f := range files {
		wrote, err := r.ensureSecretID(ctx, rolePath, f)
		if err != nil {
			return false, err
		}
		changed = changed || wrote
	}
	if r.c.rotateSecretID {
		// Asked to rotate: the fresh secret_ids just written are the only
		// ones left, including every one the servers made for themselves.
		if err := r.destroySecretIDs(ctx, rolePath, func(meta map[string]any) bool { return meta["generation"] != r.generation }); err != nil {
			return false, err
		}
	}
	r.sum.AppRole = AppRoleSummary{
		Mount:             r.c.approleMount,
		Role:              r.c.roleName,
		RoleIDFile:        r.c.roleIDFile,
		SecretIDFile:      r.c.secretIDFile,
		TokenTTL:          r.c.tokenTTL.String(),
		TokenMaxTTL:       r.c.tokenMaxTTL.String(),
		PeerSecretIDFiles: r.c.peerSecretIDFiles,
		SecretIDTTL:       r.c.secretIDTTL.String(),
		SecretIDWrapped:   r.c.wrapSecretID,
	}
	return changed, nil
}

// ensureAppRoleMount enables the AppRole auth method unless it is there.
func (r *run) ensureAppRoleMount(ctx context.Context) (bool, error) {
	auths, err := r.v.c.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("vaultboot: list auth methods: %w", err)
	}
	if a, ok := auths[r.c.approleMount+"/"]; ok {
		if a.Type != "approle" {
			return false, fmt.Errorf("vaultboot: auth method %s/ exists with type %q, want approle", r.c.approleMount, a.Type)
		}
		return false, nil
	}
	if err := r.v.c.Sys().EnableAuthWithOptionsWithContext(ctx, r.c.approleMount, &vaultapi.EnableAuthOptions{Type: "approle", Description: "edgeid SPIRE server login"}); err != nil {
		return false, fmt.Errorf("vaultboot: enable approle: %w", err)
	}
	r.log.Info("Enabled AppRole", "mount", r.c.approleMount)
	return true, nil
}

// warnLegacyRole warns about a role left by a bootstrap from before names
// carried the trust domain.
func (r *run) warnLegacyRole(ctx context.Context) {
	if legacy := DefaultRoleName(""); r.c.trustDomain != "" && r.c.roleName != legacy {
		// A Vault bootstrapped before names carried the trust domain keeps
		// the old role, whose secret_ids still log in. The bootstrap does
		// not delete it (a running server may still use it); say so.
		if old, err := r.v.read(ctx, "auth/"+r.c.approleMount+"/role/"+legacy); err == nil && old != nil {
			r.log.Warn("An AppRole role with the name used before per-trust-domain names exists; its secret_ids still log in with its policy. Delete it (and its policy) once no SPIRE server uses it", "role", legacy, "policies", stringSlice(old["token_policies"]), "new_role", r.c.roleName)
		}
	}
}

// ensureRole writes the role unless Vault holds it as configured.
func (r *run) ensureRole(ctx context.Context, rolePath string) (bool, error) {
	cidrs := r.c.boundCIDRs
	if cidrs == nil {
		cidrs = []string{}
	}
	want := map[string]any{
		"token_policies":          []string{r.c.policyName},
		"token_ttl":               int64(r.c.tokenTTL.Seconds()),
		"token_max_ttl":           int64(r.c.tokenMaxTTL.Seconds()),
		"token_no_default_policy": true,
		"token_type":              "service",
		"token_num_uses":          int64(0),
		"token_bound_cidrs":       cidrs,
		"secret_id_bound_cidrs":   cidrs,
		"secret_id_ttl":           int64(r.c.secretIDTTL.Seconds()),
		"secret_id_num_uses":      int64(0),
		"bind_secret_id":          true,
	}
	diff, err := r.writeRole(ctx, rolePath, want, "role "+r.c.roleName)
	if err != nil || diff == "" {
		return false, err
	}
	r.log.Info("Wrote the AppRole role", "role", r.c.roleName, "reason", diff, "token_ttl", r.c.tokenTTL, "token_max_ttl", r.c.tokenMaxTTL)
	return true, nil
}

// writeRole writes want to the role at rolePath unless Vault holds it
// already, and says what differed ("" for nothing). what names the role in
// errors.
func (r *run) writeRole(ctx context.Context, rolePath string, want map[string]any, what string) (string, error) {
	cur, err := r.v.read(ctx, rolePath)
	if err != nil {
		return "", fmt.Errorf("vaultboot: %w", err)
	}
	diff := roleDiff(cur, want)
	if diff == "" {
		return "", nil
	}
	if _, err := r.v.write(ctx, rolePath, want); err != nil {
		return "", fmt.Errorf("vaultboot: write %s: %w", what, err)
	}
	return diff, nil
}

// writeRoleID writes the role's role_id to role_id_file unless it holds it.
func (r *run) writeRoleID(ctx context.Context, rolePath string) (bool, error) {
	data, err := r.v.read(ctx, rolePath+"/role-id")
	if err != nil {
		return false, fmt.Errorf("vaultboot: %w", err)
	}
	roleID := str(data, "role_id")
	if roleID == "" {
		return false, fmt.Errorf("vaultboot: role %s has no role_id", r.c.roleName)
	}
	if err := fsutil.MkdirAllMode(filepath.Dir(r.c.roleIDFile), 0o700); err != nil {
		return false, fmt.Errorf("vaultboot: spire_upstream.role_id_file: %w", err)
	}
	wrote, err := fsutil.WriteIfChanged(r.c.roleIDFile, []byte(roleID+"\n"), 0o600)
	if err != nil {
		return false, fmt.Errorf("vaultboot: spire_upstream.role_id_file: %w", err)
	}
	if wrote {
		r.log.Info("Wrote the role_id file", "file", r.c.roleIDFile)
	}
	return wrote, nil
}

// ensureSecretID makes sure file holds a usable secret_id of the role, or
// a live wrapping token of one. It keeps:
//   - a secret_id that Vault still knows (the cloud server may have
//     replaced the bootstrap's with one it made itself: rotation);
//   - a wrapping token that is still valid (not yet delivered);
//   - a wrapping token that is no longer valid: it was unwrapped (by the
//     cloud server it was copied to, whose secret_id is its own from then
//     on) or it expired undelivered. The two cannot be told apart, and a
//     new one would be as undeliverable as the last, so the run says so
//     and leaves it; rotate_secret_id = true issues new ones.
//
// Otherwise (missing, expired or destroyed secret_id, or rotate_secret_id)
// it writes a new one, and destroys the secret_ids the bootstrap made
// earlier for the same file (an interrupted run's, the replaced one).
func (r *run) ensureSecretID(ctx context.Context, rolePath, file string) (bool, error) {
	if !r.c.rotateSecretID {
		if old, err := os.ReadFile(file); err == nil {
			if v := strings.TrimSpace(string(old)); v != "" {
				if isWrappingToken(v) {
					s, err := r.v.c.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": v})
					if err == nil && s != nil && s.Data != nil {
						r.log.Info("The secret_id file holds a wrapping token not yet unwrapped", "file", file, "creation_path", str(s.Data, "creation_path"))
					} else {
						r.log.Warn("The secret_id file holds a wrapping token that was unwrapped or expired; leaving it (its cloud server holds the secret_id now). If it was never delivered, run again with rotate_secret_id = true", "file", file)
					}
					return false, nil
				}
				s, err := r.v.write(ctx, rolePath+"/secret-id/lookup", map[string]any{"secret_id": v})
				if err == nil && s != nil && s.Data != nil {
					r.log.Info("The secret_id file holds a valid secret_id", "file", file, "accessor", str(s.Data, "secret_id_accessor"))
					return false, nil
				}
			}
		}
	}
	meta, err := json.Marshal(map[string]string{"created_by": "edgeid-bootstrap", "file": file, "generation": r.generation})
	if err != nil {
		return false, err
	}
	var content, acc string
	if r.c.wrapSecretID {
		s, err := r.v.writeWrapped(ctx, rolePath+"/secret-id", map[string]any{"metadata": string(meta)}, r.c.secretIDWrapTTL)
		if err != nil {
			return false, fmt.Errorf("vaultboot: generate a wrapped secret_id: %w", err)
		}
		if s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" {
			return false, fmt.Errorf("vaultboot: generate a wrapped secret_id: the answer is not wrapped")
		}
		content = s.WrapInfo.Token
	} else {
		s, err := r.v.write(ctx, rolePath+"/secret-id", map[string]any{"metadata": string(meta)})
		if err != nil {
			return false, fmt.Errorf("vaultboot: generate a secret_id: %w", err)
		}
		if s == nil || str(s.Data, "secret_id") == "" {
			return false, fmt.Errorf("vaultboot: generate a secret_id: empty answer")
		}
		content, acc = str(s.Data, "secret_id"), str(s.Data, "secret_id_accessor")
	}
	r.b.afterStep(CheckpointSecretIDGenerated)
	if err := fsutil.MkdirAllMode(filepath.Dir(file), 0o700); err != nil {
		return false, fmt.Errorf("vaultboot: secret_id file: %w", err)
	}
	if err := fsutil.WriteFileAtomic(file, []byte(content+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("vaultboot: secret_id file: %w", err)
	}
	if r.c.wrapSecretID {
		r.log.Info("Wrote a fresh secret_id, response-wrapped: the cloud server unwraps it once; copy the file to it before the wrapping TTL ends", "file", file, "wrap_ttl", r.c.secretIDWrapTTL, "secret_id_ttl", r.c.secretIDTTL)
	} else {
		r.log.Info("Wrote a fresh secret_id", "file", file, "accessor", acc, "secret_id_ttl", r.c.secretIDTTL)
	}
	// The bootstrap's earlier secret_ids for this file: replaced ones, and
	// ones an interrupted run generated but never stored.
	if err := r.destroySecretIDs(ctx, rolePath, func(m map[string]any) bool {
		return m["created_by"] == "edgeid-bootstrap" && m["file"] == file && m["generation"] != r.generation
	}); err != nil {
		return false, err
	}
	return true, nil
}

// destroySecretIDs destroys the role's secret_ids whose metadata match.
func (r *run) destroySecretIDs(ctx context.Context, rolePath string, match func(map[string]any) bool) error {
	accs, _, err := r.v.list(ctx, rolePath+"/secret-id")
	if err != nil {
		return fmt.Errorf("vaultboot: %w", err)
	}
	for _, a := range accs {
		s, err := r.v.write(ctx, rolePath+"/secret-id-accessor/lookup", map[string]any{"secret_id_accessor": a})
		if err != nil || s == nil {
			continue // gone meanwhile
		}
		meta, _ := s.Data["metadata"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
		}
		if !match(meta) {
			continue
		}
		if _, err := r.v.write(ctx, rolePath+"/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": a}); err != nil {
			return fmt.Errorf("vaultboot: destroy an old secret_id: %w", err)
		}
		r.log.Info("Destroyed an older secret_id", "accessor", a, "created_by", meta["created_by"])
	}
	return nil
}

// isWrappingToken reports whether a secret_id file holds a Vault token (a
// wrapping token) rather than a secret_id (a UUID).
func isWrappingToken(v string) bool {
	return strings.HasPrefix(v, "hvs.") || strings.HasPrefix(v, "s.")
}

// roleDiff names the first field of the role that differs from want, or
// returns "" when the role matches.
func roleDiff(cur, want map[string]any) string {
	if cur == nil {
		return "role missing"
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch w := want[k].(type) {
		case []string:
			if !slices.Equal(stringSlice(cur[k]), w) && !(len(w) == 0 && len(stringSlice(cur[k])) == 0) {
				return k
			}
		case int64:
			if num(cur, k) != w {
				return k
			}
		case bool:
			if boolean(cur, k) != w {
				return k
			}
		case string:
			if str(cur, k) != w {
				return k
			}
		}
	}
	return ""
}

// stepAudit enables the file audit device.
func (r *run) stepAudit(ctx context.Context) (bool, error) {
	r.sum.Audit = AuditSummary{Enabled: r.c.auditEnabled, Path: r.c.auditPath, FilePath: r.c.auditFile}
	if !r.c.auditEnabled {
		r.log.Warn("Audit device disabled in the configuration (audit.enabled = false)")
		return false, nil
	}
	devices, err := r.v.c.Sys().ListAuditWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("vaultboot: list audit devices: %w", err)
	}
	if d, ok := devices[r.c.auditPath+"/"]; ok {
		if d.Type != "file" || d.Options["file_path"] != r.c.auditFile {
			r.log.Warn("An audit device with other settings exists at the path; leaving it as it is", "path", r.c.auditPath, "type", d.Type, "file_path", d.Options["file_path"])
			r.sum.Audit.FilePath = d.Options["file_path"]
			return false, nil
		}
		r.log.Info("The audit device is enabled", "path", r.c.auditPath, "file_path", r.c.auditFile)
		return false, nil
	}
	if err := r.v.c.Sys().EnableAuditWithOptionsWithContext(ctx, r.c.auditPath, &vaultapi.EnableAuditOptions{
		Type:        "file",
		Description: "edgeid: every request and response",
		Options:     map[string]string{"file_path": r.c.auditFile},
	}); err != nil {
		return false, fmt.Errorf("vaultboot: enable the file audit device (%s on the Vault server): %w", r.c.auditFile, err)
	}
	r.log.Info("Enabled the file audit device", "path", r.c.auditPath, "file_path", r.c.auditFile)
	return true, nil
}
