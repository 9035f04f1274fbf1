package vaultboot

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// stepWait polls Vault until it answers, within vault.wait_timeout.
func (r *run) stepWait(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.c.waitTimeout)
	defer cancel()
	var lastErr error
	for attempt := 1; ; attempt++ {
		st, err := r.v.c.Sys().SealStatusWithContext(ctx)
		if err == nil {
			r.sealStatus.initialized = st.Initialized
			r.sealStatus.threshold = st.T
			r.log.Info("Vault answered", "address", r.c.addr, "version", st.Version, "initialized", st.Initialized, "sealed", st.Sealed, "seal_type", st.Type)
			r.fillSealSummary(st)
			return false, r.checkSealType(st)
		}
		lastErr = err
		if attempt == 1 || attempt%10 == 0 {
			r.log.Info("Waiting for Vault", "address", r.c.addr, "attempt", attempt, "error", err)
		}
		select {
		case <-ctx.Done():
			hint := ""
			if r.c.autoUnseal {
				// Vault checks its seal when it starts: with the Transit
				// Vault unreachable it exits instead of serving.
				hint = fmt.Sprintf("; Vault does not start while the Transit engine that unseals it (%s, auto_unseal.transit_address) cannot encrypt for it: check that this Transit Vault is up and unsealed, and see Vault's log", r.c.transitAddr)
			}
			return false, fmt.Errorf("vaultboot: Vault at %s did not answer within %s (vault.wait_timeout in %s): %v%s", r.c.addr, r.c.waitTimeout, r.c.file, lastErr, hint)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// checkSealType refuses a Vault whose seal does not match the
// configuration: a Shamir Vault needs unseal shares, one that unseals
// itself makes recovery shares, and init takes different parameters for
// each.
func (r *run) checkSealType(st *vaultapi.SealStatusResponse) error {
	switch {
	case st.Migration:
		return fmt.Errorf("vaultboot: Vault at %s is migrating its seal (seal type %q); finish the migration with `vault operator unseal -migrate` first", r.c.addr, st.Type)
	case r.c.autoUnseal && !st.RecoverySeal:
		return fmt.Errorf("vaultboot: %s has an auto_unseal block, but Vault at %s has a %q seal: give Vault a seal %q stanza (the Transit engine at %s) and restart it, or remove auto_unseal", r.c.file, r.c.addr, st.Type, r.c.sealType, r.c.transitAddr)
	case r.c.autoUnseal && st.Type != r.c.sealType:
		return fmt.Errorf("vaultboot: Vault at %s has a %q seal, but auto_unseal.type in %s is %q", r.c.addr, st.Type, r.c.file, r.c.sealType)
	case !r.c.autoUnseal && st.RecoverySeal:
		return fmt.Errorf("vaultboot: Vault at %s unseals itself (seal type %q), but %s has no auto_unseal block: add one naming the unsealer (auto_unseal { transit_address = \"...\" }), so that init keeps recovery shares", r.c.addr, st.Type, r.c.file)
	}
	return nil
}

func (r *run) fillSealSummary(st *vaultapi.SealStatusResponse) {
	r.sum.Seal.Type = st.Type
	if r.c.autoUnseal {
		r.sum.Seal.TransitAddress = r.c.transitAddr
	}
}

// shareWord names the shares in messages.
func (r *run) shareWord() string {
	if r.c.autoUnseal {
		return "recovery shares"
	}
	return "key shares"
}

// stepInit initialises an uninitialised Vault and stores the key shares,
// encrypted, before anything else happens.
func (r *run) stepInit(ctx context.Context) (bool, error) {
	st, err := r.v.c.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("vaultboot: seal status: %w", err)
	}
	if st.Initialized {
		r.sealStatus.initialized, r.sealStatus.threshold = true, st.T
		r.log.Info("Vault is already initialised", "shares", st.N, "threshold", st.T)
		r.fillSharesSummary()
		return false, nil
	}

	// Everything that could fail after init is checked first: once Vault
	// has answered the init request, the shares exist nowhere else.
	if err := checkSharesDirFree(r.c.sharesDir); err != nil {
		return false, err
	}
	enc, err := newShareEncrypter(r.c)
	if err != nil {
		return false, err
	}
	var pgpKeys, fingerprints []string
	if r.c.encryption == encPGP {
		for _, f := range r.c.pgpKeyFiles {
			key, fp, err := pgpPublicKeyBase64(f)
			if err != nil {
				return false, fmt.Errorf("vaultboot: init.pgp_key_files: %w", err)
			}
			pgpKeys = append(pgpKeys, key)
			fingerprints = append(fingerprints, fp)
		}
	}
	// A Vault that unseals itself takes recovery parameters only (and
	// refuses secret_shares); a Shamir Vault takes unseal parameters only.
	kind := kindUnseal
	req := &vaultapi.InitRequest{SecretShares: r.c.shares, SecretThreshold: r.c.threshold, PGPKeys: pgpKeys}
	if r.c.autoUnseal {
		kind = kindRecovery
		req = &vaultapi.InitRequest{RecoveryShares: r.c.shares, RecoveryThreshold: r.c.threshold, RecoveryPGPKeys: pgpKeys}
	}

	r.log.Info("Initialising Vault", "kind", kind, "shares", r.c.shares, "threshold", r.c.threshold, "encryption", string(r.c.encryption))
	resp, err := r.v.c.Sys().InitWithContext(ctx, req)
	if err != nil {
		return false, fmt.Errorf("vaultboot: init: %w", err)
	}
	keys, keysB64 := resp.Keys, resp.KeysB64
	if r.c.autoUnseal {
		keys, keysB64 = resp.RecoveryKeys, resp.RecoveryKeysB64
	}
	m, err := enc.writeShares(r.c.sharesDir, kind, r.c.threshold, keys, keysB64, fingerprints)
	if err != nil {
		// The shares now exist only in this process. Say so plainly; do
		// not print them.
		return false, fmt.Errorf("vaultboot: Vault was initialised but its %s could not be stored; re-initialise Vault from empty storage: %w", r.shareWord(), err)
	}
	r.log.Info("Stored the "+r.shareWord(), "dir", r.c.sharesDir, "files", m.Files, "encryption", string(m.Encryption))
	if r.c.encryption != encPGP {
		r.initShares = slices.Clone(keys)
	}
	r.initToken = resp.RootToken
	r.sealStatus.initialized, r.sealStatus.threshold = true, r.c.threshold
	r.fillSharesSummary()
	return true, nil
}

func (r *run) fillSharesSummary() {
	r.sum.Shares.Dir = r.c.sharesDir
	if m, err := readManifest(r.c.sharesDir); err == nil {
		r.sum.Shares.Kind = m.kind()
		r.sum.Shares.Encryption = string(m.Encryption)
		r.sum.Shares.Shares = m.Shares
		r.sum.Shares.Threshold = m.Threshold
		r.sum.Shares.Files = m.Files
	}
}

// shares returns want plaintext shares: those of this run's init, or the
// share files decrypted with the configured identities.
func (r *run) shares(want int) ([]string, error) {
	if len(r.initShares) >= want {
		return r.initShares[:want], nil
	}
	if len(r.plain) >= want {
		return r.plain[:want], nil
	}
	m, err := readManifest(r.c.sharesDir)
	if err != nil {
		return nil, fmt.Errorf("vaultboot: Vault is initialised but its %s are not in %s (init.shares_dir): %w", r.shareWord(), r.c.sharesDir, err)
	}
	switch want := map[bool]string{true: kindRecovery, false: kindUnseal}[r.c.autoUnseal]; {
	case m.kind() == want:
	case want == kindRecovery:
		return nil, fmt.Errorf("vaultboot: the shares in %s are unseal shares, but Vault unseals itself (auto_unseal in %s) and its root token comes from recovery shares; the bootstrap does not migrate a Vault from a Shamir seal to auto-unseal", r.c.sharesDir, r.c.file)
	default:
		return nil, fmt.Errorf("vaultboot: the shares in %s are recovery shares of a Vault that unseals itself, but %s has no auto_unseal block", r.c.sharesDir, r.c.file)
	}
	ids, err := loadIdentities(r.c, m.Encryption, r.b.getenv)
	if err != nil {
		return nil, err
	}
	plain, err := decryptShares(r.c.sharesDir, m, ids, want)
	if err != nil {
		return nil, err
	}
	r.log.Info("Decrypted the key shares", "count", len(plain), "identities", sourceList(ids))
	r.plain = plain
	return plain, nil
}

// stepUnseal submits the threshold of shares when Vault is sealed.
func (r *run) stepUnseal(ctx context.Context) (bool, error) {
	st, err := r.v.c.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("vaultboot: seal status: %w", err)
	}
	if r.c.autoUnseal {
		return false, r.awaitAutoUnseal(ctx, st)
	}
	if !st.Sealed {
		r.log.Info("Vault is unsealed")
		return false, nil
	}
	// Decrypt before touching Vault, so a missing or wrong identity
	// changes nothing.
	keys, err := r.shares(st.T)
	if err != nil {
		return false, err
	}
	if st.Progress > 0 {
		r.log.Info("Resetting an unfinished unseal", "progress", st.Progress)
		if _, err := r.v.c.Sys().ResetUnsealProcessWithContext(ctx); err != nil {
			return false, fmt.Errorf("vaultboot: reset unseal: %w", err)
		}
	}
	for i, k := range keys {
		st, err = r.v.c.Sys().UnsealWithContext(ctx, k)
		if err != nil {
			return false, fmt.Errorf("vaultboot: unseal (share %d of %d): %w; do the key shares in %s belong to this Vault?", i+1, len(keys), err, r.c.sharesDir)
		}
		r.log.Info("Submitted a key share", "progress", st.Progress, "threshold", st.T, "sealed", st.Sealed)
		if !st.Sealed {
			break
		}
	}
	if st.Sealed {
		return false, fmt.Errorf("vaultboot: Vault is still sealed after %d key shares; do the key shares in %s belong to this Vault?", len(keys), r.c.sharesDir)
	}
	if err := r.waitActive(ctx); err != nil {
		return false, err
	}
	r.log.Info("Vault is unsealed")
	return true, nil
}

