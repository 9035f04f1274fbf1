package bootstrap

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/ProtonMail/go-crypto/openpgp"
	pgparmor "github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
	"github.com/edgeid/edgeid/plugins/common/vaultclient"
	"github.com/edgeid/edgeid/test/harness"
)

const (
	shareCount = 3
	threshold  = 2
	identEnv   = "EDGEID_TEST_UNSEAL_AGE_IDENTITY"
)

// env is one real non-dev Vault, the bootstrap binary, age custodians and
// a configuration file for them.
type env struct {
	t     *testing.T
	vault *harness.Vault
	bin   string
	dir   string
	// ids are the custodians' identities; share i is encrypted to ids[i].
	ids []*age.X25519Identity
	// pgpKeys are the custodians' OpenPGP keys in pgp mode.
	pgpKeys openpgp.EntityList
	// identityFile holds ids[0]; ids[1] is given through identEnv.
	identityFile string
	cfgPath      string
	stateDir     string
	auditLog     string
	// logPath collects every run's stdout and stderr, for the share scan.
	logPath string
}

type envOptions struct {
	// extraHCL is appended to the configuration.
	extraHCL string
	// pgp keeps the shares with Vault's native pgp_keys instead of age.
	pgp bool
	// tls serves Vault's API over TLS (cert auth needs it).
	tls bool
}

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	// A test build: it carries the crash hook (cli.CrashAfterEnv).
	e.bin = harness.BuildBinaryTags(t, "./bootstrap/cmd/edgeid-bootstrap", "edgeid-bootstrap", "edgeid_testhooks").Path
	e.vault = harness.StartVault(t, harness.VaultOptions{Storage: "raft", TLS: opts.tls})
	var recs []string
	for i := 0; i < shareCount; i++ {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		e.ids = append(e.ids, id)
		recs = append(recs, id.Recipient().String())
	}
	e.identityFile = filepath.Join(e.dir, "custodian-1.key")
	writeFile(t, e.identityFile, "# custodian 1\n"+e.ids[0].String()+"\n", 0o600)
	e.stateDir = filepath.Join(e.dir, "state")
	e.auditLog = filepath.Join(e.dir, "audit", "vault-audit.log")
	if err := os.MkdirAll(filepath.Dir(e.auditLog), 0o700); err != nil {
		t.Fatal(err)
	}
	e.logPath = filepath.Join(e.dir, "bootstrap-runs.log")
	e.cfgPath = filepath.Join(e.dir, "bootstrap.hcl")
	text := e.config(recs, e.identityFile, opts.extraHCL)
	if opts.pgp {
		text = e.pgpConfig(text)
	}
	writeFile(t, e.cfgPath, text, 0o600)
	return e
}

// pgpConfig swaps the age settings of text for Vault's pgp_keys: one
// OpenPGP key per share, private keys protected by a passphrase given
// through the environment.
func (e *env) pgpConfig(text string) string {
	e.t.Helper()
	var pubs, privs []string
	for i := 0; i < shareCount; i++ {
		ent, err := openpgp.NewEntity(fmt.Sprintf("custodian %d", i+1), "", fmt.Sprintf("c%d@edgeid.test", i+1), nil)
		if err != nil {
			e.t.Fatal(err)
		}
		var pub bytes.Buffer
		w, _ := pgparmor.Encode(&pub, openpgp.PublicKeyType, nil)
		if err := ent.Serialize(w); err != nil {
			e.t.Fatal(err)
		}
		w.Close()
		pubFile := filepath.Join(e.dir, fmt.Sprintf("custodian-%d.pub.asc", i+1))
		writeFile(e.t, pubFile, pub.String(), 0o644)
		pubs = append(pubs, pubFile)
		e.pgpKeys = append(e.pgpKeys, ent)
		if i >= threshold {
			continue
		}
		// Serialize a passphrase-protected copy; keep the decrypted one.
		var priv bytes.Buffer
		copyEnt, err := openpgp.ReadEntity(packetReader(e.t, ent))
		if err != nil {
			e.t.Fatal(err)
		}
		if err := copyEnt.EncryptPrivateKeys([]byte(pgpPassphrase), nil); err != nil {
			e.t.Fatal(err)
		}
		w, _ = pgparmor.Encode(&priv, openpgp.PrivateKeyType, nil)
		if err := copyEnt.SerializePrivateWithoutSigning(w, nil); err != nil {
			e.t.Fatal(err)
		}
		w.Close()
		privFile := filepath.Join(e.dir, fmt.Sprintf("custodian-%d.sec.asc", i+1))
		writeFile(e.t, privFile, priv.String(), 0o600)
		privs = append(privs, privFile)
	}
	start, end := strings.Index(text, "init {"), strings.Index(text, "pki_root {")
	return text[:start] + fmt.Sprintf(`init {
  secret_shares    = %d
  secret_threshold = %d
  pgp_key_files    = [%s]
}
unseal {
  pgp_private_key_files = [%s]
  pgp_passphrase_env    = %q
}
`, shareCount, threshold, quoteList(pubs), quoteList(privs), pgpPassEnv) + text[end:]
}

