package vaultpki

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/plugins/common/vaultclient"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
)

func configRequest(hcl, td string) *configv1.ValidateRequest {
	return &configv1.ValidateRequest{HclConfiguration: hcl, CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: td}}
}

func TestBuildConfigDefaultsAndEnvironment(t *testing.T) {
	env := map[string]string{EnvVaultAddr: "https://env:8200", EnvVaultToken: "hvs.env", EnvVaultCACert: "/env/ca.pem", EnvVaultNamespace: "env-ns"}
	cfg, st := buildConfig(configRequest("token_auth {}\n", "example.org"), func(k string) string { return env[k] })
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"address from env", cfg.client.Address, "https://env:8200"},
		{"CA from env", cfg.client.CACertPath, "/env/ca.pem"},
		{"namespace from env", cfg.client.Namespace, "env-ns"},
		{"token from env", cfg.client.Auth.(*vaultclient.TokenAuth).Token, "hvs.env"},
		{"pki mount", cfg.pkiMount, DefaultPKIMountPoint},
		{"poll interval", cfg.rootPollInterval, DefaultRootPollInterval},
		{"request timeout", cfg.client.Timeout, DefaultRequestTimeout},
		{"min ttl", cfg.minTTL, time.Duration(0)},
		{"auth key", cfg.authKey, "token_auth"},
		{"trust domain", cfg.trustDomain.Name(), "example.org"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestBuildConfigProblems(t *testing.T) {
	const auth = "vault_addr = \"https://v:8200\"\ntoken_auth { token = \"t\" }\n"
	tests := []struct {
		name, hcl, td, want string
	}{
		{"no trust domain", auth, "", `trust domain "" from the core configuration is invalid`},
		{"poll interval below a second", auth + "root_poll_interval = \"500ms\"\n", "example.org", "root_poll_interval: 500ms must be at least 1s"},
		{"zero request timeout", auth + "request_timeout = \"0s\"\n", "example.org", "request_timeout: 0s must be positive"},
		{"negative min ttl", auth + "min_ttl = \"-1h\"\n", "example.org", "min_ttl: -1h0m0s must be at least 0s"},
		{"bad issuer", auth + "issuer_ref = \"a/b\"\n", "example.org", `issuer_ref "a/b" must be an issuer name or ID`},
		{"bad kv mount", auth + "kv_mount_point = \"kv/../x\"\n", "example.org", "kv_mount_point: \"kv/../x\" is not a valid Vault path"},
		{"address without host", "vault_addr = \"https://\"\ntoken_auth { token = \"t\" }\n", "example.org", "must be an http or https URL with a host"},
		{"cert auth without files", "vault_addr = \"https://v:8200\"\ncert_auth {}\n", "example.org", "cert_auth: client_cert_path is required; cert_auth: client_key_path is required"},
		{"k8s auth without role", "vault_addr = \"https://v:8200\"\nk8s_auth {}\n", "example.org", "k8s_auth: k8s_auth_role_name is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, st := buildConfig(configRequest(tt.hcl, tt.td), func(string) string { return "" })
			err := st.Err()
			if cfg != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("config %v, error %v; want one containing %q", cfg, err, tt.want)
			}
		})
	}
}
