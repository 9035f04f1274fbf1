package bootstrap

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgeid/edgeid/bootstrap/cli"
	"github.com/edgeid/edgeid/bootstrap/vaultboot"
	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
	"github.com/edgeid/edgeid/test/harness"
)

// The unsealer's Transit key and the policy of the managed Vault's token.
const (
	transitKey    = "edgeid-unseal"
	transitPolicy = "edgeid-unseal-only"
)

// unsealer is a second real Vault (non-dev, file storage, so that it
// survives a restart) whose Transit engine unseals the managed one.
type unsealer struct {
	v *harness.Vault
	// key is its own single unseal key, root its root token (test only).
	key, root string
}

// startUnsealer starts the unsealer, initialises and unseals it, enables
// transit with one key, and writes a policy that allows only encrypt and
// decrypt with that key.
func startUnsealer(t *testing.T) *unsealer {
	t.Helper()
	u := &unsealer{v: harness.StartVault(t, harness.VaultOptions{})}
	c := u.client(t, "")
	init, err := c.Sys().Init(&vaultapi.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("init the unsealer: %v", err)
	}
	u.key, u.root = init.Keys[0], init.RootToken
	u.unseal(t)
	c.SetToken(u.root)
	if err := c.Sys().Mount("transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("transit/keys/"+transitKey, nil); err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf("path \"transit/encrypt/%[1]s\" {\n  capabilities = [\"update\"]\n}\npath \"transit/decrypt/%[1]s\" {\n  capabilities = [\"update\"]\n}\n", transitKey)
	if err := c.Sys().PutPolicy(transitPolicy, policy); err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().PutPolicy("encrypt-only", fmt.Sprintf("path \"transit/encrypt/%s\" {\n  capabilities = [\"update\"]\n}\n", transitKey)); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *unsealer) client(t *testing.T, token string) *vaultapi.Client {
	t.Helper()
	c := u.v.Client(t)
	c.ClearToken()
	if token != "" {
		c.SetToken(token)
	}
	return c
}

func (u *unsealer) unseal(t *testing.T) {
	t.Helper()
	st, err := u.client(t, "").Sys().Unseal(u.key)
	if err != nil || st.Sealed {
		t.Fatalf("unseal the unsealer: sealed=%v err=%v", st != nil && st.Sealed, err)
	}
	harness.Eventually(t, 30*time.Second, func() error {
		h, err := u.client(t, "").Sys().Health()
		if err != nil || h.Sealed || h.Standby {
			return fmt.Errorf("unsealer not active yet (%v)", err)
		}
		return nil
	})
}

// token makes an orphan token with only the given policy (no default
// policy) for the managed Vault's seal, and writes it to path alone (no
// newline), 0600.
func (u *unsealer) token(t *testing.T, policy, path string) string {
	t.Helper()
	sec, err := u.client(t, u.root).Auth().Token().CreateOrphan(&vaultapi.TokenCreateRequest{
		Policies: []string{policy}, NoDefaultPolicy: true, Period: "24h", DisplayName: "edgeid-managed-vault-seal",
	})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, sec.Auth.ClientToken, 0o600)
	return sec.Auth.ClientToken
}

