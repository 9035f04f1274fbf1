package vaultboot

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
)

// vaultTLS checks the vault_tls block: Vault's own certificate, from a CA
// mount of its own, and the TLS configuration written for Vault.
func (v *validator) vaultTLS(b *VaultTLSBlock) {
	c, p := v.c, v.p
	ts := &tlsSettings{
		commonName: b.CommonName,
		dnsNames:   b.DNSNames,
		ipSANs:     b.IPSANs,
		ttl:        p.duration("vault_tls.ttl", b.TTL, "2160h", false),
		roleName:   orDefault(b.RoleName, "edgeid-vault-server"),
		certFile:   v.inState(b.CertFile, filepath.Join("vault-tls", "vault.crt")),
		keyFile:    v.inState(b.KeyFile, filepath.Join("vault-tls", "vault.key")),
		caFile:     v.inState(b.CAFile, filepath.Join("vault-tls", "ca.crt")),
		configFile: v.inState(b.ConfigFile, filepath.Join("vault-tls", "vault-tls.hcl")),
		listener:   orDefault(b.ListenerAddress, "0.0.0.0:8200"),
		apiAddr:    b.APIAddr,
		extra:      b.ExtraConfig,
	}
	ts.ca = pkiMount{
		path:       orDefault(b.PKIMount, "pki_vault_tls"),
		commonName: orDefault(b.CACommonName, "edgeid Vault TLS CA"),
		ttl:        p.duration("vault_tls.ca_ttl", b.CATTL, "87600h", false),
		issuerName: "edgeid-vault-tls-ca",
		keyName:    "edgeid-vault-tls-ca-key",
		keyType:    "ec",
		keyBits:    256,
	}
	ts.ca.maxLeaseTTL = ts.ca.ttl
	ts.ca.issuingURLs, ts.ca.crlURLs = v.pkiURLs("vault_tls", ts.ca.path, nil, nil)
	if !mountPattern.MatchString(ts.ca.path) {
		p.add("vault_tls.pki_mount", "%q is not a valid mount path", ts.ca.path)
	}
	if ts.ca.path == c.root.path || ts.ca.path == c.int.path {
		p.add("vault_tls.pki_mount", "must differ from pki_root.path and pki_intermediate.path (%q): Vault's certificate comes from a CA of its own", ts.ca.path)
	}
	if ts.apiAddr == "" {
		ts.apiAddr = "https://" + net.JoinHostPort(b.CommonName, "8200")
	}
	v.vaultTLSNames(b, ts)
	c.tls = ts
}

// vaultTLSNames checks the names in Vault's certificate and its role.
func (v *validator) vaultTLSNames(b *VaultTLSBlock, ts *tlsSettings) {
	p := v.p
	if b.CommonName == "" || strings.ContainsAny(b.CommonName, " /*,") {
		p.add("vault_tls.common_name", "must be a DNS name, got %q", b.CommonName)
	}
	for i, ip := range b.IPSANs {
		if net.ParseIP(ip) == nil {
			p.add(fmt.Sprintf("vault_tls.ip_sans[%d]", i), "%q is not an IP address", ip)
		}
	}
	if !namePattern.MatchString(ts.roleName) {
		p.add("vault_tls.role_name", "%q is not a valid name", ts.roleName)
	}
	if ts.ttl > ts.ca.ttl {
		p.add("vault_tls.ttl", "%s is longer than the Vault TLS CA's ca_ttl %s", ts.ttl, ts.ca.ttl)
	}
}
