package runner

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgeid/edgeid/internal/pemutil"
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
	certs, err := pemutil.ParseCertificates(stored.SVID[0])
	if err != nil {
		return nil, fmt.Errorf("agent data in %s: %w", dataDir, err)
	}
	return certs[0], nil
}