const (
	pgpPassphrase = "correct horse battery staple"
	pgpPassEnv    = "EDGEID_TEST_PGP_PASSPHRASE"
)

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// packetReader re-reads an entity's private serialization, to get an
// independent copy.
func packetReader(t *testing.T, ent *openpgp.Entity) *packet.Reader {
	t.Helper()
	var buf bytes.Buffer
	if err := ent.SerializePrivateWithoutSigning(&buf, nil); err != nil {
		t.Fatal(err)
	}
	return packet.NewReader(&buf)
}

func (e *env) config(recs []string, identityFile, extra string) string {
	return fmt.Sprintf(`state_dir    = %q
summary_file = %q
vault {
  address         = %q
  wait_timeout    = "30s"
  request_timeout = "30s"
%s}
init {
  secret_shares    = %d
  secret_threshold = %d
  age_recipients   = [%s]
}
unseal {
  age_identity_files = [%q]
  age_identity_env   = %q
}
pki_root {
  common_name = "edgeid test root"
  ttl         = "87600h"
}
pki_intermediate {
  common_name = "edgeid test intermediate"
  ttl         = "43800h"
}
audit {
  file_path = %q
}
vault_tls {
  common_name = "vault.edgeid.test"
  dns_names   = ["localhost"]
  ip_sans     = ["127.0.0.1"]
  ttl         = "720h"
}
%s
`, e.stateDir, filepath.Join(e.stateDir, "summary.json"), e.vault.Addr, e.caLine(), shareCount, threshold,
		`"`+strings.Join(recs, `", "`)+`"`, identityFile, identEnv, e.auditLog, extra)
}

// caLine is the vault block's ca_cert_file line for a TLS Vault.
func (e *env) caLine() string {
	if e.vault.CACertPath == "" {
		return ""
	}
	return fmt.Sprintf("  ca_cert_file    = %q\n", e.vault.CACertPath)
}

// identityEnv is the environment that gives the bootstrap the second
// custodian's identity, so two shares (the threshold) can be decrypted.
func (e *env) identityEnv() []string {
	return []string{identEnv + "=" + e.ids[1].String()}
}

type runResult struct {
	sum    vaultboot.Summary
	stdout string
	stderr string
	err    error
}

// run runs the bootstrap binary with the given configuration and extra
// environment, in a clean environment (no VAULT_* variables).
func (e *env) run(cfgPath string, extraEnv ...string) runResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, "vault", "--config", cfgPath)
	cmd.Env = append(harness.CleanEnv(e.dir), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := runResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
	f, ferr := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if ferr == nil {
		fmt.Fprintf(f, "=== run %v (%s) err=%v\n%s\n--- stdout\n%s\n", cmd.Args, time.Since(start).Round(time.Millisecond), err, res.stderr, res.stdout)
		f.Close()
	}
	if err == nil {
		if jerr := json.Unmarshal(stdout.Bytes(), &res.sum); jerr != nil {
			res.err = fmt.Errorf("summary is not JSON: %v\n%s", jerr, res.stdout)
		}
	}
	return res
}

// mustRun runs the bootstrap and fails the test if it fails.
func (e *env) mustRun(extraEnv ...string) vaultboot.Summary {
	e.t.Helper()
	res := e.run(e.cfgPath, append(e.identityEnv(), extraEnv...)...)
	if res.err != nil {
		e.t.Fatalf("bootstrap failed: %v\nstderr:\n%s", res.err, res.stderr)
	}
	return res.sum
}

