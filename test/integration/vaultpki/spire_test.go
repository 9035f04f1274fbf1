package vaultpki

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

const pluginPkg = "./plugins/cmd/edgeid-upstreamauthority-vaultpki"

// pluginBlock renders the UpstreamAuthority block with plugin_data body.
func pluginBlock(t *testing.T, data string) string {
	t.Helper()
	p := harness.BuildPlugin(t, pluginPkg)
	return fmt.Sprintf(`    UpstreamAuthority "vault_pki" {
        plugin_cmd = %q
        plugin_checksum = %q
        plugin_data {
%s
        }
    }`, p.Path, p.Checksum, data)
}

// tokenData is plugin_data with token auth.
func tokenData(addr, token, extra string) string {
	return fmt.Sprintf(`            vault_addr = %q
            kv_mount_point = "secret"
            root_poll_interval = "2s"
%s
            token_auth {
                token = %q
            }`, addr, extra, token)
}

func approleData(addr, roleIDFile, secretIDFile, extra string) string {
	return fmt.Sprintf(`            vault_addr = %q
            kv_mount_point = "secret"
            root_poll_interval = "2s"
%s
            approle_auth {
                role_id_file = %q
                secret_id_file = %q
            }`, addr, extra, roleIDFile, secretIDFile)
}

// bundleEquals checks that the server's X.509 bundle is exactly want.
func bundleEquals(s *harness.SpireServer, t *testing.T, want ...*x509.Certificate) error {
	got := s.Bundle(t)
	if len(got) != len(want) {
		return fmt.Errorf("bundle has %d roots, want %d", len(got), len(want))
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g.Equal(w)
		}
		if !found {
			return fmt.Errorf("bundle lacks %s", w.Subject)
		}
	}
	return nil
}

// workloadSVID starts an agent (join token) and registers the test process
// (unix:uid) as spiffe://<td>/cloud/test-workload, and returns the agent.
func workloadAgent(t *testing.T, s *harness.SpireServer) (*harness.SpireAgent, string) {
	t.Helper()
	token := s.JoinToken(t, "")
	agentID := harness.JoinTokenAgentID(trustDomain, token)
	a := harness.StartSpireAgent(t, harness.AgentConfig{Server: s, JoinToken: token})
	id := "spiffe://" + trustDomain + "/cloud/test-workload"
	s.CreateEntry(t, harness.Entry{ParentID: agentID, SPIFFEID: id, Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Getuid())}, X509SVIDTTL: 10 * time.Second})
	return a, id
}

