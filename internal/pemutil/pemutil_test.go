package pemutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func selfSigned(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestParseCertificates(t *testing.T) {
	a, b := selfSigned(t, "a"), selfSigned(t, "b")
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not parsed")})
	for _, tc := range []struct {
		name    string
		data    []byte
		wantCNs []string
		wantErr string
		noCert  bool // the error is ErrNoCertificate
	}{
		{"chain in order", append(append([]byte{}, a...), b...), []string{"a", "b"}, "", false},
		{"other blocks skipped", append(append(append([]byte{}, key...), a...), "trailing text\n"...), []string{"a"}, "", false},
		{"empty", nil, nil, "no PEM certificate found", true},
		{"only a key", key, nil, "no PEM certificate found", true},
		{"bad certificate", append(append([]byte{}, a...), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x01}})...), nil, "certificate 2:", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseCertificates(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if errors.Is(err, ErrNoCertificate) != tc.noCert {
					t.Fatalf("error %v: errors.Is(ErrNoCertificate) = %v, want %v", err, !tc.noCert, tc.noCert)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var cns []string
			for _, c := range certs {
				cns = append(cns, c.Subject.CommonName)
			}
			if strings.Join(cns, ",") != strings.Join(tc.wantCNs, ",") {
				t.Fatalf("parsed %v, want %v", cns, tc.wantCNs)
			}
		})
	}
}
