package bootstrap

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgeid/edgeid/bootstrap/cli"
	"github.com/edgeid/edgeid/bootstrap/vaultboot"
)

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// TestBootstrapFromScratch covers acceptance 1 (from scratch), 2
// (idempotent), 4 (no plaintext share on disk or in the logs) and 5
// (restart): one fresh non-dev Vault, bootstrapped, bootstrapped again,
// restarted sealed and bootstrapped a third time.
func TestBootstrapFromScratch(t *testing.T) {
	e := newEnv(t, envOptions{})

	// --- 1. From scratch.
	sum := e.mustRun()
	if !slices.Contains(sum.Changed, vaultboot.StepInit) || !slices.Contains(sum.Changed, vaultboot.StepPKIIntermediate) {
		t.Errorf("first run changed %v, want init and the PKI among them", sum.Changed)
	}
	st, err := e.client().Sys().SealStatus()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Initialized || st.Sealed {
		t.Fatalf("after bootstrap: initialized=%v sealed=%v, want initialized and unsealed", st.Initialized, st.Sealed)
	}
	if sum.RootToken.Source != "init" || !sum.RootToken.Revoked || sum.RootToken.Accessor == "" {
		t.Fatalf("root token summary %+v, want the init token, revoked", sum.RootToken)
	}
	s1 := e.readState()
	e.withRoot(func(c *vaultapi.Client, _ string) {
		_, err := c.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": sum.RootToken.Accessor})
		if err == nil {
			t.Errorf("lookup of the bootstrap's root token (accessor %s) succeeded; it should be revoked", sum.RootToken.Accessor)
		}
	})
	if len(s1.RootTokens) != 0 {
		t.Errorf("root tokens left in Vault: %v", s1.RootTokens)
	}

	// The intermediate chains to the root: openssl verify.
	root, inter := parseCert(t, s1.RootCertPEM), parseCert(t, s1.IntCertPEM)
	rootFile, intFile := filepath.Join(e.dir, "root.pem"), filepath.Join(e.dir, "int.pem")
	writeFile(t, rootFile, s1.RootCertPEM+"\n", 0o644)
	writeFile(t, intFile, s1.IntCertPEM+"\n", 0o644)
	if out := opensslVerify(t, rootFile, intFile); !strings.HasSuffix(out, ": OK") {
		t.Fatalf("openssl verify: %s", out)
	}
	if !root.IsCA || !inter.IsCA || root.Subject.CommonName != "edgeid test root" || inter.Subject.CommonName != "edgeid test intermediate" {
		t.Errorf("root %q (CA %v), intermediate %q (CA %v)", root.Subject, root.IsCA, inter.Subject, inter.IsCA)
	}
	if root.PublicKeyAlgorithm != x509.ECDSA || inter.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithms %v / %v, want ECDSA (P-256 default)", root.PublicKeyAlgorithm, inter.PublicKeyAlgorithm)
	}
	if sum.PKIRoot.FingerprintSHA256 != fingerprint(root) || sum.PKIIntermediate.FingerprintSHA256 != fingerprint(inter) {
		t.Errorf("summary fingerprints %s / %s do not match the CAs in Vault", sum.PKIRoot.FingerprintSHA256, sum.PKIIntermediate.FingerprintSHA256)
	}
	if sum.PKIRoot.Mount != "pki" || sum.PKIIntermediate.Mount != "pki_int" {
		t.Errorf("summary mounts %q, %q", sum.PKIRoot.Mount, sum.PKIIntermediate.Mount)
	}
	if s1.Mounts["pki/"] == "" || s1.Mounts["pki_int/"] == "" || s1.KVVersion != "2" || s1.Auths["approle/"] == "" || s1.Audits["file/"] != "file "+e.auditLog {
		t.Errorf("mounts %v, auth %v, audit %v", s1.Mounts, s1.Auths, s1.Audits)
	}
	if info, err := os.Stat(e.auditLog); err != nil || info.Size() == 0 {
		t.Errorf("audit log %s is missing or empty: %v", e.auditLog, err)
	}

	// The AppRole login works, and only for what SPIRE needs.
	checkAppRole(t, e, sum, inter)

	// Vault's own TLS certificate, from the intermediate.
	checkVaultTLS(t, e, sum, rootFile, intFile)

	// --- 4. No plaintext share anywhere on disk or in the logs.
	shares := e.plainShares()
	e.scanForShares(shares, e.dir, e.vault.Dir)
	for i := 0; i < shareCount; i++ {
		p := filepath.Join(e.stateDir, "unseal", fmt.Sprintf("share-%d.age", i+1))
		info, err := os.Stat(p)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, err %v; want 0600", p, info.Mode().Perm(), err)
		}
	}

	// --- 2. A second run changes nothing.
	sum2 := e.mustRun()
	if len(sum2.Changed) != 0 {
		t.Errorf("second run changed %v, want nothing", sum2.Changed)
	}
	if sum2.PKIRoot.FingerprintSHA256 != sum.PKIRoot.FingerprintSHA256 || sum2.PKIIntermediate.FingerprintSHA256 != sum.PKIIntermediate.FingerprintSHA256 {
		t.Errorf("fingerprints changed on the second run")
	}
	if sum2.RootToken.Source != "generate-root" || !sum2.RootToken.Revoked {
		t.Errorf("second run root token %+v, want generate-root, revoked", sum2.RootToken)
	}
	s2 := e.readState()
	compareStates(t, "second run", s1, s2)
	if sum2.VaultTLS == nil || sum2.VaultTLS.FingerprintSHA256 != sum.VaultTLS.FingerprintSHA256 {
		t.Errorf("Vault's TLS certificate was re-issued on the second run")
	}

	// --- 5. Restart: Vault comes back sealed; bootstrap unseals it and
	// changes nothing else.
	e.vault.Stop(t)
	e.vault.Start(t)
	if st, err := e.client().Sys().SealStatus(); err != nil || !st.Sealed {
		t.Fatalf("after restart: sealed=%v err=%v, want sealed", st.Sealed, err)
	}
	sum3 := e.mustRun()
	if !reflect.DeepEqual(sum3.Changed, []string{vaultboot.StepUnseal}) {
		t.Errorf("run after restart changed %v, want only unseal", sum3.Changed)
	}
	if st, err := e.client().Sys().SealStatus(); err != nil || st.Sealed {
		t.Fatalf("after bootstrap: sealed=%v err=%v, want unsealed", st.Sealed, err)
	}
	s3 := e.readState()
	compareStates(t, "run after restart", s1, s3)

	// The logs of all three runs hold progress lines and no share.
	logs, err := os.ReadFile(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[1/12] Wait for Vault", "[2/12] Initialise Vault", "[5/12] PKI root CA", "[6/12] PKI intermediate CA", "Revoked the root token", "[12/12] Summary"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("run logs lack %q", want)
		}
	}
	e.scanForShares(e.plainShares(), e.dir, e.vault.Dir)
}

