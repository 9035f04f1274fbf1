package runner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/orchestrator/render"
)

// fakeBinDir holds a stand-in file for every program a real host needs,
// so that New gets past its program check.
func fakeBinDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"spire-server", "spire-agent", "vault", "edgeid", "edgeid-helper",
		"edgeid-upstreamauthority-vaultpki", "edgeid-nodeattestor-kubeedge-server", "edgeid-nodeattestor-kubeedge-agent", "edgeid-workloadattestor-deepstream"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/false\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeTopology(t *testing.T, vault string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topology.hcl")
	src := "trust_domain = \"example.org\"\n" + vault + `
site "a" {
  node "n1" {}
  workload "app" {
    selectors = ["unix:uid:1000"]
  }
}
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func realHost(t *testing.T, topo, root string) (*Runner, error) {
	t.Helper()
	// Custody, not accounts, is under test: one uid, so that the test's
	// 0700 temporary directories do not matter.
	return New(Config{TopologyPath: topo, Host: "cloud", HostConfig: HostConfig{Root: root}, BinDir: fakeBinDir(t), SingleUID: true})
}

// TestRealHostVaultWithoutCustody: `up --host` of the Vault host refuses a
// managed Vault with neither seal_transit nor custodians, and makes no
// unseal identity on the way.
func TestRealHostVaultWithoutCustody(t *testing.T) {
	topo := writeTopology(t, "vault {\n  mode = \"managed\"\n}\n")
	root := t.TempDir()
	_, err := realHost(t, topo, root)
	if err == nil || !strings.Contains(err.Error(), topo+":2,1: vault: a managed Vault on real hosts must not keep what unseals it on its own host") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(render.UnsealIdentityPath(&render.Host{Root: root})); !os.IsNotExist(err) {
		t.Fatalf("a refused run left an unseal identity on the host (stat: %v)", err)
	}
}

// TestRealHostCustodians: with custodians, the Vault host gets no local
// identity, and a custodian's identity found under the host's root stops
// the run before anything is written.
func TestRealHostCustodians(t *testing.T) {
	ids := []*age.X25519Identity{newIdentity(t), newIdentity(t)}
	topo := writeTopology(t, "vault {\n  unseal_custodians = [\""+ids[0].Recipient().String()+"\", \""+ids[1].Recipient().String()+"\"]\n  unseal_threshold = 2\n}\n")
	root := t.TempDir()
	r, err := realHost(t, topo, root)
	if err != nil {
		t.Fatal(err)
	}
	if r.env.UnsealRecipient != "" {
		t.Errorf("the runner made a local unseal recipient %q for a Vault with custodians", r.env.UnsealRecipient)
	}
	if _, err := os.Stat(render.UnsealIdentityPath(&render.Host{Root: root})); !os.IsNotExist(err) {
		t.Fatalf("an unseal identity was made on the host (stat: %v)", err)
	}

	// A custodian who left a key on the host, among other files.
	leak := filepath.Join(root, "home", "ops", "keys.txt")
	if err := os.MkdirAll(filepath.Dir(leak), 0o700); err != nil {
		t.Fatal(err)
	}
	other := newIdentity(t)
	if err := os.WriteFile(leak, []byte("# created: today\n"+other.String()+"\n"+ids[1].String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "big.bin"), make([]byte, maxIdentityFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = realHost(t, topo, root)
	want := "runner: " + leak + " holds the age identity of unseal custodian " + ids[1].Recipient().String() + " (vault.unseal_custodians in " + topo +
		"): a custodian's identity must not be on the Vault host, or whoever reads the host's files holds that share; move it off this machine (and consider that share exposed)"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
	// Another identity (not a custodian's) is no reason to refuse.
	if err := os.WriteFile(leak, []byte(other.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := realHost(t, topo, root); err != nil {
		t.Fatalf("a non-custodian identity refused: %v", err)
	}
}

// TestTransitTokenFile: the file Vault reads its seal token from must be
// private and hold the token alone (Vault does not trim it).
func TestTransitTokenFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
	}{
		{"token alone, 0600", "hvs.CAESIexample", 0o600, ""},
		{"token alone, 0400", "hvs.CAESIexample", 0o400, ""},
		{"trailing newline", "hvs.CAESIexample\n", 0o600, "holds white space at byte 16 (a trailing newline?): Vault reads the file verbatim and would send it as part of the token; write the token alone, for example with printf '%s' \"$TOKEN\" > "},
		{"readable by others", "hvs.CAESIexample", 0o644, "has mode 0644: others may read the token; make it 0600 (or 0400), owned by the user Vault runs as"},
		{"empty", "", 0o600, "is empty"},
		{"too big", strings.Repeat("a", maxTokenFileBytes+1), 0o600, "is over the 4096 byte limit"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "token-"+string(rune('a'+i)))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			err := checkTransitTokenFile(path)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || err.Error() != path+" "+tt.want && !strings.HasPrefix(err.Error(), path+" "+tt.want)):
				t.Fatalf("error:\n%v\nwant:\n%s %s", err, path, tt.want)
			}
		})
	}
	if err := checkTransitTokenFile(filepath.Join(dir, "missing")); err == nil || !os.IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}

	// The runner checks it on the Vault host before anything starts.
	bad := filepath.Join(dir, "with-newline")
	if err := os.WriteFile(bad, []byte("hvs.x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	topo := writeTopology(t, "vault {\n  seal_transit {\n    address = \"https://u.example:8200\"\n    key_name = \"k\"\n    token_file = \""+bad+"\"\n  }\n}\n")
	if _, err := realHost(t, topo, t.TempDir()); err == nil || !strings.HasPrefix(err.Error(), "runner: vault.seal_transit.token_file in "+topo+": "+bad+" holds white space") {
		t.Fatalf("error %v", err)
	}
}

// TestBootstrapCurrent: on a real host the bootstrap is skipped only when
// its last run succeeded with the same bootstrap.hcl and Vault is
// initialised and unsealed; an embedded run always bootstraps.
func TestBootstrapCurrent(t *testing.T) {
	sealed := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/sys/seal-status" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"type":"transit","initialized":true,"sealed":%v}`, sealed)
	}))
	defer srv.Close()
	root := t.TempDir()
	cfg := filepath.Join(root, "vault", "bootstrap.hcl")
	if err := fsutil.WriteFileAtomicMkdir(cfg, []byte("state_dir = \"x\"\n"), 0o600, fsutil.Keep); err != nil {
		t.Fatal(err)
	}
	r := &Runner{cfg: Config{Out: io.Discard}, env: render.Env{}}
	ref := svcRef{&render.Host{Root: root}, &render.Service{URL: srv.URL}}
	check := func(what string, want bool) {
		t.Helper()
		got, err := r.bootstrapCurrent(context.Background(), ref, cfg)
		if err != nil || got != want {
			t.Errorf("%s: bootstrapCurrent = %v, %v; want %v", what, got, err, want)
		}
	}
	check("never bootstrapped", false)
	if err := r.markBootstrapped(cfg); err != nil {
		t.Fatal(err)
	}
	check("bootstrapped with this config, unsealed", true)
	sealed = true
	check("sealed", false)
	sealed = false
	if err := fsutil.WriteFileAtomicMkdir(cfg, []byte("state_dir = \"y\"\n"), 0o600, fsutil.Keep); err != nil {
		t.Fatal(err)
	}
	check("config changed", false)
	r.env.Embedded = true
	if err := r.markBootstrapped(cfg); err != nil {
		t.Fatal(err)
	}
	check("embedded", false)
}
