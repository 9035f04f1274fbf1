package bootstrap

import (
	"crypto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
)

// opensslText returns `openssl x509 -text` of a PEM certificate.
func opensslText(t *testing.T, dir, certPEM string) string {
	t.Helper()
	f := filepath.Join(dir, "cert-text.pem")
	writeFile(t, f, certPEM+"\n", 0o644)
	out, err := exec.Command("openssl", "x509", "-noout", "-text", "-in", f).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509 -text: %v\n%s", err, out)
	}
	return string(out)
}

// TestIntermediateConstraints covers issue 14's acceptance 3 (second
// half): `openssl x509 -text` of the SPIRE intermediate shows the path
// length and the name constraints the bootstrap asks Vault 1.21.0 for.
// It also covers the upgrade: an intermediate signed with other
// constraints (here: path length 5, no trust domain) is signed again with
// the same key on the next run, and the run after that changes nothing.
func TestIntermediateConstraints(t *testing.T) {
	e := newEnv(t, envOptions{})
	base, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	loose := strings.Replace(string(base), `common_name = "edgeid test intermediate"`, `common_name = "edgeid test intermediate"
  max_path_length = 5`, 1)
	if loose == string(base) {
		t.Fatal("could not edit the configuration")
	}
	writeFile(t, e.cfgPath, loose, 0o600)
	e.mustRun()
	s1 := e.readState()
	text1 := opensslText(t, e.dir, s1.IntCertPEM)
	if !strings.Contains(text1, "pathlen:5") || strings.Contains(text1, "URI:example.org") {
		t.Fatalf("first intermediate is not the loose one the test needs:\n%s", text1)
	}

	// The real configuration: trust domain set, default path length.
	writeFile(t, e.cfgPath, "trust_domain = \"example.org\"\n"+string(base), 0o600)
	sum := e.mustRun()
	if !slices.Contains(sum.Changed, vaultboot.StepPKIIntermediate) {
		t.Errorf("run with constraints changed %v, want %s among them", sum.Changed, vaultboot.StepPKIIntermediate)
	}
	s2 := e.readState()
	text := opensslText(t, e.dir, s2.IntCertPEM)
	t.Logf("openssl x509 -text of the intermediate:\n%s", text)
	for _, want := range []string{
		"CA:TRUE, pathlen:2",
		"X509v3 Name Constraints: critical",
		"Permitted:",
		"URI:example.org",
		"Excluded:",
		"DNS:vault.edgeid.test",
		"DNS:localhost",
		"IP:0.0.0.0/0.0.0.0",
		"IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("openssl x509 -text of the intermediate lacks %q", want)
		}
	}
	// Same key: SPIRE CAs signed under the old certificate still chain.
	if !slices.Equal(s1.Keys["pki_int"], s2.Keys["pki_int"]) {
		t.Errorf("intermediate keys %v -> %v, want the same key", s1.Keys["pki_int"], s2.Keys["pki_int"])
	}
	if !parseCert(t, s1.IntCertPEM).PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(parseCert(t, s2.IntCertPEM).PublicKey) {
		t.Error("the re-signed intermediate has another public key")
	}
	if !slices.ContainsFunc(s2.IssuerNames["pki_int"], func(n string) bool { return strings.HasPrefix(n, "edgeid-intermediate-unconstrained-") }) {
		t.Errorf("pki_int issuer names %v, want the old one kept under a new name", s2.IssuerNames["pki_int"])
	}

	// Converged.
	if sum3 := e.mustRun(); len(sum3.Changed) != 0 {
		t.Errorf("run after re-signing changed %v, want nothing", sum3.Changed)
	}
}
