package vaultpki

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/edgeid/edgeid/plugins/common/pluginconf"
	"github.com/edgeid/edgeid/plugins/common/vaultclient"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults for optional configuration keys.
const (
	DefaultPKIMountPoint     = "pki_int"
	DefaultRootPollInterval  = time.Minute
	DefaultRequestTimeout    = 10 * time.Second
	DefaultK8sTokenPath      = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	minRootPollInterval      = time.Second
	defaultApproleMountPoint = "approle"
	defaultCertMountPoint    = "cert"
	defaultK8sMountPoint     = "kubernetes"
)

// Environment variables that fill in keys the configuration leaves unset.
// They never override a value from the configuration.
const (
	EnvVaultAddr      = "VAULT_ADDR"
	EnvVaultNamespace = "VAULT_NAMESPACE"
	EnvVaultCACert    = "VAULT_CACERT"
	EnvVaultToken     = "VAULT_TOKEN"
)

// Config is the plugin_data of UpstreamAuthority "vault_pki".
type Config struct {
	// VaultAddr is Vault's address; VAULT_ADDR when unset.
	VaultAddr string `hcl:"vault_addr,optional"`
	// Namespace is the Vault Enterprise namespace; VAULT_NAMESPACE when unset.
	Namespace string `hcl:"namespace,optional"`
	// PKIMountPoint is the PKI secrets engine that signs SPIRE's CA
	// ("pki_int" when unset).
	PKIMountPoint string `hcl:"pki_mount_point,optional"`
	// IssuerRef names the issuer of PKIMountPoint that signs; the mount's
	// default issuer when unset.
	IssuerRef string `hcl:"issuer_ref,optional"`
	// CACertPath is a PEM file to verify Vault's TLS certificate;
	// VAULT_CACERT when unset, the system roots when neither is set.
	CACertPath string `hcl:"ca_cert_path,optional"`
	// InsecureSkipVerify disables verification of Vault's TLS certificate.
	InsecureSkipVerify bool `hcl:"insecure_skip_verify,optional"`
	// KVMountPoint is a KV version 2 mount where JWT authorities are shared.
	// JWT key publishing is off when unset.
	KVMountPoint string `hcl:"kv_mount_point,optional"`
	// RootPollInterval is how often the mount's issuers are polled for root
	// changes (Go duration, "1m" when unset).
	RootPollInterval string `hcl:"root_poll_interval,optional"`
	// MinTTL is the shortest CA lifetime accepted from Vault (Go duration);
	// no floor when unset.
	MinTTL string `hcl:"min_ttl,optional"`
	// RequestTimeout bounds each Vault request (Go duration, "10s" when
	// unset).
	RequestTimeout string `hcl:"request_timeout,optional"`

	TokenAuth   *TokenAuthConfig   `hcl:"token_auth,block"`
	AppRoleAuth *AppRoleAuthConfig `hcl:"approle_auth,block"`
	CertAuth    *CertAuthConfig    `hcl:"cert_auth,block"`
	K8sAuth     *K8sAuthConfig     `hcl:"k8s_auth,block"`

	// getenv fills in keys left unset; none when nil.
	getenv func(string) string
}

// TokenAuthConfig is the token_auth block.
type TokenAuthConfig struct {
	// Token is a Vault token; VAULT_TOKEN when unset.
	Token string `hcl:"token,optional"`
}

// AppRoleAuthConfig is the approle_auth block. The role ID and secret ID are
// read from files, never from the configuration.
// The secret ID file may hold a response-wrapping token of the secret ID,
// which the plugin unwraps once and replaces with the secret ID (0600).
type AppRoleAuthConfig struct {
	MountPoint   string `hcl:"approle_auth_mount_point,optional"`
	RoleIDFile   string `hcl:"role_id_file,optional"`
	SecretIDFile string `hcl:"secret_id_file,optional"`
	// RotateSecretID replaces a secret ID that has a TTL at two thirds of
	// its life with a new one the role makes for itself (wrapped), written
	// back to secret_id_file. The file's directory must be writable.
	RotateSecretID bool `hcl:"rotate_secret_id,optional"`
}