func writeCertsPEM(t *testing.T, path string, certs []*x509.Certificate) {
	t.Helper()
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Acceptance 1: the bundle root is the Vault root; a workload's SVID
// verifies against it with Go and with openssl, through the pki_int
// intermediate.
func TestChainAndBundle(t *testing.T) {
	openssl := harness.RequireCommand(t, "openssl")
	p := startDevPKI(t, false)
	roleIDFile, secretIDFile := p.appRole(t)
	s := harness.StartSpireServer(t, harness.ServerConfig{Plugins: pluginBlock(t, approleData(p.v.Addr, roleIDFile, secretIDFile, ""))})

	if err := bundleEquals(s, t, p.root); err != nil {
		t.Fatalf("server bundle: %v", err)
	}
	a, id := workloadAgent(t, s)
	svid, roots := harness.FetchX509SVIDFor(t, a.SocketPath, id)
	if len(roots) != 1 || !roots[0].Equal(p.root) {
		t.Fatalf("workload bundle has %d roots; want only the Vault root", len(roots))
	}
	chain, err := harness.VerifySVIDChain(svid, roots)
	if err != nil {
		t.Fatalf("Go x509 verification: %v", err)
	}
	// leaf -> SPIRE CA -> pki_int intermediate -> Vault root
	if len(chain) != 4 || !chain[2].Equal(p.inter) || !chain[3].Equal(p.root) {
		t.Fatalf("verified chain has %d certificates; want leaf, SPIRE CA, pki_int intermediate, Vault root", len(chain))
	}
	if len(svid.Certificates) < 3 || !svid.Certificates[2].Equal(p.inter) {
		t.Fatalf("the SVID's chain does not carry the pki_int intermediate (%d certificates)", len(svid.Certificates))
	}

	dir := t.TempDir()
	writeCertsPEM(t, filepath.Join(dir, "root.pem"), roots)
	writeCertsPEM(t, filepath.Join(dir, "leaf.pem"), svid.Certificates[:1])
	writeCertsPEM(t, filepath.Join(dir, "untrusted.pem"), svid.Certificates[1:])
	out, err := exec.Command(openssl, "verify", "-CAfile", filepath.Join(dir, "root.pem"),
		"-untrusted", filepath.Join(dir, "untrusted.pem"), filepath.Join(dir, "leaf.pem")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "leaf.pem: OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	if log := s.Proc.Log(); !strings.Contains(log, "auth_method=approle") {
		t.Fatal("the server log does not show an AppRole login by the plugin")
	}
}

// Acceptance 2: every auth method works against a real Vault (Kubernetes
// auth is covered by a unit test against a fake endpoint).
func TestAuthMethods(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		p := startDevPKI(t, false)
		s := harness.StartSpireServer(t, harness.ServerConfig{Plugins: pluginBlock(t, tokenData(p.v.Addr, p.token(t), ""))})
		if err := bundleEquals(s, t, p.root); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("approle from files", func(t *testing.T) {
		p := startDevPKI(t, false)
		roleIDFile, secretIDFile := p.appRole(t)
		s := harness.StartSpireServer(t, harness.ServerConfig{Plugins: pluginBlock(t, approleData(p.v.Addr, roleIDFile, secretIDFile, ""))})
		if err := bundleEquals(s, t, p.root); err != nil {
			t.Fatal(err)
		}
		secret, _ := os.ReadFile(secretIDFile)
		if strings.Contains(s.Proc.Log(), strings.TrimSpace(string(secret))) {
			t.Fatal("the server log contains the secret ID")
		}
	})
	t.Run("cert", func(t *testing.T) {
		p := startDevPKI(t, true)
		certPath, keyPath := p.certAuth(t)
		data := fmt.Sprintf(`            vault_addr = %q
            ca_cert_path = %q
            cert_auth {
                cert_auth_role_name = "spire-server"
                client_cert_path = %q
                client_key_path = %q
            }`, p.v.Addr, p.v.CACertPath, certPath, keyPath)
		s := harness.StartSpireServer(t, harness.ServerConfig{Plugins: pluginBlock(t, data)})
		if err := bundleEquals(s, t, p.root); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s.Proc.Log(), "auth_method=cert") {
			t.Fatal("the server log does not show a cert login by the plugin")
		}
	})
}

// Acceptance 3: a bad configuration stops the server at start, with an
// error that names the problem.
func TestBadConfigStopsServerStart(t *testing.T) {
	p := startDevPKI(t, false)
	// A policy that is the documented one minus sign-intermediate.
	noSignPolicy := strings.Replace(policyHCL, "pki_int/root/sign-intermediate", "pki_int/roles/none", 1)
	if err := p.c.Sys().PutPolicy("edgeid-no-sign", noSignPolicy); err != nil {
		t.Fatal(err)
	}
	noSign := p.token(t, "edgeid-no-sign")
	roleIDFile, secretIDFile := p.appRole(t)
	good := p.token(t)
	tests := []struct {
		name string
		data string
		want []string
	}{
		{
			name: "wrong address",
			data: tokenData(fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t)), good, `            request_timeout = "2s"`),
			want: []string{"cannot log in to Vault at vault_addr", "connection refused"},
		},
		{
			name: "policy without sign-intermediate",
			data: tokenData(p.v.Addr, noSign, ""),
			want: []string{"may not update pki_int/root/sign-intermediate"},
		},
		{
			name: "unknown key",
			data: tokenData(p.v.Addr, good, `            pki_mount = "pki_int"`),
			want: []string{`An argument named "pki_mount" is not expected here`},
		},
		{
			name: "token and approle",
			data: tokenData(p.v.Addr, good, fmt.Sprintf("            approle_auth {\n                role_id_file = %q\n                secret_id_file = %q\n            }", roleIDFile, secretIDFile)),
			want: []string{"exactly one auth block is allowed, found token_auth and approle_auth"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := harness.NewSpireServer(t, harness.ServerConfig{Plugins: pluginBlock(t, tt.data)})
			log := s.StartExpectFailure(t, 90*time.Second)
			for _, w := range tt.want {
				// SPIRE's logfmt escapes quotes inside the error field.
				if !strings.Contains(log, w) && !strings.Contains(log, strings.ReplaceAll(w, `"`, `\"`)) {
					t.Fatalf("server log lacks %q:\n%s", w, lastLines(log, 30))
				}
			}
			if strings.Contains(log, good) {
				t.Fatal("the server log contains the Vault token")
			}
		})
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
