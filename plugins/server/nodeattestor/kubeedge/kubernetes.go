package kubeedge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"

	"gopkg.in/yaml.v3"
)

// In-cluster service account locations (the pod's projected volume).
const (
	inClusterTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	inClusterCAPath    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	maxNodeBytes       = 4 << 20
	maxKubeconfigBytes = 1 << 20
)

// errNodeNotFound reports that the API server answered 404 for the Node.
var errNodeNotFound = errors.New("node not found")

// unreachableError marks a failure that says nothing about the Node: the
// API server could not be reached (connection refused or reset, timeout) or
// could not answer (5xx, 429). Only these let an agent attest on its
// node's last successful check (node_check_max_staleness). A refusal of
// the plugin's credentials (401, 403), a TLS verification failure, a
// malformed answer and a missing token file are not outages: they fail
// closed at once.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// isUnreachable reports whether err is an unreachableError.
func isUnreachable(err error) bool {
	var u *unreachableError
	return errors.As(err, &u)
}

// isTLSVerificationError reports whether err comes from authenticating the
// API server (or from speaking TLS to something that is not TLS): a
// configuration or interception problem, never an outage.
func isTLSVerificationError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &header)
}

// node holds the fields of a Kubernetes Node the attestor uses.
type node struct {
	Metadata struct {
		Name              string            `json:"name"`
		UID               string            `json:"uid"`
		Labels            map[string]string `json:"labels"`
		DeletionTimestamp *string           `json:"deletionTimestamp"`
	} `json:"metadata"`
}

// nodeGetter reads one Node. It is the only Kubernetes call the plugin
// makes, so it is all the plugin depends on.
type nodeGetter interface {
	GetNode(ctx context.Context, name string) (*node, error)
}

// kubeClient is a minimal typed REST client for GET /api/v1/nodes/{name}.
type kubeClient struct {
	server    *url.URL
	http      *http.Client
	token     string // static bearer token
	tokenFile string // re-read on every request (bound tokens rotate)
}

// GetNode fetches the Node called name.
func (c *kubeClient) GetNode(ctx context.Context, name string) (*node, error) {
	u := c.server.JoinPath("api", "v1", "nodes", name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	token := c.token
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("unable to read token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if isTLSVerificationError(err) {
			return nil, err
		}
		return nil, &unreachableError{err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxNodeBytes+1))
	if err != nil {
		return nil, &unreachableError{fmt.Errorf("unable to read response: %w", err)}
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, errNodeNotFound
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, &unreachableError{fmt.Errorf("api server answered %s: %s", resp.Status, apiMessage(body))}
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("api server answered %s: %s", resp.Status, apiMessage(body))
	case len(body) > maxNodeBytes:
		return nil, fmt.Errorf("node object is over the %d byte limit", maxNodeBytes)
	}
	var n node
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("unable to decode node: %w", err)
	}
	if n.Metadata.Name != name {
		return nil, fmt.Errorf("api server returned node %q for %q", n.Metadata.Name, name)
	}
	return &n, nil
}

// apiMessage extracts the message of a Kubernetes Status body, bounded.
func apiMessage(body []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		body = []byte(st.Message)
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return strings.TrimSpace(string(body))
}

