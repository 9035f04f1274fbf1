package vaultclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// Secret ID rotation.
//
// A secret ID with a TTL would end the SPIRE server's access to Vault when
// it expires, however well the token is renewed: every new token (after
// token_max_ttl) needs a login with a live secret ID. So, with
// AppRoleAuth.RotateSecretID, the Client replaces its own secret ID before
// it expires:
//
//	lookup (secret-id/lookup) ── creation + ttl ──▶ wait until 2/3 of its life (± jitter)
//	   ▲                                                        │
//	   │        secret-id, response-wrapped (the policy demands it)
//	   │                                                        ▼
//	destroy the old one ◀── log in with the new one ◀── unwrap, write the file (0600, atomic)
//
// Each cloud server holds its own secret ID and rotates only that one, so
// HA peers never invalidate each other's. The new secret ID is written
// before the old one is destroyed, and only after a login with it worked:
// a crash at any point leaves a file whose secret ID is live (the old one
// lives until its own TTL). If the file cannot be written the new secret ID
// is kept in memory and the old one is not destroyed.
//
// The policy lets the role make secret IDs for itself only, wrapped
// (min_wrapping_ttl), with no parameter but metadata: a stolen token can do
// what the server does, but no more, and cannot outlive token_max_ttl
// without also holding the current secret ID.

// rotationHeadroom is the share of a secret ID's life after which it is
// replaced.
const rotationHeadroom = 2.0 / 3.0

// wrapTTL is the TTL of the wrapping token a rotation asks for: it is
// unwrapped at once.
const wrapTTL = "60s"

// secretIDInfo is what secret-id/lookup says of a secret ID.
type secretIDInfo struct {
	accessor string
	created  time.Time
	ttl      time.Duration // 0: never expires
}

func (i secretIDInfo) expires() time.Time {
	if i.ttl == 0 {
		return time.Time{}
	}
	return i.created.Add(i.ttl)
}