// client is an API client for the Vault, without a token.
func (e *env) client() *vaultapi.Client {
	c := e.vault.Client(e.t)
	c.ClearToken()
	return c
}

// plainShares decrypts every share file with the custodians' identities,
// independently of the bootstrap's own code.
func (e *env) plainShares() []string {
	e.t.Helper()
	var out []string
	if len(e.pgpKeys) > 0 {
		for i := 0; i < shareCount; i++ {
			data, err := os.ReadFile(filepath.Join(e.stateDir, "unseal", fmt.Sprintf("share-%d.pgp.b64", i+1)))
			if err != nil {
				e.t.Fatal(err)
			}
			raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
			if err != nil {
				e.t.Fatal(err)
			}
			md, err := openpgp.ReadMessage(bytes.NewReader(raw), e.pgpKeys, nil, nil)
			if err != nil {
				e.t.Fatalf("share %d: %v", i+1, err)
			}
			plain, err := io.ReadAll(md.UnverifiedBody)
			if err != nil {
				e.t.Fatal(err)
			}
			out = append(out, strings.TrimSpace(string(plain)))
		}
		return out
	}
	for i := 0; i < shareCount; i++ {
		data, err := os.ReadFile(filepath.Join(e.stateDir, "unseal", fmt.Sprintf("share-%d.age", i+1)))
		if err != nil {
			e.t.Fatal(err)
		}
		r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), e.ids[i])
		if err != nil {
			e.t.Fatalf("share %d: %v", i+1, err)
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, strings.TrimSpace(string(plain)))
	}
	return out
}

