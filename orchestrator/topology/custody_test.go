package topology

import (
	"strings"
	"testing"

	"filippo.io/age"
)

func recipient(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

// TestVaultCustodyParses reads both custody keys back with their
// defaults.
func TestVaultCustodyParses(t *testing.T) {
	r1, r2, r3 := recipient(t), recipient(t), recipient(t)
	src := base + `vault {
  unseal_custodians = ["` + r1 + `", "` + r2 + `", "` + r3 + `"]
  unseal_threshold  = 2
  seal_transit {
    address    = "https://unsealer.example:8200/"
    key_name   = "edgeid-unseal"
    token_file = "/etc/edgeid/transit-token"
    ca_cert    = "/etc/edgeid/unsealer-ca.pem"
  }
}
`
	top, err := Parse([]byte(src), "topology.hcl")
	if err != nil {
		t.Fatal(err)
	}
	v := top.Vault
	if !v.Managed || len(v.UnsealCustodians) != 3 || v.UnsealCustodians[2] != r3 || v.UnsealThreshold != 2 || !v.HasUnsealCustody() {
		t.Fatalf("vault %+v", v)
	}
	want := SealTransit{Address: "https://unsealer.example:8200", Mount: "transit", KeyName: "edgeid-unseal",
		TokenFile: "/etc/edgeid/transit-token", CACert: "/etc/edgeid/unsealer-ca.pem"}
	if v.SealTransit == nil || *v.SealTransit != want {
		t.Fatalf("seal_transit %+v, want %+v", v.SealTransit, want)
	}
	if v.DefRange.Start.Line != 14 {
		t.Errorf("vault block at line %d, want 14", v.DefRange.Start.Line)
	}

	plain, err := Parse([]byte(base), "topology.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Vault.HasUnsealCustody() || plain.Vault.SealTransit != nil {
		t.Fatalf("a topology without custody keys has custody: %+v", plain.Vault)
	}
	loop, err := Parse([]byte(base+"vault {\n  seal_transit {\n    address = \"http://127.0.0.1:8300\"\n    key_name = \"k\"\n    token_file = \"/t\"\n    mount = \"/unseal/\"\n    disable_renewal = true\n  }\n}\n"), "topology.hcl")
	if err != nil {
		t.Fatalf("http:// to loopback refused: %v", err)
	}
	if st := loop.Vault.SealTransit; st.Mount != "unseal" || !st.DisableRenewal {
		t.Fatalf("seal_transit %+v", st)
	}
}

// TestVaultCustodyErrors: each bad custody setting is one error, with the
// exact message at the place of the key (the vault block line is 14).
func TestVaultCustodyErrors(t *testing.T) {
	r1, r2 := recipient(t), recipient(t)
	transit := func(body string) string {
		return base + "vault {\n  seal_transit {\n" + body + "  }\n}\n"
	}
	const okTransit = "    address = \"https://u.example:8200\"\n    key_name = \"k\"\n    token_file = \"/etc/edgeid/t\"\n"
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"custodian is not a recipient",
			base + "vault {\n  unseal_custodians = [\"" + r1 + "\", \"alice\"]\n  unseal_threshold = 2\n}\n",
			`topology.hcl:15,3: vault.unseal_custodians[1]: "alice" is not an age recipient (age1...)`},
		{"custodian twice",
			base + "vault {\n  unseal_custodians = [\"" + r1 + "\", \"" + r1 + "\"]\n  unseal_threshold = 2\n}\n",
			`topology.hcl:15,3: vault.unseal_custodians[1]: the same recipient as unseal_custodians[0]; each custodian keeps one share`},
		{"custodians without threshold",
			base + "vault {\n  unseal_custodians = [\"" + r1 + "\", \"" + r2 + "\"]\n}\n",
			`topology.hcl:15,3: vault.unseal_custodians: set unseal_threshold too: how many of the 2 custodians must come together`},
		{"threshold above custodians",
			base + "vault {\n  unseal_custodians = [\"" + r1 + "\", \"" + r2 + "\"]\n  unseal_threshold = 3\n}\n",
			`topology.hcl:16,3: vault.unseal_threshold: must be between 2 and the number of unseal_custodians (2) (1 only with a single custodian), got 3`},
		{"threshold 1 of 2",
			base + "vault {\n  unseal_custodians = [\"" + r1 + "\", \"" + r2 + "\"]\n  unseal_threshold = 1\n}\n",
			`topology.hcl:16,3: vault.unseal_threshold: must be between 2 and the number of unseal_custodians (2) (1 only with a single custodian), got 1`},
		{"threshold without custodians",
			base + "vault {\n  unseal_threshold = 2\n}\n",
			`topology.hcl:15,3: vault.unseal_threshold: needs unseal_custodians`},
		{"custodians of an external Vault",
			base + "vault {\n  mode = \"external\"\n  address = \"https://v:8200\"\n  role_id_file = \"r\"\n  secret_id_file = \"s\"\n  unseal_custodians = [\"" + r1 + "\"]\n  unseal_threshold = 1\n}\n",
			`topology.hcl:19,3: vault.unseal_custodians: only for a managed Vault; an external Vault's key shares are kept by whoever runs it`},
		{"transit of an external Vault",
			base + "vault {\n  mode = \"external\"\n  address = \"https://v:8200\"\n  role_id_file = \"r\"\n  secret_id_file = \"s\"\n  seal_transit {\n" + okTransit + "  }\n}\n",
			`topology.hcl:19,3: vault.seal_transit: only for a managed Vault; an external Vault's seal is its own configuration`},
		{"transit address in clear text",
			transit("    address = \"http://unsealer.example:8200\"\n    key_name = \"k\"\n    token_file = \"/t\"\n"),
			`topology.hcl:16,5: vault.seal_transit.address: "http://unsealer.example:8200" would send Vault's seal token in clear text; use https:// (http:// only to a loopback address)`},
		{"transit address without scheme",
			transit("    address = \"unsealer:8200\"\n    key_name = \"k\"\n    token_file = \"/t\"\n"),
			`topology.hcl:16,5: vault.seal_transit.address: "unsealer:8200" is not a Vault address such as "https://vault-unsealer:8200"`},
		{"transit address with a path",
			transit("    address = \"https://u:8200/v1/transit\"\n    key_name = \"k\"\n    token_file = \"/t\"\n"),
			`topology.hcl:16,5: vault.seal_transit.address: "https://u:8200/v1/transit" is not a Vault address such as "https://vault-unsealer:8200"`},
		{"relative token file",
			transit("    address = \"https://u:8200\"\n    key_name = \"k\"\n    token_file = \"transit-token\"\n"),
			`topology.hcl:18,5: vault.seal_transit.token_file: must be an absolute path on the Vault host, got "transit-token"`},
		{"relative CA",
			transit(okTransit + "    ca_cert = \"ca.pem\"\n"),
			`topology.hcl:19,5: vault.seal_transit.ca_cert: must be an absolute path on the Vault host, got "ca.pem"`},
		{"CA with http",
			transit("    address = \"http://127.0.0.1:8300\"\n    key_name = \"k\"\n    token_file = \"/t\"\n    ca_cert = \"/ca.pem\"\n"),
			`topology.hcl:19,5: vault.seal_transit.ca_cert: the address is http://; a CA certificate needs https://`},
		{"bad key name",
			transit("    address = \"https://u:8200\"\n    key_name = \"my key\"\n    token_file = \"/t\"\n"),
			`topology.hcl:17,5: vault.seal_transit.key_name: "my key" is not a Transit key name`},
		{"bad mount",
			transit(okTransit + "    mount = \"tran sit\"\n"),
			`topology.hcl:19,5: vault.seal_transit.mount: "tran sit" is not a Vault mount path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "topology.hcl")
			errs, ok := err.(Errors)
			if !ok || len(errs) != 1 {
				t.Fatalf("want exactly one error, got %v", err)
			}
			if got := errs[0].Error(); got != tt.want {
				t.Fatalf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
	t.Run("token_file and key_name are required", func(t *testing.T) {
		_, err := Parse([]byte(transit("    address = \"https://u:8200\"\n")), "topology.hcl")
		if err == nil || !strings.Contains(err.Error(), `"key_name" is required`) || !strings.Contains(err.Error(), `"token_file" is required`) {
			t.Fatalf("error %v", err)
		}
	})
}
