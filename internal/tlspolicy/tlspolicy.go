// Package tlspolicy is edgeid's one TLS policy: TLS 1.2 or later, and with
// TLS 1.2 only ECDHE key exchange with AES-GCM (TLS 1.3 suites are fixed
// by Go and all AEAD). Every TLS client and server edgeid builds, and
// every config it renders for Vault, takes its suites from here.
package tlspolicy

import (
	"crypto/tls"
	"strings"
)

// MinVersion is the oldest TLS version edgeid speaks.
const MinVersion = tls.VersionTLS12

// CipherSuites are the TLS 1.2 suites allowed.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// Apply sets the minimum version and the TLS 1.2 suites on c.
func Apply(c *tls.Config) *tls.Config {
	c.MinVersion = MinVersion
	c.CipherSuites = append([]uint16(nil), CipherSuites...)
	return c
}

// Names are CipherSuites by their Go (IANA) names, for configs that list
// them by name (Vault's tls_cipher_suites).
func Names() []string {
	out := make([]string, len(CipherSuites))
	for i, s := range CipherSuites {
		out[i] = tls.CipherSuiteName(s)
	}
	return out
}

// NameList is Names joined by commas.
func NameList() string { return strings.Join(Names(), ",") }