// awaitAutoUnseal waits, within auto_unseal.wait_timeout, for a Vault that
// unseals itself to be unsealed and active. It submits nothing: recovery
// shares cannot unseal, and a Vault that stays sealed is a problem of its
// Transit unsealer that the error names.
func (r *run) awaitAutoUnseal(ctx context.Context, st *vaultapi.SealStatusResponse) error {
	if st.Sealed {
		r.log.Info("Waiting for Vault to unseal itself", "seal_type", st.Type, "transit_address", r.c.transitAddr, "timeout", r.c.unsealWait)
		wctx, cancel := context.WithTimeout(ctx, r.c.unsealWait)
		defer cancel()
		for st.Sealed {
			select {
			case <-wctx.Done():
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("vaultboot: Vault at %s is still sealed after %s (auto_unseal.wait_timeout in %s): it unseals itself with the Transit engine at %s, and the bootstrap submits no share to it; check that this Transit Vault is up and unsealed and that Vault's seal token may encrypt and decrypt with its key (Vault's log says why)", r.c.addr, r.c.unsealWait, r.c.file, r.c.transitAddr)
			case <-time.After(500 * time.Millisecond):
			}
			next, err := r.v.c.Sys().SealStatusWithContext(wctx)
			if err == nil {
				st = next
			}
		}
	}
	if err := r.waitActive(ctx); err != nil {
		return err
	}
	r.log.Info("Vault is unsealed (it unseals itself)", "seal_type", st.Type, "transit_address", r.c.transitAddr)
	return nil
}

