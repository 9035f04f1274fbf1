package vaultboot

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/hcldiag"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
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

	Vault           *VaultBlock           `hcl:"vault,block"`
	AutoUnseal      *AutoUnsealBlock      `hcl:"auto_unseal,block"`
	Init            *InitBlock            `hcl:"init,block"`
	Unseal          *UnsealBlock          `hcl:"unseal,block"`
	PKIRoot         *PKIRootBlock         `hcl:"pki_root,block"`
	PKIIntermediate *PKIIntermediateBlock `hcl:"pki_intermediate,block"`
	SpireUpstream   *SpireUpstreamBlock   `hcl:"spire_upstream,block"`
	Audit           *AuditBlock           `hcl:"audit,block"`
	VaultTLS        *VaultTLSBlock        `hcl:"vault_tls,block"`

	// file is the configuration file's path, used in error messages and to
	// resolve relative paths.
	file string
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
}

// SpireUpstreamBlock configures the policy and the AppRole the SPIRE
// server's vault_pki UpstreamAuthority logs in with.
type SpireUpstreamBlock struct {
	PolicyName     string   `hcl:"policy_name,optional"`
	KVMount        string   `hcl:"kv_mount,optional"`
	ApproleMount   string   `hcl:"approle_mount,optional"`
	RoleName       string   `hcl:"role_name,optional"`
	TokenTTL       string   `hcl:"token_ttl,optional"`
	TokenMaxTTL    string   `hcl:"token_max_ttl,optional"`
	SecretIDTTL    string   `hcl:"secret_id_ttl,optional"`
	BoundCIDRs     []string `hcl:"bound_cidrs,optional"`
	RoleIDFile     string   `hcl:"role_id_file,optional"`
	SecretIDFile   string   `hcl:"secret_id_file,optional"`
	RotateSecretID bool     `hcl:"rotate_secret_id,optional"`
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
	CommonName      string   `hcl:"common_name"`
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

// LoadFile reads and decodes the configuration file at path. Unknown keys,
// type mismatches and syntax errors are reported with file and line.
// Semantic checks happen in New.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vaultboot: read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes configuration text; filename is used in messages and to
// resolve relative paths.
func Parse(filename string, data []byte) (*Config, error) {
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("vaultboot: config %s is %d bytes, over the %d byte limit", filename, len(data), MaxConfigBytes)
	}
	file, diags := hclsyntax.ParseConfig(data, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("vaultboot: parse config: %s", hcldiag.Join(diags))
	}
	cfg := &Config{}
	if diags := gohcl.DecodeBody(file.Body, nil, cfg); diags.HasErrors() {
		return nil, fmt.Errorf("vaultboot: invalid config: %s", hcldiag.Join(diags))
	}
	cfg.file = filename
	return cfg, nil
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
	file     string
	stateDir string
	summary  string
	sweep    bool

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

	auditEnabled bool
	auditPath    string
	auditFile    string

	tls *tlsSettings
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
}

