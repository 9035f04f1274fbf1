package vaultkms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	vaultapi "github.com/hashicorp/vault/api"
)

// write performs one Transit call with a current token, logging in first
// when needed, and once more after a 403 in case the token was revoked.
func (k *KMS) write(ctx context.Context, path string, body map[string]any) (*vaultapi.Secret, error) {
	token, fresh, err := k.currentToken(ctx)
	if err != nil {
		return nil, err
	}
	s, err := k.writeWith(ctx, token, path, body)
	if isStatus(err, http.StatusForbidden) && !fresh {
		k.forget(token)
		if token, _, err = k.currentToken(ctx); err != nil {
			return nil, err
		}
		s, err = k.writeWith(ctx, token, path, body)
	}
	if err != nil {
		return nil, classify(err)
	}
	return s, nil
}

func (k *KMS) writeWith(ctx context.Context, token, path string, body map[string]any) (*vaultapi.Secret, error) {
	c, err := k.data.CloneWithHeaders()
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	return c.Logical().WriteWithContext(ctx, path, body)
}

// currentToken returns a token, logging in when there is none or it is
// due; fresh reports a login just now.
func (k *KMS) currentToken(ctx context.Context) (token string, fresh bool, err error) {
	if k.cfg.Token != "" {
		return k.cfg.Token, true, nil // a given token: nothing to log in to again
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.token != "" && k.cfg.Now().Before(k.renewAt) {
		return k.token, false, nil
	}
	token, renewAt, err := k.doLogin(ctx)
	if err != nil {
		return "", false, err
	}
	k.token, k.renewAt = token, renewAt
	return token, true, nil
}

// forget drops token if it is still the current one.
func (k *KMS) forget(token string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.token == token {
		k.token = ""
	}
}

// Login logs in now, with the current SVID (nothing to do with a Token).
func (k *KMS) Login(ctx context.Context) error {
	if k.cfg.Token != "" {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	token, renewAt, err := k.doLogin(ctx)
	if err != nil {
		return err
	}
	k.token, k.renewAt = token, renewAt
	return nil
}

// loginTimeout bounds one login, which holds k.mu.
const loginTimeout = 30 * time.Second

// doLogin logs in on a new TLS connection, so that the SVID presented is
// the current one. k.mu is held: logins are serialised on purpose (they
// are rare, and one login serves every waiting caller), bounded by
// loginTimeout.
func (k *KMS) doLogin(ctx context.Context) (string, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	k.loginHTTP.CloseIdleConnections()
	body := map[string]any{}
	if k.cfg.CertRole != "" {
		body["name"] = k.cfg.CertRole
	}
	now := k.cfg.Now()
	s, err := k.login.Logical().WriteWithContext(ctx, "auth/"+k.cfg.CertAuthMount+"/login", body)
	if err != nil {
		// Vault's cert auth answers a certificate no role accepts with
		// 400 or 403.
		if isStatus(err, http.StatusBadRequest) || isStatus(err, http.StatusForbidden) {
			return "", time.Time{}, fmt.Errorf("vaultkms: cert login: %w: %w", recordcrypt.ErrAccessDenied, err)
		}
		if strings.Contains(err.Error(), "missing name in alias") {
			// Vault's cert auth names the identity alias after the
			// subject CN, which an SVID has only when its entry has a
			// DNS name (SPIRE copies the first one into the CN).
			return "", time.Time{}, fmt.Errorf("vaultkms: cert login: %w: the SVID has no subject common name, "+
				"which Vault's cert auth requires: give its registration entry a DNS name: %w", recordcrypt.ErrAccessDenied, err)
		}
		return "", time.Time{}, fmt.Errorf("vaultkms: cert login: %w", classify(err))
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return "", time.Time{}, errors.New("vaultkms: cert login: no token in the response")
	}
	ttl := time.Duration(s.Auth.LeaseDuration) * time.Second
	renewAt := now.Add(ttl * 2 / 3)
	if ttl == 0 {
		renewAt = now.Add(100 * 365 * 24 * time.Hour)
	}
	k.cfg.Logger.Info("Logged in to Vault with the SVID", "mount", k.cfg.CertAuthMount, "role", k.cfg.CertRole,
		"policies", s.Auth.Policies, "ttl", ttl)
	return s.Auth.ClientToken, renewAt, nil
}

func isStatus(err error, code int) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

// classify wraps a Vault error with the recordcrypt error it means.
func classify(err error) error {
	var re *vaultapi.ResponseError
	if !errors.As(err, &re) {
		// No answer from Vault: connection refused, TLS failure, timeout.
		return fmt.Errorf("%w: %w", recordcrypt.ErrKMSUnavailable, err)
	}
	msg := strings.Join(re.Errors, "; ")
	switch {
	case re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %w", recordcrypt.ErrAccessDenied, err)
	case strings.Contains(msg, "version is too new") || strings.Contains(msg, "too old"):
		return fmt.Errorf("%w: %w", recordcrypt.ErrUnknownKeyVersion, err)
	case re.StatusCode == http.StatusBadRequest && (strings.Contains(msg, "message authentication failed") ||
		strings.Contains(msg, "invalid ciphertext") || strings.Contains(msg, "encryption key not found")):
		return fmt.Errorf("%w: %w", recordcrypt.ErrBadWrappedKey, err)
	case re.StatusCode == http.StatusBadRequest:
		return err
	}
	return fmt.Errorf("%w: %w", recordcrypt.ErrKMSUnavailable, err)
}
