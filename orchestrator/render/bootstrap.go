package render

import (
	"text/template"
)

// bootstrapData fills bootstrapTmpl.
type bootstrapData struct {
	StateDir, TD       string
	VaultURL, VaultCA  string // VaultCA is empty in an embedded run (no TLS)
	Transit            string // vault.seal_transit's address, or empty (Shamir)
	Shares, Threshold  int
	SharesDir          string
	Embedded           bool
	Local              bool     // the shares go to an identity on this host
	Recipients         []string // age recipients (custodians, or the local one)
	Custodians         int      // custodians ignored by an embedded run
	IdentityFile       string   // Local: the age identity's file
	PKIMount, IntMount string
	KVMount            string
	RoleIDFile         string
	SecretIDFile       string
	PeerSecretIDFiles  []string
	AuditLog           string
	// RecordEncryption is kafka.encryption's Vault side, or nil.
	RecordEncryption *recordEncryptionData
}

// ShareKind names the key shares: unseal shares, or recovery shares when
// Vault unseals itself.
func (d bootstrapData) ShareKind() string {
	if d.Transit != "" {
		return "recovery"
	}
	return "unseal"
}

// bootstrapTmpl is the managed Vault's bootstrap configuration. The key
// shares go to the custodians on real hosts, or to the local identity
// (embedded, or seal_transit alone).
var bootstrapTmpl = template.Must(template.New("bootstrap").Funcs(funcs).Parse(`# Rendered by edgeid: bootstrap of the managed Vault (see bootstrap/README.md).
state_dir = {{q .StateDir}}
summary_file = {{q (print .StateDir "/summary.json")}}

# The intermediate may only sign for this trust domain (a URI name
# constraint), and the policy and the AppRole role are this trust
# domain's own.
trust_domain = {{q .TD}}

vault {
    address = {{q .VaultURL}}
    wait_timeout = "60s"
{{- with .VaultCA}}
    ca_cert_file = {{q .}}
{{- end}}
}
{{with .Transit}}
# Vault unseals itself with the Transit engine at {{q .}} (seal "transit" in
# vault.hcl): init makes recovery shares, which authorise a root token but
# cannot unseal, and the bootstrap never submits a share.
auto_unseal {
    transit_address = {{q .}}
}
{{end}}
init {
    {{.ShareKind | shareKey}}_shares = {{.Shares}}
    {{.ShareKind | shareKey}}_threshold = {{.Threshold}}
    shares_dir = {{q .SharesDir}}
{{- if and .Local .Embedded}}
    # DEV ONLY (embedded run): one {{.ShareKind}} share, encrypted to an age identity
    # kept beside it (0600). Whoever reads this tree holds the share. Real
    # hosts use vault.unseal_custodians or vault.seal_transit.
{{- if .Custodians}}
    # vault.unseal_custodians are not used in an embedded run.
{{- end}}
{{- else if .Local}}
    # Vault unseals itself; its one recovery share is encrypted to an age
    # identity on this host, so whoever reads this tree and reaches Vault's
    # API can generate a root token. vault.unseal_custodians keep the
    # recovery shares off the host.
{{- else}}
    # Share i is encrypted to custodian i (vault.unseal_custodians); their
    # identities are never on this host.
{{- end}}
    age_recipients = [{{list .Recipients}}]
{{- if not .Local}}
    age_recipient_mode = "per_share"
{{- end}}
}
{{if .Local}}
unseal {
    age_identity_files = [{{q .IdentityFile}}]
}
{{- else}}
# The custodians' identities (one per line) come from this environment
# variable for the one run that needs {{.Threshold}} of their {{.ShareKind}} shares: {{if .Transit -}}
for a
# root token when the configuration changes (Vault unseals itself).
{{- else -}}
to unseal
# Vault after a restart, or for a root token when the configuration changes.
{{- end}}
unseal {
    age_identity_env = {{q .IdentityEnv}}
}
{{- end}}

pki_root {
    path = {{q .PKIMount}}
    common_name = "edgeid root CA"
}

pki_intermediate {
    path = {{q .IntMount}}
    common_name = "edgeid intermediate CA"
}

spire_upstream {
    kv_mount = {{q .KVMount}}
    role_id_file = {{q .RoleIDFile}}
    # One secret_id per cloud server, each response-wrapped: a server
    # unwraps its own once, then replaces it before it expires.
    secret_id_file = {{q .SecretIDFile}}
    peer_secret_id_files = [{{list .PeerSecretIDFiles}}]
}

audit {
    enabled = true
    file_path = {{q .AuditLog}}
}
{{- with .RecordEncryption}}

# Record encryption (kafka.encryption): a Transit key ring per ring, cert
# auth trusting the root of pki_root (the root of every SVID), and per
# SPIFFE ID one role and one policy: producers may only make data keys of
# their rings, consumers only unwrap them, rewrappers only have Vault
# re-wrap them (edgeid kafka rewrap). Grants of identities no longer
# listed here are removed; key rings never are.
record_encryption {
    transit_mount = {{q .TransitMount}}
    cert_auth_mount = {{q .CertAuthMount}}
    token_ttl = {{q .TokenTTL}}
    key_rings = [{{list .KeyRings}}]
{{- range .Grants}}
    identity {{q .ID}} {
{{- with .Produce}}
        produce = [{{list .}}]
{{- end}}
{{- with .Consume}}
        consume = [{{list .}}]
{{- end}}
{{- with .Rewrap}}
        rewrap = [{{list .}}]
{{- end}}
    }
{{- end}}
}
{{- end}}
`))