// compareStates fails when anything the bootstrap manages differs.
func compareStates(t *testing.T, what string, a, b state) {
	t.Helper()
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < av.NumField(); i++ {
		name := av.Type().Field(i).Name
		if !reflect.DeepEqual(av.Field(i).Interface(), bv.Field(i).Interface()) {
			t.Errorf("%s changed %s:\nbefore: %v\nafter:  %v", what, name, av.Field(i).Interface(), bv.Field(i).Interface())
		}
	}
}

// checkAppRole logs in with the files the bootstrap wrote and checks that
// the token can do what the vault_pki plugin does and nothing more.
func checkAppRole(t *testing.T, e *env, sum vaultboot.Summary, inter *x509.Certificate) {
	t.Helper()
	c := e.approleLogin(sum)
	self, err := c.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("AppRole token lookup-self: %v", err)
	}
	policies, _ := self.TokenPolicies()
	ttl, _ := self.TokenTTL()
	renewable, _ := self.TokenIsRenewable()
	if !reflect.DeepEqual(policies, []string{"edgeid-spire-upstream"}) {
		t.Errorf("AppRole token policies %v, want only edgeid-spire-upstream", policies)
	}
	if !renewable || ttl <= 0 || ttl > 30*time.Minute {
		t.Errorf("AppRole token renewable=%v ttl=%s, want renewable and at most 30m", renewable, ttl)
	}
	if _, err := c.Auth().Token().RenewSelf(0); err != nil {
		t.Errorf("AppRole token cannot renew itself: %v", err)
	}

	// Allowed: sign an intermediate for the SPIRE server.
	sec, err := c.Logical().Write("pki_int/root/sign-intermediate", map[string]any{
		"csr": newCSR(t, "SPIRE server CA"), "common_name": "SPIRE server CA", "ttl": "1h", "use_csr_values": true,
		"uri_sans": "spiffe://example.org",
	})
	if err != nil {
		t.Fatalf("AppRole cannot call pki_int/root/sign-intermediate: %v", err)
	}
	spireCA := parseCert(t, sec.Data["certificate"].(string))
	if err := spireCA.CheckSignatureFrom(inter); err != nil || !spireCA.IsCA {
		t.Errorf("signed SPIRE CA: IsCA=%v, chains to the intermediate: %v", spireCA.IsCA, err)
	}
	// Allowed: what the plugin reads and writes.
	allowed := []struct {
		what string
		call func() error
	}{
		{"list pki_int/issuers", func() error { _, err := c.Logical().List("pki_int/issuers"); return err }},
		{"read pki_int/issuer/default/json", func() error { _, err := c.Logical().Read("pki_int/issuer/default/json"); return err }},
		{"write the JWT authorities", func() error {
			_, err := c.Logical().Write("secret/data/edgeid/example.org/jwt-authorities", map[string]any{"data": map[string]any{"keys": []any{}}})
			return err
		}},
		{"read the JWT authorities", func() error { _, err := c.Logical().Read("secret/data/edgeid/example.org/jwt-authorities"); return err }},
		{"capabilities-self", func() error { _, err := c.Sys().CapabilitiesSelf("pki_int/root/sign-intermediate"); return err }},
	}
	for _, a := range allowed {
		if err := a.call(); err != nil {
			t.Errorf("AppRole token cannot %s: %v", a.what, err)
		}
	}
	// Denied: sys/, policies, the root CA, leaf issuance, other secrets.
	denied := []struct {
		what string
		call func() error
	}{
		{"read sys/mounts", func() error { _, err := c.Logical().Read("sys/mounts"); return err }},
		{"read sys/auth", func() error { _, err := c.Logical().Read("sys/auth"); return err }},
		{"list sys/policies/acl", func() error { _, err := c.Logical().List("sys/policies/acl"); return err }},
		{"read its own policy", func() error { _, err := c.Logical().Read("sys/policies/acl/edgeid-spire-upstream"); return err }},
		{"write a policy", func() error {
			_, err := c.Logical().Write("sys/policies/acl/evil", map[string]any{"policy": `path "*" { capabilities = ["sudo"] }`})
			return err
		}},
		{"sign with pki", func() error {
			_, err := c.Logical().Write("pki/root/sign-intermediate", map[string]any{"csr": newCSR(t, "evil"), "common_name": "evil"})
			return err
		}},
		{"issue from pki", func() error {
			_, err := c.Logical().Write("pki/issue/any", map[string]any{"common_name": "evil.example.org"})
			return err
		}},
		{"generate a root in pki", func() error {
			_, err := c.Logical().Write("pki/root/generate/internal", map[string]any{"common_name": "evil"})
			return err
		}},
		{"issue a leaf for Vault's name from pki_vault_tls", func() error {
			_, err := c.Logical().Write("pki_vault_tls/issue/edgeid-vault-server", map[string]any{"common_name": "vault.edgeid.test"})
			return err
		}},
		{"read another secret", func() error { _, err := c.Logical().Read("secret/data/other"); return err }},
		{"read its role", func() error { _, err := c.Logical().Read("auth/approle/role/spire-server"); return err }},
		{"create a token", func() error { _, err := c.Auth().Token().Create(&vaultapi.TokenCreateRequest{}); return err }},
	}
	for _, d := range denied {
		err := d.call()
		if statusOf(err) != 403 {
			t.Errorf("AppRole token can %s (err %v), want permission denied", d.what, err)
		}
	}
}

