package tlspolicy

import (
	"crypto/tls"
	"strings"
	"testing"
)

// TestOnlyECDHEWithAESGCM: every suite is a secure ECDHE AES-GCM one and
// its name says so.
func TestOnlyECDHEWithAESGCM(t *testing.T) {
	secure := map[uint16]bool{}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = true
	}
	for i, id := range CipherSuites {
		name := Names()[i]
		if !secure[id] || !strings.HasPrefix(name, "TLS_ECDHE_") || !strings.Contains(name, "_AES_") || !strings.HasSuffix(name, "GCM_SHA256") && !strings.HasSuffix(name, "GCM_SHA384") {
			t.Errorf("suite %s is not an ECDHE AES-GCM suite Go deems secure", name)
		}
	}
	c := Apply(&tls.Config{})
	if c.MinVersion != tls.VersionTLS12 || len(c.CipherSuites) != len(CipherSuites) {
		t.Fatalf("Apply: min %x, %d suites", c.MinVersion, len(c.CipherSuites))
	}
	if NameList() != strings.Join(Names(), ",") {
		t.Fatal("NameList")
	}
}
