package bootstrap

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
	"github.com/edgeid/edgeid/test/harness"
)

// renderTopology is a one-node topology; vault is its vault block (the
// vault block starts on line 2).
func renderTopology(vault string) string {
	return "trust_domain = \"example.org\"\n" + vault + `
site "a" {
  node "n1" {}
  workload "app" {
    selectors = ["unix:uid:1000"]
  }
}
`
}

// edgeidRender runs the real `edgeid render` for real hosts on the
// topology text and returns its output directory, stderr and error.
func edgeidRender(t *testing.T, bin, text string) (out, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	topo := filepath.Join(dir, "topology.hcl")
	writeFile(t, topo, text, 0o644)
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"edgeid-upstreamauthority-vaultpki", "edgeid-nodeattestor-kubeedge-server", "edgeid-nodeattestor-kubeedge-agent", "edgeid-workloadattestor-deepstream"} {
		writeFile(t, filepath.Join(plugins, p), p, 0o755)
	}
	out = filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "render", "-f", topo, "--out", out, "--plugin-dir", plugins)
	cmd.Env = harness.CleanEnv(dir)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err = cmd.Run()
	return out, errb.String(), err
}

// TestVaultSealRenderRefused: the real `edgeid render` (real hosts)
// refuses a managed Vault with neither seal_transit nor custodians, with an
// error naming the topology file, the vault block and both ways out, and
// writes nothing; with custodians or with seal_transit it renders, and the
// bootstrap accepts what it wrote.
func TestVaultSealRenderRefused(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "edgeid")
	build := exec.Command("go", "build", "-o", bin, "./orchestrator/cmd/edgeid")
	build.Dir = harness.RepoRoot(t)
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build edgeid: %v\n%s", err, msg)
	}

	out, stderr, err := edgeidRender(t, bin, renderTopology("vault {\n  mode = \"managed\"\n}\n"))
	if err == nil {
		t.Fatalf("edgeid render accepted a managed Vault without custody")
	}
	topo := filepath.Join(filepath.Dir(out), "topology.hcl")
	for _, want := range []string{
		topo + ":2,1: vault: a managed Vault on real hosts must not keep what unseals it on its own host",
		"vault.seal_transit { address, key_name, token_file }",
		"vault.unseal_custodians = [\"age1...\", ...] with vault.unseal_threshold",
		"only the embedded `edgeid up` (one machine, dev only) keeps a local unseal key",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("edgeid render's error lacks %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the refused render wrote %s (stat: %v)", out, err)
	}

	recs := []string{newRecipient(t), newRecipient(t), newRecipient(t)}
	cases := []struct {
		name, vault string
		want        []string
	}{
		{"custodians", fmt.Sprintf("vault {\n  unseal_custodians = [%s]\n  unseal_threshold = 2\n}\n", quoteList(recs)),
			[]string{"secret_shares = 3", "secret_threshold = 2", "age_identity_env = \"EDGEID_VAULT_UNSEAL_IDENTITIES\""}},
		{"seal_transit with custodians", fmt.Sprintf("vault {\n  unseal_custodians = [%s]\n  unseal_threshold = 2\n  seal_transit {\n    address = \"https://unsealer.example:8200\"\n    key_name = \"edgeid-unseal\"\n    token_file = \"/etc/edgeid/transit-token\"\n  }\n}\n", quoteList(recs)),
			[]string{"recovery_shares = 3", "recovery_threshold = 2", "auto_unseal {"}},
		{"seal_transit alone", "vault {\n  seal_transit {\n    address = \"https://unsealer.example:8200\"\n    key_name = \"edgeid-unseal\"\n    token_file = \"/etc/edgeid/transit-token\"\n  }\n}\n",
			[]string{"recovery_shares = 1", "auto_unseal {"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, err := edgeidRender(t, bin, renderTopology(c.vault))
			if err != nil {
				t.Fatalf("edgeid render: %v\n%s", err, stderr)
			}
			boot, err := os.ReadFile(filepath.Join(out, "cloud", "var", "lib", "edgeid", "vault", "bootstrap.hcl"))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(string(boot), w) {
					t.Errorf("bootstrap.hcl lacks %q:\n%s", w, boot)
				}
			}
			if strings.Contains(c.vault, "seal_transit") {
				vhcl, err := os.ReadFile(filepath.Join(out, "cloud", "var", "lib", "edgeid", "vault", "vault.hcl"))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(vhcl), "seal \"transit\" {") || !strings.Contains(string(vhcl), `token = "file:///etc/edgeid/transit-token"`) {
					t.Errorf("vault.hcl lacks the seal stanza:\n%s", vhcl)
				}
			}
			if strings.Contains(c.name, "alone") {
				// Its recovery share's recipient is filled in on the
				// Vault host by `edgeid up --host`.
				return
			}
			cfg, err := vaultboot.Parse("bootstrap.hcl", boot)
			if err == nil {
				_, err = vaultboot.New(cfg, vaultboot.Options{})
			}
			if err != nil {
				t.Errorf("the bootstrap refuses the rendered bootstrap.hcl: %v", err)
			}
		})
	}
}