// rotateSecretIDs runs until ctx ends, replacing the secret ID before it
// expires.
func (c *Client) rotateSecretIDs(ctx context.Context, a *AppRoleAuth) {
	for attempt := 0; ; {
		wait, err := c.nextRotation(ctx, a)
		if err == nil && wait < 0 {
			c.log.Info("The secret ID does not expire; it is not rotated", "file", a.SecretIDFile)
			return
		}
		if err != nil {
			wait = c.backoff(attempt)
			attempt++
			c.log.Warn("Cannot look up the secret ID; will retry", "error", err, "retry_in", wait.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err != nil {
			continue
		}
		if err := c.rotateOnce(ctx, a); err != nil {
			wait := c.backoff(attempt)
			attempt++
			c.log.Warn("Secret ID rotation failed; will retry", "error", err, "retry_in", wait.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		attempt = 0
	}
}

// nextRotation says how long to wait before rotating the current secret
// ID; negative when it never expires.
func (c *Client) nextRotation(ctx context.Context, a *AppRoleAuth) (time.Duration, error) {
	sid, err := a.secretID(ctx, c.api)
	if err != nil {
		return 0, err
	}
	info, err := c.lookupSecretID(ctx, a, sid)
	if err != nil {
		return 0, err
	}
	if info.ttl == 0 {
		return -1, nil
	}
	// Jitter (±5% of the life) spreads HA peers that started together.
	life := float64(info.ttl)
	at := info.created.Add(time.Duration(life*rotationHeadroom + (rand.Float64()-0.5)*0.1*life))
	c.log.Info("Secret ID rotation scheduled", "accessor", info.accessor, "expires", info.expires().UTC().Format(time.RFC3339), "rotate_at", at.UTC().Format(time.RFC3339))
	return max(time.Until(at), 0), nil
}

func (a *AppRoleAuth) rolePath() (string, error) {
	a.mu.Lock()
	name := a.roleName
	a.mu.Unlock()
	if name == "" {
		return "", errors.New("the role's name is unknown (the login answer had no role_name metadata)")
	}
	return path.Join("auth", a.mount(), "role", name), nil
}

func (c *Client) lookupSecretID(ctx context.Context, a *AppRoleAuth, sid string) (secretIDInfo, error) {
	rp, err := a.rolePath()
	if err != nil {
		return secretIDInfo{}, err
	}
	s, err := c.Write(ctx, rp+"/secret-id/lookup", map[string]any{"secret_id": sid})
	if err != nil {
		return secretIDInfo{}, redact(err, sid)
	}
	if s == nil || s.Data == nil {
		return secretIDInfo{}, errors.New("secret-id/lookup: the secret ID is not known to Vault (expired or destroyed)")
	}
	info := secretIDInfo{}
	info.accessor, _ = s.Data["secret_id_accessor"].(string)
	if ct, _ := s.Data["creation_time"].(string); ct != "" {
		if info.created, err = time.Parse(time.RFC3339Nano, ct); err != nil {
			return secretIDInfo{}, fmt.Errorf("secret-id/lookup: creation_time: %w", err)
		}
	}
	ttl, err := parseSeconds(s.Data["secret_id_ttl"])
	if err != nil {
		return secretIDInfo{}, fmt.Errorf("secret-id/lookup: secret_id_ttl: %w", err)
	}
	info.ttl = ttl
	if info.created.IsZero() && ttl > 0 {
		return secretIDInfo{}, errors.New("secret-id/lookup: no creation_time")
	}
	return info, nil
}

// rotateOnce replaces the secret ID: a new one, wrapped; unwrapped and
// written; a login with it; then the old one destroyed.
func (c *Client) rotateOnce(ctx context.Context, a *AppRoleAuth) error {
	rp, err := a.rolePath()
	if err != nil {
		return err
	}
	old, err := a.secretID(ctx, c.api)
	if err != nil {
		return err
	}
	wc, err := c.api.Clone()
	if err != nil {
		return err
	}
	copyNamespace(c.api, wc)
	wc.SetToken(c.api.Token())
	wc.SetWrappingLookupFunc(func(string, string) string { return wrapTTL })
	var wrapped *vaultapi.Secret
	if _, err := c.do(ctx, "write "+rp+"/secret-id (wrapped)", func(ctx context.Context) (*vaultapi.Secret, error) {
		wc.SetToken(c.api.Token()) // a re-login in do changes it
		var err error
		wrapped, err = wc.Logical().WriteWithContext(ctx, rp+"/secret-id", map[string]any{"metadata": `{"created_by":"edgeid-vault-pki"}`})
		return wrapped, err
	}); err != nil {
		return err
	}
	if wrapped == nil || wrapped.WrapInfo == nil || wrapped.WrapInfo.Token == "" {
		return errors.New("the new secret ID came back unwrapped")
	}
	sid, err := unwrapSecretID(ctx, c.api, wrapped.WrapInfo.Token, a.mount())
	if err != nil {
		return err
	}
	a.mu.Lock()
	written := a.storeLocked(sid)
	a.mu.Unlock()
	if _, err := c.login(ctx); err != nil {
		return fmt.Errorf("log in with the new secret ID: %w", err)
	}
	if !written {
		return nil
	}
	if _, err := c.Write(ctx, rp+"/secret-id/destroy", map[string]any{"secret_id": old}); err != nil {
		// It expires on its own.
		c.log.Warn("Cannot destroy the previous secret ID; it expires at the end of its TTL", "error", redact(err, old))
	}
	c.log.Info("Rotated the secret ID", "file", a.SecretIDFile)
	return nil
}

func parseSeconds(v any) (time.Duration, error) {
	switch n := v.(type) {
	case nil:
		return 0, nil
	case float64:
		return time.Duration(n) * time.Second, nil
	case int:
		return time.Duration(n) * time.Second, nil
	case int64:
		return time.Duration(n) * time.Second, nil
	case interface{ Int64() (int64, error) }:
		i, err := n.Int64()
		return time.Duration(i) * time.Second, err
	default:
		return 0, fmt.Errorf("unexpected %T", v)
	}
}
