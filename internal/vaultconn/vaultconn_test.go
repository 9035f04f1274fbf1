package vaultconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vaultServer answers sys/health like Vault, over TLS configured by
// tweak, and writes its CA to a file.
func vaultServer(t *testing.T, tweak func(*tls.Config)) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("X-Vault-Token"); got != "" {
			t.Errorf("request carries a token from the environment")
		}
		if got := r.Header.Get("X-Vault-Namespace"); got != "" {
			t.Errorf("request carries namespace %q from the environment", got)
		}
		if got := r.Header.Get("X-From-Env"); got != "" {
			t.Errorf("request carries a header from VAULT_HEADERS")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"initialized":true,"sealed":false,"standby":false}`))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{}
	if tweak != nil {
		tweak(srv.TLS)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca
}

func TestNewClientIgnoresEnvironment(t *testing.T) {
	srv, ca := vaultServer(t, nil)
	t.Setenv("VAULT_TOKEN", "hvs.from-env")
	t.Setenv("VAULT_NAMESPACE", "env-ns")
	t.Setenv("VAULT_HEADERS", `{"X-From-Env":"1"}`)
	t.Setenv("VAULT_ADDR", "https://127.0.0.1:1")
	c, err := NewClient(Config{Address: srv.URL, CACertFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if c.Token() != "" || c.Namespace() != "" || c.Address() != srv.URL {
		t.Fatalf("token %q namespace %q address %q, want none, none, %s", c.Token(), c.Namespace(), c.Address(), srv.URL)
	}
	if _, err := c.Sys().HealthWithContext(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTLSPolicy(t *testing.T) {
	tests := []struct {
		name    string
		tweak   func(*tls.Config)
		wantErr string
	}{
		{"tls 1.3", func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }, ""},
		{"tls 1.2 with ECDHE AES-GCM", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
		}, ""},
		{"tls 1.2 with ChaCha20 only", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}
		}, "handshake failure"},
		{"tls 1.1", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS11 }, "protocol version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, ca := vaultServer(t, tt.tweak)
			c, err := NewClient(Config{Address: srv.URL, CACertFile: ca})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Sys().HealthWithContext(context.Background())
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestUnknownCAIsRefused(t *testing.T) {
	srv, _ := vaultServer(t, nil)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other.pem")
	os.WriteFile(otherCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	c, err := NewClient(Config{Address: srv.URL, CACertFile: otherCA})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sys().HealthWithContext(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("error %v, want a certificate verification error", err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	os.WriteFile(notPEM, []byte("no certificate here"), 0o600)
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"no address", Config{}, "address is required"},
		{"missing CA file", Config{Address: "https://v:8200", CACertFile: filepath.Join(dir, "none")}, "CA certificates"},
		{"CA file without PEM", Config{Address: "https://v:8200", CACertFile: notPEM}, "no PEM certificate in " + notPEM},
		{"key without certificate", Config{Address: "https://v:8200", ClientKeyFile: notPEM}, "client certificate"},
		{"files and callback", Config{Address: "https://v:8200", ClientCertFile: notPEM, ClientKeyFile: notPEM,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return nil, nil }}, "either the files or GetClientCertificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewClient(tt.c); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestTLSConfigSettings(t *testing.T) {
	tc, err := TLSConfig(Config{Address: "https://v:8200", TLSServerName: "vault.example"})
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion != tls.VersionTLS12 || tc.ServerName != "vault.example" || tc.RootCAs != nil || tc.InsecureSkipVerify {
		t.Fatalf("tls config %+v", tc)
	}
	for _, s := range tc.CipherSuites {
		name := tls.CipherSuiteName(s)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !strings.Contains(name, "_GCM_") {
			t.Fatalf("suite %s is not ECDHE with AES-GCM", name)
		}
	}
}

// TestGetClientCertificatePerConnection: the callback's certificate is
// the one presented, asked again on each new connection (a rotated SVID
// is used by the next connection).
func TestGetClientCertificatePerConnection(t *testing.T) {
	var seen []string
	srv, caFile := vaultServer(t, func(tc *tls.Config) {
		tc.ClientAuth = tls.RequireAnyClientCert
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err == nil {
				seen = append(seen, c.Subject.CommonName)
			}
			return err
		}
	})
	current := "first"
	c, err := NewClient(Config{Address: srv.URL, CACertFile: caFile,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return selfSigned(t, current), nil }})
	if err != nil {
		t.Fatal(err)
	}
	hc := c.CloneConfig().HttpClient
	for _, name := range []string{"first", "second"} {
		current = name
		hc.CloseIdleConnections()
		if _, err := c.Sys().HealthWithContext(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(seen, ",") != "first,second" {
		t.Fatalf("server saw client certificates %v, want first,second", seen)
	}
}

func selfSigned(t *testing.T, cn string) *tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
