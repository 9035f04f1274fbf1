package harness

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/internal/pemutil"
	vaultapi "github.com/hashicorp/vault/api"
)

func TestMissingBinaryNamesIt(t *testing.T) {
	v := map[string]string{"SPIRE_VERSION": "v1.13.3", "EDGEID_BIN": t.TempDir()}
	_, err := pinnedPath(v, "spire-server", "SPIRE_VERSION", "spire")
	if err == nil {
		t.Fatal("expected an error for a binary missing from the cache")
	}
	for _, want := range []string{"spire-server v1.13.3 is missing", filepath.Join(v["EDGEID_BIN"], "spire-server-v1.13.3", "spire-server"), "make tools"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestVersionsArePinned(t *testing.T) {
	v := Versions(t)
	want := map[string]string{"SPIRE_VERSION": "v1.13.3", "VAULT_VERSION": "v1.21.0", "SPIFFE_HELPER_VERSION": "v0.11.0", "KUBE_VERSION": "v1.34.2", "ETCD_VERSION": "v3.6.4"}
	for k, val := range want {
		if v[k] != val {
			t.Errorf("%s = %q, want %q", k, v[k], val)
		}
	}
}

// TestKubeAPIServerServesNodes starts the real kube-apiserver and checks
// what the kubeedge tests rely on: Nodes can be created, read and deleted,
// an outage and a restart work, and the reader's kubeconfig can get a
// Node and do nothing else.
func TestKubeAPIServerServesNodes(t *testing.T) {
	k := StartKubeAPIServer(t)
	uid := k.CreateNode(t, "edge-harness-1", map[string]string{"node-role.kubernetes.io/edge": ""})
	code, body, err := k.ReaderRequest(http.MethodGet, "/api/v1/nodes/edge-harness-1", nil)
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), uid) {
		t.Fatalf("reader GET node: %d %s %v", code, body, err)
	}
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/nodes"},
		{http.MethodDelete, "/api/v1/nodes/edge-harness-1"},
		{http.MethodGet, "/api/v1/namespaces/kube-system/secrets"},
	} {
		if code, body, err := k.ReaderRequest(req.method, req.path, nil); err != nil || code != http.StatusForbidden {
			t.Errorf("reader %s %s: %d %s %v, want 403", req.method, req.path, code, body, err)
		}
	}
	kc, err := os.Stat(k.Kubeconfig)
	if err != nil || kc.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v %v, want 0600", kc.Mode(), err)
	}

	k.Stop(t)
	if _, _, err := k.ReaderRequest(http.MethodGet, "/api/v1/nodes/edge-harness-1", nil); err == nil {
		t.Fatal("the API server still answers after Stop")
	}
	k.Start(t)
	if code, _, err := k.ReaderRequest(http.MethodGet, "/api/v1/nodes/edge-harness-1", nil); err != nil || code != http.StatusOK {
		t.Fatalf("after restart: %d %v", code, err)
	}
	k.DeleteNode(t, "edge-harness-1")
	if code, _, _ := k.ReaderRequest(http.MethodGet, "/api/v1/nodes/edge-harness-1", nil); code != http.StatusNotFound {
		t.Fatalf("deleted node answers %d, want 404", code)
	}
}

func TestVaultDevServes(t *testing.T) {
	v := StartVaultDev(t)
	c := v.Client(t)
	health, err := c.Sys().Health()
	if err != nil {
		t.Fatal(err)
	}
	if !health.Initialized || health.Sealed || !strings.HasPrefix(health.Version, "1.21.0") {
		t.Fatalf("dev vault health = %+v, want initialised, unsealed, version 1.21.0", health)
	}
	if err := c.Sys().Mount("pki", &vaultapi.MountInput{Type: "pki"}); err != nil {
		t.Fatalf("mount pki: %v", err)
	}
	root, err := c.Logical().Write("pki/root/generate/internal", map[string]any{"common_name": "harness test root", "key_type": "ec", "ttl": "1h"})
	if err != nil {
		t.Fatalf("generate PKI root: %v", err)
	}
	if certs, err := pemutil.ParseCertificates([]byte(root.Data["certificate"].(string))); err != nil || !certs[0].IsCA {
		t.Fatalf("PKI root is not a CA certificate: %v", err)
	}
}

func TestVaultNonDevStartsUninitialisedAndRestarts(t *testing.T) {
	for _, storage := range []string{"file", "raft"} {
		t.Run(storage, func(t *testing.T) {
			v := StartVault(t, VaultOptions{Storage: storage, TLS: storage == "raft"})
			c := v.Client(t)
			init, err := c.Sys().InitStatus()
			if err != nil {
				t.Fatal(err)
			}
			if init {
				t.Fatal("a fresh non-dev Vault reports itself initialised")
			}
			v.Stop(t)
			v.Start(t)
			if _, err := c.Sys().InitStatus(); err != nil {
				t.Fatalf("after restart: %v", err)
			}
		})
	}
}

func TestPostgresAcceptsConnections(t *testing.T) {
	pg := StartPostgres(t)
	if !strings.Contains(pg.DSN, "dbname=spire") {
		t.Fatalf("DSN %q", pg.DSN)
	}
}

func TestDumpedLogsHideDevVaultSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.log")
	log := "==> Vault server started!\nUnseal Key: c2VjcmV0LXVuc2VhbA==\nRoot Token: hvs.secret-root\nlistening\n"
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	got := tail(path, 10)
	if strings.Contains(got, "hvs.secret-root") || strings.Contains(got, "c2VjcmV0LXVuc2VhbA==") || !strings.Contains(got, "Root Token: (redacted)") {
		t.Fatalf("dumped log:\n%s", got)
	}
}
