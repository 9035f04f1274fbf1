package vaultboot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgeid/edgeid/bootstrap/internal/atomicfile"
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

# Publish the JWT authorities for each trust domain (KV v2).
path "{{.KV}}/data/edgeid/+/jwt-authorities" {
  capabilities = ["create", "update", "read"]
}
path "{{.KV}}/metadata/edgeid/+/jwt-authorities" {
  capabilities = ["read"]
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
	policyTemplate.Execute(&b, map[string]string{"Name": c.policyName, "Int": c.int.path, "Root": c.root.path, "KV": c.kvMount})
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
	r.sum.Policy = PolicySummary{Name: r.c.policyName, KVMount: r.c.kvMount, KVPath: r.c.kvMount + "/data/edgeid/+/jwt-authorities"}
	return changed, nil
}

// stepAppRole enables AppRole, writes the role and the login files.
func (r *run) stepAppRole(ctx context.Context) (bool, error) {
	changed := false
	auths, err := r.v.c.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("vaultboot: list auth methods: %w", err)
	}
	if a, ok := auths[r.c.approleMount+"/"]; ok {
		if a.Type != "approle" {
			return false, fmt.Errorf("vaultboot: auth method %s/ exists with type %q, want approle", r.c.approleMount, a.Type)
		}
	} else {
		if err := r.v.c.Sys().EnableAuthWithOptionsWithContext(ctx, r.c.approleMount, &vaultapi.EnableAuthOptions{Type: "approle", Description: "edgeid SPIRE server login"}); err != nil {
			return false, fmt.Errorf("vaultboot: enable approle: %w", err)
		}
		r.log.Info("Enabled AppRole", "mount", r.c.approleMount)
		changed = true
	}

	rolePath := "auth/" + r.c.approleMount + "/role/" + r.c.roleName
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
	cur, err := r.v.read(ctx, rolePath)
	if err != nil {
		return false, fmt.Errorf("vaultboot: %w", err)
	}
	if diff := roleDiff(cur, want); diff != "" {
		if _, err := r.v.write(ctx, rolePath, want); err != nil {
			return false, fmt.Errorf("vaultboot: write role %s: %w", r.c.roleName, err)
		}
		r.log.Info("Wrote the AppRole role", "role", r.c.roleName, "reason", diff, "token_ttl", r.c.tokenTTL, "token_max_ttl", r.c.tokenMaxTTL)
		changed = true
	}

	// role_id
	data, err := r.v.read(ctx, rolePath+"/role-id")
	if err != nil {
		return false, fmt.Errorf("vaultboot: %w", err)
	}
	roleID := str(data, "role_id")
	if roleID == "" {
		return false, fmt.Errorf("vaultboot: role %s has no role_id", r.c.roleName)
	}
	if err := atomicfile.MkdirAll(filepath.Dir(r.c.roleIDFile), 0o700); err != nil {
		return false, fmt.Errorf("vaultboot: spire_upstream.role_id_file: %w", err)
	}
	wrote, err := atomicfile.WriteIfChanged(r.c.roleIDFile, []byte(roleID+"\n"), 0o600)
	if err != nil {
		return false, fmt.Errorf("vaultboot: spire_upstream.role_id_file: %w", err)
	}
	if wrote {
		r.log.Info("Wrote the role_id file", "file", r.c.roleIDFile)
		changed = true
	}

	// secret_id: keep a working one unless rotation is asked for.
	keep := false
	if old, err := os.ReadFile(r.c.secretIDFile); err == nil && !r.c.rotateSecretID {
		if sid := strings.TrimSpace(string(old)); sid != "" {
			s, err := r.v.write(ctx, rolePath+"/secret-id/lookup", map[string]any{"secret_id": sid})
			keep = err == nil && s != nil && s.Data != nil
		}
	}
	if keep {
		r.log.Info("The secret_id file holds a valid secret_id", "file", r.c.secretIDFile)
	} else {
		s, err := r.v.write(ctx, rolePath+"/secret-id", map[string]any{"metadata": `{"created_by":"edgeid-bootstrap"}`})
		if err != nil {
			return false, fmt.Errorf("vaultboot: generate a secret_id: %w", err)
		}
		sid, acc := str(s.Data, "secret_id"), str(s.Data, "secret_id_accessor")
		if sid == "" {
			return false, fmt.Errorf("vaultboot: generate a secret_id: empty answer")
		}
		r.b.afterStep(CheckpointSecretIDGenerated)
		if err := atomicfile.MkdirAll(filepath.Dir(r.c.secretIDFile), 0o700); err != nil {
			return false, fmt.Errorf("vaultboot: spire_upstream.secret_id_file: %w", err)
		}
		if err := atomicfile.Write(r.c.secretIDFile, []byte(sid+"\n"), 0o600); err != nil {
			return false, fmt.Errorf("vaultboot: spire_upstream.secret_id_file: %w", err)
		}
		r.log.Info("Wrote a fresh secret_id", "file", r.c.secretIDFile, "accessor", acc)
		// Destroy every other secret_id of the role: rotated ones, and
		// ones an interrupted run generated but never stored.
		accs, _, err := r.v.list(ctx, rolePath+"/secret-id")
		if err != nil {
			return false, fmt.Errorf("vaultboot: %w", err)
		}
		for _, a := range accs {
			if a == acc {
				continue
			}
			if _, err := r.v.write(ctx, rolePath+"/secret-id-accessor/destroy", map[string]any{"secret_id_accessor": a}); err != nil {
				return false, fmt.Errorf("vaultboot: destroy an old secret_id: %w", err)
			}
			r.log.Info("Destroyed an older secret_id", "accessor", a)
		}
		changed = true
	}
	r.sum.AppRole = AppRoleSummary{
		Mount:        r.c.approleMount,
		Role:         r.c.roleName,
		RoleIDFile:   r.c.roleIDFile,
		SecretIDFile: r.c.secretIDFile,
		TokenTTL:     r.c.tokenTTL.String(),
		TokenMaxTTL:  r.c.tokenMaxTTL.String(),
	}
	return changed, nil
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
