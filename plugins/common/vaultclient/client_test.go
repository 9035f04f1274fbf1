package vaultclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/plugins/common/vaultclient"
	"github.com/edgeid/edgeid/plugins/common/vaultclient/vaultfake"
)

var readCaps = vaultfake.Caps{"secret/data/*": {"read", "create", "update"}}

func dial(t *testing.T, cfg vaultclient.Config) *vaultclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vaultclient.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// eventually polls cond every 50ms for at most timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

func mustWrite(t *testing.T, c *vaultclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Write(ctx, "secret/data/x", map[string]any{"data": map[string]any{"a": "b"}}); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func TestTokenAuthIgnoresEnvironment(t *testing.T) {
	v := vaultfake.New(t)
	tok := v.AddToken(vaultfake.TokenSpec{Caps: readCaps})
	t.Setenv("VAULT_TOKEN", "hvs.from-the-environment")
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_NAMESPACE", "env-ns")
	c := dial(t, vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.TokenAuth{Token: tok}})
	mustWrite(t, c)
	if c.Method() != "token" {
		t.Fatalf("Method = %q", c.Method())
	}
}

func TestTokenAuthBadToken(t *testing.T) {
	v := vaultfake.New(t)
	_, err := vaultclient.Dial(context.Background(), vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.TokenAuth{Token: "hvs.wrong"}})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Dial err = %v, want permission denied", err)
	}
	if strings.Contains(err.Error(), "hvs.wrong") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestAppRoleFromFilesRereadsSecretID(t *testing.T) {
	v := vaultfake.New(t)
	v.EnableAppRole("approle", "role-1", "secret-1", vaultfake.TokenSpec{Caps: readCaps, TTL: time.Hour})
	roleFile := writeFile(t, "role_id", "role-1\n")
	secretFile := writeFile(t, "secret_id", "  secret-1 \n")
	c := dial(t, vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.AppRoleAuth{RoleIDFile: roleFile, SecretIDFile: secretFile}})
	mustWrite(t, c)

	// Rotate the secret ID in Vault and on disk, then revoke the token: the
	// next call gets 403, logs in again with the new file content, retries.
	v.EnableAppRole("approle", "role-1", "secret-2", vaultfake.TokenSpec{Caps: readCaps, TTL: time.Hour})
	if err := os.WriteFile(secretFile, []byte("secret-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	v.RevokeAllTokens()
	mustWrite(t, c)
	if n := v.Requests("PUT auth/approle/login"); n != 2 {
		t.Fatalf("logins = %d, want 2", n)
	}
}

func TestAppRoleBadSecretDoesNotLeak(t *testing.T) {
	v := vaultfake.New(t)
	v.EnableAppRole("approle", "role-1", "secret-1", vaultfake.TokenSpec{Caps: readCaps})
	_, err := vaultclient.Dial(context.Background(), vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.AppRoleAuth{
		RoleIDFile: writeFile(t, "r", "role-1"), SecretIDFile: writeFile(t, "s", "s3cr3t-wrong"),
	}})
	if err == nil || !strings.Contains(err.Error(), "auth/approle/login") {
		t.Fatalf("err = %v, want a login error naming the path", err)
	}
	if strings.Contains(err.Error(), "s3cr3t-wrong") {
		t.Fatalf("error leaks the secret ID: %v", err)
	}
	_, err = vaultclient.Dial(context.Background(), vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.AppRoleAuth{
		RoleIDFile: writeFile(t, "r2", "role-1"), SecretIDFile: filepath.Join(t.TempDir(), "missing"),
	}})
	if err == nil || !strings.Contains(err.Error(), "secret ID") {
		t.Fatalf("err = %v, want a secret ID file error", err)
	}
}