// withRoot runs fn with a root token the test generates from the shares
// (generate-root with an OTP) and revokes right after, so that it never
// outlives the inspection (and is not mistaken for a stray root token).
func (e *env) withRoot(fn func(c *vaultapi.Client, accessor string)) {
	e.t.Helper()
	c := e.client()
	sys := c.Sys()
	st, err := sys.GenerateRootStatus()
	if err != nil {
		e.t.Fatal(err)
	}
	if st.Started {
		e.t.Fatalf("a generate-root attempt is in progress before the test started one")
	}
	attempt, err := sys.GenerateRootInit("", "")
	if err != nil {
		e.t.Fatal(err)
	}
	var encoded string
	for _, s := range e.plainShares()[:threshold] {
		upd, err := sys.GenerateRootUpdate(s, attempt.Nonce)
		if err != nil {
			e.t.Fatal(err)
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

// state is what the bootstrap sets up in Vault, read back through the API.
type state struct {
	Mounts       map[string]string
	Auths        map[string]string
	Audits       map[string]string
	Policy       string
	Issuers      map[string][]string
	IssuerNames  map[string][]string
	Keys         map[string][]string
	Defaults     map[string]string
	URLs         map[string]string
	Role         string
	RoleID       string
	SecretIDs    int
	PKIRole      string
	RootTokens   []string
	KVVersion    string
	RootCertPEM  string
	IntCertPEM   string
	IntChainPEMs []string
}

func (e *env) readState() state {
	e.t.Helper()
	var s state
	e.withRoot(func(c *vaultapi.Client, own string) {
		s = readState(e.t, c, own)
	})
	return s
}

func readState(t *testing.T, c *vaultapi.Client, ownAccessor string) state {
	t.Helper()
	s := state{Mounts: map[string]string{}, Auths: map[string]string{}, Audits: map[string]string{},
		Issuers: map[string][]string{}, IssuerNames: map[string][]string{}, Keys: map[string][]string{},
		Defaults: map[string]string{}, URLs: map[string]string{}}
	mounts, err := c.Sys().ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	for p, m := range mounts {
		s.Mounts[p] = fmt.Sprintf("%s v%s max_lease_ttl=%d accessor=%s", m.Type, m.Options["version"], m.Config.MaxLeaseTTL, m.Accessor)
	}
	auths, err := c.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	for p, a := range auths {
		s.Auths[p] = a.Type + " " + a.Accessor
	}
	audits, err := c.Sys().ListAudit()
	if err != nil {
		t.Fatal(err)
	}
	for p, a := range audits {
		s.Audits[p] = a.Type + " " + a.Options["file_path"]
	}
	pol, err := c.Sys().GetPolicy("edgeid-spire-upstream")
	if err != nil {
		t.Fatal(err)
	}
	s.Policy = pol
	for _, m := range []string{"pki", "pki_int"} {
		sec, err := c.Logical().List(m + "/issuers")
		if err != nil {
			t.Fatal(err)
		}
		if sec != nil {
			for _, k := range sec.Data["keys"].([]any) {
				id := k.(string)
				s.Issuers[m] = append(s.Issuers[m], id)
				is, err := c.Logical().Read(m + "/issuer/" + id)
				if err != nil {
					t.Fatal(err)
				}
				s.IssuerNames[m] = append(s.IssuerNames[m], fmt.Sprint(is.Data["issuer_name"]))
			}
			sort.Strings(s.Issuers[m])
			sort.Strings(s.IssuerNames[m])
		}
		ks, err := c.Logical().List(m + "/keys")
		if err != nil {
			t.Fatal(err)
		}
		if ks != nil {
			for _, k := range ks.Data["keys"].([]any) {
				s.Keys[m] = append(s.Keys[m], k.(string))
			}
			sort.Strings(s.Keys[m])
		}
		d, err := c.Logical().Read(m + "/config/issuers")
		if err == nil && d != nil {
			s.Defaults[m] = fmt.Sprint(d.Data["default"])
		}
		u, err := c.Logical().Read(m + "/config/urls")
		if err == nil && u != nil {
			s.URLs[m] = fmt.Sprint(u.Data["issuing_certificates"], u.Data["crl_distribution_points"])
		}
	}
	if rs, err := c.Logical().Read("pki/issuer/edgeid-root"); err == nil && rs != nil {
		s.RootCertPEM = strings.TrimSpace(fmt.Sprint(rs.Data["certificate"]))
	}
	if is, err := c.Logical().Read("pki_int/issuer/edgeid-intermediate"); err == nil && is != nil {
		s.IntCertPEM = strings.TrimSpace(fmt.Sprint(is.Data["certificate"]))
		for _, p := range is.Data["ca_chain"].([]any) {
			s.IntChainPEMs = append(s.IntChainPEMs, strings.TrimSpace(p.(string)))
		}
	}
	if r, err := c.Logical().Read("auth/approle/role/spire-server"); err == nil && r != nil {
		keys := make([]string, 0, len(r.Data))
		for k := range r.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%v;", k, r.Data[k])
		}
		s.Role = b.String()
		if rid, err := c.Logical().Read("auth/approle/role/spire-server/role-id"); err == nil && rid != nil {
			s.RoleID = fmt.Sprint(rid.Data["role_id"])
		}
		if ids, err := c.Logical().List("auth/approle/role/spire-server/secret-id"); err == nil && ids != nil {
			s.SecretIDs = len(ids.Data["keys"].([]any))
		}
	}
	if r, err := c.Logical().Read("pki_vault_tls/roles/edgeid-vault-server"); err == nil && r != nil {
		s.PKIRole = fmt.Sprint(r.Data["allowed_domains"], r.Data["max_ttl"], r.Data["server_flag"], r.Data["client_flag"])
	}
	if kv, ok := mounts["secret/"]; ok {
		s.KVVersion = kv.Options["version"]
	}
	// Every root token other than the test's own.
	accs, err := c.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	if accs != nil {
		for _, a := range accs.Data["keys"].([]any) {
			acc := a.(string)
			if acc == ownAccessor {
				continue
			}
			info, err := c.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": acc})
			if err != nil || info == nil {
				continue
			}
			if slices.Contains(stringList(info.Data["policies"]), "root") {
				s.RootTokens = append(s.RootTokens, acc)
			}
		}
	}
	return s
}

// shape is the part of the state that every converged bootstrap has,
// whatever the IDs Vault generated: for comparing separate Vaults.
func (s state) shape() string {
	var b strings.Builder
	mounts := make([]string, 0, len(s.Mounts))
	for p, m := range s.Mounts {
		mounts = append(mounts, p+" "+strings.SplitN(m, " accessor=", 2)[0])
	}
	sort.Strings(mounts)
	fmt.Fprintf(&b, "mounts: %v\n", mounts)
	var auths []string
	for p, a := range s.Auths {
		auths = append(auths, p+" "+strings.Fields(a)[0])
	}
	sort.Strings(auths)
	fmt.Fprintf(&b, "auth: %v\naudit: %d devices\npolicy: %q\n", auths, len(s.Audits), s.Policy)
	for _, m := range []string{"pki", "pki_int"} {
		fmt.Fprintf(&b, "%s: %d issuers %v, %d keys, default is named %v\n", m, len(s.Issuers[m]), s.IssuerNames[m], len(s.Keys[m]), s.Defaults[m] != "")
	}
	fmt.Fprintf(&b, "role: %s\nsecret_ids: %d\npki role: %s\nroot tokens: %d\nkv: v%s\n", s.Role, s.SecretIDs, s.PKIRole, len(s.RootTokens), s.KVVersion)
	return b.String()
}

func stringList(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			out = append(out, fmt.Sprint(e))
		}
	}
	return out
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// approleLogin logs in with the files the bootstrap wrote.
func (e *env) approleLogin(sum vaultboot.Summary) *vaultapi.Client {
	e.t.Helper()
	for _, f := range []string{sum.AppRole.RoleIDFile, sum.AppRole.SecretIDFile} {
		info, err := os.Stat(f)
		if err != nil {
			e.t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			e.t.Errorf("%s has mode %v, want 0600", f, info.Mode().Perm())
		}
	}
	// Log in the way the vault_pki plugin does: the file holds a wrapping
	// token, which the client unwraps once and replaces with the secret_id.
	raw, _ := os.ReadFile(sum.AppRole.SecretIDFile)
	if sum.AppRole.SecretIDWrapped != vaultclient.IsWrappingToken(strings.TrimSpace(string(raw))) {
		e.t.Errorf("secret_id file wrapped=%v, summary says secret_id_wrapped=%v", !sum.AppRole.SecretIDWrapped, sum.AppRole.SecretIDWrapped)
	}
	c := e.client()
	auth := &vaultclient.AppRoleAuth{RoleIDFile: sum.AppRole.RoleIDFile, SecretIDFile: sum.AppRole.SecretIDFile}
	sec, err := auth.Login(context.Background(), c)
	if err != nil {
		e.t.Fatalf("AppRole login with the written role_id/secret_id: %v", err)
	}
	// Neither the wrapping token nor the secret_id is in any run's output.
	after, _ := os.ReadFile(sum.AppRole.SecretIDFile)
	if logs, err := os.ReadFile(e.logPath); err == nil {
		for _, secret := range []string{strings.TrimSpace(string(raw)), strings.TrimSpace(string(after))} {
			if secret != "" && strings.Contains(string(logs), secret) {
				e.t.Errorf("a bootstrap run's output holds the secret_id or its wrapping token")
			}
		}
	}
	c.SetToken(sec.Auth.ClientToken)
	return c
}

func statusOf(err error) int {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func newCSR(t *testing.T, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func parseCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		t.Fatalf("no PEM certificate in %q", p)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256Sum(c.Raw)
	return hex.EncodeToString(sum)
}

// opensslVerify runs `openssl verify` on cert with the CA file (and
// untrusted intermediates), returning its output.
func opensslVerify(t *testing.T, caFile, certFile string, untrusted ...string) string {
	t.Helper()
	args := []string{"verify", "-CAfile", caFile}
	for _, u := range untrusted {
		args = append(args, "-untrusted", u)
	}
	args = append(args, certFile)
	out, err := exec.Command(harness.RequireCommand(t, "openssl"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// scanForShares fails if any file under the directories, or any run log,
// holds a key share in plaintext (hex, base64 or raw bytes).
func (e *env) scanForShares(shares []string, dirs ...string) {
	e.t.Helper()
	var needles [][]byte
	for _, s := range shares {
		raw, err := hex.DecodeString(s)
		if err != nil {
			e.t.Fatal(err)
		}
		needles = append(needles, []byte(s), []byte(strings.ToUpper(s)), []byte(base64.StdEncoding.EncodeToString(raw)), raw)
	}
	scanned := 0
	for _, dir := range dirs {
		filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || !info.Mode().IsRegular() {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			scanned++
			for _, n := range needles {
				if bytes.Contains(data, n) {
					e.t.Errorf("%s holds a key share in plaintext", path)
					break
				}
			}
			return nil
		})
	}
	if scanned == 0 {
		e.t.Fatal("scanned no files")
	}
}
