package kubeedge

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/tlspolicy"
)

// kubeconfig holds the parts of a kubeconfig file this client supports.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string            `yaml:"name"`
		Cluster kubeconfigCluster `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string         `yaml:"name"`
		User kubeconfigUser `yaml:"user"`
	} `yaml:"users"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster string `yaml:"cluster"`
			User    string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
}

// kubeconfigCluster is one entry of a kubeconfig's clusters.
type kubeconfigCluster struct {
	Server                   string `yaml:"server"`
	CertificateAuthority     string `yaml:"certificate-authority"`
	CertificateAuthorityData string `yaml:"certificate-authority-data"`
	InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
	TLSServerName            string `yaml:"tls-server-name"`
	ProxyURL                 string `yaml:"proxy-url"`
}

// kubeconfigUser is one entry of a kubeconfig's users.
type kubeconfigUser struct {
	Token                 string         `yaml:"token"`
	TokenFile             string         `yaml:"tokenFile"`
	ClientCertificate     string         `yaml:"client-certificate"`
	ClientCertificateData string         `yaml:"client-certificate-data"`
	ClientKey             string         `yaml:"client-key"`
	ClientKeyData         string         `yaml:"client-key-data"`
	Username              string         `yaml:"username"`
	Exec                  map[string]any `yaml:"exec"`
	AuthProvider          map[string]any `yaml:"auth-provider"`
}

// kubeconfigFile is a parsed kubeconfig and the path it was read from,
// against which its relative paths resolve.
type kubeconfigFile struct {
	kubeconfig
	path string
}

// newKubeClientFromKubeconfig builds a client from a kubeconfig file. It
// supports bearer tokens, token files and client certificates; exec and
// auth-provider credential plugins are refused with a clear error.
func newKubeClientFromKubeconfig(path, contextName string, timeout time.Duration) (*kubeClient, error) {
	raw, err := fsutil.ReadFileLimited(path, maxKubeconfigBytes)
	if err != nil {
		return nil, fmt.Errorf("unable to read kubeconfig: %w", err)
	}
	f := &kubeconfigFile{path: path}
	if err := yaml.Unmarshal(raw, &f.kubeconfig); err != nil {
		return nil, fmt.Errorf("unable to parse kubeconfig %s: %w", path, err)
	}
	clusterName, userName, err := f.context(contextName)
	if err != nil {
		return nil, err
	}
	client := &kubeClient{}
	tlsConf := &tls.Config{MinVersion: tlspolicy.MinVersion, CipherSuites: tlspolicy.CipherSuites}
	if err := f.applyCluster(clusterName, client, tlsConf); err != nil {
		return nil, err
	}
	if err := f.applyUser(userName, client, tlsConf); err != nil {
		return nil, err
	}
	client.http = newHTTPClient(tlsConf, timeout)
	return client, nil
}

// context returns the cluster and user of the context name, by default the
// current context.
func (f *kubeconfigFile) context(name string) (cluster, user string, err error) {
	if name == "" {
		name = f.CurrentContext
	}
	if name == "" {
		return "", "", fmt.Errorf("kubeconfig %s has no current-context and kube_context is not set", f.path)
	}
	for _, c := range f.Contexts {
		if c.Name == name {
			return c.Context.Cluster, c.Context.User, nil
		}
	}
	return "", "", fmt.Errorf("kubeconfig %s has no context %q", f.path, name)
}

// applyCluster sets the API server of client and the server
// authentication of tlsConf from the cluster name.
func (f *kubeconfigFile) applyCluster(name string, client *kubeClient, tlsConf *tls.Config) error {
	var c *kubeconfigCluster
	for i := range f.Clusters {
		if f.Clusters[i].Name == name {
			c = &f.Clusters[i].Cluster
			break
		}
	}
	if c == nil {
		return fmt.Errorf("kubeconfig %s has no cluster %q", f.path, name)
	}
	if c.ProxyURL != "" {
		return fmt.Errorf("kubeconfig %s: cluster %q: proxy-url is not supported", f.path, name)
	}
	server, err := url.Parse(c.Server)
	if err != nil || server.Host == "" {
		return fmt.Errorf("kubeconfig %s: cluster %q: invalid server %q", f.path, name, c.Server)
	}
	client.server = server
	if server.Scheme != "https" {
		return fmt.Errorf("kubeconfig %s: cluster %q: server %q must use https", f.path, name, c.Server)
	}
	if c.InsecureSkipTLSVerify {
		return fmt.Errorf("kubeconfig %s: cluster %q: insecure-skip-tls-verify is refused; the node check must authenticate the API server", f.path, name)
	}
	tlsConf.ServerName = c.TLSServerName
	caPEM, err := f.inlineOrFile("certificate-authority-data", c.CertificateAuthorityData, c.CertificateAuthority)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: cluster %q: %w", f.path, name, err)
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return fmt.Errorf("kubeconfig %s: cluster %q: no certificate in its certificate authority", f.path, name)
		}
		tlsConf.RootCAs = pool
	}
	return nil
}

// applyUser sets the credentials of client and tlsConf from the user name:
// a bearer token, a token file or a client certificate.
func (f *kubeconfigFile) applyUser(name string, client *kubeClient, tlsConf *tls.Config) error {
	var u *kubeconfigUser
	for i := range f.Users {
		if f.Users[i].Name == name {
			u = &f.Users[i].User
			break
		}
	}
	if u == nil {
		return fmt.Errorf("kubeconfig %s has no user %q", f.path, name)
	}
	switch {
	case u.Exec != nil:
		return fmt.Errorf("kubeconfig %s: user %q: exec credential plugins are not supported; use a service account token or client certificate", f.path, name)
	case u.AuthProvider != nil:
		return fmt.Errorf("kubeconfig %s: user %q: auth-provider is not supported; use a service account token or client certificate", f.path, name)
	case u.Username != "":
		return fmt.Errorf("kubeconfig %s: user %q: basic authentication is not supported", f.path, name)
	}
	client.token = u.Token
	client.tokenFile = f.rel(u.TokenFile)
	certPEM, err := f.inlineOrFile("client-certificate-data", u.ClientCertificateData, u.ClientCertificate)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: user %q: %w", f.path, name, err)
	}
	keyPEM, err := f.inlineOrFile("client-key-data", u.ClientKeyData, u.ClientKey)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: user %q: %w", f.path, name, err)
	}
	if (certPEM == nil) != (keyPEM == nil) {
		return fmt.Errorf("kubeconfig %s: user %q: a client certificate needs both certificate and key", f.path, name)
	}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("kubeconfig %s: user %q: client certificate: %w", f.path, name, err)
		}
		tlsConf.Certificates = []tls.Certificate{pair}
	}
	return nil
}

// inlineOrFile returns the PEM given inline as base64 (dataKey, data) or
// else in the file file; nil when neither is set.
func (f *kubeconfigFile) inlineOrFile(dataKey, data, file string) ([]byte, error) {
	switch {
	case data != "":
		pem, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dataKey, err)
		}
		return pem, nil
	case file != "":
		return fsutil.ReadFileLimited(f.rel(file), maxKubeconfigBytes)
	}
	return nil, nil
}

// rel resolves p, a path in the kubeconfig, against its directory.
func (f *kubeconfigFile) rel(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(f.path), p)
}