// CertAuthConfig is the cert_auth block (TLS certificate auth method).
type CertAuthConfig struct {
	MountPoint     string `hcl:"cert_auth_mount_point,optional"`
	RoleName       string `hcl:"cert_auth_role_name,optional"`
	ClientCertPath string `hcl:"client_cert_path,optional"`
	ClientKeyPath  string `hcl:"client_key_path,optional"`
}

// K8sAuthConfig is the k8s_auth block (Kubernetes auth method).
type K8sAuthConfig struct {
	MountPoint string `hcl:"k8s_auth_mount_point,optional"`
	RoleName   string `hcl:"k8s_auth_role_name,optional"`
	TokenPath  string `hcl:"token_path,optional"`
}

// configuration is the validated configuration with defaults applied.
type configuration struct {
	trustDomain      spiffeid.TrustDomain
	pkiMount         string
	issuerRef        string
	kvMount          string
	rootPollInterval time.Duration
	minTTL           time.Duration
	client           vaultclient.Config // Auth, address, TLS; Logger set later
	authKey          string             // the auth block in use, for error messages
}

// signPath is the Vault path that signs SPIRE's CA.
func (c *configuration) signPath() string { return c.pkiMount + "/root/sign-intermediate" }

// issuerRefOrDefault is the issuer that signs.
func (c *configuration) issuerRefOrDefault() string {
	if c.issuerRef == "" {
		return "default"
	}
	return c.issuerRef
}

// jwtDataPath is the KV v2 data path of the shared JWT authorities.
func (c *configuration) jwtDataPath() string {
	return fmt.Sprintf("%s/data/edgeid/%s/jwt-authorities", c.kvMount, c.trustDomain.Name())
}

// buildConfig decodes and validates a Configure or Validate request,
// filling unset keys from the environment through getenv. The returned
// Status names every problem; the configuration is nil when it has one.
func buildConfig(req pluginconf.Request, getenv func(string) string) (*configuration, *pluginconf.Status) {
	return pluginconf.Build(req, &Config{getenv: getenv})
}

// BuildConfig checks c and applies the defaults and the environment (see
// pluginconf.Builder).
func (c *Config) BuildConfig(core pluginconf.Core, s *pluginconf.Status) *configuration {
	core.RequireTrustDomain(s)
	getenv := c.getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	out := &configuration{trustDomain: core.TrustDomain}
	c.buildVault(out, s, getenv)
	c.buildMounts(out, s)
	out.rootPollInterval = s.Duration("root_poll_interval", c.RootPollInterval, pluginconf.Duration{
		Default: DefaultRootPollInterval, Min: minRootPollInterval,
	})
	out.minTTL = s.Duration("min_ttl", c.MinTTL, pluginconf.Duration{AllowZero: true, Example: "24h"})
	out.client.Timeout = s.Duration("request_timeout", c.RequestTimeout, pluginconf.Duration{Default: DefaultRequestTimeout})
	c.buildAuth(out, s, getenv)
	return out
}