// kubeconfig holds the parts of a kubeconfig file this client supports.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server                   string `yaml:"server"`
			CertificateAuthority     string `yaml:"certificate-authority"`
			CertificateAuthorityData string `yaml:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
			TLSServerName            string `yaml:"tls-server-name"`
			ProxyURL                 string `yaml:"proxy-url"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			Token                 string         `yaml:"token"`
			TokenFile             string         `yaml:"tokenFile"`
			ClientCertificate     string         `yaml:"client-certificate"`
			ClientCertificateData string         `yaml:"client-certificate-data"`
			ClientKey             string         `yaml:"client-key"`
			ClientKeyData         string         `yaml:"client-key-data"`
			Username              string         `yaml:"username"`
			Exec                  map[string]any `yaml:"exec"`
			AuthProvider          map[string]any `yaml:"auth-provider"`
		} `yaml:"user"`
	} `yaml:"users"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster string `yaml:"cluster"`
			User    string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
}

// newKubeClientFromKubeconfig builds a client from a kubeconfig file. It
// supports bearer tokens, token files and client certificates; exec and
// auth-provider credential plugins are refused with a clear error.
func newKubeClientFromKubeconfig(path, contextName string, timeout time.Duration) (*kubeClient, error) {
	raw, err := fsutil.ReadFileLimited(path, maxKubeconfigBytes)
	if err != nil {
		return nil, fmt.Errorf("unable to read kubeconfig: %w", err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		return nil, fmt.Errorf("unable to parse kubeconfig %s: %w", path, err)
	}
	base := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if contextName == "" {
		contextName = kc.CurrentContext
	}
	if contextName == "" {
		return nil, fmt.Errorf("kubeconfig %s has no current-context and kube_context is not set", path)
	}
	var clusterName, userName string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == contextName {
			clusterName, userName, found = c.Context.Cluster, c.Context.User, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("kubeconfig %s has no context %q", path, contextName)
	}
	client := &kubeClient{}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tls12Suites}
	found = false
	for _, c := range kc.Clusters {
		if c.Name != clusterName {
			continue
		}
		found = true
		if c.Cluster.ProxyURL != "" {
			return nil, fmt.Errorf("kubeconfig %s: cluster %q: proxy-url is not supported", path, clusterName)
		}
		client.server, err = url.Parse(c.Cluster.Server)
		if err != nil || client.server.Host == "" {
			return nil, fmt.Errorf("kubeconfig %s: cluster %q: invalid server %q", path, clusterName, c.Cluster.Server)
		}
		if client.server.Scheme != "https" {
			return nil, fmt.Errorf("kubeconfig %s: cluster %q: server %q must use https", path, clusterName, c.Cluster.Server)
		}
		if c.Cluster.InsecureSkipTLSVerify {
			return nil, fmt.Errorf("kubeconfig %s: cluster %q: insecure-skip-tls-verify is refused; the node check must authenticate the API server", path, clusterName)
		}
		tlsConf.ServerName = c.Cluster.TLSServerName
		var caPEM []byte
		switch {
		case c.Cluster.CertificateAuthorityData != "":
			caPEM, err = base64.StdEncoding.DecodeString(c.Cluster.CertificateAuthorityData)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: cluster %q: certificate-authority-data: %w", path, clusterName, err)
			}
		case c.Cluster.CertificateAuthority != "":
			caPEM, err = fsutil.ReadFileLimited(rel(c.Cluster.CertificateAuthority), maxKubeconfigBytes)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: cluster %q: %w", path, clusterName, err)
			}
		}
		if caPEM != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(caPEM) {
				return nil, fmt.Errorf("kubeconfig %s: cluster %q: no certificate in its certificate authority", path, clusterName)
			}
			tlsConf.RootCAs = pool
		}
		break
	}
	if !found {
		return nil, fmt.Errorf("kubeconfig %s has no cluster %q", path, clusterName)
	}
	found = false
	for _, u := range kc.Users {
		if u.Name != userName {
			continue
		}
		found = true
		switch {
		case u.User.Exec != nil:
			return nil, fmt.Errorf("kubeconfig %s: user %q: exec credential plugins are not supported; use a service account token or client certificate", path, userName)
		case u.User.AuthProvider != nil:
			return nil, fmt.Errorf("kubeconfig %s: user %q: auth-provider is not supported; use a service account token or client certificate", path, userName)
		case u.User.Username != "":
			return nil, fmt.Errorf("kubeconfig %s: user %q: basic authentication is not supported", path, userName)
		}
		client.token = u.User.Token
		client.tokenFile = rel(u.User.TokenFile)
		certPEM, keyPEM := []byte(nil), []byte(nil)
		if u.User.ClientCertificateData != "" {
			if certPEM, err = base64.StdEncoding.DecodeString(u.User.ClientCertificateData); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: client-certificate-data: %w", path, userName, err)
			}
		} else if u.User.ClientCertificate != "" {
			if certPEM, err = fsutil.ReadFileLimited(rel(u.User.ClientCertificate), maxKubeconfigBytes); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: %w", path, userName, err)
			}
		}
		if u.User.ClientKeyData != "" {
			if keyPEM, err = base64.StdEncoding.DecodeString(u.User.ClientKeyData); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: client-key-data: %w", path, userName, err)
			}
		} else if u.User.ClientKey != "" {
			if keyPEM, err = fsutil.ReadFileLimited(rel(u.User.ClientKey), maxKubeconfigBytes); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: %w", path, userName, err)
			}
		}
		if (certPEM == nil) != (keyPEM == nil) {
			return nil, fmt.Errorf("kubeconfig %s: user %q: a client certificate needs both certificate and key", path, userName)
		}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: client certificate: %w", path, userName, err)
			}
			tlsConf.Certificates = []tls.Certificate{pair}
		}
		break
	}
	if !found {
		return nil, fmt.Errorf("kubeconfig %s has no user %q", path, userName)
	}
	client.http = newHTTPClient(tlsConf, timeout)
	return client, nil
}

// inClusterTokenExists reports whether the pod's service account token is
// there: the sign that the server runs in a Kubernetes pod, which makes the
// Node check required by default.
func inClusterTokenExists(h *hooks) bool {
	_, err := os.Stat(h.inClusterTokenPath)
	return err == nil
}

// newInClusterKubeClient builds a client from the pod's service account.
func newInClusterKubeClient(h *hooks, timeout time.Duration) (*kubeClient, error) {
	host, port := h.getenv("KUBERNETES_SERVICE_HOST"), h.getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
	}
	caPEM, err := fsutil.ReadFileLimited(h.inClusterCAPath, maxKubeconfigBytes)
	if err != nil {
		return nil, fmt.Errorf("unable to read service account CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", h.inClusterCAPath)
	}
	if _, err := os.Stat(h.inClusterTokenPath); err != nil {
		return nil, fmt.Errorf("unable to find service account token: %w", err)
	}
	return &kubeClient{
		server:    &url.URL{Scheme: "https", Host: net.JoinHostPort(host, port)},
		http:      newHTTPClient(&tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tls12Suites, RootCAs: pool}, timeout),
		tokenFile: h.inClusterTokenPath,
	}, nil
}

// tls12Suites are the ECDHE + AES-GCM suites allowed when TLS 1.2 is
// negotiated (TLS 1.3 suites are not configurable and all fine).
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

func newHTTPClient(tlsConf *tls.Config, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil, // never send node checks through an environment proxy
			TLSClientConfig:     tlsConf,
			TLSHandshakeTimeout: timeout,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
