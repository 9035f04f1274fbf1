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

	"github.com/edgeid/edgeid/bootstrap/internal/atomicfile"
)

// vaultTLSCipherSuites are the TLS 1.2 suites the written Vault listener
// allows: ECDHE with AES-GCM only.
var vaultTLSCipherSuites = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
}

func (t *tlsSettings) names() []string {
	names := []string{t.commonName}
	for _, n := range t.dnsNames {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// stepVaultTLS issues Vault's server certificate from the intermediate and
// writes a TLS-enabled Vault configuration next to it.
func (r *run) stepVaultTLS(ctx context.Context) (bool, error) {
	t := r.c.tls
	if t == nil {
		r.log.Info("Skipped: no vault_tls block in the configuration")
		return false, nil
	}
	changed := false
	names := t.names()
	rolePath := r.c.int.path + "/roles/" + t.roleName
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
	cur, err := r.v.read(ctx, rolePath)
	if err != nil {
		return false, fmt.Errorf("vaultboot: %w", err)
	}
	if diff := roleDiff(cur, want); diff != "" {
		if _, err := r.v.write(ctx, rolePath, want); err != nil {
			return false, fmt.Errorf("vaultboot: write PKI role %s: %w", t.roleName, err)
		}
		r.log.Info("Wrote the PKI role for Vault's certificate", "role", t.roleName, "reason", diff)
		changed = true
	}

	for _, f := range []string{t.certFile, t.keyFile, t.caFile, t.configFile} {
		if err := atomicfile.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			return false, fmt.Errorf("vaultboot: vault_tls: %w", err)
		}
	}
	reason := r.tlsCertReason(t)
	if reason != "" {
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
		s, err := r.v.write(ctx, r.c.int.path+"/issue/"+t.roleName, p)
		if err != nil {
			return false, fmt.Errorf("vaultboot: issue Vault's certificate: %w", err)
		}
		if s == nil || str(s.Data, "certificate") == "" || str(s.Data, "private_key") == "" {
			return false, fmt.Errorf("vaultboot: issue Vault's certificate: empty answer")
		}
		chain := strings.TrimSpace(str(s.Data, "certificate")) + "\n"
		for _, c := range stringSlice(s.Data["ca_chain"]) {
			c = strings.TrimSpace(c)
			if c == "" || strings.TrimSpace(c) == strings.TrimSpace(r.rootIssuer.certPEM) {
				continue
			}
			chain += c + "\n"
		}
		// Key first, then the certificate: each file is replaced atomically.
		if err := atomicfile.Write(t.keyFile, []byte(strings.TrimSpace(str(s.Data, "private_key"))+"\n"), 0o600); err != nil {
			return false, fmt.Errorf("vaultboot: vault_tls.key_file: %w", err)
		}
		if err := atomicfile.Write(t.certFile, []byte(chain), 0o644); err != nil {
			return false, fmt.Errorf("vaultboot: vault_tls.cert_file: %w", err)
		}
		changed = true
	} else {
		r.log.Info("Vault's certificate is current", "file", t.certFile)
	}
	if wrote, err := atomicfile.WriteIfChanged(t.caFile, []byte(strings.TrimSpace(r.rootIssuer.certPEM)+"\n"), 0o644); err != nil {
		return false, fmt.Errorf("vaultboot: vault_tls.ca_file: %w", err)
	} else if wrote {
		changed = true
	}
	if wrote, err := atomicfile.WriteIfChanged(t.configFile, []byte(renderVaultTLSConfig(t)), 0o640); err != nil {
		return false, fmt.Errorf("vaultboot: vault_tls.config_file: %w", err)
	} else if wrote {
		r.log.Info("Wrote the TLS-enabled Vault configuration", "file", t.configFile)
		changed = true
	}

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
	}
	return changed, nil
}

// tlsCertReason says why Vault's certificate must be (re)issued, or ""
// when the files on disk are good: key and certificate match, the
// certificate chains to the current intermediate, carries the configured
// names, and has more than a third of its lifetime left.
func (r *run) tlsCertReason(t *tlsSettings) string {
	pair, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
	if err != nil {
		return "no usable certificate and key on disk"
	}
	leaf := pair.Leaf
	if leaf.CheckSignatureFrom(r.intIssuer.cert) != nil {
		return "not issued by the current intermediate"
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
	b.WriteString("# The certificate is issued by the edgeid intermediate CA; clients verify it\n")
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
