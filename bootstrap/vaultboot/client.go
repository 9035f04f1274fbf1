package vaultboot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	vaultapi "github.com/hashicorp/vault/api"
)

// vaultClient is the narrow view of the Vault API the bootstrap uses. The
// token it sends is set with setToken; nothing is read from VAULT_*
// environment variables.
type vaultClient struct {
	c *vaultapi.Client
}

func newVaultClient(c *configuration) (*vaultClient, error) {
	// Built by hand rather than with vaultapi.DefaultConfig, which reads
	// VAULT_ADDR, VAULT_CACERT, VAULT_SKIP_VERIFY, proxies and more from the
	// environment: the configuration file is the only source here.
	hc := cleanhttp.DefaultPooledClient()
	tr := hc.Transport.(*http.Transport)
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.Proxy = nil
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg := &vaultapi.Config{
		Address:      c.addr,
		HttpClient:   hc,
		Timeout:      c.requestTimeout,
		MaxRetries:   0,
		MinRetryWait: time.Second,
		MaxRetryWait: 1500 * time.Millisecond,
		Backoff:      retryablehttp.RateLimitLinearJitterBackoff,
	}
	if err := cfg.ConfigureTLS(&vaultapi.TLSConfig{CACert: c.caCertFile, TLSServerName: c.tlsServerName}); err != nil {
		return nil, fmt.Errorf("vaultboot: vault client TLS: %w", err)
	}
	client, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vaultboot: vault client: %w", err)
	}
	// NewClient still picks up VAULT_TOKEN, VAULT_NAMESPACE and
	// VAULT_HEADERS; drop them.
	client.ClearToken()
	client.ClearNamespace()
	client.SetHeaders(http.Header{vaultapi.RequestHeaderName: []string{"true"}})
	return &vaultClient{c: client}, nil
}

func (v *vaultClient) setToken(token string) {
	if token == "" {
		v.c.ClearToken()
		return
	}
	v.c.SetToken(token)
}

// read returns the data at path, or nil when nothing is there.
func (v *vaultClient) read(ctx context.Context, path string) (map[string]any, error) {
	s, err := v.c.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if s == nil {
		return nil, nil
	}
	return s.Data, nil
}

func (v *vaultClient) write(ctx context.Context, path string, data map[string]any) (*vaultapi.Secret, error) {
	s, err := v.c.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

// list returns the keys under path (none when the path is empty).
func (v *vaultClient) list(ctx context.Context, path string) ([]string, map[string]any, error) {
	s, err := v.c.Logical().ListWithContext(ctx, path)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", path, err)
	}
	if s == nil || s.Data == nil {
		return nil, nil, nil
	}
	keys := stringSlice(s.Data["keys"])
	info, _ := s.Data["key_info"].(map[string]any)
	return keys, info, nil
}

func (v *vaultClient) delete(ctx context.Context, path string) error {
	if _, err := v.c.Logical().DeleteWithContext(ctx, path); err != nil {
		return fmt.Errorf("delete %s: %w", path, err)
	}
	return nil
}

// statusCode returns the HTTP status of a Vault error, or 0.
func statusCode(err error) int {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func stringSlice(v any) []string {
	switch t := v.(type) {
	case []string:
		return t
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		if t == "" {
			return nil
		}
		return strings.Split(t, ",")
	}
	return nil
}

func str(m map[string]any, key string) string {
	if m == nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

// num reads a JSON number (the API decodes with UseNumber).
func num(m map[string]any, key string) int64 {
	if m == nil {
		return 0
	}
	switch t := m[key].(type) {
	case interface{ Int64() (int64, error) }:
		n, _ := t.Int64()
		return n
	case float64:
		return int64(t)
	case int:
		return int64(t)
	case int64:
		return t
	case string:
		var n int64
		fmt.Sscan(t, &n)
		return n
	}
	return 0
}

func boolean(m map[string]any, key string) bool {
	if m == nil {
		return false
	}
	b, _ := m[key].(bool)
	return b
}
