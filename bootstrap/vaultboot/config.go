package vaultboot

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// MaxConfigBytes bounds the size of a bootstrap configuration file.
const MaxConfigBytes = 1 << 20

// Config is the bootstrap configuration as written in HCL (see
// conf/bootstrap.hcl for a documented example). Relative paths are resolved
// against the directory of the configuration file.
type Config struct {
	// StateDir holds everything the bootstrap writes on this machine: the
	// encrypted key shares, the AppRole files, CSRs and Vault's TLS files.
	StateDir string `hcl:"state_dir"`
	// SummaryFile, when set, receives the JSON summary as well as stdout.
	SummaryFile string `hcl:"summary_file,optional"`
	// RevokeStrayRootTokens revokes, at the end of each run, every root
	// token made by init or generate-root other than the run's own (left
	// behind by an interrupted run). Defaults to true.
	RevokeStrayRootTokens *bool `hcl:"revoke_stray_root_tokens,optional"`
	// TrustDomain is the SPIFFE trust domain the intermediate signs SPIRE
	// CAs for (for example "example.org"). It name-constrains the
	// intermediate (permitted_uri_domains) and names the policy and the
	// AppRole role. Without it the intermediate has no URI constraint and
	// the names carry no trust domain (a warning is logged).
	TrustDomain string `hcl:"trust_domain,optional"`

	Vault           *VaultBlock           `hcl:"vault,block"`
	AutoUnseal      *AutoUnsealBlock      `hcl:"auto_unseal,block"`
	Init            *InitBlock            `hcl:"init,block"`
	Unseal          *UnsealBlock          `hcl:"unseal,block"`
	PKIRoot         *PKIRootBlock         `hcl:"pki_root,block"`
	PKIIntermediate *PKIIntermediateBlock `hcl:"pki_intermediate,block"`
	SpireUpstream   *SpireUpstreamBlock   `hcl:"spire_upstream,block"`
	Audit           *AuditBlock           `hcl:"audit,block"`
	VaultTLS        *VaultTLSBlock        `hcl:"vault_tls,block"`
	// RecordEncryption sets up Vault for the Kafka gateways' record
	// encryption: Transit key rings, cert auth, one role and policy per
	// identity. Without it, grants written earlier are removed.
	RecordEncryption *RecordEncryptionBlock `hcl:"record_encryption,block"`

	// file is the configuration file's path, used in error messages and to
	// resolve relative paths.
	file string
	// ranges locate each key in the file ("vault.address",
	// "init.age_recipients[0]", "vault" for the block), for ConfigError.
	ranges map[string]hcl.Range
}

// VaultBlock says how to reach Vault.
type VaultBlock struct {
	// Address is Vault's API address, for example "https://vault:8200".
	Address string `hcl:"address"`
	// CACertFile verifies Vault's TLS certificate (system roots if empty).
	CACertFile string `hcl:"ca_cert_file,optional"`
	// TLSServerName overrides the name checked in Vault's certificate.
	TLSServerName string `hcl:"tls_server_name,optional"`
	// WaitTimeout bounds how long step 1 waits for Vault to answer.
	WaitTimeout string `hcl:"wait_timeout,optional"`
	// RequestTimeout bounds each request to Vault.
	RequestTimeout string `hcl:"request_timeout,optional"`
	// AdminTokenEnv names an environment variable holding an existing
	// token with enough rights (for a Vault run by someone else). When it
	// is set and the variable is not empty, the bootstrap uses that token
	// instead of generating a root token, and does not revoke it.
	AdminTokenEnv string `hcl:"admin_token_env,optional"`
}

// AutoUnsealBlock, when present, says that Vault unseals itself: its
// configuration has a seal "transit" stanza, so Vault asks another Vault's
// Transit engine to decrypt its root key whenever it starts. Init then
// makes recovery shares instead of unseal shares, the bootstrap never
// submits a share to unseal, and later runs generate their root token from
// the recovery shares.
type AutoUnsealBlock struct {
	// Type is the seal type of Vault's configuration; only "transit"
	// (the default).
	Type string `hcl:"type,optional"`
	// TransitAddress is the address of the Vault whose Transit engine
	// unseals this one. The bootstrap does not call it; it names it when
	// Vault stays sealed.
	TransitAddress string `hcl:"transit_address"`
	// WaitTimeout bounds how long step 3 waits for Vault to unseal itself
	// (default: vault.wait_timeout).
	WaitTimeout string `hcl:"wait_timeout,optional"`
}