// buildVault sets where Vault is and how its certificate is checked.
func (c *Config) buildVault(out *configuration, s *pluginconf.Status, getenv func(string) string) {
	addr := firstNonEmpty(c.VaultAddr, getenv(EnvVaultAddr))
	switch u, err := url.Parse(addr); {
	case addr == "":
		s.ReportErrorf("vault_addr is required (or set %s)", EnvVaultAddr)
	case err != nil:
		s.ReportErrorf("vault_addr %q is not a URL: %v", addr, err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		s.ReportErrorf("vault_addr %q must be an http or https URL with a host", addr)
	}
	out.client.Address = addr
	out.client.Namespace = firstNonEmpty(c.Namespace, getenv(EnvVaultNamespace))
	out.client.CACertPath = firstNonEmpty(c.CACertPath, getenv(EnvVaultCACert))
	out.client.InsecureSkipVerify = c.InsecureSkipVerify
}

// buildMounts checks the PKI and KV mounts and the issuer.
func (c *Config) buildMounts(out *configuration, s *pluginconf.Status) {
	out.pkiMount = strings.Trim(firstNonEmpty(c.PKIMountPoint, DefaultPKIMountPoint), "/")
	if err := checkPathSegment(out.pkiMount); err != nil {
		s.ReportErrorf("pki_mount_point: %v", err)
	}
	out.issuerRef = c.IssuerRef
	if out.issuerRef != "" {
		if err := checkPathSegment(out.issuerRef); err != nil || strings.Contains(out.issuerRef, "/") {
			s.ReportErrorf("issuer_ref %q must be an issuer name or ID", out.issuerRef)
		}
	}
	out.kvMount = strings.Trim(c.KVMountPoint, "/")
	if out.kvMount != "" {
		if err := checkPathSegment(out.kvMount); err != nil {
			s.ReportErrorf("kv_mount_point: %v", err)
		}
	}
}

// buildAuth checks that exactly one auth block is set, and that block.
func (c *Config) buildAuth(out *configuration, s *pluginconf.Status, getenv func(string) string) {
	var blocks []string
	if c.TokenAuth != nil {
		blocks = append(blocks, "token_auth")
		token := firstNonEmpty(c.TokenAuth.Token, getenv(EnvVaultToken))
		if token == "" {
			s.ReportErrorf("token_auth: token is required (or set %s)", EnvVaultToken)
		}
		out.client.Auth = &vaultclient.TokenAuth{Token: token}
	}
	if a := c.AppRoleAuth; a != nil {
		blocks = append(blocks, "approle_auth")
		out.client.Auth = a.build(s)
	}
	if a := c.CertAuth; a != nil {
		blocks = append(blocks, "cert_auth")
		out.client.Auth = a.build(out, s)
	}
	if a := c.K8sAuth; a != nil {
		blocks = append(blocks, "k8s_auth")
		if a.RoleName == "" {
			s.ReportError("k8s_auth: k8s_auth_role_name is required")
		}
		out.client.Auth = &vaultclient.KubernetesAuth{
			MountPath: firstNonEmpty(a.MountPoint, defaultK8sMountPoint),
			RoleName:  a.RoleName,
			TokenPath: firstNonEmpty(a.TokenPath, DefaultK8sTokenPath),
		}
	}
	switch len(blocks) {
	case 0:
		s.ReportError("exactly one auth block is required: token_auth, approle_auth, cert_auth or k8s_auth")
	case 1:
		out.authKey = blocks[0]
	default:
		s.ReportErrorf("exactly one auth block is allowed, found %s", strings.Join(blocks, " and "))
	}
}

func (a *AppRoleAuthConfig) build(s *pluginconf.Status) vaultclient.Auth {
	if a.RoleIDFile == "" {
		s.ReportError("approle_auth: role_id_file is required")
	}
	if a.SecretIDFile == "" {
		s.ReportError("approle_auth: secret_id_file is required")
	}
	return &vaultclient.AppRoleAuth{
		MountPath:      firstNonEmpty(a.MountPoint, defaultApproleMountPoint),
		RoleIDFile:     a.RoleIDFile,
		SecretIDFile:   a.SecretIDFile,
		RotateSecretID: a.RotateSecretID,
	}
}

func (a *CertAuthConfig) build(out *configuration, s *pluginconf.Status) vaultclient.Auth {
	if a.ClientCertPath == "" {
		s.ReportError("cert_auth: client_cert_path is required")
	}
	if a.ClientKeyPath == "" {
		s.ReportError("cert_auth: client_key_path is required")
	}
	out.client.ClientCertPath = a.ClientCertPath
	out.client.ClientKeyPath = a.ClientKeyPath
	return &vaultclient.CertAuth{
		MountPath: firstNonEmpty(a.MountPoint, defaultCertMountPoint),
		RoleName:  a.RoleName,
	}
}

// checkPathSegment rejects mount points that would escape their place in a
// Vault path.
func checkPathSegment(p string) error {
	if p == "" {
		return errors.New("must not be empty")
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("%q is not a valid Vault path", p)
		}
	}
	if strings.ContainsAny(p, "?#% \t\n") {
		return fmt.Errorf("%q is not a valid Vault path", p)
	}
	return nil
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
