package vaultclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
)

const (
	testWrapToken = "hvs.CAESIwrappingtokenfortests"
	testSecretID  = "6f1c4c1e-8a39-4d8e-b7a5-1a2b3c4d5e6f"
)

// wrapVault answers sys/wrapping/lookup and unwrap for one wrapping token
// (once), and AppRole logins, recording the secret IDs logged in with.
type wrapVault struct {
	creationPath string
	mu           sync.Mutex
	unwrapped    bool
	logins       []string
}

func (v *wrapVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	v.mu.Lock()
	defer v.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/sys/wrapping/lookup":
		if body["token"] != testWrapToken || v.unwrapped {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]any{"errors": []string{"wrapping token is not valid or does not exist"}})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"creation_path": v.creationPath, "creation_ttl": 300}})
	case "/v1/sys/wrapping/unwrap":
		if r.Header.Get("X-Vault-Token") != testWrapToken || v.unwrapped {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]any{"errors": []string{"wrapping token is not valid or does not exist"}})
			return
		}
		v.unwrapped = true
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"secret_id": testSecretID, "secret_id_accessor": "acc-1"}})
	case "/v1/auth/approle/login":
		sid, _ := body["secret_id"].(string)
		v.logins = append(v.logins, sid)
		json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": "hvs.session", "lease_duration": 3600, "metadata": map[string]string{"role_name": "spire-server-example-org"}}})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func wrapSetup(t *testing.T, creationPath string) (*wrapVault, *vaultapi.Client, *AppRoleAuth) {
	t.Helper()
	fake := &wrapVault{creationPath: creationPath}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	c, err := vaultapi.NewClient(&vaultapi.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	dir := t.TempDir()
	a := &AppRoleAuth{RoleIDFile: filepath.Join(dir, "role_id"), SecretIDFile: filepath.Join(dir, "secret_id")}
	if err := os.WriteFile(a.RoleIDFile, []byte("role\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.SecretIDFile, []byte(testWrapToken+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return fake, c, a
}

func TestAppRoleUnwrapsOnce(t *testing.T) {
	fake, c, a := wrapSetup(t, "auth/approle/role/spire-server-example-org/secret-id")
	for i := 0; i < 2; i++ {
		if _, err := a.Login(context.Background(), c); err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
	}
	if len(fake.logins) != 2 || fake.logins[0] != testSecretID || fake.logins[1] != testSecretID {
		t.Errorf("logins with %q, want the unwrapped secret ID twice", fake.logins)
	}
	raw, err := os.ReadFile(a.SecretIDFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(raw)) != testSecretID {
		t.Errorf("secret ID file holds %q, want the unwrapped secret ID", raw)
	}
	if info, _ := os.Stat(a.SecretIDFile); info.Mode().Perm() != 0o600 {
		t.Errorf("secret ID file mode %v, want 0600", info.Mode().Perm())
	}
	if a.roleName != "spire-server-example-org" {
		t.Errorf("role name %q from the login metadata", a.roleName)
	}
}

func TestAppRoleRefusesBadWrappingTokens(t *testing.T) {
	tests := []struct {
		name, creationPath, want string
		spent                    bool
	}{
		{"wraps another answer", "auth/token/create", "refusing it", false},
		{"wraps another mount's secret-id", "auth/other/role/x/secret-id", "refusing it", false},
		{"nested role path", "auth/approle/role/x/y/secret-id", "refusing it", false},
		{"already unwrapped (intercepted)", "auth/approle/role/x/secret-id", "not valid", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, c, a := wrapSetup(t, tt.creationPath)
			fake.unwrapped = tt.spent
			_, err := a.Login(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), testWrapToken) {
				t.Errorf("the error shows the wrapping token: %v", err)
			}
			if len(fake.logins) != 0 || fake.unwrapped != tt.spent {
				t.Errorf("logins %d, unwrapped %v: a refused token must be neither unwrapped nor used", len(fake.logins), fake.unwrapped)
			}
			if raw, _ := os.ReadFile(a.SecretIDFile); strings.TrimSpace(string(raw)) != testWrapToken {
				t.Errorf("the file changed after a refusal")
			}
		})
	}
}

func TestIsSecretIDPath(t *testing.T) {
	for p, want := range map[string]bool{
		"auth/approle/role/r/secret-id":        true,
		"auth/approle/role/r/secret-id/lookup": false,
		"auth/approle/role//secret-id":         false,
		"auth/approle/role/a/b/secret-id":      false,
		"auth/approle2/role/r/secret-id":       false,
		"sys/wrapping/wrap":                    false,
		"":                                     false,
	} {
		if got := isSecretIDPath(p, "approle"); got != want {
			t.Errorf("isSecretIDPath(%q) = %v, want %v", p, got, want)
		}
	}
	for v, want := range map[string]bool{testWrapToken: true, "s.legacy": true, testSecretID: false, "": false} {
		if IsWrappingToken(v) != want {
			t.Errorf("IsWrappingToken(%q) = %v", v, !want)
		}
	}
}
