package vaultboot

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/ProtonMail/go-crypto/openpgp"
	pgparmor "github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/edgeid/edgeid/internal/fsutil"
)

// manifestName is the file in the shares directory that describes the
// shares (never their content).
const manifestName = "shares.json"

// maxShareFileBytes bounds a share file; a share is 33 bytes before
// encryption.
const maxShareFileBytes = 64 << 10

// Kinds of key shares: the unseal shares of a Vault with a Shamir seal,
// or the recovery shares of a Vault that unseals itself (auto_unseal).
const (
	kindUnseal   = "unseal"
	kindRecovery = "recovery"
)

// shareManifest describes a set of key shares on disk. It holds no secret.
type shareManifest struct {
	Version int `json:"version"`
	// Kind is kindUnseal or kindRecovery; manifests written before
	// auto-unseal existed have none and hold unseal shares.
	Kind       string          `json:"kind,omitempty"`
	Shares     int             `json:"secret_shares"`
	Threshold  int             `json:"secret_threshold"`
	Encryption shareEncryption `json:"encryption"`
	Files      []string        `json:"files"`
	// Recipients lists, per share, the age recipients or PGP key
	// fingerprints it is encrypted to.
	Recipients [][]string `json:"recipients,omitempty"`
}

func shareFileName(enc shareEncryption, i int) string {
	switch enc {
	case encAge:
		return fmt.Sprintf("share-%d.age", i+1)
	case encPGP:
		return fmt.Sprintf("share-%d.pgp.b64", i+1)
	default:
		return fmt.Sprintf("share-%d.plaintext", i+1)
	}
}

func parseAgeRecipient(s string) (age.Recipient, error) {
	recs, err := age.ParseRecipients(strings.NewReader(s))
	if err != nil {
		return nil, fmt.Errorf("not an age recipient (age1...): %v", err)
	}
	if len(recs) != 1 {
		return nil, fmt.Errorf("want one age recipient, got %d", len(recs))
	}
	return recs[0], nil
}

// shareEncrypter turns plaintext shares (hex, as Vault returns them) into
// the bytes stored on disk.
type shareEncrypter struct {
	enc        shareEncryption
	recipients [][]age.Recipient
	labels     [][]string
}

// newShareEncrypter prepares the encryption of n shares, and checks that
// every recipient set works by encrypting a probe, so that nothing about
// the recipients can fail after Vault has been initialised.
func newShareEncrypter(c *configuration) (*shareEncrypter, error) {
	e := &shareEncrypter{enc: c.encryption}
	if c.encryption != encAge {
		return e, nil
	}
	all := make([]age.Recipient, 0, len(c.ageRecipients))
	for _, s := range c.ageRecipients {
		r, err := parseAgeRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("vaultboot: init.age_recipients: %w", err)
		}
		all = append(all, r)
	}
	for i := 0; i < c.shares; i++ {
		if c.agePerShare {
			e.recipients = append(e.recipients, []age.Recipient{all[i]})
			e.labels = append(e.labels, []string{c.ageRecipients[i]})
		} else {
			e.recipients = append(e.recipients, all)
			e.labels = append(e.labels, c.ageRecipients)
		}
	}
	for i := range e.recipients {
		if _, err := e.encryptAge(i, []byte("probe")); err != nil {
			return nil, fmt.Errorf("vaultboot: init.age_recipients: cannot encrypt share %d: %w", i+1, err)
		}
	}
	return e, nil
}