// renderedSeal renders a topology whose vault block has seal_transit for
// the unsealer, and returns the seal stanza of the vault.hcl edgeid
// renders: the managed Vault of these tests runs with exactly that text.
func renderedSeal(t *testing.T, addr, tokenFile string) string {
	t.Helper()
	src := fmt.Sprintf(`trust_domain = "example.org"
vault {
  seal_transit {
    address    = %q
    key_name   = %q
    token_file = %q
  }
}
site "a" {
  node "n1" {}
  workload "app" {
    selectors = ["unix:uid:1000"]
  }
}
`, addr, transitKey, tokenFile)
	dir := t.TempDir()
	top, err := topology.Parse([]byte(src), filepath.Join(dir, "topology.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := render.Build(top, render.Env{
		Embedded: true, HostRoot: func(h string) string { return filepath.Join(dir, h) },
		HostAddr: func(string) string { return "127.0.0.1" }, Port: func(_, _ string, def int) int { return def },
		UnsealRecipient: newRecipient(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range plan.Hosts {
		for _, f := range h.Files {
			if filepath.Base(f.Path) != "vault.hcl" {
				continue
			}
			text := string(f.Content)
			start := strings.Index(text, "seal \"transit\" {")
			if start < 0 {
				t.Fatalf("rendered vault.hcl has no seal \"transit\" stanza:\n%s", text)
			}
			end := strings.Index(text[start:], "\n}\n")
			return text[start : start+end+3]
		}
	}
	t.Fatal("no vault.hcl rendered")
	return ""
}

func newRecipient(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

// sealEnv is a managed Vault that unseals itself from an unsealer, and a
// bootstrap configuration for it with three age custodians, two of whom
// are needed.
type sealEnv struct {
	*env
	u         *unsealer
	tokenFile string
}

func newSealEnv(t *testing.T) *sealEnv {
	t.Helper()
	u := startUnsealer(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "transit-token")
	u.token(t, transitPolicy, tokenFile)
	seal := renderedSeal(t, u.v.Addr, tokenFile)
	t.Logf("managed Vault's seal stanza, as edgeid renders it:\n%s", seal)

	e := &env{t: t, dir: dir}
	e.bin = buildBootstrap(t)
	e.vault = harness.StartVault(t, harness.VaultOptions{Storage: "raft", ExtraConfig: seal})
	var recs []string
	for i := 0; i < shareCount; i++ {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		e.ids = append(e.ids, id)
		recs = append(recs, id.Recipient().String())
	}
	e.identityFile = filepath.Join(dir, "custodian-1.key")
	writeFile(t, e.identityFile, e.ids[0].String()+"\n", 0o600)
	e.stateDir = filepath.Join(dir, "state")
	e.auditLog = filepath.Join(dir, "audit", "vault-audit.log")
	if err := os.MkdirAll(filepath.Dir(e.auditLog), 0o700); err != nil {
		t.Fatal(err)
	}
	e.logPath = filepath.Join(dir, "bootstrap-runs.log")
	e.cfgPath = filepath.Join(dir, "bootstrap.hcl")
	writeFile(t, e.cfgPath, e.sealConfig(recs, u.v.Addr, "30s", "30s"), 0o600)
	return &sealEnv{env: e, u: u, tokenFile: tokenFile}
}

// sealConfig is the bootstrap configuration: auto_unseal from the
// unsealer, recovery shares to the custodians.
func (e *env) sealConfig(recs []string, transitAddr, waitTimeout, unsealWait string) string {
	text := e.config(recs, e.identityFile, "")
	text = strings.Replace(text, fmt.Sprintf("  secret_shares    = %d\n  secret_threshold = %d\n", shareCount, threshold),
		fmt.Sprintf("  recovery_shares    = %d\n  recovery_threshold = %d\n", shareCount, threshold), 1)
	text = strings.Replace(text, `wait_timeout    = "30s"`, fmt.Sprintf("wait_timeout    = %q", waitTimeout), 1)
	return strings.Replace(text, "init {", fmt.Sprintf("auto_unseal {\n  transit_address = %q\n  wait_timeout    = %q\n}\ninit {", transitAddr, unsealWait), 1)
}

// buildBootstrap builds the bootstrap binary of this tree into the test's
// own directory, with the crash hook (tag edgeid_testhooks).
func buildBootstrap(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "edgeid-bootstrap")
	cmd := exec.Command("go", "build", "-tags", "edgeid_testhooks", "-o", out, "./bootstrap/cmd/edgeid-bootstrap")
	cmd.Dir = harness.RepoRoot(t)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build edgeid-bootstrap: %v\n%s", err, msg)
	}
	return out
}

// recoveryShares decrypts the recovery share files with the custodians'
// identities, independently of the bootstrap's code.
func (e *env) recoveryShares() []string {
	e.t.Helper()
	var out []string
	for i := 0; i < shareCount; i++ {
		data, err := os.ReadFile(filepath.Join(e.stateDir, "recovery", fmt.Sprintf("share-%d.age", i+1)))
		if err != nil {
			e.t.Fatal(err)
		}
		r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), e.ids[i])
		if err != nil {
			e.t.Fatalf("recovery share %d: %v", i+1, err)
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, strings.TrimSpace(string(plain)))
	}
	return out
}

