package vaultboot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"
)

// Step names, in order. They appear in log lines, in Summary.Changed and
// as checkpoints passed to Options.AfterStep.
const (
	StepWait            = "wait"
	StepInit            = "init"
	StepUnseal          = "unseal"
	StepRootToken       = "root_token"
	StepPKIRoot         = "pki_root"
	StepPKIIntermediate = "pki_intermediate"
	StepPolicy          = "policy"
	StepAppRole         = "approle"
	// StepRecordEncryption sets up Transit and cert auth for the Kafka
	// gateways' record encryption (record_encryption).
	StepRecordEncryption = "record_encryption"
	StepAudit            = "audit"
	StepVaultTLS         = "vault_tls"
	StepSummary          = "summary"
)

// Checkpoints inside steps, also passed to Options.AfterStep. Each marks a
// point where an interrupted run leaves half-done state for the next run to
// finish.
const (
	CheckpointRootMounted       = "pki_root.mounted"
	CheckpointIntKeyCreated     = "pki_intermediate.key_created"
	CheckpointIntSigned         = "pki_intermediate.signed"
	CheckpointIntImported       = "pki_intermediate.imported"
	CheckpointSecretIDGenerated = "approle.secret_id_generated"
)

// ErrAwaitingExternalSignature is returned when pki_root.mode is "external"
// and the CSR for the offline root has been written but no signed
// certificate has been supplied yet.
var ErrAwaitingExternalSignature = errors.New("vaultboot: waiting for the external root CA to sign the CSR")

// Options are the caller's hooks. The zero value is usable.
type Options struct {
	// Logger receives the progress lines (default: slog.Default()).
	Logger *slog.Logger
	// Getenv reads the environment (default: os.Getenv). Decryption
	// identities and an admin token may come from there.
	Getenv func(string) string
	// AfterStep, when set, is called after each step and at the
	// checkpoints inside steps, with the step or checkpoint name. Tests use
	// it to interrupt a run at a chosen point.
	AfterStep func(name string)
}

// Bootstrapper runs the Vault bootstrap for one configuration.
type Bootstrapper struct {
	c         *configuration
	log       *slog.Logger
	getenv    func(string) string
	afterStep func(string)
	now       func() time.Time
}

// New validates cfg and returns a Bootstrapper. Every configuration
// problem is reported at once, each naming the file and the key.
func New(cfg *Config, opts Options) (*Bootstrapper, error) {
	c, err := buildConfig(cfg)
	if err != nil {
		return nil, err
	}
	b := &Bootstrapper{c: c, log: opts.Logger, getenv: opts.Getenv, afterStep: opts.AfterStep, now: time.Now}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.getenv == nil {
		b.getenv = os.Getenv
	}
	if b.afterStep == nil {
		b.afterStep = func(string) {}
	}
	return b, nil
}

// RunFile is the whole bootstrap for a configuration file: LoadFile, New
// and Run in one call. It is what `edgeid bootstrap vault --config <path>`
// does, without the command line: the orchestrator and the CLI both call
// it. Progress goes to opts.Logger; the summary is returned (and written to
// summary_file when the configuration names one). Configuration problems
// come back as a *ConfigError.
func RunFile(ctx context.Context, path string, opts Options) (*Summary, error) {
	cfg, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := New(cfg, opts)
	if err != nil {
		return nil, err
	}
	return b.Run(ctx)
}

// run is the state of one bootstrap run.
type run struct {
	b   *Bootstrapper
	c   *configuration
	log *slog.Logger
	v   *vaultClient

	sealStatus struct {
		initialized bool
		threshold   int
	}
	// initShares are the plaintext shares when this run initialised Vault
	// (age and plaintext modes); decrypted shares are cached in plain.
	initShares []string
	plain      []string
	initToken  string

	token         string
	tokenAccessor string
	ownToken      bool

	rootIssuer *issuerInfo
	intIssuer  *issuerInfo
	tlsIssuer  *issuerInfo

	sum *Summary

	// generation is this run's random id, put in the metadata of the
	// secret_ids it makes.
	generation string
}

type step struct {
	name  string
	title string
	run   func(context.Context) (bool, error)
}

