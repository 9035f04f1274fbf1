package vaultclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// maxCredentialFileBytes bounds the size of a role ID, secret ID or service
// account token file.
const maxCredentialFileBytes = 64 << 10

// Auth is a Vault authentication method. Login returns the Vault response
// whose Auth field carries the new token, its TTL and whether it is renewable.
// The shape matches the Vault API's AuthMethod, so an Auth can also be passed
// to (*api.Client).Auth().Login.
type Auth interface {
	Login(ctx context.Context, client *vaultapi.Client) (*vaultapi.Secret, error)
}

// Method names the authentication method for logs and errors.
func Method(a Auth) string {
	switch a.(type) {
	case *TokenAuth:
		return "token"
	case *AppRoleAuth:
		return "approle"
	case *CertAuth:
		return "cert"
	case *KubernetesAuth:
		return "kubernetes"
	default:
		return fmt.Sprintf("%T", a)
	}
}

// canLogin reports whether the method can obtain a new token on its own. A
// static token cannot.
func canLogin(a Auth) bool {
	_, static := a.(*TokenAuth)
	return !static
}

// TokenAuth uses a token the operator obtained elsewhere. Login looks the
// token up (auth/token/lookup-self) to learn its TTL and whether it can be
// renewed; it cannot obtain a new token when this one ends.
type TokenAuth struct {
	// Token is the Vault token.
	Token string
}

// Login implements Auth.
func (a *TokenAuth) Login(ctx context.Context, client *vaultapi.Client) (*vaultapi.Secret, error) {
	if a.Token == "" {
		return nil, errors.New("vaultclient: token auth: token is empty")
	}
	c, err := client.Clone()
	if err != nil {
		return nil, fmt.Errorf("vaultclient: token auth: %w", err)
	}
	copyNamespace(client, c)
	c.SetToken(a.Token)
	s, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("vaultclient: token auth: lookup-self: %w", err)
	}
	if s == nil || s.Data == nil {
		return nil, errors.New("vaultclient: token auth: lookup-self returned no data")
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("vaultclient: token auth: lookup-self: %w", err)
	}
	renewable, err := s.TokenIsRenewable()
	if err != nil {
		return nil, fmt.Errorf("vaultclient: token auth: lookup-self: %w", err)
	}
	return &vaultapi.Secret{Auth: &vaultapi.SecretAuth{
		ClientToken:   a.Token,
		LeaseDuration: int(ttl / time.Second),
		Renewable:     renewable,
	}}, nil
}

// AppRoleAuth logs in with AppRole. The role ID and secret ID are read from
// files at every login, so a rotated secret ID is picked up without a
// restart and neither ever appears in a configuration file.
type AppRoleAuth struct {
	// MountPath is the AppRole auth mount, "approle" when empty.
	MountPath string
	// RoleIDFile holds the role ID.
	RoleIDFile string
	// SecretIDFile holds the secret ID.
	SecretIDFile string
}

// Login implements Auth.
func (a *AppRoleAuth) Login(ctx context.Context, client *vaultapi.Client) (*vaultapi.Secret, error) {
	roleID, err := readCredentialFile(a.RoleIDFile)
	if err != nil {
		return nil, fmt.Errorf("vaultclient: approle auth: role ID: %w", err)
	}
	secretID, err := readCredentialFile(a.SecretIDFile)
	if err != nil {
		return nil, fmt.Errorf("vaultclient: approle auth: secret ID: %w", err)
	}
	return login(ctx, client, mountOr(a.MountPath, "approle"), map[string]any{
		"role_id":   roleID,
		"secret_id": secretID,
	})
}

// CertAuth logs in with the TLS certificate auth method. The client
// certificate itself is presented by the TLS layer: set Config.ClientCertPath
// and Config.ClientKeyPath.
type CertAuth struct {
	// MountPath is the cert auth mount, "cert" when empty.
	MountPath string
	// RoleName optionally names the certificate role to authenticate against.
	RoleName string
}

// Login implements Auth.
func (a *CertAuth) Login(ctx context.Context, client *vaultapi.Client) (*vaultapi.Secret, error) {
	data := map[string]any{}
	if a.RoleName != "" {
		data["name"] = a.RoleName
	}
	return login(ctx, client, mountOr(a.MountPath, "cert"), data)
}

// KubernetesAuth logs in with the Kubernetes auth method, presenting the
// service account token read from TokenPath at every login (projected tokens
// rotate).
type KubernetesAuth struct {
	// MountPath is the Kubernetes auth mount, "kubernetes" when empty.
	MountPath string
	// RoleName is the Vault role bound to the service account.
	RoleName string
	// TokenPath is the service account token file.
	TokenPath string
}

// Login implements Auth.
func (a *KubernetesAuth) Login(ctx context.Context, client *vaultapi.Client) (*vaultapi.Secret, error) {
	jwt, err := readCredentialFile(a.TokenPath)
	if err != nil {
		return nil, fmt.Errorf("vaultclient: kubernetes auth: service account token: %w", err)
	}
	return login(ctx, client, mountOr(a.MountPath, "kubernetes"), map[string]any{
		"role": a.RoleName,
		"jwt":  jwt,
	})
}

// login writes data to auth/<mount>/login with a clone of client that carries
// no token, and checks that the answer holds one.
func login(ctx context.Context, client *vaultapi.Client, mount string, data map[string]any) (*vaultapi.Secret, error) {
	c, err := client.Clone()
	if err != nil {
		return nil, fmt.Errorf("vaultclient: login: %w", err)
	}
	copyNamespace(client, c)
	c.ClearToken()
	p := path.Join("auth", mount, "login")
	s, err := c.Logical().WriteWithContext(ctx, p, data)
	if err != nil {
		return nil, fmt.Errorf("vaultclient: login at %s: %w", p, err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vaultclient: login at %s: response holds no token", p)
	}
	return s, nil
}

func copyNamespace(from, to *vaultapi.Client) {
	if ns := from.Namespace(); ns != "" {
		to.SetNamespace(ns)
	} else {
		to.ClearNamespace()
	}
}

func mountOr(mount, def string) string {
	mount = strings.Trim(mount, "/")
	if mount == "" {
		return def
	}
	return mount
}

// readCredentialFile reads a small credential file and trims surrounding
// whitespace. The content is never part of an error.
func readCredentialFile(name string) (string, error) {
	if name == "" {
		return "", errors.New("no file configured")
	}
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxCredentialFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	if len(raw) > maxCredentialFileBytes {
		return "", fmt.Errorf("%s is larger than %d bytes", name, maxCredentialFileBytes)
	}
	v := strings.TrimSpace(string(raw))
	if v == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return v, nil
}