// withRecoveryRoot runs fn with a root token the test generates from two
// recovery shares (generate-root works with recovery keys on a Vault that
// unseals itself), revoked right after.
func (e *env) withRecoveryRoot(fn func(c *vaultapi.Client, accessor string)) {
	e.t.Helper()
	c := e.client()
	sys := c.Sys()
	attempt, err := sys.GenerateRootInit("", "")
	if err != nil {
		e.t.Fatal(err)
	}
	var encoded string
	for _, s := range e.recoveryShares()[:threshold] {
		upd, err := sys.GenerateRootUpdate(s, attempt.Nonce)
		if err != nil {
			e.t.Fatalf("generate-root with a recovery share: %v", err)
		}
		if upd.Complete {
			encoded = upd.EncodedToken
		}
	}
	raw, err := base64.RawStdEncoding.DecodeString(encoded)
	if err != nil || len(raw) != len(attempt.OTP) {
		e.t.Fatalf("decode root token: %v", err)
	}
	for i := range raw {
		raw[i] ^= attempt.OTP[i]
	}
	c.SetToken(string(raw))
	self, err := c.Auth().Token().LookupSelf()
	if err != nil {
		e.t.Fatal(err)
	}
	accessor, _ := self.TokenAccessor()
	defer func() {
		if err := c.Auth().Token().RevokeSelf(""); err != nil {
			e.t.Errorf("revoke the test's root token: %v", err)
		}
	}()
	fn(c, accessor)
}

func (e *env) readRecoveryState() state {
	e.t.Helper()
	var s state
	e.withRecoveryRoot(func(c *vaultapi.Client, own string) { s = readState(e.t, c, own) })
	return s
}

// treeDigest is every file under dir with the SHA-256 of its content, to
// show that a failed run changed nothing on disk.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[p] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sealStatus is the managed Vault's seal status, or an error while it does
// not answer.
func (e *env) sealStatus() (*vaultapi.SealStatusResponse, error) {
	c := e.client()
	c.SetMaxRetries(0)
	return c.Sys().SealStatus()
}

// TestVaultSealTransitAutoUnseal covers the acceptance: a managed
// Vault with seal "transit" (the stanza edgeid renders) is bootstrapped
// with recovery shares kept by custodians, restarted, and comes back
// unsealed with no share submitted; the bootstrap re-run converges, also
// with root tokens made from the recovery shares.
func TestVaultSealTransitAutoUnseal(t *testing.T) {
	e := newSealEnv(t)

	// The seal token can do what the seal needs and nothing else.
	tok, err := os.ReadFile(e.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	sc := e.u.client(t, string(tok))
	if _, err := sc.Logical().Write("transit/encrypt/"+transitKey, map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte("x"))}); err != nil {
		t.Fatalf("the seal token cannot encrypt with its key: %v", err)
	}
	for what, call := range map[string]func() error{
		"read its key":        func() error { _, err := sc.Logical().Read("transit/keys/" + transitKey); return err },
		"rotate its key":      func() error { _, err := sc.Logical().Write("transit/keys/"+transitKey+"/rotate", nil); return err },
		"make another key":    func() error { _, err := sc.Logical().Write("transit/keys/other", nil); return err },
		"create a token":      func() error { _, err := sc.Auth().Token().Create(&vaultapi.TokenCreateRequest{}); return err },
		"list the sys mounts": func() error { _, err := sc.Logical().Read("sys/mounts"); return err },
	} {
		if err := call(); statusOf(err) != 403 {
			t.Errorf("the seal token can %s (err %v), want permission denied", what, err)
		}
	}

	st, err := e.sealStatus()
	if err != nil {
		t.Fatal(err)
	}
	if st.Type != "transit" || !st.RecoverySeal || st.Initialized {
		t.Fatalf("managed Vault before bootstrap: type %q recovery_seal %v initialized %v, want an uninitialised transit-sealed Vault", st.Type, st.RecoverySeal, st.Initialized)
	}

	// --- First run: init with recovery shares; Vault unseals itself.
	sum := e.mustRun()
	if !slices.Contains(sum.Changed, vaultboot.StepInit) || slices.Contains(sum.Changed, vaultboot.StepUnseal) {
		t.Errorf("first run changed %v, want init and not unseal", sum.Changed)
	}
	if sum.Seal.Type != "transit" || sum.Seal.TransitAddress != e.u.v.Addr {
		t.Errorf("seal summary %+v, want transit from %s", sum.Seal, e.u.v.Addr)
	}
	if sum.Shares.Kind != "recovery" || sum.Shares.Shares != shareCount || sum.Shares.Threshold != threshold || sum.Shares.Dir != filepath.Join(e.stateDir, "recovery") {
		t.Errorf("shares summary %+v, want %d recovery shares (threshold %d) in %s", sum.Shares, shareCount, threshold, filepath.Join(e.stateDir, "recovery"))
	}
	if st, err = e.sealStatus(); err != nil || !st.Initialized || st.Sealed || st.T != threshold || st.N != shareCount {
		t.Fatalf("after bootstrap: %+v err %v, want initialised, unsealed, recovery %d of %d", st, err, threshold, shareCount)
	}
	manifest, err := os.ReadFile(filepath.Join(e.stateDir, "recovery", "shares.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(manifest), `"kind": "recovery"`) {
		t.Errorf("shares.json does not say recovery shares:\n%s", manifest)
	}
	if _, err := os.Stat(filepath.Join(e.stateDir, "unseal")); !os.IsNotExist(err) {
		t.Errorf("the state holds an unseal shares directory (stat: %v); a Vault that unseals itself has none", err)
	}
	// The recovery shares are Vault's: they make a root token.
	before := e.readRecoveryState()
	if len(before.RootTokens) != 0 || before.SecretIDs != 1 || before.IntCertPEM == "" {
		t.Fatalf("state after the first run: %d root tokens, %d secret_ids, intermediate %v", len(before.RootTokens), before.SecretIDs, before.IntCertPEM != "")
	}
	shares := e.recoveryShares()
	e.scanForShares(shares, e.dir, e.vault.Dir)

	// --- Second run: nothing to do; its root token came from the
	// recovery shares.
	sum2 := e.mustRun()
	if len(sum2.Changed) != 0 || sum2.RootToken.Source != "generate-root" || !sum2.RootToken.Revoked {
		t.Errorf("second run changed %v with root token %+v, want nothing changed and a revoked generate-root token", sum2.Changed, sum2.RootToken)
	}

	// --- Restart: Vault unseals itself; nothing is submitted to it.
	e.vault.Stop(t)
	e.vault.Start(t)
	harness.Eventually(t, 60*time.Second, func() error {
		st, err := e.sealStatus()
		if err != nil {
			return err
		}
		if st.Sealed {
			return fmt.Errorf("still sealed (progress %d)", st.Progress)
		}
		return nil
	})
	t.Logf("the managed Vault came back unsealed after a restart, with no bootstrap run and no share submitted")
	sum3 := e.mustRun()
	if len(sum3.Changed) != 0 {
		t.Errorf("run after the restart changed %v, want nothing", sum3.Changed)
	}
	compareStates(t, "run after the restart", before, e.readRecoveryState())

	logs, err := os.ReadFile(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[2/12] Initialise Vault and store the encrypted recovery shares", "[3/12] Wait for Vault to unseal itself (auto-unseal)", "Generating a root token from the recovery shares"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("run logs lack %q", want)
		}
	}
	if strings.Contains(string(logs), "Submitted a key share") {
		t.Errorf("a run submitted a share to a Vault that unseals itself")
	}
	e.scanForShares(shares, e.dir, e.vault.Dir)
}

