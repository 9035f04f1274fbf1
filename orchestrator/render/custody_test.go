package render

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// custodyTopology is a one-node topology whose vault block is vault.
func custodyTopology(t *testing.T, vault string) *topology.Topology {
	t.Helper()
	src := "trust_domain = \"example.org\"\n" + vault + `
site "a" {
  node "n1" {}
  workload "app" {
    selectors = ["unix:uid:1000"]
  }
}
`
	top, err := topology.Parse([]byte(src), filepath.Join(t.TempDir(), "topology.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	return top
}

const transitBlock = `  seal_transit {
    address    = "https://unsealer.example:8200"
    key_name   = "edgeid-unseal"
    token_file = "/etc/edgeid/transit-token"
    ca_cert    = "/etc/edgeid/unsealer-ca.pem"
  }
`

// vaultFiles returns the rendered vault.hcl and bootstrap.hcl of the plan.
func vaultFiles(t *testing.T, plan *Plan) (vaultHCL, bootstrapHCL string) {
	t.Helper()
	for _, h := range plan.Hosts {
		for _, f := range h.Files {
			switch filepath.Base(f.Path) {
			case "vault.hcl":
				vaultHCL = string(f.Content)
			case "bootstrap.hcl":
				bootstrapHCL = string(f.Content)
			}
		}
	}
	if vaultHCL == "" || bootstrapHCL == "" {
		t.Fatal("the plan has no vault.hcl or bootstrap.hcl")
	}
	return vaultHCL, bootstrapHCL
}

// loadBootstrap checks that the bootstrap accepts a rendered bootstrap.hcl
// as it is, and returns its text.
func loadBootstrap(t *testing.T, text string) {
	t.Helper()
	cfg, err := vaultboot.Parse("bootstrap.hcl", []byte(text))
	if err != nil {
		t.Fatalf("the bootstrap cannot read the rendered bootstrap.hcl: %v\n%s", err, text)
	}
	if _, err := vaultboot.New(cfg, vaultboot.Options{}); err != nil {
		t.Fatalf("the bootstrap refuses the rendered bootstrap.hcl: %v\n%s", err, text)
	}
}

// TestRenderRefusesVaultWithoutCustody: on real hosts, a managed Vault
// with neither seal_transit nor custodians is refused, naming the file,
// the key and both ways out; the embedded run still renders it.
func TestRenderRefusesVaultWithoutCustody(t *testing.T) {
	top := custodyTopology(t, "vault {\n  mode = \"managed\"\n}\n")
	_, err := Build(top, HostsEnv(top, fixedBinaries(), ""))
	want := "render: " + top.Path + ":2,1: vault: a managed Vault on real hosts must not keep what unseals it on its own host, where whoever reads the host's files could unseal it and make a root token; set one of " +
		"vault.seal_transit { address, key_name, token_file } (Vault unseals itself with another Vault's Transit engine) or " +
		"vault.unseal_custodians = [\"age1...\", ...] with vault.unseal_threshold (each key share encrypted to a custodian whose age identity stays off the host); " +
		"only the embedded `edgeid up` (one machine, dev only) keeps a local unseal key"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}

	// No vault block at all: a managed Vault by default, refused too.
	bare := custodyTopology(t, "")
	if _, err := Build(bare, HostsEnv(bare, fixedBinaries(), "")); err == nil || !strings.HasPrefix(err.Error(), "render: "+bare.Path+": vault: a managed Vault on real hosts") {
		t.Fatalf("a topology without a vault block: %v", err)
	}

	// An external Vault is the company's: nothing to refuse.
	ext := custodyTopology(t, "vault {\n  mode = \"external\"\n  address = \"https://vault:8200\"\n  role_id_file = \"/r\"\n  secret_id_file = \"/s\"\n}\n")
	if _, err := Build(ext, HostsEnv(ext, fixedBinaries(), "")); err != nil {
		t.Fatalf("external Vault: %v", err)
	}

	// The embedded run keeps its single local share, marked dev only.
	env := embeddedEnv(t)
	plan, err := Build(top, env)
	if err != nil {
		t.Fatalf("embedded run refused: %v", err)
	}
	vaultHCL, boot := vaultFiles(t, plan)
	for _, want := range []string{"secret_shares = 1\n", "secret_threshold = 1\n", "# DEV ONLY (embedded run)", `age_recipients = ["` + env.UnsealRecipient + `"]`, "age_identity_files = [\"" + filepath.Join(env.HostRoot("cloud"), "vault", "unseal-identity.txt") + "\"]"} {
		if !strings.Contains(boot, want) {
			t.Errorf("embedded bootstrap.hcl lacks %q:\n%s", want, boot)
		}
	}
	if strings.Contains(vaultHCL, "seal ") {
		t.Errorf("embedded vault.hcl has a seal stanza:\n%s", vaultHCL)
	}
	loadBootstrap(t, boot)
}

func embeddedEnv(t *testing.T) Env {
	root := t.TempDir()
	return Env{
		Embedded:        true,
		HostRoot:        func(h string) string { return filepath.Join(root, h) },
		HostAddr:        func(string) string { return "127.0.0.1" },
		Port:            func(_, _ string, def int) int { return def },
		Bins:            fixedBinaries(),
		UnsealRecipient: sampleCustodians[0],
	}
}

// TestRenderCustodians: each unseal share goes to one custodian, with the
// topology's threshold; the custodians' identities come from the
// environment of the run that needs them, never from a file on the host.
func TestRenderCustodians(t *testing.T) {
	top := custodyTopology(t, "vault {\n  unseal_custodians = [\""+strings.Join(sampleCustodians, "\", \"")+"\"]\n  unseal_threshold = 2\n}\n")
	plan, err := Build(top, HostsEnv(top, fixedBinaries(), ""))
	if err != nil {
		t.Fatal(err)
	}
	vaultHCL, boot := vaultFiles(t, plan)
	for _, want := range []string{
		"    secret_shares = 3\n    secret_threshold = 2\n",
		`age_recipients = ["` + strings.Join(sampleCustodians, `", "`) + `"]`,
		`age_recipient_mode = "per_share"`,
		`age_identity_env = "EDGEID_VAULT_UNSEAL_IDENTITIES"`,
	} {
		if !strings.Contains(boot, want) {
			t.Errorf("bootstrap.hcl lacks %q:\n%s", want, boot)
		}
	}
	for _, bad := range []string{"unseal-identity", "age_identity_files", "auto_unseal", "recovery"} {
		if strings.Contains(boot, bad) {
			t.Errorf("bootstrap.hcl names %q:\n%s", bad, boot)
		}
	}
	if strings.Contains(vaultHCL, "seal ") {
		t.Errorf("vault.hcl has a seal stanza:\n%s", vaultHCL)
	}
	loadBootstrap(t, boot)

	// An embedded run does not use the custodians (their identities are
	// not on this machine): one local share, and it says so.
	plan, err = Build(top, embeddedEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	_, boot = vaultFiles(t, plan)
	if !strings.Contains(boot, "secret_shares = 1\n") || !strings.Contains(boot, "vault.unseal_custodians are not used in an embedded run") {
		t.Errorf("embedded bootstrap.hcl with custodians:\n%s", boot)
	}
}

// TestRenderSealTransit: vault.hcl gets Vault's seal "transit" stanza with
// the token read from its file (never the token itself), and the bootstrap
// keeps recovery shares and waits for Vault to unseal itself.
func TestRenderSealTransit(t *testing.T) {
	wantSeal := `seal "transit" {
    address = "https://unsealer.example:8200"
    token = "file:///etc/edgeid/transit-token"
    mount_path = "transit/"
    key_name = "edgeid-unseal"
    tls_ca_cert = "/etc/edgeid/unsealer-ca.pem"
    disable_renewal = "false"
}
`
	t.Run("with custodians", func(t *testing.T) {
		top := custodyTopology(t, "vault {\n"+transitBlock+"  unseal_custodians = [\""+strings.Join(sampleCustodians, "\", \"")+"\"]\n  unseal_threshold = 2\n}\n")
		plan, err := Build(top, HostsEnv(top, fixedBinaries(), ""))
		if err != nil {
			t.Fatal(err)
		}
		vaultHCL, boot := vaultFiles(t, plan)
		if !strings.Contains(vaultHCL, wantSeal) {
			t.Errorf("vault.hcl lacks the seal stanza:\n%s", vaultHCL)
		}
		for _, want := range []string{
			"auto_unseal {\n    transit_address = \"https://unsealer.example:8200\"\n}",
			"    recovery_shares = 3\n    recovery_threshold = 2\n    shares_dir = \"/var/lib/edgeid/vault/bootstrap/recovery\"\n",
			`age_recipients = ["` + strings.Join(sampleCustodians, `", "`) + `"]`,
			`age_identity_env = "EDGEID_VAULT_UNSEAL_IDENTITIES"`,
		} {
			if !strings.Contains(boot, want) {
				t.Errorf("bootstrap.hcl lacks %q:\n%s", want, boot)
			}
		}
		if strings.Contains(boot, "secret_shares") || strings.Contains(boot, "unseal-identity") {
			t.Errorf("bootstrap.hcl asks for unseal shares or a local identity:\n%s", boot)
		}
		loadBootstrap(t, boot)
	})
	t.Run("alone", func(t *testing.T) {
		top := custodyTopology(t, "vault {\n"+transitBlock+"}\n")
		env := HostsEnv(top, fixedBinaries(), "")
		env.UnsealRecipient = sampleCustodians[0]
		if !UsesLocalUnsealIdentity(top.Vault, false) {
			t.Fatal("seal_transit without custodians needs the local identity for its recovery share")
		}
		plan, err := Build(top, env)
		if err != nil {
			t.Fatal(err)
		}
		vaultHCL, boot := vaultFiles(t, plan)
		if !strings.Contains(vaultHCL, wantSeal) {
			t.Errorf("vault.hcl lacks the seal stanza:\n%s", vaultHCL)
		}
		for _, want := range []string{
			"    recovery_shares = 1\n    recovery_threshold = 1\n",
			"whoever reads this tree and reaches Vault's\n    # API can generate a root token",
			`age_identity_files = ["/var/lib/edgeid/vault/unseal-identity.txt"]`,
		} {
			if !strings.Contains(boot, want) {
				t.Errorf("bootstrap.hcl lacks %q:\n%s", want, boot)
			}
		}
		loadBootstrap(t, boot)
	})
	t.Run("token never rendered", func(t *testing.T) {
		top := custodyTopology(t, "vault {\n"+transitBlock+"}\n")
		plan, err := Build(top, HostsEnv(top, fixedBinaries(), ""))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range plan.Hosts {
			for _, f := range h.Files {
				if strings.Contains(string(f.Content), "hvs.") || strings.Contains(string(f.Content), "VAULT_TOKEN") {
					t.Errorf("%s holds a token or names VAULT_TOKEN", f.Path)
				}
			}
			for _, s := range h.Services {
				if strings.Contains(strings.Join(s.Argv, " "), "token") {
					t.Errorf("%s's command line names a token: %v", s.Name, s.Argv)
				}
			}
		}
	})
}

// TestSecretIDPerCloudServer: each cloud server has a secret_id file of
// its own (a wrapped secret_id can be unwrapped once, and each server
// rotates its own), the bootstrap writes every one of them, and the file a
// server on another host needs is its own.
func TestSecretIDPerCloudServer(t *testing.T) {
	b := &builder{top: &topology.Topology{Cloud: topology.Cloud{Hosts: []string{"cloud-1", "cloud-2", "cloud-3"}}}}
	h := &Host{Name: "cloud-1", Root: "/r"}
	got := []string{b.secretIDFile(h, 0, "cloud-1"), b.secretIDFile(h, 1, "cloud-2"), b.secretIDFile(h, 2, "cloud-3")}
	want := []string{"/r/vault/bootstrap/approle/secret_id", "/r/vault/bootstrap/approle/secret_id.cloud-2", "/r/vault/bootstrap/approle/secret_id.cloud-3"}
	if !slices.Equal(got, want) {
		t.Fatalf("secret_id files %v, want %v", got, want)
	}
	if peers := b.peerSecretIDFiles(h); !slices.Equal(peers, want[1:]) {
		t.Errorf("peer_secret_id_files %v, want %v", peers, want[1:])
	}
}
