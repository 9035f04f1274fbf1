package runner

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"testing"
	"time"
)

func testCert(t *testing.T, cn string, serial int64, ski []byte) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, SubjectKeyId: ski,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A site's CA is the second certificate of its workloads' SVID chains;
// the cloud CA above it goes to the cloud server whose SPIRE authority ID
// is its subject key ID, not to another cloud server.
func TestAttachCAs(t *testing.T) {
	leaf := testCert(t, "leaf", 1, []byte{1})
	edge := testCert(t, "edge CA", 2, []byte{2})
	cloudB := testCert(t, "cloud CA b", 3, []byte{0xb, 0xb})
	vaultInt := testCert(t, "pki_int", 4, []byte{4})
	st := &Status{
		Cloud: []ServerStatus{{Host: "cloud-a", AuthorityID: "0a0a"}, {Host: "cloud-b", AuthorityID: hex.EncodeToString(cloudB.SubjectKeyId)}},
		Sites: []SiteStatus{
			{Name: "site-a", Server: ServerStatus{Host: "edge-a"}, Workloads: []WorkloadStatus{{SPIFFEID: "spiffe://td/edge/site-a/cam"}}},
			{Name: "site-b", Server: ServerStatus{Host: "edge-b"}, Workloads: []WorkloadStatus{{SPIFFEID: "spiffe://td/edge/site-b/cam"}}},
		},
	}
	attachCAs(st, map[string][]*x509.Certificate{"spiffe://td/edge/site-a/cam": {leaf, edge, cloudB, vaultInt}})
	if ca := st.Sites[0].Server.CA; ca == nil || ca.Serial != "2" || ca.Subject != "CN=edge CA" {
		t.Errorf("site-a CA = %+v, want the edge CA (serial 2)", ca)
	}
	if st.Sites[1].Server.CA != nil {
		t.Errorf("site-b has no SVID yet but got CA %+v", st.Sites[1].Server.CA)
	}
	if st.Cloud[0].CA != nil {
		t.Errorf("cloud-a got CA %+v, which another server signed", st.Cloud[0].CA)
	}
	if ca := st.Cloud[1].CA; ca == nil || ca.Serial != "3" || ca.SubjectKeyID != "0b0b" {
		t.Errorf("cloud-b CA = %+v, want serial 3, subject key ID 0b0b", ca)
	}
}