// waitActive waits for a freshly unsealed Vault to become active.
func (r *run) waitActive(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.c.waitTimeout)
	defer cancel()
	for {
		h, err := r.v.c.Sys().HealthWithContext(ctx)
		if err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vaultboot: Vault did not become active within %s after unsealing: %v", r.c.waitTimeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stepRootToken obtains the privileged token this run uses: the init token
// on the first run, a token from the generate-root flow (OTP) later, or an
// operator's token from the environment.
func (r *run) stepRootToken(ctx context.Context) (bool, error) {
	switch {
	case r.c.adminTokenEnv != "" && r.b.getenv(r.c.adminTokenEnv) != "":
		r.token, r.ownToken = r.b.getenv(r.c.adminTokenEnv), false
		r.sum.RootToken.Source = "admin_token_env"
		r.log.Info("Using the admin token from the environment; it will not be revoked", "variable", r.c.adminTokenEnv)
	case r.initToken != "":
		r.token, r.ownToken = r.initToken, true
		r.initToken = ""
		r.sum.RootToken.Source = "init"
		r.log.Info("Using the initial root token of this run")
	default:
		token, err := r.generateRoot(ctx)
		if err != nil {
			return false, err
		}
		r.token, r.ownToken = token, true
		r.sum.RootToken.Source = "generate-root"
	}
	r.v.setToken(r.token)
	self, err := r.v.read(ctx, "auth/token/lookup-self")
	if err != nil {
		if r.ownToken {
			return false, fmt.Errorf("vaultboot: look up the root token: %w", err)
		}
		return false, fmt.Errorf("vaultboot: the token in $%s does not work: %w", r.c.adminTokenEnv, err)
	}
	r.tokenAccessor = str(self, "accessor")
	r.sum.RootToken.Accessor = r.tokenAccessor
	r.log.Info("Got a privileged token", "source", r.sum.RootToken.Source, "accessor", r.tokenAccessor, "policies", stringSlice(self["policies"]))
	// A token is created, but it is revoked at the end: no lasting change.
	return false, nil
}

// generateRoot runs Vault's generate-root flow with a one-time password.
func (r *run) generateRoot(ctx context.Context) (string, error) {
	sys := r.v.c.Sys()
	st, err := sys.GenerateRootStatusWithContext(ctx)
	if err != nil {
		return "", fmt.Errorf("vaultboot: generate-root status: %w", err)
	}
	keys, err := r.shares(st.Required)
	if err != nil {
		return "", err
	}
	if st.Started {
		r.log.Info("Cancelling an unfinished generate-root attempt (from an interrupted run)", "progress", st.Progress)
		if err := sys.GenerateRootCancelWithContext(ctx); err != nil {
			return "", fmt.Errorf("vaultboot: cancel generate-root: %w", err)
		}
	}
	r.log.Info("Generating a root token from the "+r.shareWord(), "threshold", st.Required)
	attempt, err := sys.GenerateRootInitWithContext(ctx, "", "")
	if err != nil {
		return "", fmt.Errorf("vaultboot: start generate-root: %w", err)
	}
	if attempt.OTP == "" {
		sys.GenerateRootCancelWithContext(ctx)
		return "", errors.New("vaultboot: start generate-root: Vault returned no one-time password")
	}
	var encoded string
	for _, k := range keys {
		upd, err := sys.GenerateRootUpdateWithContext(ctx, k, attempt.Nonce)
		if err != nil {
			sys.GenerateRootCancelWithContext(ctx)
			return "", fmt.Errorf("vaultboot: generate-root: %w; do the %s in %s belong to this Vault?", err, r.shareWord(), r.c.sharesDir)
		}
		if upd.Complete {
			encoded = upd.EncodedToken
			if encoded == "" {
				encoded = upd.EncodedRootToken
			}
			break
		}
	}
	if encoded == "" {
		sys.GenerateRootCancelWithContext(ctx)
		return "", fmt.Errorf("vaultboot: generate-root did not complete with the threshold of %s", r.shareWord())
	}
	token, err := decodeRootToken(encoded, attempt.OTP)
	if err != nil {
		return "", fmt.Errorf("vaultboot: generate-root: %w", err)
	}
	return token, nil
}

// decodeRootToken undoes the one-time-pad encoding of generate-root:
// the encoded token is raw base64 of token XOR otp.
func decodeRootToken(encoded, otp string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(encoded)
	if err != nil {
		return "", fmt.Errorf("decode the encoded token: %w", err)
	}
	if len(raw) != len(otp) {
		return "", fmt.Errorf("decode the encoded token: %d bytes for a %d-byte one-time password", len(raw), len(otp))
	}
	out := make([]byte, len(raw))
	for i := range raw {
		out[i] = raw[i] ^ otp[i]
	}
	return string(out), nil
}

// releaseToken revokes this run's root token (and, when configured, root
// tokens that interrupted runs left behind). It is safe to call twice.
func (r *run) releaseToken(ctx context.Context) error {
	if r.token == "" && r.initToken != "" {
		// Interrupted between init and step 4: revoke the init token.
		r.token, r.ownToken = r.initToken, true
		r.initToken = ""
		r.v.setToken(r.token)
		if self, err := r.v.read(ctx, "auth/token/lookup-self"); err == nil {
			r.tokenAccessor = str(self, "accessor")
			r.sum.RootToken.Accessor = r.tokenAccessor
			r.sum.RootToken.Source = "init"
		}
	}
	if r.token == "" {
		return nil
	}
	defer func() {
		r.token = ""
		r.v.setToken("")
	}()
	if !r.ownToken {
		return nil
	}
	if r.c.sweep {
		n, err := r.revokeStrayRootTokens(ctx)
		r.sum.RootToken.StrayRevoked += n
		if err != nil {
			r.log.Warn("Could not revoke every stray root token", "error", err)
		}
	}
	if _, err := r.v.write(ctx, "auth/token/revoke-self", nil); err != nil {
		return fmt.Errorf("vaultboot: revoke the root token (accessor %s): %w", r.tokenAccessor, err)
	}
	// Check that the token no longer works.
	if _, err := r.v.read(ctx, "auth/token/lookup-self"); err == nil {
		return fmt.Errorf("vaultboot: the root token (accessor %s) still works after revocation", r.tokenAccessor)
	}
	r.sum.RootToken.Revoked = true
	r.log.Info("Revoked the root token", "accessor", r.tokenAccessor)
	return nil
}

// revokeStrayRootTokens revokes root tokens made by init or generate-root
// (path auth/token/root) other than this run's own. Such tokens are left
// behind only by runs interrupted before their end.
func (r *run) revokeStrayRootTokens(ctx context.Context) (int, error) {
	accessors, _, err := r.v.list(ctx, "auth/token/accessors")
	if err != nil {
		return 0, err
	}
	revoked := 0
	var errs []error
	for _, acc := range accessors {
		if acc == r.tokenAccessor {
			continue
		}
		s, err := r.v.write(ctx, "auth/token/lookup-accessor", map[string]any{"accessor": acc})
		if err != nil || s == nil {
			continue // expired between list and lookup
		}
		if str(s.Data, "path") != "auth/token/root" || !slices.Equal(stringSlice(s.Data["policies"]), []string{"root"}) {
			continue
		}
		if _, err := r.v.write(ctx, "auth/token/revoke-accessor", map[string]any{"accessor": acc}); err != nil {
			errs = append(errs, err)
			continue
		}
		revoked++
		r.log.Info("Revoked a root token left by an interrupted run", "accessor", acc)
	}
	return revoked, errors.Join(errs...)
}
