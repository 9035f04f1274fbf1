package vaultpki

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
	vaultapi "github.com/hashicorp/vault/api"
)

// TestKubernetesAuthWithRealAPIServer: vault_pki's k8s_auth logs in with a
// service-account token from a real kube-apiserver's TokenRequest API, and
// a real Vault checks it with a TokenReview against that API server. The
// SPIRE server then gets its CA from Vault. A token of a service account
// the Vault role does not name is refused, and so is the right account's
// token once the account is deleted: the review is live, not a signature
// check that a deleted account would still pass.
func TestKubernetesAuthWithRealAPIServer(t *testing.T) {
	k := harness.StartKubeAPIServer(t)
	// Vault reviews tokens as a service account allowed to (the usual
	// system:auth-delegator binding).
	k.CreateServiceAccount(t, "default", "vault-reviewer")
	k.BindClusterRole(t, "system:auth-delegator", "default", "vault-reviewer")
	reviewer := k.ServiceAccountToken(t, "default", "vault-reviewer", time.Hour)
	k.CreateServiceAccount(t, "default", "spire-server")
	k.CreateServiceAccount(t, "default", "other")

	p := startDevPKI(t, false)
	if err := p.c.Sys().EnableAuthWithOptions("kubernetes", &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatalf("enable kubernetes auth: %v", err)
	}
	p.write(t, "auth/kubernetes/config", map[string]any{
		"kubernetes_host":      k.URL,
		"kubernetes_ca_cert":   string(k.CAPEM),
		"token_reviewer_jwt":   reviewer,
		"disable_local_ca_jwt": true,
	})
	p.write(t, "auth/kubernetes/role/spire-server", map[string]any{
		"bound_service_account_names":      []string{"spire-server"},
		"bound_service_account_namespaces": []string{"default"},
		"token_policies":                   []string{policyName},
		"token_ttl":                        "1h",
	})
	dir := t.TempDir()
	tokenFile := func(name string) string {
		path := filepath.Join(dir, name+".token")
		if err := os.WriteFile(path, []byte(k.ServiceAccountToken(t, "default", name, time.Hour)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	k8sData := func(path string) string {
		return fmt.Sprintf(`            vault_addr = %q
            kv_mount_point = "secret"
            request_timeout = "5s"
            k8s_auth {
                k8s_auth_role_name = "spire-server"
                token_path = %q
            }`, p.v.Addr, path)
	}

	// The right account: Vault reviews its token with the API server and
	// the server's CA chains to the Vault root.
	good := tokenFile("spire-server")
	// Vault's first review may race the reviewer's RBAC binding.
	harness.Eventually(t, 30*time.Second, func() error {
		_, err := p.c.Logical().Write("auth/kubernetes/login", map[string]any{"role": "spire-server", "jwt": readFile(t, good)})
		return err
	})
	s := harness.StartSpireServer(t, harness.ServerConfig{Plugins: pluginBlock(t, k8sData(good))})
	if err := bundleEquals(s, t, p.root); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Proc.Log(), "auth_method=kubernetes") {
		t.Fatal("the server log does not show a kubernetes login by the plugin")
	}
	if strings.Contains(s.Proc.Log(), readFile(t, good)) {
		t.Fatal("the server log contains the service-account token")
	}
	s.Stop(t)

	// Another account of the same cluster: Vault's role does not name it.
	other := harness.NewSpireServer(t, harness.ServerConfig{Plugins: pluginBlock(t, k8sData(tokenFile("other")))})
	if log := other.StartExpectFailure(t, 90*time.Second); !strings.Contains(log, "cannot log in to Vault") {
		t.Fatalf("a token of service account default/other did not stop the server at its Vault login:\n%s", lastLines(log, 30))
	}

	// The right account's token, after the account is deleted: its
	// signature and expiry are still good, but the API server's review
	// refuses it.
	k.DeleteServiceAccount(t, "default", "spire-server")
	harness.Eventually(t, 30*time.Second, func() error {
		if _, err := p.c.Logical().Write("auth/kubernetes/login", map[string]any{"role": "spire-server", "jwt": readFile(t, good)}); err == nil {
			return fmt.Errorf("Vault still accepts the token of the deleted service account")
		}
		return nil
	})
	gone := harness.NewSpireServer(t, harness.ServerConfig{Plugins: pluginBlock(t, k8sData(good))})
	if log := gone.StartExpectFailure(t, 90*time.Second); !strings.Contains(log, "cannot log in to Vault") {
		t.Fatalf("the token of a deleted service account did not stop the server at its Vault login:\n%s", lastLines(log, 30))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}