// IdentityEnv is where the custodians' identities come from.
func (bootstrapData) IdentityEnv() string { return UnsealIdentitiesEnv }

func (b *builder) renderBootstrap(h *Host, url string) []byte {
	v := b.top.Vault
	d := bootstrapData{
		StateDir: h.path("vault", "bootstrap"), TD: b.top.TrustDomain, VaultURL: url,
		Embedded: b.env.Embedded, Local: UsesLocalUnsealIdentity(v, b.env.Embedded),
		Custodians: len(v.UnsealCustodians),
		PKIMount:   v.PKIMount, IntMount: v.PKIIntMount, KVMount: v.KVMount,
		RoleIDFile: b.roleIDFile(h), SecretIDFile: b.secretIDFile(h, 0, ""),
		AuditLog:         h.path("vault", "audit.log"),
		RecordEncryption: b.recordEncryption(),
	}
	if !b.env.Embedded {
		d.VaultCA, _ = VaultTLSFiles(h)
	}
	if v.SealTransit != nil {
		d.Transit = v.SealTransit.Address
	}
	d.SharesDir = h.path("vault", "bootstrap", d.ShareKind())
	if d.Local {
		d.Shares, d.Threshold, d.IdentityFile = 1, 1, UnsealIdentityPath(h)
		if b.env.UnsealRecipient != "" {
			d.Recipients = []string{b.env.UnsealRecipient}
		}
	} else {
		d.Shares, d.Threshold, d.Recipients = len(v.UnsealCustodians), v.UnsealThreshold, v.UnsealCustodians
	}
	d.PeerSecretIDFiles = b.peerSecretIDFiles(h)
	return execute(bootstrapTmpl, d)
}

func (b *builder) roleIDFile(h *Host) string {
	if b.env.RoleIDFile != "" {
		return b.env.RoleIDFile
	}
	return h.path("vault", "bootstrap", "approle", "role_id")
}

// secretIDFile is where the bootstrap on Vault's host h writes the
// secret_id of cloud server index (on host server): every cloud server has
// its own, because each one unwraps its wrapped secret_id once and then
// rotates it on its own.
func (b *builder) secretIDFile(h *Host, index int, server string) string {
	base := b.env.SecretIDFile
	if base == "" {
		base = h.path("vault", "bootstrap", "approle", "secret_id")
	}
	if index == 0 {
		return base
	}
	return base + "." + server
}

// peerSecretIDFiles are the secret_id files of the cloud servers after the
// first, which the bootstrap writes for the HA peers.
func (b *builder) peerSecretIDFiles(h *Host) []string {
	var files []string
	for i, server := range b.top.Cloud.Hosts {
		if i > 0 {
			files = append(files, b.secretIDFile(h, i, server))
		}
	}
	return files
}
