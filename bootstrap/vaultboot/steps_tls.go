package vaultboot

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/tlspolicy"
)

// vaultTLSCipherSuites are the TLS 1.2 suites the written Vault listener
// allows: edgeid's policy, by name.
var vaultTLSCipherSuites = tlspolicy.Names()

func (t *tlsSettings) names() []string {
	names := []string{t.commonName}
	for _, n := range t.dnsNames {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// stepVaultTLS issues Vault's server certificate from a CA of its own, in
// a PKI mount of its own (vault_tls.pki_mount), and writes a TLS-enabled
// Vault configuration next to it. That CA is not the SPIRE chain's: a
// compromised SPIRE CA (cloud or edge) can sign any name, so clients of
// Vault must not trust the SPIRE root for Vault's certificate. ca_file
// holds this CA alone.
func (r *run) stepVaultTLS(ctx context.Context) (bool, error) {
	t := r.c.tls
	if t == nil {
		r.log.Info("Skipped: no vault_tls block in the configuration")
		return false, nil
	}
	var caSum CASummary
	ca, changed, err := r.ensureVaultTLSCA(ctx, t, &caSum)
	if err != nil {
		return false, err
	}
	wroteRole, err := r.ensureVaultTLSRole(ctx, t)
	if err != nil {
		return false, err
	}
	for _, f := range []string{t.certFile, t.keyFile, t.caFile, t.configFile} {
		if err := fsutil.MkdirAllMode(filepath.Dir(f), 0o700); err != nil {
			return false, fmt.Errorf("vaultboot: vault_tls: %w", err)
		}
	}
	issued, err := r.ensureVaultCert(ctx, t, ca)
	if err != nil {
		return false, err
	}
	wroteFiles, err := r.writeVaultTLSFiles(t, ca)
	if err != nil {
		return false, err
	}
	changed = changed || wroteRole || issued || wroteFiles

	pair, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
	if err != nil {
		return false, fmt.Errorf("vaultboot: vault_tls: %w", err)
	}
	sum := sha256.Sum256(pair.Leaf.Raw)
	r.sum.VaultTLS = &VaultTLSSummary{
		CertFile:          t.certFile,
		KeyFile:           t.keyFile,
		CAFile:            t.caFile,
		ConfigFile:        t.configFile,
		FingerprintSHA256: hex.EncodeToString(sum[:]),
		NotAfter:          pair.Leaf.NotAfter.UTC(),
		CA:                caSum,
	}
	return changed, nil
}

// ensureVaultTLSCA mounts the Vault TLS CA and makes its root.
func (r *run) ensureVaultTLSCA(ctx context.Context, t *tlsSettings, caSum *CASummary) (*issuerInfo, bool, error) {
	changed, err := r.ensureMount(ctx, t.ca.path, "pki", "edgeid: CA of Vault's own TLS certificate", nil, int(t.ca.maxLeaseTTL.Seconds()))
	if err != nil {
		return nil, false, err
	}
	ca, named, err := r.findCA(ctx, &t.ca)
	if err != nil {
		return nil, false, err
	}
	changed = changed || named
	if ca == nil {
		if ca, err = r.createInternalRoot(ctx, &t.ca); err != nil {
			return nil, false, err
		}
		changed = true
	}
	fin, err := r.finishCA(ctx, &t.ca, ca, caSum)
	if err != nil {
		return nil, false, err
	}
	r.tlsIssuer = ca
	return ca, changed || fin, nil
}

// ensureVaultTLSRole writes the PKI role that issues Vault's certificate
// unless Vault holds it as configured.
func (r *run) ensureVaultTLSRole(ctx context.Context, t *tlsSettings) (bool, error) {
	names := t.names()
	rolePath := t.ca.path + "/roles/" + t.roleName
	want := map[string]any{
		"allowed_domains":    names,
		"allow_bare_domains": true,
		"allow_subdomains":   false,
		"allow_glob_domains": false,
		"allow_localhost":    slices.Contains(names, "localhost"),
		"allow_ip_sans":      true,
		"allow_any_name":     false,
		"enforce_hostnames":  true,
		"server_flag":        true,
		"client_flag":        false,
		"key_type":           "ec",
		"key_bits":           int64(256),
		"max_ttl":            int64(t.ttl.Seconds()),
	}
	diff, err := r.writeRole(ctx, rolePath, want, "PKI role "+t.roleName)
	if err != nil || diff == "" {
		return false, err
	}
	r.log.Info("Wrote the PKI role for Vault's certificate", "role", t.roleName, "reason", diff)
	return true, nil
}

// ensureVaultCert issues Vault's certificate unless the files on disk are
// good, and writes the key and the chain.
func (r *run) ensureVaultCert(ctx context.Context, t *tlsSettings, ca *issuerInfo) (bool, error) {
	reason := r.tlsCertReason(t)
	if reason == "" {
		r.log.Info("Vault's certificate is current", "file", t.certFile)
		return false, nil
	}
	names := t.names()
	r.log.Info("Issuing Vault's server certificate", "reason", reason, "common_name", t.commonName, "dns_names", names, "ip_sans", t.ipSANs, "ttl", t.ttl)
	p := map[string]any{
		"common_name": t.commonName,
		"alt_names":   strings.Join(names, ","),
		"ttl":         fmt.Sprintf("%ds", int(t.ttl.Seconds())),
		"format":      "pem",
	}
	if len(t.ipSANs) > 0 {
		p["ip_sans"] = strings.Join(t.ipSANs, ",")
	}
	s, err := r.v.write(ctx, t.ca.path+"/issue/"+t.roleName, p)
	if err != nil {
		return false, fmt.Errorf("vaultboot: issue Vault's certificate: %w", err)
	}
	if s == nil || str(s.Data, "certificate") == "" || str(s.Data, "private_key") == "" {
		return false, fmt.Errorf("vaultboot: issue Vault's certificate: empty answer")
	}
	chain := strings.TrimSpace(str(s.Data, "certificate")) + "\n"
	for _, c := range stringSlice(s.Data["ca_chain"]) {
		c = strings.TrimSpace(c)
		if c == "" || strings.TrimSpace(c) == strings.TrimSpace(ca.certPEM) {
			continue
		}
		chain += c + "\n"
	}
	// Key first, then the certificate: each file is replaced atomically.
	if err := fsutil.WriteFileAtomic(t.keyFile, []byte(strings.TrimSpace(str(s.Data, "private_key"))+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("vaultboot: vault_tls.key_file: %w", err)
	}
	if err := fsutil.WriteFileAtomic(t.certFile, []byte(chain), 0o644); err != nil {
		return false, fmt.Errorf("vaultboot: vault_tls.cert_file: %w", err)
	}
	return true, nil
}

// writeVaultTLSFiles writes ca_file (the Vault TLS CA alone, never the
// SPIRE root) and the TLS-enabled Vault configuration.
func (r *run) writeVaultTLSFiles(t *tlsSettings, ca *issuerInfo) (bool, error) {
	wroteCA, err := fsutil.WriteIfChanged(t.caFile, []byte(strings.TrimSpace(ca.certPEM)+"\n"), 0o644)
	if err != nil {
		return false, fmt.Errorf("vaultboot: vault_tls.ca_file: %w", err)
	}
	wroteConfig, err := fsutil.WriteIfChanged(t.configFile, []byte(renderVaultTLSConfig(t)), 0o640)
	if err != nil {
		return false, fmt.Errorf("vaultboot: vault_tls.config_file: %w", err)
	}
	if wroteConfig {
		r.log.Info("Wrote the TLS-enabled Vault configuration", "file", t.configFile)
	}
	return wroteCA || wroteConfig, nil
}

// tlsCertReason says why Vault's certificate must be (re)issued, or ""
// when the files on disk are good: key and certificate match, the
// certificate was issued by the Vault TLS CA, carries the configured
// names, and has more than a third of its lifetime left.
func (r *run) tlsCertReason(t *tlsSettings) string {
	pair, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
	if err != nil {
		return "no usable certificate and key on disk"
	}
	leaf := pair.Leaf
	if leaf.CheckSignatureFrom(r.tlsIssuer.cert) != nil {
		return "not issued by the Vault TLS CA (vault_tls.pki_mount)"
	}
	dns := slices.Clone(leaf.DNSNames)
	wantDNS := t.names()
	slices.Sort(dns)
	slices.Sort(wantDNS)
	if !slices.Equal(dns, wantDNS) {
		return "DNS names changed"
	}
	var ips, wantIPs []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	for _, ip := range t.ipSANs {
		wantIPs = append(wantIPs, net.ParseIP(ip).String())
	}
	slices.Sort(ips)
	slices.Sort(wantIPs)
	if !slices.Equal(ips, wantIPs) {
		return "IP SANs changed"
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if leaf.NotAfter.Sub(r.b.now()) < life/3 {
		return "less than a third of its lifetime left"
	}
	return ""
}

func renderVaultTLSConfig(t *tlsSettings) string {
	var b strings.Builder
	b.WriteString("# Vault server configuration with TLS, written by edgeid bootstrap.\n")
	b.WriteString("# The certificate is issued by edgeid's Vault TLS CA (not the SPIRE chain); clients verify it\n")
	fmt.Fprintf(&b, "# with %s. Add your storage and seal stanzas through vault_tls.extra_config.\n\n", t.caFile)
	b.WriteString("listener \"tcp\" {\n")
	fmt.Fprintf(&b, "  address           = %s\n", strconv.Quote(t.listener))
	fmt.Fprintf(&b, "  tls_cert_file     = %s\n", strconv.Quote(t.certFile))
	fmt.Fprintf(&b, "  tls_key_file      = %s\n", strconv.Quote(t.keyFile))
	b.WriteString("  tls_min_version   = \"tls12\"\n")
	fmt.Fprintf(&b, "  tls_cipher_suites = %s\n", strconv.Quote(strings.Join(vaultTLSCipherSuites, ",")))
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "api_addr = %s\n", strconv.Quote(t.apiAddr))
	if t.extra != "" {
		b.WriteString("\n" + strings.TrimSpace(t.extra) + "\n")
	}
	return b.String()
}
