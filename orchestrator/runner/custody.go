package runner

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/orchestrator/render"
)

// Bounds of the scan for custodian identities on the Vault host.
const (
	maxIdentityFileBytes = 64 << 10
	maxScannedFiles      = 100000
	maxTokenFileBytes    = 4 << 10
)

// checkVaultCustody runs on the host of a managed Vault, before anything is
// written: the Transit seal's token and CA files must be usable by Vault,
// and on real hosts no custodian's age identity may sit under root (the
// host's state) — custody means their keys are somewhere else.
func (r *Runner) checkVaultCustody(root string) error {
	v := r.top.Vault
	if st := v.SealTransit; st != nil {
		if err := checkTransitTokenFile(st.TokenFile); err != nil {
			return fmt.Errorf("runner: vault.seal_transit.token_file in %s: %w", r.top.Path, err)
		}
		if st.CACert != "" {
			data, err := fsutil.ReadFileLimited(st.CACert, 1<<20)
			if err == nil {
				_, err = pemutil.ParseCertificates(data)
			}
			if err != nil {
				return fmt.Errorf("runner: vault.seal_transit.ca_cert in %s: %w", r.top.Path, err)
			}
		}
	}
	if r.env.Embedded || len(v.UnsealCustodians) == 0 {
		return nil
	}
	found, err := findCustodianIdentities(root, v.UnsealCustodians)
	if err != nil {
		return fmt.Errorf("runner: look for custodian identities under %s: %w", root, err)
	}
	if len(found) > 0 {
		return fmt.Errorf("runner: %s holds the age identity of unseal custodian %s (vault.unseal_custodians in %s): a custodian's identity must not be on the Vault host, or whoever reads the host's files holds that share; move it off this machine (and consider that share exposed)",
			found[0].path, found[0].recipient, r.top.Path)
	}
	return nil
}

// checkTransitTokenFile checks the file Vault reads its Transit seal token
// from (token = "file://..."): a regular file only its owner can read,
// holding one token and nothing else. Vault 1.21 reads it verbatim, so a
// trailing newline would become part of the token.
func checkTransitTokenFile(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o: others may read the token; make it 0600 (or 0400), owned by the user Vault runs as", path, perm)
	}
	data, err := fsutil.ReadFileLimited(path, maxTokenFileBytes)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return fmt.Errorf("%s is empty", path)
	}
	if i := bytes.IndexAny(data, " \t\r\n"); i >= 0 {
		return fmt.Errorf("%s holds white space at byte %d (a trailing newline?): Vault reads the file verbatim and would send it as part of the token; write the token alone, for example with printf '%%s' \"$TOKEN\" > %s", path, i, path)
	}
	return nil
}

type custodianIdentity struct {
	path      string
	recipient string
}

// findCustodianIdentities walks root for files holding an age identity
// whose recipient is one of custodians. Only regular files up to
// maxIdentityFileBytes are read (identity files are tiny; Vault's and
// SPIRE's data files are not), and the walk stops after maxScannedFiles.
func findCustodianIdentities(root string, custodians []string) ([]custodianIdentity, error) {
	want := map[string]bool{}
	for _, c := range custodians {
		want[c] = true
	}
	var found []custodianIdentity
	scanned := 0
	errStop := errors.New("stop")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if scanned++; scanned > maxScannedFiles {
			return errStop
		}
		info, err := d.Info()
		if err != nil || info.Size() > maxIdentityFileBytes {
			return nil
		}
		data, err := fsutil.ReadFileLimited(path, maxIdentityFileBytes)
		if err != nil || !bytes.Contains(data, []byte("AGE-SECRET-KEY-1")) {
			return nil
		}
		for _, rec := range identityRecipients(data) {
			if want[rec] {
				found = append(found, custodianIdentity{path: path, recipient: rec})
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return found, nil
}

// identityRecipients returns the recipients of the X25519 identities in
// data, one per line (others are ignored).
func identityRecipients(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "AGE-SECRET-KEY-1") {
			continue
		}
		if id, err := age.ParseX25519Identity(line); err == nil {
			out = append(out, id.Recipient().String())
		}
	}
	return out
}

// bootstrapStamp is where a real host records the SHA-256 of the
// bootstrap.hcl its last successful bootstrap ran with.
func bootstrapStamp(cfgPath string) string {
	return filepath.Join(filepath.Dir(cfgPath), "bootstrap", "applied.sha256")
}

func fileSHA256(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// bootstrapCurrent reports whether a real host's managed Vault needs no
// bootstrap run: its last bootstrap succeeded with the same bootstrap.hcl,
// and Vault is initialised and unsealed. Every bootstrap run needs a root
// token, which on real hosts comes from shares that only the custodians
// can decrypt; so up (and the supervisor that calls it) runs the bootstrap
// only when there is something to do. Embedded runs always bootstrap.
func (r *Runner) bootstrapCurrent(ctx context.Context, ref svcRef, cfgPath string) (bool, error) {
	if r.env.Embedded {
		return false, nil
	}
	stamp, err := os.ReadFile(bootstrapStamp(cfgPath))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sum, err := fileSHA256(cfgPath)
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(string(stamp)) != sum {
		return false, nil
	}
	caFile, _ := render.VaultTLSFiles(ref.h)
	st, err := vaultSealStatus(ctx, ref.s.URL, caFile)
	if err != nil {
		r.logf("      Vault %s seal status: %v; running the bootstrap", ref.s.URL, err)
		return false, nil
	}
	return st.Initialized && !st.Sealed, nil
}

// markBootstrapped records a successful bootstrap with cfgPath on a real
// host (see bootstrapCurrent).
func (r *Runner) markBootstrapped(cfgPath string) error {
	if r.env.Embedded {
		return nil
	}
	sum, err := fileSHA256(cfgPath)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomicMkdir(bootstrapStamp(cfgPath), []byte(sum+"\n"), 0o600, fsutil.Keep)
}

type sealStatus struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Type        string `json:"type"`
}

// vaultSealStatus reads sys/seal-status, trusting caFile (the managed
// Vault's self-signed certificate) for https.
func vaultSealStatus(ctx context.Context, url, caFile string) (*sealStatus, error) {
	client, err := httpClient(url, caFile, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/sys/seal-status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sys/seal-status: HTTP %d", resp.StatusCode)
	}
	var st sealStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("sys/seal-status: %w", err)
	}
	return &st, nil
}

// httpClient is a client for url: plain HTTP, or HTTPS trusting only the
// certificates in caFile (the managed Vault's own CA).
func httpClient(url, caFile string, timeout time.Duration) (*http.Client, error) {
	tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	if strings.HasPrefix(url, "https://") {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// custodyHint explains, after a failed bootstrap on a real host with
// custodians, how their identities reach the one run that needs them.
func (r *Runner) custodyHint() string {
	v := r.top.Vault
	if r.env.Embedded || len(v.UnsealCustodians) == 0 {
		return ""
	}
	what := "unseal Vault or make a root token"
	if v.SealTransit != nil {
		what = "make a root token"
	}
	return fmt.Sprintf("\nthis Vault's key shares belong to its custodians (vault.unseal_custodians in %s): for a run that must %s, put the age identities of %d of them in $%s, one per line, for that run only (they are read from the environment, never written)",
		r.top.Path, what, v.UnsealThreshold, render.UnsealIdentitiesEnv)
}
