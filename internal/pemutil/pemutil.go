// Package pemutil parses the PEM files edgeid reads: certificate chains and
// bundles written by SPIRE, Vault and KubeEdge.
package pemutil

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrNoCertificate is returned by ParseCertificates when data holds no
// CERTIFICATE block.
var ErrNoCertificate = errors.New("pemutil: no PEM certificate found")

// ParseCertificates parses every CERTIFICATE block in data, in order, and
// skips blocks of other types (a key in a combined file, for one). It fails
// when a certificate does not parse or when there is none.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pemutil: certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificate
	}
	return certs, nil
}