// checkVaultTLS checks Vault's own certificate and the written config.
func checkVaultTLS(t *testing.T, e *env, sum vaultboot.Summary, rootFile, intFile string) {
	t.Helper()
	if sum.VaultTLS == nil {
		t.Fatal("summary has no vault_tls")
	}
	// Vault's certificate chains to the Vault TLS CA, which is ca_file
	// and nothing else; the SPIRE root does not verify it.
	out := opensslVerify(t, sum.VaultTLS.CAFile, sum.VaultTLS.CertFile)
	if !strings.HasSuffix(out, ": OK") {
		t.Fatalf("openssl verify of Vault's certificate with ca_file: %s", out)
	}
	if out, err := exec.Command("openssl", "verify", "-CAfile", rootFile, "-untrusted", intFile, sum.VaultTLS.CertFile).CombinedOutput(); err == nil {
		t.Errorf("Vault's certificate verifies with the SPIRE root; it must come from a CA of its own: %s", out)
	}
	caPEM, err := os.ReadFile(sum.VaultTLS.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(caPEM), strings.TrimSpace(string(rootPEM))) || strings.Count(string(caPEM), "BEGIN CERTIFICATE") != 1 {
		t.Errorf("ca_file %s must hold exactly the Vault TLS CA, not the SPIRE root:\n%s", sum.VaultTLS.CAFile, caPEM)
	}
	if sum.VaultTLS.CA.Mount != "pki_vault_tls" || sum.VaultTLS.CA.Subject != "CN=edgeid Vault TLS CA" {
		t.Errorf("summary vault_tls.ca %+v, want pki_vault_tls's own CA", sum.VaultTLS.CA)
	}
	pem, err := os.ReadFile(sum.VaultTLS.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, string(pem))
	if !slices.Contains(leaf.DNSNames, "vault.edgeid.test") || !slices.Contains(leaf.DNSNames, "localhost") || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal([]byte{127, 0, 0, 1}) {
		t.Errorf("Vault certificate names %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("Vault certificate EKU %v, want server auth", leaf.ExtKeyUsage)
	}
	if info, err := os.Stat(sum.VaultTLS.KeyFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v err %v, want 0600", info.Mode().Perm(), err)
	}
	cfg, err := os.ReadFile(sum.VaultTLS.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`tls_cert_file     = "` + sum.VaultTLS.CertFile + `"`, `tls_key_file      = "` + sum.VaultTLS.KeyFile + `"`, `tls_min_version   = "tls12"`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("Vault TLS config lacks %q:\n%s", want, cfg)
		}
	}
}