// Run brings Vault to the configured state and returns the summary. The
// root token it obtains is revoked before it returns, whether the run
// succeeds or not.
func (b *Bootstrapper) Run(ctx context.Context) (sum *Summary, err error) {
	v, err := newVaultClient(b.c)
	if err != nil {
		return nil, err
	}
	gen := make([]byte, 8)
	if _, err := rand.Read(gen); err != nil {
		return nil, err
	}
	r := &run{b: b, c: b.c, log: b.log, v: v, sum: &Summary{VaultAddress: b.c.addr}, generation: hex.EncodeToString(gen)}
	defer func() {
		// Revoke with a context of its own: the run's may be cancelled.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*b.c.requestTimeout+10*time.Second)
		defer cancel()
		if rerr := r.releaseToken(rctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		clear(r.plain)
		clear(r.initShares)
	}()

	steps := r.steps()
	total := len(steps) + 1
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("vaultboot: interrupted before step %s: %w", s.name, err)
		}
		start := time.Now()
		r.log.Info(fmt.Sprintf("[%d/%d] %s", i+1, total, s.title), "step", s.name)
		changed, err := s.run(ctx)
		if err != nil {
			r.log.Error(fmt.Sprintf("[%d/%d] %s failed", i+1, total, s.title), "step", s.name, "error", err)
			return nil, err
		}
		if changed {
			r.sum.Changed = append(r.sum.Changed, s.name)
		}
		r.log.Info(fmt.Sprintf("[%d/%d] %s: done", i+1, total, s.title), "step", s.name, "changed", changed, "elapsed", time.Since(start).Round(time.Millisecond))
		b.afterStep(s.name)
	}

	// The token is released before the summary so that the summary can
	// say it was revoked.
	if err := r.releaseToken(ctx); err != nil {
		return nil, err
	}
	r.log.Info(fmt.Sprintf("[%d/%d] Summary", total, total), "step", StepSummary)
	if r.sum.Changed == nil {
		r.sum.Changed = []string{}
	}
	if err := r.writeSummaryFile(); err != nil {
		return nil, err
	}
	r.log.Info("Bootstrap complete", "changed", r.sum.Changed, "root_fingerprint", r.sum.PKIRoot.FingerprintSHA256, "intermediate_fingerprint", r.sum.PKIIntermediate.FingerprintSHA256)
	b.afterStep(StepSummary)
	return r.sum, nil
}

// steps are the bootstrap's steps, in order.
func (r *run) steps() []step {
	initTitle, unsealTitle := "Initialise Vault and store the encrypted key shares", "Unseal"
	if r.c.autoUnseal {
		initTitle, unsealTitle = "Initialise Vault and store the encrypted recovery shares", "Wait for Vault to unseal itself (auto-unseal)"
	}
	return []step{
		{StepWait, "Wait for Vault", r.stepWait},
		{StepInit, initTitle, r.stepInit},
		{StepUnseal, unsealTitle, r.stepUnseal},
		{StepRootToken, "Get a short-lived root token", r.stepRootToken},
		{StepPKIRoot, "PKI root CA", r.stepPKIRoot},
		{StepPKIIntermediate, "PKI intermediate CA", r.stepPKIIntermediate},
		{StepPolicy, "Policy for the SPIRE server", r.stepPolicy},
		{StepAppRole, "AppRole for the SPIRE server", r.stepAppRole},
		{StepRecordEncryption, "Record encryption: Transit key rings, cert auth, roles and policies", r.stepRecordEncryption},
		{StepAudit, "Audit device", r.stepAudit},
		{StepVaultTLS, "Vault's own TLS certificate", r.stepVaultTLS},
	}
}

