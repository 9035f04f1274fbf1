package vaultboot

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
)

// spireUpstream checks the spire_upstream block: the SPIRE server's
// policy, AppRole and login files.
func (v *validator) spireUpstream(b *SpireUpstreamBlock) {
	c, p := v.c, v.p
	// One policy and one role per trust domain: a second trust domain on
	// the same Vault gets its own, and neither can sign for the other.
	c.policyName = orDefault(b.PolicyName, DefaultPolicyName(c.trustDomain))
	c.kvMount = orDefault(b.KVMount, "secret")
	c.approleMount = orDefault(b.ApproleMount, "approle")
	c.roleName = orDefault(b.RoleName, DefaultRoleName(c.trustDomain))
	c.tokenTTL = p.duration("spire_upstream.token_ttl", b.TokenTTL, "30m", false)
	c.tokenMaxTTL = p.duration("spire_upstream.token_max_ttl", b.TokenMaxTTL, "2h", false)
	// The vault_pki plugin (rotate_secret_id) replaces its secret_id at two
	// thirds of this; a server down for longer needs a new one.
	c.secretIDTTL = p.duration("spire_upstream.secret_id_ttl", b.SecretIDTTL, "720h", true)
	c.wrapSecretID = b.WrapSecretID == nil || *b.WrapSecretID
	c.secretIDWrapTTL = p.duration("spire_upstream.secret_id_wrap_ttl", b.SecretIDWrapTTL, "24h", false)
	if c.tokenTTL > c.tokenMaxTTL {
		p.add("spire_upstream.token_ttl", "%s is longer than token_max_ttl %s", c.tokenTTL, c.tokenMaxTTL)
	}
	for i, cidr := range b.BoundCIDRs {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			p.add(fmt.Sprintf("spire_upstream.bound_cidrs[%d]", i), "%q is not a CIDR", cidr)
		}
	}
	c.boundCIDRs = b.BoundCIDRs
	c.roleIDFile = v.inState(b.RoleIDFile, filepath.Join("approle", "role_id"))
	c.secretIDFile = v.inState(b.SecretIDFile, filepath.Join("approle", "secret_id"))
	c.rotateSecretID = b.RotateSecretID
	v.peerSecretIDFiles(b.PeerSecretIDFiles)
	v.spireUpstreamNames()
}

// peerSecretIDFiles checks that every peer's secret_id file is its own.
func (v *validator) peerSecretIDFiles(files []string) {
	c := v.c
	seen := map[string]bool{c.secretIDFile: true}
	for i, f := range files {
		f = v.abs(f)
		if f == "" || seen[f] {
			v.p.add(fmt.Sprintf("spire_upstream.peer_secret_id_files[%d]", i), "must be a path other than secret_id_file and the other peers', got %q", files[i])
			continue
		}
		seen[f] = true
		c.peerSecretIDFiles = append(c.peerSecretIDFiles, f)
	}
}

// spireUpstreamNames checks the policy and role names and the mounts.
func (v *validator) spireUpstreamNames() {
	c, p := v.c, v.p
	for _, kv := range [][2]string{{"spire_upstream.policy_name", c.policyName}, {"spire_upstream.role_name", c.roleName}} {
		if !namePattern.MatchString(kv[1]) {
			p.add(kv[0], "%q is not a valid name", kv[1])
		}
	}
	for _, kv := range [][2]string{{"spire_upstream.kv_mount", c.kvMount}, {"spire_upstream.approle_mount", c.approleMount}} {
		if !mountPattern.MatchString(kv[1]) {
			p.add(kv[0], "%q is not a valid mount path", kv[1])
		}
	}
	if c.policyName == "root" || c.policyName == "default" {
		p.add("spire_upstream.policy_name", "%q is a built-in policy", c.policyName)
	}
}

// audit checks the audit block: the file audit device.
func (v *validator) audit(b *AuditBlock) {
	c := v.c
	c.auditEnabled = b.Enabled == nil || *b.Enabled
	c.auditPath = strings.Trim(orDefault(b.Path, "file"), "/")
	c.auditFile = orDefault(b.FilePath, "/var/log/vault/audit.log")
	if c.auditEnabled && !filepath.IsAbs(c.auditFile) && c.auditFile != "stdout" && c.auditFile != "discard" {
		v.p.add("audit.file_path", "must be an absolute path on the Vault server, got %q", c.auditFile)
	}
	if !mountPattern.MatchString(c.auditPath) {
		v.p.add("audit.path", "%q is not a valid audit device path", c.auditPath)
	}
}