// TestVaultSealTransitDown: with the unsealer down, a restarted managed
// Vault does not come back unsealed, and the bootstrap fails with an error
// naming the Transit address, changing nothing. With a seal token that may
// encrypt but not decrypt, Vault starts but stays sealed, and the
// bootstrap says so within auto_unseal.wait_timeout. Once the unsealer and
// the token are back, Vault unseals itself and the bootstrap converges.
func TestVaultSealTransitDown(t *testing.T) {
	e := newSealEnv(t)
	e.mustRun()
	before := e.readRecoveryState()
	shortCfg := filepath.Join(e.dir, "bootstrap-short.hcl")
	var recs []string
	for _, id := range e.ids {
		recs = append(recs, id.Recipient().String())
	}
	writeFile(t, shortCfg, e.sealConfig(recs, e.u.v.Addr, "5s", "5s"), 0o600)
	disk := treeDigest(t, e.dir)

	// --- The unsealer is down.
	e.u.v.Stop(t)
	e.vault.Stop(t)
	e.vault.Proc.Restart(t)
	select {
	case <-e.vault.Proc.Done():
		t.Logf("the managed Vault exited at start: %s", lastLine(e.vault.Proc.Log(), "Seal"))
	case <-time.After(60 * time.Second):
		if st, err := e.sealStatus(); err != nil || !st.Sealed {
			t.Fatalf("with the unsealer down the managed Vault runs with sealed=%v (err %v), want it sealed or stopped", st != nil && st.Sealed, err)
		}
		t.Logf("the managed Vault runs sealed")
	}
	if st, err := e.sealStatus(); err == nil && !st.Sealed {
		t.Fatal("the managed Vault unsealed itself with its unsealer down")
	}
	res := e.run(shortCfg, e.identityEnv()...)
	if res.err == nil || !strings.Contains(res.stderr, e.u.v.Addr) || !strings.Contains(res.stderr, "auto_unseal.transit_address") {
		t.Fatalf("bootstrap with the unsealer down: err %v, want an error naming the Transit address %s; stderr:\n%s", res.err, e.u.v.Addr, res.stderr)
	}
	t.Logf("bootstrap error: %s", lastLine(res.stderr, "error="))
	checkUnchanged(t, "the failed run", disk, treeDigest(t, e.dir))

	// --- The unsealer is back but the seal token may only encrypt: Vault
	// starts, cannot decrypt its root key, and stays sealed.
	e.u.v.Start(t)
	e.u.unseal(t)
	good, err := os.ReadFile(e.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	e.u.token(t, "encrypt-only", e.tokenFile)
	e.vault.Proc.Stop()
	e.vault.Proc.Restart(t)
	harness.Eventually(t, 60*time.Second, func() error {
		_, err := e.sealStatus()
		return err
	})
	time.Sleep(2 * time.Second)
	if st, err := e.sealStatus(); err != nil || !st.Sealed {
		t.Fatalf("with an encrypt-only seal token: sealed=%v err=%v, want sealed", st != nil && st.Sealed, err)
	}
	disk = treeDigest(t, e.dir)
	res = e.run(shortCfg, e.identityEnv()...)
	want := fmt.Sprintf("Vault at %s is still sealed after 5s (auto_unseal.wait_timeout in %s): it unseals itself with the Transit engine at %s", e.vault.Addr, shortCfg, e.u.v.Addr)
	if res.err == nil || !strings.Contains(res.stderr, want) {
		t.Fatalf("bootstrap of a Vault that stays sealed: err %v, want %q; stderr:\n%s", res.err, want, res.stderr)
	}
	if st, err := e.sealStatus(); err != nil || !st.Sealed || st.Progress != 0 {
		t.Fatalf("after the failed run: %+v err %v, want sealed, no unseal progress", st, err)
	}
	checkUnchanged(t, "the failed run", disk, treeDigest(t, e.dir))

	// --- The right token again: Vault unseals itself at start.
	writeFile(t, e.tokenFile, string(good), 0o600)
	e.vault.Stop(t)
	e.vault.Start(t)
	harness.Eventually(t, 60*time.Second, func() error {
		if st, err := e.sealStatus(); err != nil || st.Sealed {
			return fmt.Errorf("not unsealed yet (%v)", err)
		}
		return nil
	})
	sum := e.mustRun()
	if len(sum.Changed) != 0 {
		t.Errorf("run after the unsealer came back changed %v, want nothing", sum.Changed)
	}
	compareStates(t, "run after the unsealer came back", before, e.readRecoveryState())
}

// checkUnchanged fails when a file other than the runs' log or Vault's
// audit log appeared, changed or went away.
func checkUnchanged(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	ignored := func(p string) bool {
		return strings.HasSuffix(p, "bootstrap-runs.log") || strings.Contains(p, string(filepath.Separator)+"audit"+string(filepath.Separator))
	}
	for p, sum := range after {
		if b, ok := before[p]; !ignored(p) && (!ok || b != sum) {
			t.Errorf("%s wrote %s", what, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("%s removed %s", what, p)
		}
	}
}

func lastLine(log, containing string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], containing) {
			return lines[i]
		}
	}
	return ""
}