func TestCertAuth(t *testing.T) {
	v := vaultfake.NewTLS(t)
	certPEM, keyPEM, cert := clientCert(t)
	v.EnableCertAuth("cert", "spire", cert, vaultfake.TokenSpec{Caps: readCaps, TTL: time.Hour, Renewable: true})
	ca := writeFile(t, "ca.pem", string(v.CACertPEM()))
	c := dial(t, vaultclient.Config{
		Address: v.Addr(), CACertPath: ca,
		ClientCertPath: writeFile(t, "c.pem", string(certPEM)), ClientKeyPath: writeFile(t, "k.pem", string(keyPEM)),
		Auth: &vaultclient.CertAuth{RoleName: "spire"},
	})
	mustWrite(t, c)

	// Without a client certificate the client refuses to start.
	_, err := vaultclient.Dial(context.Background(), vaultclient.Config{Address: v.Addr(), CACertPath: ca, Auth: &vaultclient.CertAuth{}})
	if err == nil || !strings.Contains(err.Error(), "client certificate") {
		t.Fatalf("err = %v", err)
	}
	// A wrong CA file fails the TLS handshake.
	other := writeFile(t, "other.pem", string(certPEM))
	_, err = vaultclient.Dial(context.Background(), vaultclient.Config{Address: v.Addr(), CACertPath: other, Retries: -1,
		ClientCertPath: writeFile(t, "c2.pem", string(certPEM)), ClientKeyPath: writeFile(t, "k2.pem", string(keyPEM)),
		Auth: &vaultclient.CertAuth{}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a TLS verification error", err)
	}
}

func TestKubernetesAuth(t *testing.T) {
	v := vaultfake.New(t)
	v.EnableK8sAuth("kubernetes", "spire-server", "eyJ.fake.jwt", vaultfake.TokenSpec{Caps: readCaps, TTL: time.Hour})
	c := dial(t, vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.KubernetesAuth{
		RoleName: "spire-server", TokenPath: writeFile(t, "token", "eyJ.fake.jwt\n"),
	}})
	mustWrite(t, c)
	if c.Method() != "kubernetes" {
		t.Fatalf("Method = %q", c.Method())
	}
	_, err := vaultclient.Dial(context.Background(), vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.KubernetesAuth{
		RoleName: "other", TokenPath: writeFile(t, "token2", "eyJ.fake.jwt"),
	}})
	if err == nil || !strings.Contains(err.Error(), "auth/kubernetes/login") {
		t.Fatalf("err = %v", err)
	}
}

func TestRenewsRenewableToken(t *testing.T) {
	v := vaultfake.New(t)
	v.EnableAppRole("approle", "r", "s", vaultfake.TokenSpec{Caps: readCaps, TTL: 3 * time.Second, Renewable: true})
	c := dial(t, vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.AppRoleAuth{
		RoleIDFile: writeFile(t, "r", "r"), SecretIDFile: writeFile(t, "s", "s"),
	}})
	eventually(t, 8*time.Second, "a token renewal", func() bool { return v.Requests("PUT auth/token/renew-self") >= 1 })
	// Renewal kept the first token: no second login, and calls work past the
	// original TTL.
	time.Sleep(3 * time.Second)
	mustWrite(t, c)
	if n := v.Requests("PUT auth/approle/login"); n != 1 {
		t.Fatalf("logins = %d, want 1 (renewal should have kept the token)", n)
	}
}

func TestLogsInAgainBeforeMaxTTL(t *testing.T) {
	v := vaultfake.New(t)
	v.EnableAppRole("approle", "r", "s", vaultfake.TokenSpec{Caps: readCaps, TTL: 2 * time.Second, MaxTTL: 3 * time.Second, Renewable: true})
	c := dial(t, vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.AppRoleAuth{
		RoleIDFile: writeFile(t, "r", "r"), SecretIDFile: writeFile(t, "s", "s"),
	}})
	eventually(t, 10*time.Second, "a proactive second login", func() bool { return v.Requests("PUT auth/approle/login") >= 2 })
	// The new login came before any request was refused.
	mustWrite(t, c)
	if n := v.Requests("PUT secret/data/x"); n != 1 {
		t.Fatalf("write attempts = %d, want 1 (no 403 retry)", n)
	}
}