type tlsSettings struct {
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

var (
	namePattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	mountPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}){0,4}$`)
)

// problems collects every configuration problem so that one run reports
// them all, each naming the file and the key.
type problems struct {
	file string
	list []string
}

func (p *problems) add(key, format string, args ...any) {
	p.list = append(p.list, fmt.Sprintf("%s: %s: %s", p.file, key, fmt.Sprintf(format, args...)))
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return fmt.Errorf("vaultboot: invalid config: %s", strings.Join(p.list, "; "))
}

func (p *problems) duration(key, value, def string, allowZero bool) time.Duration {
	if value == "" {
		value = def
	}
	d, err := time.ParseDuration(value)
	switch {
	case err != nil:
		p.add(key, "%q is not a duration such as \"30s\" or \"8760h\"", value)
	case d < 0 || (d == 0 && !allowZero):
		p.add(key, "must be positive, got %q", value)
	case d%time.Second != 0:
		p.add(key, "must be a whole number of seconds, got %q", value)
	}
	return d
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// buildConfig validates cfg and applies defaults, reporting every problem.
func buildConfig(cfg *Config) (*configuration, error) {
	if cfg == nil {
		return nil, errors.New("vaultboot: no configuration")
	}
	file := cfg.file
	if file == "" {
		file = "config"
	}
	p := &problems{file: file}
	baseDir := "."
	if cfg.file != "" {
		baseDir = filepath.Dir(cfg.file)
	}
	abs := func(path string) string {
		if path == "" {
			return ""
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		if a, err := filepath.Abs(path); err == nil {
			return a
		}
		return filepath.Clean(path)
	}
	c := &configuration{file: file}

	c.stateDir = abs(cfg.StateDir)
	if c.stateDir == "" {
		p.add("state_dir", "is required")
	}
	c.summary = abs(cfg.SummaryFile)
	c.sweep = cfg.RevokeStrayRootTokens == nil || *cfg.RevokeStrayRootTokens
	inState := func(path, def string) string {
		if path != "" {
			return abs(path)
		}
		return filepath.Join(c.stateDir, def)
	}

	// vault
	v := cfg.Vault
	if v == nil {
		p.add("vault", "block is required")
		v = &VaultBlock{}
	}
	c.addr = strings.TrimRight(v.Address, "/")
	if u, err := url.Parse(c.addr); c.addr == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add("vault.address", "must be an http:// or https:// URL, got %q", v.Address)
	}
	c.caCertFile = abs(v.CACertFile)
	c.tlsServerName = v.TLSServerName
	c.waitTimeout = p.duration("vault.wait_timeout", v.WaitTimeout, "2m", false)
	c.requestTimeout = p.duration("vault.request_timeout", v.RequestTimeout, "30s", false)
	c.adminTokenEnv = v.AdminTokenEnv

	// auto_unseal
	if au := cfg.AutoUnseal; au != nil {
		c.autoUnseal = true
		c.sealType = orDefault(au.Type, "transit")
		if c.sealType != "transit" {
			p.add("auto_unseal.type", "must be \"transit\" (Vault's seal \"transit\"), got %q", au.Type)
		}
		c.transitAddr = strings.TrimRight(au.TransitAddress, "/")
		if u, err := url.Parse(c.transitAddr); c.transitAddr == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("auto_unseal.transit_address", "must be an http:// or https:// URL, got %q", au.TransitAddress)
		}
		c.unsealWait = c.waitTimeout
		if au.WaitTimeout != "" {
			c.unsealWait = p.duration("auto_unseal.wait_timeout", au.WaitTimeout, "", false)
		}
	}

	// init
	in := cfg.Init
	if in == nil {
		in = &InitBlock{}
	}
	sharesKey, thresholdKey := "init.secret_shares", "init.secret_threshold"
	c.shares, c.threshold = in.SecretShares, in.SecretThreshold
	if c.autoUnseal {
		// A Vault that unseals itself has recovery shares only; Vault
		// refuses secret_shares for it.
		sharesKey, thresholdKey = "init.recovery_shares", "init.recovery_threshold"
		c.shares, c.threshold = in.RecoveryShares, in.RecoveryThreshold
		for _, kv := range []struct {
			key string
			v   int
		}{{"init.secret_shares", in.SecretShares}, {"init.secret_threshold", in.SecretThreshold}} {
			if kv.v != 0 {
				p.add(kv.key, "Vault unseals itself (auto_unseal block), so it has recovery shares, not unseal shares: set init.recovery_shares and init.recovery_threshold instead")
			}
		}
	} else {
		for _, kv := range []struct {
			key string
			v   int
		}{{"init.recovery_shares", in.RecoveryShares}, {"init.recovery_threshold", in.RecoveryThreshold}} {
			if kv.v != 0 {
				p.add(kv.key, "only with an auto_unseal block: a Vault with a Shamir seal has unseal shares (init.secret_shares and init.secret_threshold)")
			}
		}
	}
	if c.shares == 0 {
		c.shares = 5
	}
	if c.threshold == 0 {
		c.threshold = min(3, c.shares)
	}
	if c.shares < 1 || c.shares > 255 {
		p.add(sharesKey, "must be between 1 and 255, got %d", c.shares)
	}
	if c.threshold < 1 || c.threshold > c.shares || (c.shares > 1 && c.threshold < 2) {
		p.add(thresholdKey, "must be between 2 and %s (%d) (1 only with a single share), got %d", strings.TrimPrefix(sharesKey, "init."), c.shares, c.threshold)
	}
	if c.autoUnseal {
		c.sharesDir = inState(in.SharesDir, "recovery")
	} else {
		c.sharesDir = inState(in.SharesDir, "unseal")
	}
	modes := 0
	if len(in.AgeRecipients) > 0 {
		modes++
		c.encryption = encAge
	}
	if len(in.PGPKeyFiles) > 0 {
		modes++
		c.encryption = encPGP
	}
	if in.InsecurePlaintextShares {
		modes++
		c.encryption = encPlaintext
	}
	if modes != 1 {
		p.add("init", "set exactly one of age_recipients, pgp_key_files or insecure_plaintext_shares = true (found %d)", modes)
	}
	c.ageRecipients = in.AgeRecipients
	switch in.AgeRecipientMode {
	case "", "per_share":
		c.agePerShare = true
		if len(in.AgeRecipients) > 0 && len(in.AgeRecipients) != c.shares {
			p.add("init.age_recipients", "per_share mode needs one recipient per share: %d recipients for %d shares (%s; or set age_recipient_mode = \"all\")", len(in.AgeRecipients), c.shares, sharesKey)
		}
	case "all":
	default:
		p.add("init.age_recipient_mode", "must be \"per_share\" or \"all\", got %q", in.AgeRecipientMode)
	}
	for i, r := range in.AgeRecipients {
		if _, err := parseAgeRecipient(r); err != nil {
			p.add(fmt.Sprintf("init.age_recipients[%d]", i), "%v", err)
		}
	}
	for _, f := range in.PGPKeyFiles {
		c.pgpKeyFiles = append(c.pgpKeyFiles, abs(f))
	}
	if len(in.PGPKeyFiles) > 0 && len(in.PGPKeyFiles) != c.shares {
		p.add("init.pgp_key_files", "Vault needs one PGP key per share: %d keys for %d shares (%s)", len(in.PGPKeyFiles), c.shares, sharesKey)
	}

	// unseal
	un := cfg.Unseal
	if un == nil {
		un = &UnsealBlock{}
	}
	for _, f := range un.AgeIdentityFiles {
		c.ageIdentityFiles = append(c.ageIdentityFiles, abs(f))
	}
	c.ageIdentityEnv = un.AgeIdentityEnv
	for _, f := range un.PGPPrivateKeyFiles {
		c.pgpPrivateKeyFiles = append(c.pgpPrivateKeyFiles, abs(f))
	}
	c.pgpPassphraseEnv = un.PGPPassphraseEnv

	// pki
	r := cfg.PKIRoot
	if r == nil {
		r = &PKIRootBlock{}
	}
	c.root = pkiMount{
		path:         orDefault(r.Path, "pki"),
		maxLeaseTTL:  p.duration("pki_root.max_lease_ttl", r.MaxLeaseTTL, "87600h", false),
		commonName:   orDefault(r.CommonName, "edgeid root CA"),
		organization: r.Organization,
		ttl:          p.duration("pki_root.ttl", r.TTL, "87600h", false),
		issuerName:   orDefault(r.IssuerName, "edgeid-root"),
		keyName:      orDefault(r.KeyName, "edgeid-root-key"),
		csrFile:      inState(r.CSRFile, filepath.Join("pki", "root.csr")),
		signedFile:   abs(r.SignedCertFile),
	}
	switch r.Mode {
	case "", "internal":
	case "external":
		c.root.external = true
	default:
		p.add("pki_root.mode", "must be \"internal\" or \"external\", got %q", r.Mode)
	}
	c.root.keyType, c.root.keyBits = keySpec(p, "pki_root", r.KeyType, r.KeyBits)
	c.root.issuingURLs, c.root.crlURLs = pkiURLs(p, "pki_root", c.addr, c.root.path, r.IssuingCertificates, r.CRLDistributionPoints)

	im := cfg.PKIIntermediate
	if im == nil {
		im = &PKIIntermediateBlock{}
	}
	c.int = pkiMount{
		path:         orDefault(im.Path, "pki_int"),
		maxLeaseTTL:  p.duration("pki_intermediate.max_lease_ttl", im.MaxLeaseTTL, "43800h", false),
		commonName:   orDefault(im.CommonName, "edgeid intermediate CA"),
		organization: im.Organization,
		ttl:          p.duration("pki_intermediate.ttl", im.TTL, "43800h", false),
		issuerName:   orDefault(im.IssuerName, "edgeid-intermediate"),
		keyName:      orDefault(im.KeyName, "edgeid-intermediate-key"),
	}
	c.int.keyType, c.int.keyBits = keySpec(p, "pki_intermediate", im.KeyType, im.KeyBits)
	c.int.issuingURLs, c.int.crlURLs = pkiURLs(p, "pki_intermediate", c.addr, c.int.path, im.IssuingCertificates, im.CRLDistributionPoints)
	for key, m := range map[string]*pkiMount{"pki_root": &c.root, "pki_intermediate": &c.int} {
		if !mountPattern.MatchString(m.path) {
			p.add(key+".path", "%q is not a valid mount path", m.path)
		}
		if !namePattern.MatchString(m.issuerName) || m.issuerName == "default" {
			p.add(key+".issuer_name", "%q is not a valid issuer name", m.issuerName)
		}
		if !namePattern.MatchString(m.keyName) || m.keyName == "default" {
			p.add(key+".key_name", "%q is not a valid key name", m.keyName)
		}
		if m.ttl > m.maxLeaseTTL {
			p.add(key+".ttl", "%s is longer than max_lease_ttl %s", m.ttl, m.maxLeaseTTL)
		}
	}
	if c.root.path == c.int.path {
		p.add("pki_intermediate.path", "must differ from pki_root.path (%q)", c.root.path)
	}
	if !c.root.external && c.int.ttl >= c.root.ttl {
		p.add("pki_intermediate.ttl", "%s must be shorter than the root's ttl %s", c.int.ttl, c.root.ttl)
	}

	// spire_upstream
	s := cfg.SpireUpstream
	if s == nil {
		s = &SpireUpstreamBlock{}
	}
	c.policyName = orDefault(s.PolicyName, "edgeid-spire-upstream")
	c.kvMount = orDefault(s.KVMount, "secret")
	c.approleMount = orDefault(s.ApproleMount, "approle")
	c.roleName = orDefault(s.RoleName, "spire-server")
	c.tokenTTL = p.duration("spire_upstream.token_ttl", s.TokenTTL, "30m", false)
	c.tokenMaxTTL = p.duration("spire_upstream.token_max_ttl", s.TokenMaxTTL, "2h", false)
	c.secretIDTTL = p.duration("spire_upstream.secret_id_ttl", s.SecretIDTTL, "0s", true)
	if c.tokenTTL > c.tokenMaxTTL {
		p.add("spire_upstream.token_ttl", "%s is longer than token_max_ttl %s", c.tokenTTL, c.tokenMaxTTL)
	}
	for i, cidr := range s.BoundCIDRs {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			p.add(fmt.Sprintf("spire_upstream.bound_cidrs[%d]", i), "%q is not a CIDR", cidr)
		}
	}
	c.boundCIDRs = s.BoundCIDRs
	c.roleIDFile = inState(s.RoleIDFile, filepath.Join("approle", "role_id"))
	c.secretIDFile = inState(s.SecretIDFile, filepath.Join("approle", "secret_id"))
	c.rotateSecretID = s.RotateSecretID
	for key, v := range map[string]string{"spire_upstream.policy_name": c.policyName, "spire_upstream.role_name": c.roleName} {
		if !namePattern.MatchString(v) {
			p.add(key, "%q is not a valid name", v)
		}
	}
	for key, v := range map[string]string{"spire_upstream.kv_mount": c.kvMount, "spire_upstream.approle_mount": c.approleMount} {
		if !mountPattern.MatchString(v) {
			p.add(key, "%q is not a valid mount path", v)
		}
	}
	if c.policyName == "root" || c.policyName == "default" {
		p.add("spire_upstream.policy_name", "%q is a built-in policy", c.policyName)
	}

	// audit
	a := cfg.Audit
	if a == nil {
		a = &AuditBlock{}
	}
	c.auditEnabled = a.Enabled == nil || *a.Enabled
	c.auditPath = strings.Trim(orDefault(a.Path, "file"), "/")
	c.auditFile = orDefault(a.FilePath, "/var/log/vault/audit.log")
	if c.auditEnabled && !filepath.IsAbs(c.auditFile) && c.auditFile != "stdout" && c.auditFile != "discard" {
		p.add("audit.file_path", "must be an absolute path on the Vault server, got %q", c.auditFile)
	}
	if !mountPattern.MatchString(c.auditPath) {
		p.add("audit.path", "%q is not a valid audit device path", c.auditPath)
	}

	// vault_tls
	if t := cfg.VaultTLS; t != nil {
		ts := &tlsSettings{
			commonName: t.CommonName,
			dnsNames:   t.DNSNames,
			ipSANs:     t.IPSANs,
			ttl:        p.duration("vault_tls.ttl", t.TTL, "2160h", false),
			roleName:   orDefault(t.RoleName, "edgeid-vault-server"),
			certFile:   inState(t.CertFile, filepath.Join("vault-tls", "vault.crt")),
			keyFile:    inState(t.KeyFile, filepath.Join("vault-tls", "vault.key")),
			caFile:     inState(t.CAFile, filepath.Join("vault-tls", "ca.crt")),
			configFile: inState(t.ConfigFile, filepath.Join("vault-tls", "vault-tls.hcl")),
			listener:   orDefault(t.ListenerAddress, "0.0.0.0:8200"),
			apiAddr:    t.APIAddr,
			extra:      t.ExtraConfig,
		}
		if ts.apiAddr == "" {
			ts.apiAddr = "https://" + net.JoinHostPort(t.CommonName, "8200")
		}
		if t.CommonName == "" || strings.ContainsAny(t.CommonName, " /*,") {
			p.add("vault_tls.common_name", "must be a DNS name, got %q", t.CommonName)
		}
		for i, ip := range t.IPSANs {
			if net.ParseIP(ip) == nil {
				p.add(fmt.Sprintf("vault_tls.ip_sans[%d]", i), "%q is not an IP address", ip)
			}
		}
		if !namePattern.MatchString(ts.roleName) {
			p.add("vault_tls.role_name", "%q is not a valid name", ts.roleName)
		}
		if ts.ttl > c.int.ttl {
			p.add("vault_tls.ttl", "%s is longer than the intermediate's ttl %s", ts.ttl, c.int.ttl)
		}
		c.tls = ts
	}

	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

func keySpec(p *problems, block, keyType string, bits int) (string, int) {
	switch keyType {
	case "", "ec":
		if bits == 0 {
			bits = 256
		}
		if bits != 256 && bits != 384 && bits != 521 {
			p.add(block+".key_bits", "ec keys take 256, 384 or 521 bits, got %d", bits)
		}
		return "ec", bits
	case "rsa":
		if bits == 0 {
			bits = 2048
		}
		if bits != 2048 && bits != 3072 && bits != 4096 {
			p.add(block+".key_bits", "rsa keys take 2048, 3072 or 4096 bits, got %d", bits)
		}
		return "rsa", bits
	default:
		p.add(block+".key_type", "must be \"ec\" or \"rsa\", got %q", keyType)
		return keyType, bits
	}
}

func pkiURLs(p *problems, block, addr, mount string, issuing, crl []string) ([]string, []string) {
	if issuing == nil {
		issuing = []string{addr + "/v1/" + mount + "/ca"}
	}
	if crl == nil {
		crl = []string{addr + "/v1/" + mount + "/crl"}
	}
	for key, list := range map[string][]string{"issuing_certificates": issuing, "crl_distribution_points": crl} {
		for i, s := range list {
			if u, err := url.Parse(s); err != nil || u.Scheme == "" || u.Host == "" {
				p.add(fmt.Sprintf("%s.%s[%d]", block, key, i), "%q is not an absolute URL", s)
			}
		}
	}
	return issuing, crl
}