// InitBlock sets how Vault is initialised and how the key shares are kept.
type InitBlock struct {
	// SecretShares and SecretThreshold are the Shamir unseal shares of a
	// Vault without auto_unseal.
	SecretShares    int `hcl:"secret_shares,optional"`
	SecretThreshold int `hcl:"secret_threshold,optional"`
	// RecoveryShares and RecoveryThreshold are the recovery shares of a
	// Vault with auto_unseal (they authorise generate-root; they cannot
	// unseal).
	RecoveryShares    int `hcl:"recovery_shares,optional"`
	RecoveryThreshold int `hcl:"recovery_threshold,optional"`
	// SharesDir receives one file per key share (default
	// <state_dir>/unseal, or <state_dir>/recovery with auto_unseal).
	SharesDir string `hcl:"shares_dir,optional"`
	// AgeRecipients encrypt the shares with age.
	AgeRecipients []string `hcl:"age_recipients,optional"`
	// AgeRecipientMode is "per_share" (share i to recipient i, the number
	// of recipients equals secret_shares; the default) or "all" (every
	// share to every recipient).
	AgeRecipientMode string `hcl:"age_recipient_mode,optional"`
	// PGPKeyFiles are OpenPGP public keys, one per share, handed to Vault
	// as its native pgp_keys.
	PGPKeyFiles []string `hcl:"pgp_key_files,optional"`
	// InsecurePlaintextShares writes the shares unencrypted. Dev only.
	InsecurePlaintextShares bool `hcl:"insecure_plaintext_shares,optional"`
}

// UnsealBlock says where the identities that decrypt the shares are. They
// are never taken from the command line.
type UnsealBlock struct {
	AgeIdentityFiles   []string `hcl:"age_identity_files,optional"`
	AgeIdentityEnv     string   `hcl:"age_identity_env,optional"`
	PGPPrivateKeyFiles []string `hcl:"pgp_private_key_files,optional"`
	PGPPassphraseEnv   string   `hcl:"pgp_passphrase_env,optional"`
}

// PKIRootBlock configures the root CA mount.
type PKIRootBlock struct {
	Path        string `hcl:"path,optional"`
	MaxLeaseTTL string `hcl:"max_lease_ttl,optional"`
	// Mode is "internal" (Vault generates the root) or "external" (Vault
	// makes a CSR for an offline root and imports the signed certificate).
	Mode                  string   `hcl:"mode,optional"`
	CommonName            string   `hcl:"common_name,optional"`
	Organization          string   `hcl:"organization,optional"`
	TTL                   string   `hcl:"ttl,optional"`
	KeyType               string   `hcl:"key_type,optional"`
	KeyBits               int      `hcl:"key_bits,optional"`
	IssuerName            string   `hcl:"issuer_name,optional"`
	KeyName               string   `hcl:"key_name,optional"`
	CSRFile               string   `hcl:"csr_file,optional"`
	SignedCertFile        string   `hcl:"signed_cert_file,optional"`
	IssuingCertificates   []string `hcl:"issuing_certificates,optional"`
	CRLDistributionPoints []string `hcl:"crl_distribution_points,optional"`
}

// PKIIntermediateBlock configures the intermediate CA mount.
type PKIIntermediateBlock struct {
	Path                  string   `hcl:"path,optional"`
	MaxLeaseTTL           string   `hcl:"max_lease_ttl,optional"`
	CommonName            string   `hcl:"common_name,optional"`
	Organization          string   `hcl:"organization,optional"`
	TTL                   string   `hcl:"ttl,optional"`
	KeyType               string   `hcl:"key_type,optional"`
	KeyBits               int      `hcl:"key_bits,optional"`
	IssuerName            string   `hcl:"issuer_name,optional"`
	KeyName               string   `hcl:"key_name,optional"`
	IssuingCertificates   []string `hcl:"issuing_certificates,optional"`
	CRLDistributionPoints []string `hcl:"crl_distribution_points,optional"`
	// MaxPathLength is the intermediate's path length constraint: how many
	// CAs may sit below it (default 2: the cloud SPIRE CA and, below it,
	// each edge SPIRE CA).
	MaxPathLength *int `hcl:"max_path_length,optional"`
	// ExcludedDNSDomains are DNS names no CA below the intermediate may
	// certify, on top of Vault's own names (vault_tls), which are always
	// excluded.
	ExcludedDNSDomains []string `hcl:"excluded_dns_domains,optional"`
}

// SpireUpstreamBlock configures the policy and the AppRole the SPIRE
// server's vault_pki UpstreamAuthority logs in with.
type SpireUpstreamBlock struct {
	PolicyName   string   `hcl:"policy_name,optional"`
	KVMount      string   `hcl:"kv_mount,optional"`
	ApproleMount string   `hcl:"approle_mount,optional"`
	RoleName     string   `hcl:"role_name,optional"`
	TokenTTL     string   `hcl:"token_ttl,optional"`
	TokenMaxTTL  string   `hcl:"token_max_ttl,optional"`
	SecretIDTTL  string   `hcl:"secret_id_ttl,optional"`
	BoundCIDRs   []string `hcl:"bound_cidrs,optional"`
	RoleIDFile   string   `hcl:"role_id_file,optional"`
	SecretIDFile string   `hcl:"secret_id_file,optional"`
	// PeerSecretIDFiles get one secret_id each, for the other (HA) cloud
	// servers: every server has its own and rotates only that one.
	PeerSecretIDFiles []string `hcl:"peer_secret_id_files,optional"`
	// WrapSecretID writes each secret_id response-wrapped (default true):
	// the file holds a single-use token that the vault_pki plugin
	// unwraps; an interception shows as a failed unwrap.
	WrapSecretID *bool `hcl:"wrap_secret_id,optional"`
	// SecretIDWrapTTL is how long a wrapped secret_id can wait to be
	// unwrapped (default "24h").
	SecretIDWrapTTL string `hcl:"secret_id_wrap_ttl,optional"`
	RotateSecretID  bool   `hcl:"rotate_secret_id,optional"`
}