// TestBootstrapCrashSafe covers acceptance 3: the bootstrap binary is
// killed (SIGKILL) at several points, then run again; every time it
// converges to the same final state as an uninterrupted run.
func TestBootstrapCrashSafe(t *testing.T) {
	points := []string{
		vaultboot.StepInit,                    // Vault initialised, sealed, init root token alive
		vaultboot.CheckpointRootMounted,       // pki mounted, no root yet
		vaultboot.StepPKIRoot,                 // root made, no intermediate
		vaultboot.CheckpointIntSigned,         // intermediate signed by pki, not imported
		vaultboot.CheckpointIntImported,       // imported into pki_int, issuer not named
		vaultboot.CheckpointSecretIDGenerated, // secret_id made in Vault, not written to disk
		vaultboot.StepAudit,                   // all but TLS and the token revocation
	}
	var reference string
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			res := e.run(e.cfgPath, append(e.identityEnv(), cli.CrashAfterEnv+"="+point)...)
			if res.err == nil || !strings.Contains(res.err.Error(), "killed") {
				t.Fatalf("run armed to crash after %s ended with %v, want killed by SIGKILL\nstderr:\n%s", point, res.err, res.stderr)
			}
			if !strings.Contains(res.stderr, "Test hook: killing the process") {
				t.Fatalf("the crash hook did not fire:\n%s", res.stderr)
			}
			sum := e.mustRun()
			st := e.readState()
			if len(st.RootTokens) != 0 {
				t.Errorf("root tokens left after the re-run: %v", st.RootTokens)
			}
			if st.SecretIDs != 1 {
				t.Errorf("%d secret_ids for the role, want exactly the one on disk", st.SecretIDs)
			}
			root, inter := parseCert(t, st.RootCertPEM), parseCert(t, st.IntCertPEM)
			if err := inter.CheckSignatureFrom(root); err != nil {
				t.Errorf("intermediate does not chain to the root: %v", err)
			}
			if sum.PKIRoot.FingerprintSHA256 != fingerprint(root) || sum.PKIIntermediate.FingerprintSHA256 != fingerprint(inter) {
				t.Errorf("summary fingerprints do not match Vault's CAs")
			}
			checkAppRole(t, e, sum, inter)
			// A third run finds nothing to do.
			if sum3 := e.mustRun(); len(sum3.Changed) != 0 {
				t.Errorf("run after convergence changed %v", sum3.Changed)
			}
			shape := st.shape()
			if reference == "" {
				reference = shape
				t.Logf("converged state:\n%s", shape)
			} else if shape != reference {
				t.Errorf("converged to a different state than after the first crash point:\n%s\nwant:\n%s", shape, reference)
			}
			e.scanForShares(e.plainShares(), e.dir, e.vault.Dir)
		})
	}
}

