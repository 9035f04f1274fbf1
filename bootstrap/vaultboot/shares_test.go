package vaultboot

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// fakeShares returns n random hex shares shaped like Vault's (33 bytes).
func fakeShares(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		b := make([]byte, 33)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		out = append(out, hex.EncodeToString(b))
	}
	return out
}

func ageConfig(t *testing.T, dir string, recs []string, perShare bool) *configuration {
	t.Helper()
	return &configuration{
		file:          "test.hcl",
		shares:        len(recs),
		threshold:     2,
		sharesDir:     filepath.Join(dir, "unseal"),
		encryption:    encAge,
		ageRecipients: recs,
		agePerShare:   perShare,
	}
}

func writeIdentity(t *testing.T, dir, name string, ids ...*age.X25519Identity) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# test identity\n")
	for _, id := range ids {
		b.WriteString(id.String() + "\n")
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertNoPlaintext fails when any file under dir contains a share.
func assertNoPlaintext(t *testing.T, dir string, shares []string) {
	t.Helper()
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range shares {
			raw, _ := hex.DecodeString(s)
			if bytes.Contains(data, []byte(s)) || bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(raw))) || bytes.Contains(data, raw) {
				t.Errorf("%s contains a plaintext share", path)
			}
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, info.Mode().Perm())
		}
		return nil
	})
}

