package vaultpki

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
	"github.com/edgeid/edgeid/plugins/common/vaultclient"
	"github.com/edgeid/edgeid/test/harness"
	vaultapi "github.com/hashicorp/vault/api"
)

// bootstrapPolicy returns the policy and role name the bootstrap writes for
// the test's trust domain, so the test proves that exact policy is enough
// for the plugin, secret_id rotation included.
func bootstrapPolicy(t *testing.T) (name, role, text string) {
	t.Helper()
	cfg, err := vaultboot.Parse("bootstrap.hcl", []byte(`state_dir = "s"
trust_domain = "`+trustDomain+`"
vault {
  address = "http://127.0.0.1:8200"
}
init {
  secret_shares = 1
  secret_threshold = 1
  insecure_plaintext_shares = true
}
`))
	if err != nil {
		t.Fatal(err)
	}
	text, err = vaultboot.PolicyText(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return vaultboot.DefaultPolicyName(trustDomain), vaultboot.DefaultRoleName(trustDomain), text
}

// TestWrappedSecretIDRotates covers issue 14's "the secret_id has a TTL and
// is delivered by response wrapping; the cloud server re-logins before it
// expires". The secret_id lives 15s and tokens at most 10s. The plugin
// gets a wrapping token, unwraps it (the token is then spent), and keeps
// minting SPIRE CAs across six secret_id lifetimes, because it replaces
// its secret_id before each one expires. Without rotate_secret_id the same
// setup fails within one lifetime (run with EDGEID_TEST_NO_ROTATION=1 to
// see it).
func TestWrappedSecretIDRotates(t *testing.T) {
	p := startDevPKI(t, false)
	policy, role, text := bootstrapPolicy(t)
	if err := p.c.Sys().PutPolicy(policy, text); err != nil {
		t.Fatalf("put the bootstrap's policy: %v", err)
	}
	if err := p.c.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	const secretIDTTL = 15 * time.Second
	rolePath := "auth/approle/role/" + role
	p.write(t, rolePath, map[string]any{
		"token_policies": policy, "token_no_default_policy": true, "token_ttl": "5s", "token_max_ttl": "10s",
		"secret_id_ttl": "15s",
	})
	rid, err := p.c.Logical().Read(rolePath + "/role-id")
	if err != nil {
		t.Fatal(err)
	}
	wc, err := p.c.Clone()
	if err != nil {
		t.Fatal(err)
	}
	wc.SetToken(p.c.Token())
	wc.SetWrappingLookupFunc(func(string, string) string { return "5m" })
	wrapped, err := wc.Logical().Write(rolePath+"/secret-id", map[string]any{"metadata": `{"created_by":"test"}`})
	if err != nil || wrapped == nil || wrapped.WrapInfo == nil {
		t.Fatalf("wrapped secret-id: %v", err)
	}
	wrapToken := wrapped.WrapInfo.Token
	dir := t.TempDir()
	roleIDFile, secretIDFile := dir+"/role_id", dir+"/secret_id"
	mustWriteFile(t, roleIDFile, rid.Data["role_id"].(string))
	mustWriteFile(t, secretIDFile, wrapToken)

	rotate := "            # rotation off"
	if os.Getenv("EDGEID_TEST_NO_ROTATION") == "" {
		rotate = ""
	}
	data := approleData(p.v.Addr, roleIDFile, secretIDFile, `            request_timeout = "3s"`)
	if rotate == "" {
		data = strings.Replace(data, "secret_id_file = ", "rotate_secret_id = true\n                secret_id_file = ", 1)
	}
	s := harness.StartSpireServer(t, harness.ServerConfig{CATTL: 2 * time.Hour, Plugins: pluginBlock(t, data)})

	// The wrapping token is spent, and the file holds the secret_id, 0600.
	if _, err := p.c.Logical().Write("sys/wrapping/lookup", map[string]any{"token": wrapToken}); err == nil {
		t.Error("the wrapping token is still valid after the plugin started; it should have been unwrapped")
	}
	seen := map[string]bool{}
	readSecretID := func() string {
		raw, err := os.ReadFile(secretIDFile)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := os.Stat(secretIDFile)
		if info.Mode().Perm() != 0o600 {
			t.Errorf("secret_id file mode %v, want 0600", info.Mode().Perm())
		}
		v := strings.TrimSpace(string(raw))
		if vaultclient.IsWrappingToken(v) {
			t.Fatalf("the secret_id file still holds a wrapping token")
		}
		seen[v] = true
		return v
	}
	readSecretID()

	// Mint a new SPIRE CA through the plugin every 5s for six secret_id
	// lifetimes; every mint must succeed. Vault 1.21.0's AppRole login does
	// not itself check a secret_id's expiry: the expired entry is deleted
	// by the mount's periodic tidy, once a minute. Six lifetimes (90s)
	// make sure a tidy ran after the first secret_id expired.
	const lifetimes = 6
	start := time.Now()
	mints := 0
	for time.Since(start) < lifetimes*secretIDTTL {
		time.Sleep(5 * time.Second)
		out, err := s.CLIErr("localauthority", "x509", "prepare")
		if err != nil {
			t.Fatalf("minting a CA through the plugin failed after %s (%d mints so far): %v\n%s\nserver log:\n%s", time.Since(start).Round(time.Second), mints, err, out, lastLines(s.Proc.Log(), 30))
		}
		mints++
		cur := readSecretID()
		if l, err := p.c.Logical().Write(rolePath+"/secret-id/lookup", map[string]any{"secret_id": cur}); err != nil || l == nil {
			t.Errorf("the secret_id in the file is not live in Vault: %v", err)
		}
	}
	if len(seen) < lifetimes {
		t.Errorf("the plugin used %d distinct secret_ids over %s; with a %s TTL it should have rotated at least %d times", len(seen), lifetimes*secretIDTTL, secretIDTTL, lifetimes-1)
	}
	// Old secret_ids are destroyed, not left to pile up.
	if l, err := p.c.Logical().List(rolePath + "/secret-id"); err != nil || l == nil || len(l.Data["keys"].([]any)) > 2 {
		t.Errorf("secret_ids of the role: %v (err %v); want the current one (and at most one being replaced)", l, err)
	}
	// No secret in the server's log.
	log := s.Proc.Log()
	for v := range seen {
		if strings.Contains(log, v) {
			t.Errorf("the server log holds a secret_id")
		}
	}
	if strings.Contains(log, wrapToken) {
		t.Error("the server log holds the wrapping token")
	}
	if !strings.Contains(log, "Rotated the secret ID") {
		t.Errorf("the server log does not show a rotation:\n%s", lastLines(log, 30))
	}
	t.Logf("%d CAs minted over %s with %d distinct secret_ids", mints, time.Since(start).Round(time.Second), len(seen))
	if os.Getenv("EDGEID_TEST_DUMP") != "" {
		t.Logf("server log:\n%s", log)
	}
}
