package vaultboot

import (
	"errors"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

var (
	// trustDomainPattern is SPIFFE's trust domain name: lowercase letters,
	// digits, dots, dashes and underscores.
	trustDomainPattern = regexp.MustCompile(`^[a-z0-9._-]{1,255}$`)
	namePattern        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	mountPattern       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}){0,4}$`)
)

// validator checks a Config block by block, in the manner of
// orchestrator/topology: one method per block, each reporting to p and
// filling its part of c. Later blocks may read what earlier ones set.
type validator struct {
	cfg     *Config
	c       *configuration
	p       *problems
	baseDir string
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
	v := &validator{
		cfg:     cfg,
		c:       &configuration{file: file},
		p:       &problems{file: file, ranges: cfg.ranges},
		baseDir: ".",
	}
	if cfg.file != "" {
		v.baseDir = filepath.Dir(cfg.file)
	}
	v.top()
	v.vault(cfg.Vault)
	v.autoUnseal(cfg.AutoUnseal)
	v.init(orNew(cfg.Init))
	v.unseal(orNew(cfg.Unseal))
	v.pkiRoot(orNew(cfg.PKIRoot))
	im := orNew(cfg.PKIIntermediate)
	v.pkiIntermediate(im)
	v.pkiMounts()
	v.spireUpstream(orNew(cfg.SpireUpstream))
	v.audit(orNew(cfg.Audit))
	v.recordEncryption(cfg.RecordEncryption)
	if cfg.VaultTLS != nil {
		v.vaultTLS(cfg.VaultTLS)
	}
	v.constraints(im)
	if err := v.p.err(); err != nil {
		return nil, err
	}
	return v.c, nil
}

// orNew returns b, or an empty block when the file has none.
func orNew[B any](b *B) *B {
	if b == nil {
		return new(B)
	}
	return b
}

// abs resolves path against the configuration file's directory.
func (v *validator) abs(path string) string {
	if path == "" {
		return ""
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(v.baseDir, path)
	}
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return filepath.Clean(path)
}

// inState is path made absolute, or def inside the state directory.
func (v *validator) inState(path, def string) string {
	if path != "" {
		return v.abs(path)
	}
	return filepath.Join(v.c.stateDir, def)
}

// httpURL reports the value of key unless it is an http:// or https:// URL
// with a host; it returns addr without trailing slashes.
func (v *validator) httpURL(key, addr string) string {
	trimmed := strings.TrimRight(addr, "/")
	if u, err := url.Parse(trimmed); trimmed == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.p.add(key, "must be an http:// or https:// URL, got %q", addr)
	}
	return trimmed
}

// top checks the keys outside any block.
func (v *validator) top() {
	cfg, c := v.cfg, v.c
	c.stateDir = v.abs(cfg.StateDir)
	if c.stateDir == "" {
		v.p.add("state_dir", "is required")
	}
	c.summary = v.abs(cfg.SummaryFile)
	c.trustDomain = strings.ToLower(strings.TrimSpace(cfg.TrustDomain))
	if c.trustDomain != "" && !trustDomainPattern.MatchString(c.trustDomain) {
		v.p.add("trust_domain", "%q is not a trust domain name such as \"example.org\" (no scheme, port or path)", cfg.TrustDomain)
	}
	c.sweep = cfg.RevokeStrayRootTokens == nil || *cfg.RevokeStrayRootTokens
}

// vault checks the vault block: how to reach Vault.
func (v *validator) vault(b *VaultBlock) {
	if b == nil {
		v.p.add("vault", "block is required")
		b = &VaultBlock{}
	}
	c := v.c
	c.addr = v.httpURL("vault.address", b.Address)
	c.caCertFile = v.abs(b.CACertFile)
	c.tlsServerName = b.TLSServerName
	c.waitTimeout = v.p.duration("vault.wait_timeout", b.WaitTimeout, "2m", false)
	c.requestTimeout = v.p.duration("vault.request_timeout", b.RequestTimeout, "30s", false)
	c.adminTokenEnv = b.AdminTokenEnv
}

// autoUnseal checks the auto_unseal block, when there is one.
func (v *validator) autoUnseal(b *AutoUnsealBlock) {
	if b == nil {
		return
	}
	c := v.c
	c.autoUnseal = true
	c.sealType = orDefault(b.Type, "transit")
	if c.sealType != "transit" {
		v.p.add("auto_unseal.type", "must be \"transit\" (Vault's seal \"transit\"), got %q", b.Type)
	}
	c.transitAddr = v.httpURL("auto_unseal.transit_address", b.TransitAddress)
	c.unsealWait = c.waitTimeout
	if b.WaitTimeout != "" {
		c.unsealWait = v.p.duration("auto_unseal.wait_timeout", b.WaitTimeout, "", false)
	}
}

// unseal takes the unseal block: where the decryption identities are.
func (v *validator) unseal(b *UnsealBlock) {
	c := v.c
	for _, f := range b.AgeIdentityFiles {
		c.ageIdentityFiles = append(c.ageIdentityFiles, v.abs(f))
	}
	c.ageIdentityEnv = b.AgeIdentityEnv
	for _, f := range b.PGPPrivateKeyFiles {
		c.pgpPrivateKeyFiles = append(c.pgpPrivateKeyFiles, v.abs(f))
	}
	c.pgpPassphraseEnv = b.PGPPassphraseEnv
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
