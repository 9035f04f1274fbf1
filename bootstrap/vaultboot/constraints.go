package vaultboot

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// caConstraints are the X.509 constraints the root puts on the SPIRE
// intermediate when it signs it (Vault 1.21.0's root/sign-intermediate
// takes each of them).
//
// Path length: the chain is root → intermediate → cloud SPIRE CA → edge
// SPIRE CA → SVID. RFC 5280's pathLenConstraint counts the CAs that may
// follow the intermediate (the leaf does not count), so 2 lets the cloud
// CA sign the edge CAs and the edge CAs sign SVIDs, and refuses any CA an
// edge CA would mint below itself.
//
// Names: SVIDs carry spiffe://<trust domain>/... URIs. Go's x509.Verify
// (and OpenSSL) check a URI constraint against the URI's host, which for
// an SVID is the trust domain, so permitted_uri_domains = [trust domain]
// refuses an SVID of another trust domain. DNS SANs of workloads stay
// allowed except Vault's own names, which no CA under the intermediate may
// certify; IP SANs are excluded entirely (SPIRE never issues them).
type caConstraints struct {
	maxPathLen          int
	permittedURIDomains []string
	excludedDNSDomains  []string
	excludedIPRanges    []string
}

func (c *caConstraints) addExcludedDNS(name string) {
	if !slices.Contains(c.excludedDNSDomains, name) {
		c.excludedDNSDomains = append(c.excludedDNSDomains, name)
	}
}

// params are the sign-intermediate parameters for the constraints.
func (c *caConstraints) params() map[string]any {
	p := map[string]any{"max_path_length": c.maxPathLen}
	if len(c.permittedURIDomains) > 0 {
		p["permitted_uri_domains"] = c.permittedURIDomains
	}
	if len(c.excludedDNSDomains) > 0 {
		p["excluded_dns_domains"] = c.excludedDNSDomains
	}
	if len(c.excludedIPRanges) > 0 {
		p["excluded_ip_ranges"] = c.excludedIPRanges
	}
	return p
}

// diff says how cert's constraints differ from c, or "" when they match.
func (c *caConstraints) diff(cert *x509.Certificate) string {
	var out []string
	switch {
	case !cert.BasicConstraintsValid:
		out = append(out, "no basic constraints")
	case cert.MaxPathLen < 0 || (cert.MaxPathLen == 0 && !cert.MaxPathLenZero):
		out = append(out, fmt.Sprintf("no path length constraint (want %d)", c.maxPathLen))
	case cert.MaxPathLen != c.maxPathLen:
		out = append(out, fmt.Sprintf("path length %d (want %d)", cert.MaxPathLen, c.maxPathLen))
	}
	if !sameSet(cert.PermittedURIDomains, c.permittedURIDomains) {
		out = append(out, fmt.Sprintf("permitted URI domains %v (want %v)", cert.PermittedURIDomains, c.permittedURIDomains))
	}
	if !sameSet(cert.ExcludedDNSDomains, c.excludedDNSDomains) {
		out = append(out, fmt.Sprintf("excluded DNS domains %v (want %v)", cert.ExcludedDNSDomains, c.excludedDNSDomains))
	}
	var ips []string
	for _, n := range cert.ExcludedIPRanges {
		ips = append(ips, n.String())
	}
	if !sameSet(ips, c.excludedIPRanges) {
		out = append(out, fmt.Sprintf("excluded IP ranges %v (want %v)", ips, c.excludedIPRanges))
	}
	// Constraints edgeid does not set must be absent, or the certificate
	// is not the one this configuration asks for.
	if len(cert.PermittedDNSDomains)+len(cert.PermittedIPRanges)+len(cert.ExcludedURIDomains)+len(cert.PermittedEmailAddresses)+len(cert.ExcludedEmailAddresses) > 0 {
		out = append(out, "other name constraints than the configured ones")
	}
	return strings.Join(out, "; ")
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// DefaultPolicyName is the policy's default name for a trust domain:
// "edgeid-spire-upstream-example-org" for "example.org", and
// "edgeid-spire-upstream" without one.
func DefaultPolicyName(trustDomain string) string {
	return withTrustDomain("edgeid-spire-upstream", trustDomain)
}

// DefaultRoleName is the AppRole role's default name for a trust domain:
// "spire-server-example-org" for "example.org", and "spire-server"
// without one.
func DefaultRoleName(trustDomain string) string {
	return withTrustDomain("spire-server", trustDomain)
}

func withTrustDomain(base, td string) string {
	if td == "" {
		return base
	}
	return base + "-" + strings.NewReplacer(".", "-", "_", "-").Replace(strings.ToLower(td))
}
