package kubeedge

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
)

// fingerprint is the lowercase hex SHA-256 of cert's DER.
func fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}
