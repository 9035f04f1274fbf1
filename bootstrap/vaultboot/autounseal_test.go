package vaultboot

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
)

// autoUnsealConfig is a configuration for a Vault that unseals itself,
// with init and auto_unseal blocks given by the caller.
func autoUnsealConfig(dir, addr, autoUnseal, init string) string {
	return `state_dir = "` + dir + `"
vault {
  address      = "` + addr + `"
  wait_timeout = "5s"
}
` + autoUnseal + `
init {
` + init + `
}
unseal {
  age_identity_env = "TEST_AGE_IDS"
}
`
}

// TestAutoUnsealConfigProblems checks the exact message of each problem
// with the auto_unseal block and the init keys that go with it.
func TestAutoUnsealConfigProblems(t *testing.T) {
	recs, _ := testRecipients(t, 3)
	ages := `age_recipients = ["` + strings.Join(recs, `", "`) + `"]`
	const block = `auto_unseal {
  transit_address = "https://unsealer.example:8200"
}`
	tests := []struct {
		name       string
		autoUnseal string
		init       string
		want       string
	}{
		{"secret shares with auto-unseal", block, "secret_shares = 3\nsecret_threshold = 2\nrecovery_shares = 3\nrecovery_threshold = 2\n" + ages,
			"vaultboot: invalid config: a.hcl: init.secret_shares: Vault unseals itself (auto_unseal block), so it has recovery shares, not unseal shares: set init.recovery_shares and init.recovery_threshold instead; " +
				"a.hcl: init.secret_threshold: Vault unseals itself (auto_unseal block), so it has recovery shares, not unseal shares: set init.recovery_shares and init.recovery_threshold instead"},
		{"recovery shares without auto-unseal", "", "secret_shares = 3\nsecret_threshold = 2\nrecovery_shares = 3\n" + ages,
			"vaultboot: invalid config: a.hcl: init.recovery_shares: only with an auto_unseal block: a Vault with a Shamir seal has unseal shares (init.secret_shares and init.secret_threshold)"},
		{"recovery threshold above the shares", block, "recovery_shares = 3\nrecovery_threshold = 4\n" + ages,
			"vaultboot: invalid config: a.hcl: init.recovery_threshold: must be between 2 and recovery_shares (3) (1 only with a single share), got 4"},
		{"recovery shares out of range", block, "recovery_shares = 256\nrecovery_threshold = 2\ninsecure_plaintext_shares = true",
			"vaultboot: invalid config: a.hcl: init.recovery_shares: must be between 1 and 255, got 256"},
		{"one recipient per recovery share", block, "recovery_shares = 2\nrecovery_threshold = 2\n" + ages,
			"vaultboot: invalid config: a.hcl: init.age_recipients: per_share mode needs one recipient per share: 3 recipients for 2 shares (init.recovery_shares; or set age_recipient_mode = \"all\")"},
		{"no transit address", "auto_unseal {\n  transit_address = \"\"\n}", "recovery_shares = 3\nrecovery_threshold = 2\n" + ages,
			"vaultboot: invalid config: a.hcl: auto_unseal.transit_address: must be an http:// or https:// URL, got \"\""},
		{"transit address without scheme", "auto_unseal {\n  transit_address = \"unsealer:8200\"\n}", "recovery_shares = 3\nrecovery_threshold = 2\n" + ages,
			"vaultboot: invalid config: a.hcl: auto_unseal.transit_address: must be an http:// or https:// URL, got \"unsealer:8200\""},
		{"other seal type", "auto_unseal {\n  type = \"awskms\"\n  transit_address = \"https://u:8200\"\n}", "recovery_shares = 3\nrecovery_threshold = 2\n" + ages,
			"vaultboot: invalid config: a.hcl: auto_unseal.type: must be \"transit\" (Vault's seal \"transit\"), got \"awskms\""},
		{"bad wait timeout", "auto_unseal {\n  transit_address = \"https://u:8200\"\n  wait_timeout = \"0s\"\n}", "recovery_shares = 3\nrecovery_threshold = 2\n" + ages,
			"vaultboot: invalid config: a.hcl: auto_unseal.wait_timeout: must be positive, got \"0s\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("a.hcl", []byte(autoUnsealConfig("s", "http://127.0.0.1:8200", tt.autoUnseal, tt.init)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = buildConfig(cfg)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
	t.Run("transit_address is required in the block", func(t *testing.T) {
		_, err := Parse("a.hcl", []byte("state_dir = \"s\"\nvault {\n address = \"http://a\"\n}\nauto_unseal {\n}\n"))
		if err == nil || !strings.Contains(err.Error(), "a.hcl:5,") || !strings.Contains(err.Error(), `"transit_address" is required`) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestAutoUnsealDefaults(t *testing.T) {
	recs, _ := testRecipients(t, 5)
	dir := t.TempDir()
	text := autoUnsealConfig("state", "http://127.0.0.1:8200", "auto_unseal {\n  transit_address = \"https://unsealer:8200/\"\n}",
		`age_recipients = ["`+strings.Join(recs, `", "`)+`"]`)
	cfg, err := Parse(filepath.Join(dir, "b.hcl"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	c, err := buildConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"auto-unseal", c.autoUnseal, true},
		{"seal type", c.sealType, "transit"},
		{"transit address without the trailing slash", c.transitAddr, "https://unsealer:8200"},
		{"wait defaults to vault.wait_timeout", c.unsealWait, 5 * time.Second},
		{"recovery shares (Vault's default)", c.shares, 5},
		{"recovery threshold (Vault's default)", c.threshold, 3},
		{"recovery shares go to their own directory", c.sharesDir, filepath.Join(dir, "state", "recovery")},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// transitFake plays a Vault whose seal is "transit": uninitialised until
// sys/init, then unsealed (as Vault unseals itself at init), or sealed
// for good when stuck is set (its Transit unsealer is down). It records
// every state-changing request and the init request's body.
type transitFake struct {
	mu          sync.Mutex
	sealType    string
	initialized bool
	stuck       bool
	writes      []string
	initBody    map[string]any
}

func (f *transitFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodGet {
		f.writes = append(f.writes, r.Method+" "+r.URL.Path)
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/sys/seal-status":
		json.NewEncoder(w).Encode(map[string]any{"type": f.sealType, "recovery_seal": f.sealType != "shamir",
			"initialized": f.initialized, "sealed": !f.initialized || f.stuck, "t": 2, "n": 3, "progress": 0, "version": "fake"})
	case "/v1/sys/health":
		if !f.initialized || f.stuck {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(map[string]any{"initialized": f.initialized, "sealed": !f.initialized || f.stuck, "standby": false})
	case "/v1/sys/generate-root/attempt":
		if r.Method == http.MethodGet {
			json.NewEncoder(w).Encode(map[string]any{"started": false, "progress": 0, "required": 2, "complete": false})
			return
		}
		w.WriteHeader(http.StatusForbidden)
	case "/v1/sys/init":
		json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&f.initBody)
		f.initialized = true
		json.NewEncoder(w).Encode(map[string]any{"keys": []string{}, "recovery_keys": []string{strings.Repeat("ab", 33), strings.Repeat("cd", 33), strings.Repeat("ef", 33)}, "root_token": "hvs.fake-root"})
	default:
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errors":["permission denied"]}`)
	}
}

func (f *transitFake) state() (writes []string, init map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...), f.initBody
}

func newTransitBootstrapper(t *testing.T, addr, dir, extraAuto string, recs []string, identities string) *Bootstrapper {
	t.Helper()
	text := autoUnsealConfig(dir, addr, "auto_unseal {\n  transit_address = \"http://127.0.0.1:1\"\n"+extraAuto+"}",
		"recovery_shares = 3\nrecovery_threshold = 2\nage_recipients = [\""+strings.Join(recs, "\", \"")+"\"]")
	cfg, err := Parse(filepath.Join(dir, "b.hcl"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Getenv: func(k string) string { return map[string]string{"TEST_AGE_IDS": identities}[k] },
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAutoUnsealInitKeepsRecoveryShares: init of a Vault that unseals
// itself asks for recovery shares only (Vault refuses secret_shares for
// it), stores them as recovery shares, and submits nothing to unseal.
func TestAutoUnsealInitKeepsRecoveryShares(t *testing.T) {
	fake := &transitFake{sealType: "transit"}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	recs, ids := testRecipients(t, 3)
	dir := t.TempDir()
	// The run fails after init (the fake knows no token or PKI): what
	// matters here is what init asked for and what it stored.
	newTransitBootstrapper(t, srv.URL, dir, "", recs, "").Run(context.Background())

	writes, body := fake.state()
	if body == nil {
		t.Fatal("the bootstrap did not initialise Vault")
	}
	if body["recovery_shares"] != 3.0 || body["recovery_threshold"] != 2.0 || body["secret_shares"] != 0.0 || body["secret_threshold"] != 0.0 {
		t.Errorf("init request %v, want recovery_shares 3, recovery_threshold 2 and no secret shares", body)
	}
	for _, w := range writes {
		if strings.HasPrefix(w, "PUT /v1/sys/unseal") || strings.HasPrefix(w, "POST /v1/sys/unseal") {
			t.Errorf("the bootstrap submitted a share to a Vault that unseals itself: %s", w)
		}
	}
	m, err := readManifest(filepath.Join(dir, "recovery"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != kindRecovery || m.Shares != 3 || m.Threshold != 2 || len(m.Files) != 3 {
		t.Fatalf("manifest %+v, want 3 recovery shares, threshold 2", m)
	}
	// The shares are the recovery keys Vault returned, each to its custodian.
	var all []age.Identity
	for _, id := range ids {
		all = append(all, id)
	}
	plain, err := decryptShares(filepath.Join(dir, "recovery"), m, &identities{age: all}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if plain[0] != strings.Repeat("ab", 33) || plain[2] != strings.Repeat("ef", 33) {
		t.Fatalf("stored shares are not Vault's recovery keys")
	}
}

// TestAutoUnsealStaysSealed: a Vault that unseals itself but stays sealed
// (its Transit unsealer is down) fails the run within
// auto_unseal.wait_timeout, naming the Transit address, and gets no
// state-changing request: no share is decrypted or submitted.
func TestAutoUnsealStaysSealed(t *testing.T) {
	fake := &transitFake{sealType: "transit", initialized: true, stuck: true}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	recs, _ := testRecipients(t, 3)
	dir := t.TempDir()
	b := newTransitBootstrapper(t, srv.URL, dir, "  wait_timeout = \"1s\"\n", recs, "")
	start := time.Now()
	_, err := b.Run(context.Background())
	want := "vaultboot: Vault at " + srv.URL + " is still sealed after 1s (auto_unseal.wait_timeout in " + filepath.Join(dir, "b.hcl") +
		"): it unseals itself with the Transit engine at http://127.0.0.1:1, and the bootstrap submits no share to it; check that this Transit Vault is up and unsealed and that Vault's seal token may encrypt and decrypt with its key (Vault's log says why)"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s for a 1s wait", d)
	}
	if writes, _ := fake.state(); len(writes) != 0 {
		t.Fatalf("state-changing requests sent to Vault: %v", writes)
	}
}

// TestSealTypeMismatch: the configuration and Vault's seal must agree, or
// the run stops before it changes anything.
func TestSealTypeMismatch(t *testing.T) {
	recs, _ := testRecipients(t, 3)
	t.Run("auto_unseal against a Shamir Vault", func(t *testing.T) {
		fake := &transitFake{sealType: "shamir"}
		srv := httptest.NewServer(fake)
		defer srv.Close()
		dir := t.TempDir()
		_, err := newTransitBootstrapper(t, srv.URL, dir, "", recs, "").Run(context.Background())
		want := "vaultboot: " + filepath.Join(dir, "b.hcl") + " has an auto_unseal block, but Vault at " + srv.URL + " has a \"shamir\" seal: give Vault a seal \"transit\" stanza (the Transit engine at http://127.0.0.1:1) and restart it, or remove auto_unseal"
		if err == nil || err.Error() != want {
			t.Fatalf("error:\n%v\nwant:\n%s", err, want)
		}
		if writes, _ := fake.state(); len(writes) != 0 {
			t.Fatalf("state-changing requests: %v", writes)
		}
	})
	t.Run("no auto_unseal against a transit Vault", func(t *testing.T) {
		fake := &transitFake{sealType: "transit"}
		srv := httptest.NewServer(fake)
		defer srv.Close()
		dir := t.TempDir()
		text := "state_dir = \"" + dir + "\"\nvault {\n address = \"" + srv.URL + "\"\n}\ninit {\n secret_shares = 3\n secret_threshold = 2\n age_recipients = [\"" + strings.Join(recs, "\", \"") + "\"]\n}\n"
		cfg, err := Parse(filepath.Join(dir, "b.hcl"), []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Run(context.Background())
		want := "vaultboot: Vault at " + srv.URL + " unseals itself (seal type \"transit\"), but " + filepath.Join(dir, "b.hcl") + " has no auto_unseal block: add one naming the unsealer (auto_unseal { transit_address = \"...\" }), so that init keeps recovery shares"
		if err == nil || err.Error() != want {
			t.Fatalf("error:\n%v\nwant:\n%s", err, want)
		}
		if writes, _ := fake.state(); len(writes) != 0 {
			t.Fatalf("state-changing requests: %v", writes)
		}
	})
}

// TestUnsealSharesAreNotRecoveryShares: the unseal shares of a Shamir
// Vault found where an auto-unsealed Vault's recovery shares should be are
// refused before generate-root starts.
func TestUnsealSharesAreNotRecoveryShares(t *testing.T) {
	fake := &transitFake{sealType: "transit", initialized: true}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	recs, ids := testRecipients(t, 3)
	dir := t.TempDir()
	c := ageConfig(t, dir, recs, true)
	enc, err := newShareEncrypter(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.writeShares(filepath.Join(dir, "recovery"), kindUnseal, 2, fakeShares(t, 3), nil, nil); err != nil {
		t.Fatal(err)
	}
	_, err = newTransitBootstrapper(t, srv.URL, dir, "", recs, ids[0].String()+"\n"+ids[1].String()).Run(context.Background())
	want := "vaultboot: the shares in " + filepath.Join(dir, "recovery") + " are unseal shares, but Vault unseals itself (auto_unseal in " + filepath.Join(dir, "b.hcl") + ") and its root token comes from recovery shares; the bootstrap does not migrate a Vault from a Shamir seal to auto-unseal"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, want)
	}
	for _, w := range func() []string { w, _ := fake.state(); return w }() {
		if strings.Contains(w, "generate-root") {
			t.Fatalf("generate-root was started: %v", w)
		}
	}
}

// TestExampleAutoUnsealIsValid: the sample's commented auto_unseal
// variant, switched on, is a valid configuration.
func TestExampleAutoUnsealIsValid(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "conf", "bootstrap.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, r := range []struct{ old, new string }{
		{"# auto_unseal {", "auto_unseal {"},
		{"#   type ", "  type "},
		{"#   transit_address ", "  transit_address "},
		{"#   wait_timeout ", "  wait_timeout "},
		{"# }\n\ninit {", "}\n\ninit {"},
		{"  secret_shares    = 5\n  secret_threshold = 3\n", ""},
		{"  # recovery_shares    = 5\n  # recovery_threshold = 3\n", "  recovery_shares    = 5\n  recovery_threshold = 3\n"},
	} {
		if !strings.Contains(text, r.old) {
			t.Fatalf("conf/bootstrap.hcl lacks %q", r.old)
		}
		text = strings.Replace(text, r.old, r.new, 1)
	}
	cfg, err := Parse("bootstrap.hcl", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	c, err := buildConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !c.autoUnseal || c.shares != 5 || c.transitAddr != "https://vault-unsealer.example.org:8200" {
		t.Fatalf("auto_unseal %v, %d shares, transit %q", c.autoUnseal, c.shares, c.transitAddr)
	}
}