// TestBootstrapBadInput covers acceptance 6: a malformed config, an
// unreachable Vault, and a wrong or missing decryption identity give a
// clear error naming the problem and leave Vault unchanged.
func TestBootstrapBadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	uninitialised := func() {
		t.Helper()
		st, err := e.client().Sys().SealStatus()
		if err != nil || st.Initialized {
			t.Fatalf("Vault initialized=%v (err %v), want untouched", st.Initialized, err)
		}
	}

	// Malformed config: an unknown key, named with file and line.
	bad := filepath.Join(e.dir, "bad.hcl")
	good, _ := os.ReadFile(e.cfgPath)
	badText := strings.Replace(string(good), "  wait_timeout ", "  wait_timout ", 1)
	writeFile(t, bad, badText, 0o600)
	line := strings.Count(badText[:strings.Index(badText, "wait_timout")], "\n") + 1
	res := e.run(bad, e.identityEnv()...)
	if res.err == nil || !strings.Contains(res.stderr, fmt.Sprintf("%s:%d,", bad, line)) || !strings.Contains(res.stderr, `"wait_timout" is not expected`) {
		t.Errorf("malformed config: err %v, stderr:\n%s", res.err, res.stderr)
	}
	// Malformed config: invalid values, every one named.
	writeFile(t, bad, strings.Replace(string(good), "secret_threshold = 2", "secret_threshold = 7", 1), 0o600)
	res = e.run(bad, e.identityEnv()...)
	if res.err == nil || !strings.Contains(res.stderr, bad+": init.secret_threshold: must be between 2 and secret_shares (3)") {
		t.Errorf("invalid config: err %v, stderr:\n%s", res.err, res.stderr)
	}
	uninitialised()

	// Unreachable Vault.
	unreachable := filepath.Join(e.dir, "unreachable.hcl")
	writeFile(t, unreachable, strings.Replace(strings.Replace(string(good), e.vault.Addr, "http://127.0.0.1:1", 1), `wait_timeout    = "30s"`, `wait_timeout    = "2s"`, 1), 0o600)
	res = e.run(unreachable, e.identityEnv()...)
	if res.err == nil || !strings.Contains(res.stderr, "Vault at http://127.0.0.1:1 did not answer within 2s") {
		t.Errorf("unreachable Vault: err %v, stderr:\n%s", res.err, res.stderr)
	}
	uninitialised()
	if _, err := os.Stat(filepath.Join(e.stateDir, "unseal")); err == nil {
		t.Errorf("a failed run left a shares directory")
	}

	// Bootstrap for real, then restart Vault so it is sealed.
	e.mustRun()
	before := e.readState()
	e.vault.Stop(t)
	e.vault.Start(t)

	otherKey := filepath.Join(e.dir, "other.key")
	other := newIdentity(t)
	writeFile(t, otherKey, other+"\n", 0o600)
	wrongCfg := filepath.Join(e.dir, "wrong-identity.hcl")
	writeFile(t, wrongCfg, strings.Replace(string(good), e.identityFile, otherKey, 1), 0o600)
	missingCfg := filepath.Join(e.dir, "missing-identity.hcl")
	writeFile(t, missingCfg, strings.Replace(string(good), e.identityFile, filepath.Join(e.dir, "no-such.key"), 1), 0o600)

	cases := []struct {
		name string
		cfg  string
		env  []string
		want string
	}{
		{"wrong identity file and none in the environment", wrongCfg, nil, "decrypted 0 of the 2 key shares needed"},
		{"one identity short of the threshold", e.cfgPath, nil, "decrypted 1 of the 2 key shares needed"},
		{"wrong identity in the environment", e.cfgPath, []string{identEnv + "=" + other}, "decrypted 1 of the 2 key shares needed"},
		{"missing identity file", missingCfg, e.identityEnv(), "unseal.age_identity_files"},
		{"malformed identity in the environment", e.cfgPath, []string{identEnv + "=AGE-SECRET-KEY-1BOGUS"}, "unseal.age_identity_env: $" + identEnv},
	}
	check := func(sealed bool) {
		for _, c := range cases {
			res := e.run(c.cfg, c.env...)
			if res.err == nil || !strings.Contains(res.stderr, c.want) {
				t.Errorf("%s (sealed=%v): err %v, want an error containing %q; stderr:\n%s", c.name, sealed, res.err, c.want, res.stderr)
			}
			if strings.Contains(res.stderr, "BOGUS") {
				t.Errorf("%s: the error echoes the identity", c.name)
			}
			st, err := e.client().Sys().SealStatus()
			if err != nil || st.Sealed != sealed || st.Progress != 0 {
				t.Fatalf("%s: sealed=%v progress=%d err=%v; want Vault untouched (sealed=%v)", c.name, st.Sealed, st.Progress, err, sealed)
			}
			if !sealed {
				gr, err := e.client().Sys().GenerateRootStatus()
				if err != nil || gr.Started {
					t.Fatalf("%s: a generate-root attempt was started (err %v)", c.name, err)
				}
			}
		}
	}
	check(true)

	// Unseal with the right identities, then try the bad inputs against
	// the unsealed Vault: they must not start generate-root or change state.
	if sum := e.mustRun(); !reflect.DeepEqual(sum.Changed, []string{vaultboot.StepUnseal}) {
		t.Errorf("unseal run changed %v", sum.Changed)
	}
	check(false)
	compareStates(t, "bad input", before, e.readState())
}

