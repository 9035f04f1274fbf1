package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// VaultOptions configures a Vault server started by StartVault.
type VaultOptions struct {
	// Storage is "file" (default) or "raft" (integrated storage).
	Storage string
	// TLS serves HTTPS with a certificate for 127.0.0.1 from a CA the
	// harness makes (Vault.CACertPath).
	TLS bool
	// ExtraConfig is HCL appended to the generated server config.
	ExtraConfig string
}

// Vault is a running Vault server.
type Vault struct {
	// Addr is the API address, http(s)://127.0.0.1:<port>.
	Addr string
	// RootToken is the root token of a dev server; empty for a non-dev
	// server (whose root token comes from init).
	RootToken string
	// CACertPath is the CA of the server certificate when TLS is on.
	CACertPath string
	// Dir holds config, storage and log.
	Dir  string
	Dev  bool
	Proc *Process
}

// StartVaultDev starts a real Vault in dev mode (in-memory, unsealed, root
// token RootToken) and waits until it is active.
func StartVaultDev(t testing.TB) *Vault {
	return startVaultDev(t, false)
}

// StartVaultDevTLS is StartVaultDev serving HTTPS (Vault's -dev-tls), for
// tests of TLS certificate auth.
func StartVaultDevTLS(t testing.TB) *Vault {
	return startVaultDev(t, true)
}

func startVaultDev(t testing.TB, tls bool) *Vault {
	t.Helper()
	bin := VaultBin(t)
	v := &Vault{Dir: t.TempDir(), Dev: true, RootToken: "root-" + randomHex(t, 12)}
	port := FreePort(t)
	args := []string{"server", "-dev",
		"-dev-root-token-id=" + v.RootToken,
		"-dev-listen-address=127.0.0.1:" + itoa(port),
		"-dev-no-store-token",
	}
	scheme := "http"
	if tls {
		scheme = "https"
		certDir := filepath.Join(v.Dir, "tls")
		if err := os.MkdirAll(certDir, 0o700); err != nil {
			t.Fatalf("harness: %v", err)
		}
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+certDir)
		v.CACertPath = filepath.Join(certDir, "vault-ca.pem")
	}
	v.Addr = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
	t.Logf("harness: starting real vault (dev) at %s (%s)", v.Addr, bin)
	v.Proc = StartProcess(t, ProcessSpec{Name: "vault-dev", Bin: bin, Args: args, Dir: v.Dir})
	v.waitHTTP(t, 60*time.Second, true)
	return v
}

// StartVault starts a real non-dev Vault with file or raft storage. It is
// left uninitialised and sealed, as a fresh production Vault is.
func StartVault(t testing.TB, opts VaultOptions) *Vault {
	t.Helper()
	bin := VaultBin(t)
	v := &Vault{Dir: t.TempDir()}
	port := FreePort(t)
	scheme := "http"
	listener := "    tls_disable = true\n"
	if opts.TLS {
		scheme = "https"
		ca, err := NewTestCA("edgeid test vault CA")
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		certPEM, keyPEM, err := ca.IssueServer("127.0.0.1", []string{"localhost"})
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		v.CACertPath = filepath.Join(v.Dir, "vault-ca.pem")
		writeFile(t, v.CACertPath, ca.CertPEM, 0o644)
		writeFile(t, filepath.Join(v.Dir, "vault-cert.pem"), certPEM, 0o644)
		writeFile(t, filepath.Join(v.Dir, "vault-key.pem"), keyPEM, 0o600)
		listener = fmt.Sprintf("    tls_cert_file = %q\n    tls_key_file = %q\n", filepath.Join(v.Dir, "vault-cert.pem"), filepath.Join(v.Dir, "vault-key.pem"))
	}
	v.Addr = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
	storage := fmt.Sprintf("storage \"file\" {\n    path = %q\n}\n", filepath.Join(v.Dir, "data"))
	cluster := ""
	if opts.Storage == "raft" {
		if err := os.MkdirAll(filepath.Join(v.Dir, "raft"), 0o700); err != nil {
			t.Fatalf("harness: %v", err)
		}
		storage = fmt.Sprintf("storage \"raft\" {\n    path = %q\n    node_id = \"node1\"\n}\n", filepath.Join(v.Dir, "raft"))
		cluster = fmt.Sprintf("cluster_addr = \"https://127.0.0.1:%d\"\n", FreePort(t))
	} else if opts.Storage != "" && opts.Storage != "file" {
		t.Fatalf("harness: unknown Vault storage %q (want file or raft)", opts.Storage)
	}
	config := fmt.Sprintf("%slistener \"tcp\" {\n    address = \"127.0.0.1:%d\"\n%s}\napi_addr = %q\n%sdisable_mlock = true\nui = false\n%s\n",
		storage, port, listener, v.Addr, cluster, opts.ExtraConfig)
	cfgPath := filepath.Join(v.Dir, "vault.hcl")
	writeFile(t, cfgPath, []byte(config), 0o600)
	t.Logf("harness: starting real vault (non-dev, %s storage) at %s (%s)", storageName(opts.Storage), v.Addr, bin)
	v.Proc = StartProcess(t, ProcessSpec{Name: "vault", Bin: bin, Args: []string{"server", "-config", cfgPath}, Dir: v.Dir})
	v.waitHTTP(t, 60*time.Second, false)
	return v
}

