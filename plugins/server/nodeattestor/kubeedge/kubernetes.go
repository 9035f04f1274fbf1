package kubeedge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/tlspolicy"
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
		http:      newHTTPClient(&tls.Config{MinVersion: tlspolicy.MinVersion, CipherSuites: tlspolicy.CipherSuites, RootCAs: pool}, timeout),
		tokenFile: h.inClusterTokenPath,
	}, nil
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
