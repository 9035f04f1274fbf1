package attack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
	"github.com/edgeid/edgeid/test/harness"
)

// custodyAttackEnv makes the test binary, started again as the attacker's
// uid, run the tree reader's attack instead of the tests.
const custodyAttackEnv = "EDGEID_ATTACK_CUSTODY_TREE"

func init() {
	if tree := os.Getenv(custodyAttackEnv); tree != "" {
		out, _ := json.Marshal(treeReaderAttack(tree, os.Getenv("EDGEID_ATTACK_VAULT_ADDR")))
		fmt.Println(string(out))
		os.Exit(0)
	}
}

// attackResult is what the tree reader got.
type attackResult struct {
	Identities int    `json:"identities"`
	Decrypted  int    `json:"decrypted"`
	Unsealed   bool   `json:"unsealed"`
	RootToken  bool   `json:"root_token"`
	Error      string `json:"error,omitempty"`
}

// treeReaderAttack is an attacker who can read the Vault host's tree and
// reach Vault's API: it takes every age identity it finds in the tree,
// decrypts every share file it can, submits them to the sealed Vault, and
// then makes itself a root token with them.
func treeReaderAttack(tree, addr string) attackResult {
	var res attackResult
	var ids []age.Identity
	var shareFiles []string
	filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if id, err := age.ParseX25519Identity(strings.TrimSpace(sc.Text())); err == nil {
				ids = append(ids, id)
			}
		}
		if strings.HasSuffix(p, ".age") {
			shareFiles = append(shareFiles, p)
		}
		return nil
	})
	res.Identities = len(ids)
	var shares []string
	for _, f := range shareFiles {
		data, _ := os.ReadFile(f)
		r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), ids...)
		if err != nil {
			continue
		}
		plain, _ := io.ReadAll(r)
		shares = append(shares, strings.TrimSpace(string(plain)))
	}
	res.Decrypted = len(shares)

	cfg := &vaultapi.Config{Address: addr, HttpClient: &http.Client{Timeout: 10 * time.Second}}
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	c.ClearToken()
	for _, s := range shares {
		st, err := c.Sys().Unseal(s)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		if !st.Sealed {
			res.Unsealed = true
			break
		}
	}
	if !res.Unsealed {
		return res
	}
	for i := 0; i < 100; i++ {
		if h, err := c.Sys().Health(); err == nil && !h.Standby && !h.Sealed {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	attempt, err := c.Sys().GenerateRootInit("", "")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	for _, s := range shares {
		upd, err := c.Sys().GenerateRootUpdate(s, attempt.Nonce)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		if !upd.Complete {
			continue
		}
		raw, err := base64.RawStdEncoding.DecodeString(upd.EncodedToken)
		if err != nil || len(raw) != len(attempt.OTP) {
			res.Error = fmt.Sprintf("decode the root token: %v", err)
			return res
		}
		for j := range raw {
			raw[j] ^= attempt.OTP[j]
		}
		c.SetToken(string(raw))
		if self, err := c.Auth().Token().LookupSelf(); err == nil {
			policies, _ := self.TokenPolicies()
			res.RootToken = len(policies) == 1 && policies[0] == "root"
			c.Auth().Token().RevokeSelf("")
		}
		return res
	}
	return res
}

// custodyRun is one managed Vault bootstrapped with the bootstrap.hcl that
// edgeid renders, its state in tree (the Vault host's tree).
type custodyRun struct {
	vault *harness.Vault
	tree  string
}

// bootstrapAsRendered renders the topology's bootstrap.hcl (embedded or
// for real hosts), points it at a real Vault, and runs the real bootstrap
// with it. localID, when set, is the identity the runner keeps at
// render.UnsealIdentityPath (written there, as `edgeid up` does).
func bootstrapAsRendered(t *testing.T, work, bootstrapBin, vaultBlock string, embedded bool, localID *age.X25519Identity) custodyRun {
	t.Helper()
	v := harness.StartVault(t, harness.VaultOptions{})
	tree, err := os.MkdirTemp(work, "tree-")
	if err != nil {
		t.Fatal(err)
	}
	src := "trust_domain = \"example.org\"\n" + vaultBlock + "\nsite \"a\" {\n  node \"n1\" {}\n  workload \"app\" {\n    selectors = [\"unix:uid:1000\"]\n  }\n}\n"
	top, err := topology.Parse([]byte(src), filepath.Join(work, "topology.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	env := render.Env{Embedded: embedded, HostRoot: func(string) string { return tree }, HostAddr: func(string) string { return "127.0.0.1" },
		Port: func(_, _ string, def int) int { return def }}
	if localID != nil {
		h := &render.Host{Root: tree}
		if err := fsutil.WriteFileAtomicMkdir(render.UnsealIdentityPath(h), []byte(localID.String()+"\n"), 0o600, fsutil.Keep); err != nil {
			t.Fatal(err)
		}
		env.UnsealRecipient = localID.Recipient().String()
	}
	plan, err := render.Build(top, env)
	if err != nil {
		t.Fatal(err)
	}
	var boot string
	for _, f := range plan.Hosts[0].Files {
		if filepath.Base(f.Path) == "bootstrap.hcl" {
			boot = string(f.Content)
		}
	}
	// The rendered custody (init and unseal) as is; the Vault is the
	// test's (plain HTTP on a loopback port).
	lines := strings.Split(boot, "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(strings.TrimSpace(l), "address = "):
			lines[i] = fmt.Sprintf("    address = %q", v.Addr)
		case strings.HasPrefix(strings.TrimSpace(l), "ca_cert_file = "):
			lines[i] = ""
		case strings.HasPrefix(strings.TrimSpace(l), "file_path = "):
			lines[i] = fmt.Sprintf("    file_path = %q", filepath.Join(tree, "vault", "audit.log"))
		}
	}
	cfg := filepath.Join(tree, "vault", "bootstrap.hcl")
	if err := fsutil.WriteFileAtomicMkdir(cfg, []byte(strings.Join(lines, "\n")), 0o600, fsutil.Keep); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bootstrapBin, "vault", "--config", cfg)
	cmd.Env = harness.CleanEnv(work)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bootstrap with the rendered bootstrap.hcl: %v\n%s", err, out)
	}
	return custodyRun{vault: v, tree: tree}
}