// AuditBlock configures the file audit device.
type AuditBlock struct {
	Enabled *bool  `hcl:"enabled,optional"`
	Path    string `hcl:"path,optional"`
	// FilePath is on the Vault server's file system.
	FilePath string `hcl:"file_path,optional"`
}

// VaultTLSBlock, when present, issues Vault's own server certificate from
// the intermediate and writes a TLS-enabled Vault configuration.
type VaultTLSBlock struct {
	CommonName string `hcl:"common_name"`
	// PKIMount is the separate PKI mount whose own CA issues Vault's
	// certificate (default "pki_vault_tls"). It shares nothing with the
	// SPIRE chain, so no SPIRE CA can mint a certificate Vault's clients
	// accept, and ca_file holds only this CA.
	PKIMount string `hcl:"pki_mount,optional"`
	// CACommonName and CATTL are that CA's subject and lifetime.
	CACommonName    string   `hcl:"ca_common_name,optional"`
	CATTL           string   `hcl:"ca_ttl,optional"`
	DNSNames        []string `hcl:"dns_names,optional"`
	IPSANs          []string `hcl:"ip_sans,optional"`
	TTL             string   `hcl:"ttl,optional"`
	RoleName        string   `hcl:"role_name,optional"`
	CertFile        string   `hcl:"cert_file,optional"`
	KeyFile         string   `hcl:"key_file,optional"`
	CAFile          string   `hcl:"ca_file,optional"`
	ConfigFile      string   `hcl:"config_file,optional"`
	ListenerAddress string   `hcl:"listener_address,optional"`
	APIAddr         string   `hcl:"api_addr,optional"`
	// ExtraConfig is HCL appended verbatim to the written Vault config
	// (storage, seal, ...).
	ExtraConfig string `hcl:"extra_config,optional"`
}

// shareEncryption is how the key shares are kept at rest.
type shareEncryption string

const (
	encAge       shareEncryption = "age"
	encPGP       shareEncryption = "pgp"
	encPlaintext shareEncryption = "plaintext"
)

// configuration is the validated Config with defaults applied, paths made
// absolute and durations parsed.
type configuration struct {
	file        string
	stateDir    string
	summary     string
	sweep       bool
	trustDomain string

	addr           string
	caCertFile     string
	tlsServerName  string
	waitTimeout    time.Duration
	requestTimeout time.Duration
	adminTokenEnv  string

	// autoUnseal is set by an auto_unseal block: Vault unseals itself
	// through sealType (transit) at transitAddr, within unsealWait, and
	// the shares are recovery shares.
	autoUnseal  bool
	sealType    string
	transitAddr string
	unsealWait  time.Duration

	shares        int
	threshold     int
	sharesDir     string
	encryption    shareEncryption
	ageRecipients []string
	agePerShare   bool
	pgpKeyFiles   []string

	ageIdentityFiles   []string
	ageIdentityEnv     string
	pgpPrivateKeyFiles []string
	pgpPassphraseEnv   string

	root pkiMount
	int  pkiMount

	policyName     string
	kvMount        string
	approleMount   string
	roleName       string
	tokenTTL       time.Duration
	tokenMaxTTL    time.Duration
	secretIDTTL    time.Duration
	boundCIDRs     []string
	roleIDFile     string
	secretIDFile   string
	rotateSecretID bool

	peerSecretIDFiles []string
	wrapSecretID      bool
	secretIDWrapTTL   time.Duration

	auditEnabled bool
	auditPath    string
	auditFile    string

	tls *tlsSettings

	// rc is the record encryption setup; its identities are empty when
	// the block is absent (grants written earlier are then removed).
	rc recordCrypt
}

type pkiMount struct {
	path         string
	maxLeaseTTL  time.Duration
	external     bool
	commonName   string
	organization string
	ttl          time.Duration
	keyType      string
	keyBits      int
	issuerName   string
	keyName      string
	csrFile      string
	signedFile   string
	issuingURLs  []string
	crlURLs      []string
	// constraints are set on the intermediate only.
	constraints *caConstraints
}

type tlsSettings struct {
	ca         pkiMount
	commonName string
	dnsNames   []string
	ipSANs     []string
	ttl        time.Duration
	roleName   string
	certFile   string
	keyFile    string
	caFile     string
	configFile string
	listener   string
	apiAddr    string
	extra      string
}