func TestAgeSharesPerShare(t *testing.T) {
	dir := t.TempDir()
	recs, ids := testRecipients(t, 3)
	c := ageConfig(t, dir, recs, true)
	shares := fakeShares(t, 3)

	if err := checkSharesDirFree(c.sharesDir); err != nil {
		t.Fatal(err)
	}
	enc, err := newShareEncrypter(c)
	if err != nil {
		t.Fatal(err)
	}
	m, err := enc.writeShares(c.sharesDir, kindUnseal, 2, shares, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 3 || m.Encryption != encAge || m.Threshold != 2 {
		t.Fatalf("manifest %+v", m)
	}
	assertNoPlaintext(t, c.sharesDir, shares)
	info, err := os.Stat(c.sharesDir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("shares dir mode %v, err %v; want 0700", info.Mode().Perm(), err)
	}

	// The shares directory is now taken: a second init must not reuse it.
	if err := checkSharesDirFree(c.sharesDir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("checkSharesDirFree on a used directory: %v", err)
	}

	read, err := readManifest(c.sharesDir)
	if err != nil {
		t.Fatal(err)
	}
	// Identities 1 and 3 decrypt shares 1 and 3, which is the threshold.
	c.ageIdentityFiles = []string{writeIdentity(t, dir, "id13.txt", ids[0], ids[2])}
	got, err := decryptWith(t, c, read, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != shares[0] || got[1] != shares[2] {
		t.Fatalf("decrypted the wrong shares")
	}

	// One identity is not enough for a threshold of 2; the error says how
	// many were decrypted and names no secret.
	c.ageIdentityFiles = []string{writeIdentity(t, dir, "id2.txt", ids[1])}
	_, err = decryptWith(t, c, read, 2)
	if err == nil || !strings.Contains(err.Error(), "decrypted 1 of the 2 key shares needed") || !strings.Contains(err.Error(), "no configured age identity can decrypt it") {
		t.Fatalf("error %v", err)
	}
	for _, s := range shares {
		if strings.Contains(err.Error(), s) {
			t.Fatal("error contains a share")
		}
	}

	// Identities from the environment.
	c.ageIdentityFiles = nil
	c.ageIdentityEnv = "TEST_IDS"
	env := map[string]string{"TEST_IDS": ids[1].String() + "\n" + ids[2].String()}
	idset, err := loadIdentities(c, encAge, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	got, err = decryptShares(c.sharesDir, read, idset, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != shares[1] || got[1] != shares[2] {
		t.Fatal("decrypted the wrong shares")
	}
}

func decryptWith(t *testing.T, c *configuration, m *shareManifest, want int) ([]string, error) {
	t.Helper()
	ids, err := loadIdentities(c, m.Encryption, func(string) string { return "" })
	if err != nil {
		return nil, err
	}
	return decryptShares(c.sharesDir, m, ids, want)
}

func TestAgeSharesAllRecipients(t *testing.T) {
	dir := t.TempDir()
	recs, ids := testRecipients(t, 2)
	c := ageConfig(t, dir, recs, false)
	c.shares = 3
	shares := fakeShares(t, 3)
	enc, err := newShareEncrypter(c)
	if err != nil {
		t.Fatal(err)
	}
	m, err := enc.writeShares(c.sharesDir, kindUnseal, 2, shares, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.ageIdentityFiles = []string{writeIdentity(t, dir, "id.txt", ids[1])}
	got, err := decryptWith(t, c, m, 3)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(shares, ",") {
		t.Fatal("decrypted the wrong shares")
	}
}

func TestMissingIdentity(t *testing.T) {
	c := &configuration{file: "b.hcl", ageIdentityEnv: "UNSET_VAR"}
	_, err := loadIdentities(c, encAge, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "no age identity is available") || !strings.Contains(err.Error(), "b.hcl") {
		t.Fatalf("error %v", err)
	}
	c.ageIdentityFiles = []string{filepath.Join(t.TempDir(), "missing.txt")}
	_, err = loadIdentities(c, encAge, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "unseal.age_identity_files") || !strings.Contains(err.Error(), "missing.txt") {
		t.Fatalf("error %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte("AGE-SECRET-KEY-1NOTAKEY\n"), 0o600)
	c.ageIdentityFiles = []string{bad}
	_, err = loadIdentities(c, encAge, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "bad.txt") || strings.Contains(err.Error(), "NOTAKEY") {
		t.Fatalf("error %v (must name the file, not echo the key)", err)
	}
}

func TestPlaintextShares(t *testing.T) {
	dir := t.TempDir()
	c := &configuration{file: "p.hcl", shares: 2, threshold: 2, sharesDir: filepath.Join(dir, "u"), encryption: encPlaintext}
	shares := fakeShares(t, 2)
	enc, err := newShareEncrypter(c)
	if err != nil {
		t.Fatal(err)
	}
	m, err := enc.writeShares(c.sharesDir, kindUnseal, 2, shares, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decryptWith(t, c, m, 2)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(shares, ",") {
		t.Fatal("wrong shares")
	}
}

// TestPGPShares encrypts shares the way Vault does for pgp_keys (the hex
// share, encrypted to one key, base64 of the binary message) and decrypts
// them with passphrase-protected private keys.
func TestPGPShares(t *testing.T) {
	dir := t.TempDir()
	var entities []*openpgp.Entity
	var pubFiles, privFiles []string
	for i := 0; i < 2; i++ {
		e, err := openpgp.NewEntity("custodian", "", "c@example.org", nil)
		if err != nil {
			t.Fatal(err)
		}
		entities = append(entities, e)
		var pub bytes.Buffer
		w, _ := armor.Encode(&pub, openpgp.PublicKeyType, nil)
		if err := e.Serialize(w); err != nil {
			t.Fatal(err)
		}
		w.Close()
		pubFile := filepath.Join(dir, "pub"+string(rune('a'+i))+".asc")
		os.WriteFile(pubFile, pub.Bytes(), 0o644)
		pubFiles = append(pubFiles, pubFile)

		if err := e.EncryptPrivateKeys([]byte("pass phrase"), nil); err != nil {
			t.Fatal(err)
		}
		var priv bytes.Buffer
		w, _ = armor.Encode(&priv, openpgp.PrivateKeyType, nil)
		if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
			t.Fatal(err)
		}
		w.Close()
		privFile := filepath.Join(dir, "priv"+string(rune('a'+i))+".asc")
		os.WriteFile(privFile, priv.Bytes(), 0o600)
		privFiles = append(privFiles, privFile)
	}

	// The form Vault's pgp_keys takes: base64 of the binary public key.
	for _, f := range pubFiles {
		b64, fp, err := pgpPublicKeyBase64(f)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := openpgp.ReadKeyRing(bytes.NewReader(raw)); err != nil {
			t.Fatalf("pgp_keys entry does not parse: %v", err)
		}
		if len(fp) != 40 {
			t.Fatalf("fingerprint %q", fp)
		}
	}

	shares := fakeShares(t, 2)
	var b64 []string
	for i, s := range shares {
		pubOnly, err := openpgp.ReadArmoredKeyRing(mustOpen(t, pubFiles[i]))
		if err != nil {
			t.Fatal(err)
		}
		var ct bytes.Buffer
		w, err := openpgp.Encrypt(&ct, pubOnly, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(s))
		w.Close()
		b64 = append(b64, base64.StdEncoding.EncodeToString(ct.Bytes()))
	}
	c := &configuration{file: "g.hcl", shares: 2, threshold: 2, sharesDir: filepath.Join(dir, "u"), encryption: encPGP, pgpKeyFiles: pubFiles}
	enc, err := newShareEncrypter(c)
	if err != nil {
		t.Fatal(err)
	}
	m, err := enc.writeShares(c.sharesDir, kindUnseal, 2, nil, b64, []string{"fp1", "fp2"})
	if err != nil {
		t.Fatal(err)
	}
	assertNoPlaintext(t, c.sharesDir, shares)

	c.pgpPrivateKeyFiles = privFiles
	c.pgpPassphraseEnv = "PASS"
	// Without the passphrase the keys cannot be used.
	if _, err := loadIdentities(c, encPGP, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("error %v, want one about the passphrase", err)
	}
	ids, err := loadIdentities(c, encPGP, func(k string) string {
		if k == "PASS" {
			return "pass phrase"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decryptShares(c.sharesDir, m, ids, 2)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(shares, ",") {
		t.Fatal("wrong shares")
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestDecodeRootToken(t *testing.T) {
	token := "hvs.CAESIJexampleexampleexampl"
	otp := make([]byte, len(token))
	rand.Read(otp)
	for i := range otp {
		otp[i] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[int(otp[i])%62]
	}
	x := make([]byte, len(token))
	for i := range x {
		x[i] = token[i] ^ otp[i]
	}
	encoded := base64.RawStdEncoding.EncodeToString(x)
	got, err := decodeRootToken(encoded, string(otp))
	if err != nil {
		t.Fatal(err)
	}
	if got != token {
		t.Fatalf("decoded %q, want %q", got, token)
	}
	if _, err := decodeRootToken(encoded, string(otp[1:])); err == nil {
		t.Fatal("want an error for a one-time password of the wrong length")
	}
	if _, err := decodeRootToken("!!!", string(otp)); err == nil {
		t.Fatal("want an error for bad base64")
	}
}