// writeSummaryFile writes the summary to summary_file, when one is set.
func (r *run) writeSummaryFile() error {
	if r.c.summary == "" {
		return nil
	}
	data, err := json.MarshalIndent(r.sum, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.MkdirAllMode(filepath.Dir(r.c.summary), 0o700); err != nil {
		return fmt.Errorf("vaultboot: summary file: %w", err)
	}
	if err := fsutil.WriteFileAtomic(r.c.summary, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("vaultboot: summary file: %w", err)
	}
	return nil
}

// WriteJSON writes the summary as indented JSON.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// Summary is the machine-readable result of a run. It holds no secret:
// fingerprints, mount paths, file paths and token accessors only.
type Summary struct {
	VaultAddress string `json:"vault_address"`
	// Changed lists the steps that changed something in this run; empty
	// when the run found everything in place.
	Changed []string `json:"changed"`
	// Seal says how Vault is sealed: "shamir" (the bootstrap unseals it
	// with the unseal shares) or "transit" (it unseals itself).
	Seal            SealSummary      `json:"seal"`
	Shares          SharesSummary    `json:"shares"`
	RootToken       RootTokenSummary `json:"root_token"`
	PKIRoot         CASummary        `json:"pki_root"`
	PKIIntermediate CASummary        `json:"pki_intermediate"`
	Policy          PolicySummary    `json:"policy"`
	AppRole         AppRoleSummary   `json:"approle"`
	Audit           AuditSummary     `json:"audit"`
	VaultTLS        *VaultTLSSummary `json:"vault_tls,omitempty"`
	// RecordEncryption is set when the run set up record encryption or
	// removed grants of an earlier one.
	RecordEncryption *RecordEncryptionSummary `json:"record_encryption,omitempty"`
}

// SealSummary describes Vault's seal.
type SealSummary struct {
	// Type is Vault's seal type, as sys/seal-status reports it.
	Type string `json:"type"`
	// TransitAddress is the Vault whose Transit engine unseals this one
	// (auto_unseal only).
	TransitAddress string `json:"transit_address,omitempty"`
}

// SharesSummary describes where the key shares are and how they are kept.
type SharesSummary struct {
	// Kind is "unseal" (Shamir unseal shares) or "recovery" (the recovery
	// shares of a Vault that unseals itself).
	Kind       string   `json:"kind"`
	Dir        string   `json:"dir"`
	Encryption string   `json:"encryption"`
	Shares     int      `json:"secret_shares"`
	Threshold  int      `json:"secret_threshold"`
	Files      []string `json:"files"`
}

// RootTokenSummary says where this run's privileged token came from and
// whether it was revoked.
type RootTokenSummary struct {
	// Source is "init", "generate-root" or "admin_token_env".
	Source   string `json:"source"`
	Accessor string `json:"accessor"`
	Revoked  bool   `json:"revoked"`
	// StrayRevoked counts root tokens left by interrupted runs that this
	// run revoked.
	StrayRevoked int `json:"stray_revoked"`
}

// CASummary describes one CA mount.
type CASummary struct {
	Mount             string    `json:"mount"`
	IssuerID          string    `json:"issuer_id"`
	IssuerName        string    `json:"issuer_name"`
	Subject           string    `json:"subject"`
	FingerprintSHA256 string    `json:"fingerprint_sha256"`
	NotAfter          time.Time `json:"not_after"`
	IssuingURLs       []string  `json:"issuing_certificates"`
	CRLURLs           []string  `json:"crl_distribution_points"`
}

// PolicySummary names the SPIRE server's policy and the KV mount it uses.
type PolicySummary struct {
	Name    string `json:"name"`
	KVMount string `json:"kv_mount"`
	KVPath  string `json:"kv_path"`
}

// AppRoleSummary says where the SPIRE server's login is.
type AppRoleSummary struct {
	Mount        string `json:"mount"`
	Role         string `json:"role"`
	RoleIDFile   string `json:"role_id_file"`
	SecretIDFile string `json:"secret_id_file"`
	TokenTTL     string `json:"token_ttl"`
	TokenMaxTTL  string `json:"token_max_ttl"`
	// PeerSecretIDFiles hold the other cloud servers' secret_ids.
	PeerSecretIDFiles []string `json:"peer_secret_id_files,omitempty"`
	SecretIDTTL       string   `json:"secret_id_ttl"`
	// SecretIDWrapped says the files hold response-wrapping tokens.
	SecretIDWrapped bool `json:"secret_id_wrapped"`
}

// AuditSummary describes the audit device.
type AuditSummary struct {
	Enabled  bool   `json:"enabled"`
	Path     string `json:"path"`
	FilePath string `json:"file_path"`
}

// VaultTLSSummary describes Vault's own TLS files.
type VaultTLSSummary struct {
	CertFile          string    `json:"cert_file"`
	KeyFile           string    `json:"key_file"`
	CAFile            string    `json:"ca_file"`
	ConfigFile        string    `json:"config_file"`
	FingerprintSHA256 string    `json:"fingerprint_sha256"`
	NotAfter          time.Time `json:"not_after"`
	// CA is the Vault TLS CA (vault_tls.pki_mount) that issued it.
	CA CASummary `json:"ca"`
}
