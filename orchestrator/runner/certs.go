package runner

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// AgentSVID reads the SVID a SPIRE agent (v1.13) keeps in its data
// directory: agent-data.json, a PEM certificate per chain element.
func AgentSVID(dataDir string) (*x509.Certificate, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, "agent-data.json"))
	if err != nil {
		return nil, err
	}
	var stored struct {
		SVID [][]byte `json:"svid"`
	}
	if err := json.Unmarshal(data, &stored); err != nil {
		return nil, fmt.Errorf("agent data in %s: %w", dataDir, err)
	}
	if len(stored.SVID) == 0 {
		return nil, fmt.Errorf("agent data in %s: no SVID", dataDir)
	}
	certs, err := parseCerts(stored.SVID[0])
	if err != nil {
		return nil, fmt.Errorf("agent data in %s: %w", dataDir, err)
	}
	return certs[0], nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
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
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate")
	}
	return out, nil
}