// TestVaultSealTransitCrashAfterInit: a run killed right after init (the
// recovery shares stored, Vault unsealed by itself, the init root token
// alive) is finished by the next run, whose root token comes from the
// recovery shares; no root token is left behind.
func TestVaultSealTransitCrashAfterInit(t *testing.T) {
	e := newSealEnv(t)
	res := e.run(e.cfgPath, append(e.identityEnv(), cli.CrashAfterEnv+"="+vaultboot.StepInit)...)
	if res.err == nil || !strings.Contains(res.err.Error(), "killed") || !strings.Contains(res.stderr, "Test hook: killing the process") {
		t.Fatalf("run armed to crash after init ended with %v\n%s", res.err, res.stderr)
	}
	sum := e.mustRun()
	if sum.RootToken.Source != "generate-root" || sum.RootToken.StrayRevoked != 1 || slices.Contains(sum.Changed, vaultboot.StepInit) {
		t.Errorf("run after the crash: root token %+v, changed %v; want a root token from the recovery shares, the init token revoked as a stray, no second init", sum.RootToken, sum.Changed)
	}
	st := e.readRecoveryState()
	if len(st.RootTokens) != 0 || st.SecretIDs != 1 || st.IntCertPEM == "" {
		t.Errorf("converged state: root tokens %v, %d secret_ids, intermediate %v", st.RootTokens, st.SecretIDs, st.IntCertPEM != "")
	}
	if sum2 := e.mustRun(); len(sum2.Changed) != 0 {
		t.Errorf("run after convergence changed %v", sum2.Changed)
	}
}