func storageName(s string) string {
	if s == "" {
		return "file"
	}
	return s
}

// Client returns a Vault API client for this server, with the root token of
// a dev server set.
func (v *Vault) Client(t testing.TB) *vaultapi.Client {
	t.Helper()
	cfg := vaultapi.DefaultConfig()
	cfg.Address = v.Addr
	if v.CACertPath != "" {
		if err := cfg.ConfigureTLS(&vaultapi.TLSConfig{CACert: v.CACertPath}); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	// DefaultConfig reads VAULT_* from the environment; the harness wants
	// exactly this server and token.
	c.SetToken(v.RootToken)
	c.SetNamespace("")
	return c
}

// Stop stops the server. A non-dev server comes back sealed after Start; a
// dev server loses its data.
func (v *Vault) Stop(t testing.TB) {
	t.Helper()
	t.Logf("harness: stopping vault %s", v.Addr)
	v.Proc.Stop()
}

// Start starts a stopped server again on the same address and storage.
func (v *Vault) Start(t testing.TB) {
	t.Helper()
	t.Logf("harness: restarting vault %s", v.Addr)
	v.Proc.Restart(t)
	v.waitHTTP(t, 60*time.Second, v.Dev)
}

// waitHTTP waits until sys/health answers; with active it waits for an
// unsealed active node (HTTP 200).
func (v *Vault) waitHTTP(t testing.TB, timeout time.Duration, active bool) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	if v.CACertPath != "" {
		// The CA file of a -dev-tls server appears once it is up.
		client.Transport = &http.Transport{TLSClientConfig: insecureLoopbackTLS()}
	}
	err := Poll(timeout, func() error {
		if exited, werr := v.Proc.Exited(); exited {
			return &exitError{name: v.Proc.Name, err: werr}
		}
		resp, err := client.Get(v.Addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if active && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sys/health: HTTP %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("harness: vault at %s not up within %s: %v", v.Addr, timeout, err)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// VaultCLI runs the vault binary against v with its root token (or token,
// when set), returning combined output. The environment holds only what the
// CLI needs, so no test-wide VAULT_ADDR leaks into it.
func (v *Vault) VaultCLI(t testing.TB, token string, args ...string) (string, error) {
	t.Helper()
	if token == "" {
		token = v.RootToken
	}
	env := append(CleanEnv(v.Dir), "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+token)
	if v.CACertPath != "" {
		env = append(env, "VAULT_CACERT="+v.CACertPath)
	}
	out, err := runCommand(VaultBin(t), env, args...)
	return strings.TrimSpace(out), err
}