// attackTree restarts the Vault (sealed) and runs the tree reader as the
// attacker's uid against a copy of the tree it may read.
func attackTree(t *testing.T, work, testBin string, run custodyRun) attackResult {
	t.Helper()
	run.vault.Stop(t)
	run.vault.Start(t)
	c := run.vault.Client(t)
	c.ClearToken()
	if st, err := c.Sys().SealStatus(); err != nil || !st.Sealed {
		t.Fatalf("after restart: sealed=%v err=%v, want sealed", st != nil && st.Sealed, err)
	}
	loot := run.tree + "-copy"
	if out, err := exec.Command("cp", "-a", run.tree, loot).CombinedOutput(); err != nil {
		t.Fatalf("copy the tree: %v\n%s", err, out)
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", attackerUID, attackerUID), loot).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := asUser(exec.CommandContext(ctx, testBin), attackerUID)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + loot, custodyAttackEnv + "=" + loot, "EDGEID_ATTACK_VAULT_ADDR=" + run.vault.Addr}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("attacker: %v\n%s", err, out)
	}
	var res attackResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		t.Fatalf("attacker output %q: %v", out, err)
	}
	t.Logf("tree reader (uid %d): %+v", attackerUID, res)
	return res
}

// TestCustodyTreeReaderCannotUnseal: whoever reads a managed Vault's host
// tree must not be able to unseal it after a restart, or make a root
// token. With the custodians edgeid renders for real hosts, the tree holds
// only shares encrypted to them, and the attack gets nothing. With the
// embedded run's local share (the protection off), the same attack unseals
// Vault and makes a root token, so the test can fail.
func TestCustodyTreeReaderCannotUnseal(t *testing.T) {
	requireRoot(t)
	work, err := os.MkdirTemp("", "edgeid-custody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	// The attacker runs this test binary; it must be able to execute it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	testBin := filepath.Join(work, "attack.test")
	if out, err := exec.Command("cp", self, testBin).CombinedOutput(); err != nil {
		t.Fatalf("copy the test binary: %v\n%s", err, out)
	}
	os.Chmod(testBin, 0o755)
	bootstrapBin := filepath.Join(work, "edgeid-bootstrap")
	build := exec.Command("go", "build", "-o", bootstrapBin, "./bootstrap/cmd/edgeid-bootstrap")
	build.Dir = harness.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build edgeid-bootstrap: %v\n%s", err, out)
	}

	t.Run("custodians", func(t *testing.T) {
		var recs []string
		for i := 0; i < 3; i++ {
			id, err := age.GenerateX25519Identity()
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, `"`+id.Recipient().String()+`"`)
		}
		run := bootstrapAsRendered(t, work, bootstrapBin, "vault {\n  unseal_custodians = ["+strings.Join(recs, ", ")+"]\n  unseal_threshold = 2\n}\n", false, nil)
		res := attackTree(t, work, testBin, run)
		if res.Error != "" {
			t.Fatalf("attack failed to run: %s", res.Error)
		}
		if res.Decrypted != 0 || res.Unsealed || res.RootToken {
			t.Fatalf("the tree reader decrypted %d shares, unsealed=%v, root token=%v; want nothing", res.Decrypted, res.Unsealed, res.RootToken)
		}
		c := run.vault.Client(t)
		c.ClearToken()
		if st, err := c.Sys().SealStatus(); err != nil || !st.Sealed {
			t.Fatalf("Vault sealed=%v err=%v after the attack, want sealed", st != nil && st.Sealed, err)
		}
	})

	t.Run("local share (embedded, protection off)", func(t *testing.T) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		run := bootstrapAsRendered(t, work, bootstrapBin, "vault {\n  mode = \"managed\"\n}\n", true, id)
		res := attackTree(t, work, testBin, run)
		if res.Decrypted == 0 || !res.Unsealed || !res.RootToken {
			t.Fatalf("without custody the tree reader got %+v; the attack should unseal Vault and make a root token, or this test proves nothing", res)
		}
	})
}