func TestLogsInAgainWhenRenewalFails(t *testing.T) {
	v := vaultfake.New(t)
	v.EnableAppRole("approle", "r", "s", vaultfake.TokenSpec{Caps: readCaps, TTL: 3 * time.Second, Renewable: true})
	v.FailNext("auth/token/renew-self", 1)
	_ = dial(t, vaultclient.Config{Address: v.Addr(), Retries: -1, Auth: &vaultclient.AppRoleAuth{
		RoleIDFile: writeFile(t, "r", "r"), SecretIDFile: writeFile(t, "s", "s"),
	}})
	eventually(t, 8*time.Second, "a login after the failed renewal", func() bool { return v.Requests("PUT auth/approle/login") >= 2 })
}

func TestLogsInAgainForNonRenewableToken(t *testing.T) {
	v := vaultfake.New(t)
	v.EnableK8sAuth("kubernetes", "role", "jwt", vaultfake.TokenSpec{Caps: readCaps, TTL: 3 * time.Second})
	start := time.Now()
	_ = dial(t, vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.KubernetesAuth{RoleName: "role", TokenPath: writeFile(t, "t", "jwt")}})
	eventually(t, 6*time.Second, "a second login", func() bool { return v.Requests("PUT auth/kubernetes/login") >= 2 })
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("second login after %s, want before the 3s TTL ends", took)
	}
}

func TestRetriesTransientFailures(t *testing.T) {
	v := vaultfake.New(t)
	tok := v.AddToken(vaultfake.TokenSpec{Caps: readCaps})
	c := dial(t, vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.TokenAuth{Token: tok}})
	v.FailNext("secret/data/x", 2)
	mustWrite(t, c)
	if n := v.Requests("PUT secret/data/x"); n != 3 {
		t.Fatalf("attempts = %d, want 3", n)
	}

	v.SetSealed(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Read(ctx, "secret/data/x")
	if !vaultclient.Transient(err) || !vaultclient.Sealed(err) {
		t.Fatalf("sealed read err = %v, want a transient sealed error", err)
	}
	v.SetSealed(false)
	if _, err := c.Read(ctx, "secret/data/x"); err != nil {
		t.Fatalf("read after unseal: %v", err)
	}
}

func TestCallsAreBoundedByTimeout(t *testing.T) {
	// A server that never answers.
	block := make(chan struct{})
	srv := newHangingServer(t, block)
	tok := "hvs.x"
	start := time.Now()
	_, err := vaultclient.Dial(context.Background(), vaultclient.Config{Address: srv, Timeout: 300 * time.Millisecond, Auth: &vaultclient.TokenAuth{Token: tok}})
	if err == nil {
		t.Fatal("Dial against a hanging server succeeded")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Dial took %s, want about the 300ms timeout", took)
	}
	close(block)
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]vaultclient.Config{
		"no address":  {Auth: &vaultclient.TokenAuth{Token: "x"}},
		"no auth":     {Address: "http://127.0.0.1:1"},
		"bad ca file": {Address: "http://127.0.0.1:1", CACertPath: "/nonexistent", Auth: &vaultclient.TokenAuth{Token: "x"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := vaultclient.Dial(context.Background(), cfg); err == nil || !strings.HasPrefix(err.Error(), "vaultclient: ") {
				t.Fatalf("err = %v, want a vaultclient error", err)
			}
		})
	}
}

func clientCert(t *testing.T) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "spire-server"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), cert
}

func TestStaticTokenResumesRenewalAfterAFailure(t *testing.T) {
	v := vaultfake.New(t)
	tok := v.AddToken(vaultfake.TokenSpec{Caps: readCaps, TTL: 3 * time.Second, Renewable: true})
	v.FailNext("auth/token/renew-self", 1)
	c := dial(t, vaultclient.Config{Address: v.Addr(), Retries: -1, Auth: &vaultclient.TokenAuth{Token: tok}})
	// The first renewal fails; the token is looked up again and renewal
	// resumes, so the token outlives its original 3s TTL.
	eventually(t, 8*time.Second, "a second lookup and a successful renewal", func() bool {
		return v.Requests("GET auth/token/lookup-self") >= 2 && v.Requests("PUT auth/token/renew-self") >= 2
	})
	time.Sleep(2 * time.Second)
	mustWrite(t, c)
}
