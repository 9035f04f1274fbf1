package vaultboot

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// pkiRoot checks the pki_root block: the root CA mount.
func (v *validator) pkiRoot(b *PKIRootBlock) {
	c := v.c
	c.root = v.caMount("pki_root",
		caKeys{b.Path, b.MaxLeaseTTL, b.CommonName, b.Organization, b.TTL, b.KeyType, b.KeyBits, b.IssuerName, b.KeyName, b.IssuingCertificates, b.CRLDistributionPoints},
		caDefaults{"pki", "87600h", "edgeid root CA", "edgeid-root", "edgeid-root-key"})
	c.root.csrFile = v.inState(b.CSRFile, filepath.Join("pki", "root.csr"))
	c.root.signedFile = v.abs(b.SignedCertFile)
	switch b.Mode {
	case "", "internal":
	case "external":
		c.root.external = true
	default:
		v.p.add("pki_root.mode", "must be \"internal\" or \"external\", got %q", b.Mode)
	}
}

// pkiIntermediate checks the pki_intermediate block: the intermediate CA
// mount. Its name constraints are checked last, in constraints.
func (v *validator) pkiIntermediate(b *PKIIntermediateBlock) {
	v.c.int = v.caMount("pki_intermediate",
		caKeys{b.Path, b.MaxLeaseTTL, b.CommonName, b.Organization, b.TTL, b.KeyType, b.KeyBits, b.IssuerName, b.KeyName, b.IssuingCertificates, b.CRLDistributionPoints},
		caDefaults{"pki_int", "43800h", "edgeid intermediate CA", "edgeid-intermediate", "edgeid-intermediate-key"})
}

// caKeys are the keys that the pki_root and pki_intermediate blocks share.
type caKeys struct {
	path, maxLeaseTTL, commonName, organization, ttl, keyType string
	keyBits                                                   int
	issuerName, keyName                                       string
	issuing, crl                                              []string
}

// caDefaults are a CA mount's defaults; ttl defaults to maxLeaseTTL.
type caDefaults struct {
	path, maxLeaseTTL, commonName, issuerName, keyName string
}

// caMount checks the keys of a CA mount's block and applies defaults.
func (v *validator) caMount(block string, k caKeys, d caDefaults) pkiMount {
	m := pkiMount{
		path:         orDefault(k.path, d.path),
		maxLeaseTTL:  v.p.duration(block+".max_lease_ttl", k.maxLeaseTTL, d.maxLeaseTTL, false),
		commonName:   orDefault(k.commonName, d.commonName),
		organization: k.organization,
		ttl:          v.p.duration(block+".ttl", k.ttl, d.maxLeaseTTL, false),
		issuerName:   orDefault(k.issuerName, d.issuerName),
		keyName:      orDefault(k.keyName, d.keyName),
	}
	m.keyType, m.keyBits = v.keySpec(block, k.keyType, k.keyBits)
	m.issuingURLs, m.crlURLs = v.pkiURLs(block, m.path, k.issuing, k.crl)
	return m
}

// pkiMounts checks the root and intermediate mounts against their names
// and each other.
func (v *validator) pkiMounts() {
	c, p := v.c, v.p
	for _, km := range []struct {
		key string
		m   *pkiMount
	}{{"pki_root", &c.root}, {"pki_intermediate", &c.int}} {
		key, m := km.key, km.m
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
}

// constraints checks and sets the intermediate's name constraints: the
// trust domain, the excluded DNS names (Vault's own always among them)
// and no IP addresses.
func (v *validator) constraints(b *PKIIntermediateBlock) {
	c, p := v.c, v.p
	cons := &caConstraints{maxPathLen: 2}
	if b.MaxPathLength != nil {
		cons.maxPathLen = *b.MaxPathLength
		if cons.maxPathLen < 1 {
			p.add("pki_intermediate.max_path_length", "must be at least 1: the cloud SPIRE server's CA sits below the intermediate, got %d", cons.maxPathLen)
		}
	}
	if c.trustDomain != "" {
		cons.permittedURIDomains = []string{c.trustDomain}
	}
	for i, d := range b.ExcludedDNSDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" || strings.ContainsAny(d, " /*,:") {
			p.add(fmt.Sprintf("pki_intermediate.excluded_dns_domains[%d]", i), "must be a DNS name, got %q", b.ExcludedDNSDomains[i])
			continue
		}
		cons.addExcludedDNS(d)
	}
	if c.tls != nil {
		for _, n := range c.tls.names() {
			cons.addExcludedDNS(strings.ToLower(n))
		}
	}
	// SPIRE never puts an IP address into an SVID, so no CA below the
	// intermediate needs one: excluding every range refuses a forged
	// certificate for Vault's (or any) IP address.
	cons.excludedIPRanges = []string{"0.0.0.0/0", "::/0"}
	c.int.constraints = cons
}

// keySpec checks a key type and size, applying the defaults.
func (v *validator) keySpec(block, keyType string, bits int) (string, int) {
	switch keyType {
	case "", "ec":
		if bits == 0 {
			bits = 256
		}
		if bits != 256 && bits != 384 && bits != 521 {
			v.p.add(block+".key_bits", "ec keys take 256, 384 or 521 bits, got %d", bits)
		}
		return "ec", bits
	case "rsa":
		if bits == 0 {
			bits = 2048
		}
		if bits != 2048 && bits != 3072 && bits != 4096 {
			v.p.add(block+".key_bits", "rsa keys take 2048, 3072 or 4096 bits, got %d", bits)
		}
		return "rsa", bits
	default:
		v.p.add(block+".key_type", "must be \"ec\" or \"rsa\", got %q", keyType)
		return keyType, bits
	}
}

// pkiURLs checks a mount's issuing and CRL URLs, defaulting to Vault's own
// endpoints for mount.
func (v *validator) pkiURLs(block, mount string, issuing, crl []string) ([]string, []string) {
	if issuing == nil {
		issuing = []string{v.c.addr + "/v1/" + mount + "/ca"}
	}
	if crl == nil {
		crl = []string{v.c.addr + "/v1/" + mount + "/crl"}
	}
	for _, kl := range []struct {
		key  string
		list []string
	}{{"issuing_certificates", issuing}, {"crl_distribution_points", crl}} {
		for i, s := range kl.list {
			if u, err := url.Parse(s); err != nil || u.Scheme == "" || u.Host == "" {
				v.p.add(fmt.Sprintf("%s.%s[%d]", block, kl.key, i), "%q is not an absolute URL", s)
			}
		}
	}
	return issuing, crl
}