func (e *shareEncrypter) encryptAge(i int, plaintext []byte) ([]byte, error) {
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, e.recipients[i]...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeShares stores the shares Vault returned at init. keysHex are the
// plaintext shares (age and plaintext modes); keysB64 are Vault's
// PGP-encrypted shares (pgp mode). All files appear at once: they are
// written to a fresh sibling directory that is then renamed onto dir.
func (e *shareEncrypter) writeShares(dir, kind string, threshold int, keysHex, keysB64 []string, pgpFingerprints []string) (*shareManifest, error) {
	m := &shareManifest{Version: 1, Kind: kind, Threshold: threshold, Encryption: e.enc}
	contents := map[string][]byte{}
	switch e.enc {
	case encPGP:
		m.Shares = len(keysB64)
		for i, k := range keysB64 {
			name := shareFileName(e.enc, i)
			contents[name] = []byte(k + "\n")
			m.Files = append(m.Files, name)
			if i < len(pgpFingerprints) {
				m.Recipients = append(m.Recipients, []string{pgpFingerprints[i]})
			}
		}
	case encAge:
		m.Shares = len(keysHex)
		for i, k := range keysHex {
			ct, err := e.encryptAge(i, []byte(k))
			if err != nil {
				return nil, fmt.Errorf("vaultboot: encrypt share %d: %w", i+1, err)
			}
			name := shareFileName(e.enc, i)
			contents[name] = ct
			m.Files = append(m.Files, name)
			m.Recipients = append(m.Recipients, e.labels[i])
		}
	default:
		m.Shares = len(keysHex)
		for i, k := range keysHex {
			name := shareFileName(e.enc, i)
			contents[name] = []byte(k + "\n")
			m.Files = append(m.Files, name)
		}
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	contents[manifestName] = append(mj, '\n')

	parent := filepath.Dir(dir)
	if err := fsutil.MkdirAllMode(parent, 0o700); err != nil {
		return nil, fmt.Errorf("vaultboot: shares directory: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("vaultboot: shares directory: %w", err)
	}
	for name, data := range contents {
		if err := fsutil.WriteFileAtomic(filepath.Join(tmp, name), data, 0o600); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("vaultboot: write shares: %w", err)
		}
	}
	// An empty dir is replaced by the rename; preflight made sure it holds
	// nothing.
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("vaultboot: write shares: %w", err)
	}
	if err := fsutil.SyncDir(parent); err != nil {
		return nil, fmt.Errorf("vaultboot: %w", err)
	}
	return m, nil
}

// checkSharesDirFree makes sure dir can receive a fresh set of shares: it
// does not exist or is empty, and its parent is writable. A directory that
// already holds shares means those belong to some Vault; they are never
// overwritten.
func checkSharesDirFree(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("vaultboot: shares directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("vaultboot: shares directory %s is not empty: it may hold the key shares of another Vault; move it away to initialise this one", dir)
	}
	parent := filepath.Dir(dir)
	if err := fsutil.MkdirAllMode(parent, 0o700); err != nil {
		return fmt.Errorf("vaultboot: shares directory: %w", err)
	}
	probe := filepath.Join(parent, ".write-probe")
	if err := fsutil.WriteFileAtomic(probe, []byte("probe"), 0o600); err != nil {
		return fmt.Errorf("vaultboot: shares directory %s is not writable: %w", parent, err)
	}
	return os.Remove(probe)
}

// kind returns the kind of the shares, kindUnseal for manifests that
// predate the field.
func (m *shareManifest) kind() string {
	if m.Kind == "" {
		return kindUnseal
	}
	return m.Kind
}

// readManifest reads the shares manifest from dir.
func readManifest(dir string) (*shareManifest, error) {
	data, err := fsutil.ReadFileLimited(filepath.Join(dir, manifestName), maxShareFileBytes)
	if err != nil {
		return nil, fmt.Errorf("vaultboot: key shares: %w", err)
	}
	return parseManifest(data)
}

// parseManifest decodes and checks a shares manifest. Its bytes come from
// the state directory, so a damaged or planted file gets an error, never a
// path outside the directory.
func parseManifest(data []byte) (*shareManifest, error) {
	var m shareManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("vaultboot: key shares: %s: %w", manifestName, err)
	}
	switch m.Encryption {
	case encAge, encPGP, encPlaintext:
	default:
		return nil, fmt.Errorf("vaultboot: key shares: %s: unknown encryption %q", manifestName, m.Encryption)
	}
	switch m.Kind {
	case "", kindUnseal, kindRecovery:
	default:
		return nil, fmt.Errorf("vaultboot: key shares: %s: unknown kind %q", manifestName, m.Kind)
	}
	for _, f := range m.Files {
		if f == "" || f != filepath.Base(f) || strings.ContainsAny(f, `/\`) || strings.HasPrefix(f, ".") {
			return nil, fmt.Errorf("vaultboot: key shares: %s: bad file name %q", manifestName, f)
		}
	}
	return &m, nil
}

// identities holds the keys that decrypt shares, loaded from files and the
// environment.
type identities struct {
	age     []age.Identity
	pgp     openpgp.EntityList
	sources []string
}

// loadIdentities reads the decryption identities the configuration names.
// getenv reads the environment.
func loadIdentities(c *configuration, enc shareEncryption, getenv func(string) string) (*identities, error) {
	ids := &identities{}
	switch enc {
	case encPlaintext:
		return ids, nil
	case encAge:
		for _, f := range c.ageIdentityFiles {
			data, err := fsutil.ReadFileLimited(f, maxShareFileBytes)
			if err != nil {
				return nil, fmt.Errorf("vaultboot: unseal.age_identity_files: %w", err)
			}
			parsed, err := age.ParseIdentities(bytes.NewReader(data))
			if err != nil {
				return nil, fmt.Errorf("vaultboot: unseal.age_identity_files: %s: %v", f, err)
			}
			ids.age = append(ids.age, parsed...)
			ids.sources = append(ids.sources, f)
		}
		if c.ageIdentityEnv != "" {
			if v := getenv(c.ageIdentityEnv); v != "" {
				parsed, err := age.ParseIdentities(strings.NewReader(v))
				if err != nil {
					return nil, fmt.Errorf("vaultboot: unseal.age_identity_env: $%s: %v", c.ageIdentityEnv, err)
				}
				ids.age = append(ids.age, parsed...)
				ids.sources = append(ids.sources, "$"+c.ageIdentityEnv)
			}
		}
		if len(ids.age) == 0 {
			return nil, fmt.Errorf("vaultboot: the key shares are age-encrypted but no age identity is available: set unseal.age_identity_files or unseal.age_identity_env in %s (and export that variable)", c.file)
		}
	case encPGP:
		var passphrase []byte
		if c.pgpPassphraseEnv != "" {
			passphrase = []byte(getenv(c.pgpPassphraseEnv))
		}
		for _, f := range c.pgpPrivateKeyFiles {
			data, err := fsutil.ReadFileLimited(f, 1<<20)
			if err != nil {
				return nil, fmt.Errorf("vaultboot: unseal.pgp_private_key_files: %w", err)
			}
			el, err := readPGPKeyRing(data)
			if err != nil {
				return nil, fmt.Errorf("vaultboot: unseal.pgp_private_key_files: %s: %v", f, err)
			}
			for _, e := range el {
				if e.PrivateKey == nil {
					return nil, fmt.Errorf("vaultboot: unseal.pgp_private_key_files: %s holds a public key, not a private key", f)
				}
				if err := decryptPGPEntity(e, passphrase); err != nil {
					return nil, fmt.Errorf("vaultboot: unseal.pgp_private_key_files: %s: %v (set unseal.pgp_passphrase_env)", f, err)
				}
			}
			ids.pgp = append(ids.pgp, el...)
			ids.sources = append(ids.sources, f)
		}
		if len(ids.pgp) == 0 {
			return nil, fmt.Errorf("vaultboot: the key shares are PGP-encrypted but no PGP private key is available: set unseal.pgp_private_key_files in %s", c.file)
		}
	}
	return ids, nil
}

func decryptPGPEntity(e *openpgp.Entity, passphrase []byte) error {
	if e.PrivateKey != nil && e.PrivateKey.Encrypted {
		if len(passphrase) == 0 {
			return errors.New("private key is passphrase-protected")
		}
		if err := e.PrivateKey.Decrypt(passphrase); err != nil {
			return fmt.Errorf("decrypt private key: %w", err)
		}
	}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil && sk.PrivateKey.Encrypted {
			if len(passphrase) == 0 {
				return errors.New("private key is passphrase-protected")
			}
			if err := sk.PrivateKey.Decrypt(passphrase); err != nil {
				return fmt.Errorf("decrypt private subkey: %w", err)
			}
		}
	}
	return nil
}

// readPGPKeyRing reads armored or binary OpenPGP keys.
func readPGPKeyRing(data []byte) (openpgp.EntityList, error) {
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		return openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	}
	return openpgp.ReadKeyRing(bytes.NewReader(data))
}

// pgpPublicKeyBase64 turns a public key file (armored or binary) into the
// base64 form Vault's pgp_keys takes, and returns its fingerprint.
func pgpPublicKeyBase64(path string) (string, string, error) {
	data, err := fsutil.ReadFileLimited(path, 1<<20)
	if err != nil {
		return "", "", err
	}
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		block, err := pgparmor.Decode(bytes.NewReader(data))
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", path, err)
		}
		if data, err = io.ReadAll(io.LimitReader(block.Body, 1<<20)); err != nil {
			return "", "", fmt.Errorf("%s: %w", path, err)
		}
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	if len(el) != 1 {
		return "", "", fmt.Errorf("%s: want one public key, found %d", path, len(el))
	}
	return base64.StdEncoding.EncodeToString(data), hex.EncodeToString(el[0].PrimaryKey.Fingerprint), nil
}

// decryptShares decrypts up to want shares from dir with ids. It returns
// the shares (hex) in file order. When fewer than want can be decrypted, the
// error says how many and why, and names no secret.
func decryptShares(dir string, m *shareManifest, ids *identities, want int) ([]string, error) {
	var (
		out      []string
		failures []string
	)
	for _, name := range m.Files {
		if len(out) == want {
			break
		}
		path := filepath.Join(dir, name)
		data, err := fsutil.ReadFileLimited(path, maxShareFileBytes)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		share, err := decryptShare(m.Encryption, data, ids)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		out = append(out, share)
	}
	if len(out) < want {
		sort.Strings(failures)
		return nil, fmt.Errorf("vaultboot: decrypted %d of the %d key shares needed from %s with the identities from %s: %s",
			len(out), want, dir, sourceList(ids), strings.Join(failures, "; "))
	}
	return out, nil
}

func sourceList(ids *identities) string {
	if len(ids.sources) == 0 {
		return "(none)"
	}
	return strings.Join(ids.sources, ", ")
}

func decryptShare(enc shareEncryption, data []byte, ids *identities) (string, error) {
	var plain []byte
	switch enc {
	case encPlaintext:
		plain = data
	case encAge:
		r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), ids.age...)
		if err != nil {
			var nomatch *age.NoIdentityMatchError
			if errors.As(err, &nomatch) {
				return "", errors.New("no configured age identity can decrypt it")
			}
			return "", fmt.Errorf("age: %v", err)
		}
		if plain, err = io.ReadAll(io.LimitReader(r, maxShareFileBytes)); err != nil {
			return "", fmt.Errorf("age: %v", err)
		}
	case encPGP:
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
		if err != nil {
			return "", fmt.Errorf("not base64: %v", err)
		}
		md, err := openpgp.ReadMessage(bytes.NewReader(raw), ids.pgp, nil, nil)
		if err != nil {
			return "", fmt.Errorf("no configured PGP key can decrypt it: %v", err)
		}
		if plain, err = io.ReadAll(io.LimitReader(md.UnverifiedBody, maxShareFileBytes)); err != nil {
			return "", fmt.Errorf("pgp: %v", err)
		}
	}
	share := strings.TrimSpace(string(plain))
	if _, err := hex.DecodeString(share); err != nil || share == "" {
		return "", errors.New("decrypted content is not a key share")
	}
	return share, nil
}