func newIdentity(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// TestBootstrapPGPShares keeps the shares with Vault's native pgp_keys:
// Vault encrypts each share to one custodian's OpenPGP key, and the
// bootstrap unseals with two passphrase-protected private keys.
func TestBootstrapPGPShares(t *testing.T) {
	e := newEnv(t, envOptions{pgp: true})
	pass := pgpPassEnv + "=" + pgpPassphrase
	res := e.run(e.cfgPath, pass)
	if res.err != nil {
		t.Fatalf("bootstrap: %v\n%s", res.err, res.stderr)
	}
	if res.sum.Shares.Encryption != "pgp" || len(res.sum.Shares.Files) != shareCount {
		t.Fatalf("shares summary %+v", res.sum.Shares)
	}
	shares := e.plainShares()
	e.scanForShares(shares, e.dir, e.vault.Dir)
	before := e.readState()
	if len(before.RootTokens) != 0 {
		t.Errorf("root tokens left: %v", before.RootTokens)
	}

	// Without the passphrase the keys cannot be used, and Vault is left alone.
	e.vault.Stop(t)
	e.vault.Start(t)
	res = e.run(e.cfgPath)
	if res.err == nil || !strings.Contains(res.stderr, "passphrase") {
		t.Errorf("run without the passphrase: err %v\n%s", res.err, res.stderr)
	}
	if st, err := e.client().Sys().SealStatus(); err != nil || !st.Sealed || st.Progress != 0 {
		t.Fatalf("sealed=%v progress=%d err=%v, want untouched", st.Sealed, st.Progress, err)
	}

	res = e.run(e.cfgPath, pass)
	if res.err != nil {
		t.Fatalf("bootstrap after restart: %v\n%s", res.err, res.stderr)
	}
	if !reflect.DeepEqual(res.sum.Changed, []string{vaultboot.StepUnseal}) {
		t.Errorf("run after restart changed %v, want only unseal", res.sum.Changed)
	}
	compareStates(t, "run after restart", before, e.readState())
	e.scanForShares(shares, e.dir, e.vault.Dir)
}

// TestBootstrapExternalRoot runs pki_root.mode = "external": the first run
// stops with the CSR for the offline root written; once an offline root
// (played by the test) has signed it, the next run imports it and
// finishes, and the intermediate chains through it to the offline root.
func TestBootstrapExternalRoot(t *testing.T) {
	e := newEnv(t, envOptions{})
	csrFile := filepath.Join(e.dir, "offline", "pki.csr")
	signedFile := filepath.Join(e.dir, "offline", "pki-signed.pem")
	text, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ext := strings.Replace(string(text), `  common_name = "edgeid test root"`, fmt.Sprintf(`  common_name = "edgeid test root"
  mode             = "external"
  csr_file         = %q
  signed_cert_file = %q`, csrFile, signedFile), 1)
	writeFile(t, e.cfgPath, ext, 0o600)

	res := e.run(e.cfgPath, e.identityEnv()...)
	if res.err == nil || !strings.Contains(res.stderr, "waiting for the external root CA to sign the CSR: CSR in "+csrFile) {
		t.Fatalf("first run: err %v, want it to stop for the offline signature\n%s", res.err, res.stderr)
	}
	csrPEM, err := os.ReadFile(csrFile)
	if err != nil {
		t.Fatal(err)
	}
	// A second run without the signed certificate stops the same way and
	// makes no new key.
	res = e.run(e.cfgPath, e.identityEnv()...)
	if res.err == nil {
		t.Fatal("second run without the signed certificate succeeded")
	}
	csrPEM2, _ := os.ReadFile(csrFile)
	if parseCSRKey(t, csrPEM) != parseCSRKey(t, csrPEM2) {
		t.Fatal("the second run made a CSR for another key")
	}

	// The offline root signs the CSR.
	offline, offlineKey := newOfflineRoot(t)
	signed := signCSR(t, csrPEM, offline, offlineKey)
	writeFile(t, signedFile, signed+string(pemCert(offline)), 0o644)

	sum := e.mustRun()
	if !slices.Contains(sum.Changed, vaultboot.StepPKIRoot) || !slices.Contains(sum.Changed, vaultboot.StepPKIIntermediate) {
		t.Errorf("run with the signed certificate changed %v", sum.Changed)
	}
	st := e.readState()
	offlineFile := filepath.Join(e.dir, "offline-root.pem")
	pkiFile := filepath.Join(e.dir, "pki.pem")
	intFile := filepath.Join(e.dir, "pki_int.pem")
	writeFile(t, offlineFile, string(pemCert(offline)), 0o644)
	writeFile(t, pkiFile, st.RootCertPEM+"\n", 0o644)
	writeFile(t, intFile, st.IntCertPEM+"\n", 0o644)
	if out := opensslVerify(t, offlineFile, intFile, pkiFile); !strings.HasSuffix(out, ": OK") {
		t.Fatalf("openssl verify of the intermediate through pki to the offline root: %s", out)
	}
	if parseCert(t, st.RootCertPEM).Subject.CommonName != "edgeid test root" {
		t.Errorf("pki issuer subject %q", parseCert(t, st.RootCertPEM).Subject)
	}
	checkAppRole(t, e, sum, parseCert(t, st.IntCertPEM))
	if sum2 := e.mustRun(); len(sum2.Changed) != 0 {
		t.Errorf("run after the import changed %v", sum2.Changed)
	}
	compareStates(t, "run after the import", st, e.readState())
}
