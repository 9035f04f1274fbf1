package vaultclient

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/edgeid/edgeid/internal/fsutil"
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
//
// The secret ID file may hold a response-wrapping token instead of the
// secret ID (Vault tokens start with "hvs." or "s."; secret IDs are UUIDs).
// Login then checks with sys/wrapping/lookup that the token wraps the
// answer of auth/<mount>/role/<role>/secret-id (so a token that wraps
// anything else, or was already unwrapped by someone else, is refused),
// unwraps it (which consumes it: a second unwrap fails, so an interception
// shows), and replaces the file's content atomically, mode 0600, with the
// secret ID. See Client for the rotation of a secret ID with a TTL.
type AppRoleAuth struct {
	// MountPath is the AppRole auth mount, "approle" when empty.
	MountPath string
	// RoleIDFile holds the role ID.
	RoleIDFile string
	// SecretIDFile holds the secret ID, or a wrapping token of one.
	SecretIDFile string
	// RotateSecretID makes the Client replace the secret ID before it
	// expires (see Client). The role's policy must allow
	// auth/<mount>/role/<role>/secret-id (wrapped), .../secret-id/lookup
	// and .../secret-id/destroy.
	RotateSecretID bool
	// Logger receives unwrap and rotation events; never a secret.
	Logger hclog.Logger

	mu sync.Mutex
	// current is the secret ID in use when it could not be written back
	// to SecretIDFile; it is preferred over the file's content.
	current string
	// roleName is the role's name from the last login's metadata.
	roleName string
}

// Login implements Auth.
func (a *AppRoleAuth) Login(ctx context.Context, client *vaultapi.Client) (*vaultapi.Secret, error) {
	roleID, err := readCredentialFile(a.RoleIDFile)
	if err != nil {
		return nil, fmt.Errorf("vaultclient: approle auth: role ID: %w", err)
	}
	secretID, err := a.secretID(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("vaultclient: approle auth: secret ID: %w", err)
	}
	s, err := login(ctx, client, a.mount(), map[string]any{
		"role_id":   roleID,
		"secret_id": secretID,
	})
	if err != nil {
		return nil, err
	}
	if name := s.Auth.Metadata["role_name"]; name != "" {
		a.mu.Lock()
		a.roleName = name
		a.mu.Unlock()
	}
	return s, nil
}

func (a *AppRoleAuth) mount() string { return mountOr(a.MountPath, "approle") }

func (a *AppRoleAuth) log() hclog.Logger {
	if a.Logger == nil {
		return hclog.NewNullLogger()
	}
	return a.Logger
}

// IsWrappingToken reports whether a credential file's content is a Vault
// token (a response-wrapping token, in a secret ID file) rather than a
// secret ID.
func IsWrappingToken(v string) bool {
	return strings.HasPrefix(v, "hvs.") || strings.HasPrefix(v, "s.")
}

// secretID returns the secret ID to log in with, unwrapping the file's
// content first when it is a wrapping token.
func (a *AppRoleAuth) secretID(ctx context.Context, client *vaultapi.Client) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, err := readCredentialFile(a.SecretIDFile)
	if err != nil {
		if a.current != "" {
			return a.current, nil
		}
		return "", err
	}
	if !IsWrappingToken(v) {
		if a.current != "" && a.current != v {
			// The file still holds the secret ID that could not be
			// replaced; the newer one is in memory.
			return a.current, nil
		}
		return v, nil
	}
	sid, err := unwrapSecretID(ctx, client, v, a.mount())
	if err != nil {
		return "", err
	}
	a.log().Info("Unwrapped the secret ID delivered by response wrapping; the wrapping token is now used up", "file", a.SecretIDFile)
	a.storeLocked(sid)
	return sid, nil
}

// storeLocked makes sid the secret ID in use and writes it to the file
// (atomically, 0600). When the write fails the secret ID stays in memory
// only, and the failure is logged: the next restart would need a new one.
// It returns whether the file holds sid.
func (a *AppRoleAuth) storeLocked(sid string) bool {
	if err := fsutil.WriteFileAtomic(a.SecretIDFile, []byte(sid+"\n"), 0o600); err != nil {
		a.current = sid
		a.log().Error("Cannot write the secret ID file; the new secret ID is kept in memory only and a restart will need a new one", "file", a.SecretIDFile, "error", err)
		return false
	}
	a.current = ""
	return true
}

// unwrapSecretID checks that token wraps a secret ID of an AppRole role of
// mount and unwraps it.
func unwrapSecretID(ctx context.Context, client *vaultapi.Client, token, mount string) (string, error) {
	c, err := client.Clone()
	if err != nil {
		return "", err
	}
	copyNamespace(client, c)
	c.ClearToken()
	// sys/wrapping/lookup needs no token of its own.
	info, err := c.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": token})
	if err != nil {
		return "", fmt.Errorf("the wrapping token in the file is not valid (already unwrapped, expired, or not a wrapping token): %w", redact(err, token))
	}
	creation := ""
	if info != nil {
		creation, _ = info.Data["creation_path"].(string)
	}
	if !isSecretIDPath(creation, mount) {
		return "", fmt.Errorf("the wrapping token wraps the answer of %q, not of auth/%s/role/<role>/secret-id; refusing it", creation, mount)
	}
	c.SetToken(token)
	s, err := c.Logical().UnwrapWithContext(ctx, "")
	if err != nil {
		return "", fmt.Errorf("unwrap: %w", redact(err, token))
	}
	if s == nil || s.Data == nil {
		return "", errors.New("unwrap: empty answer")
	}
	sid, _ := s.Data["secret_id"].(string)
	if sid == "" {
		return "", errors.New("unwrap: the answer holds no secret_id")
	}
	return sid, nil
}

// isSecretIDPath reports whether p is auth/<mount>/role/<role>/secret-id.
func isSecretIDPath(p, mount string) bool {
	rest, ok := strings.CutPrefix(p, "auth/"+mount+"/role/")
	if !ok {
		return false
	}
	role, ok := strings.CutSuffix(rest, "/secret-id")
	return ok && role != "" && !strings.Contains(role, "/")
}

// redact removes secret from err's text.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "<redacted>"))
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
	raw, err := fsutil.ReadFileLimited(name, maxCredentialFileBytes)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(raw))
	if v == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return v, nil
}
