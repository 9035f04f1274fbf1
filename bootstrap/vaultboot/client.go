package vaultboot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/vaultconn"
	vaultapi "github.com/hashicorp/vault/api"
)

// vaultClient is the narrow view of the Vault API the bootstrap uses. The
// token it sends is set with setToken; nothing is read from VAULT_*
// environment variables.
type vaultClient struct {
	c *vaultapi.Client
}

func newVaultClient(c *configuration) (*vaultClient, error) {
	// vaultconn reads nothing from VAULT_* variables: the configuration
	// file is the only source here.
	client, err := vaultconn.NewClient(vaultconn.Config{
		Address:       c.addr,
		CACertFile:    c.caCertFile,
		TLSServerName: c.tlsServerName,
		Timeout:       c.requestTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("vaultboot: vault client: %w", err)
	}
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

// writeWrapped writes data to path and asks Vault to response-wrap the
// answer for ttl: the secret comes back inside a single-use token.
func (v *vaultClient) writeWrapped(ctx context.Context, path string, data map[string]any, ttl time.Duration) (*vaultapi.Secret, error) {
	c, err := v.c.Clone()
	if err != nil {
		return nil, err
	}
	c.SetToken(v.c.Token())
	if ns := v.c.Namespace(); ns != "" {
		c.SetNamespace(ns)
	}
	wrap := fmt.Sprintf("%ds", int(ttl.Seconds()))
	c.SetWrappingLookupFunc(func(string, string) string { return wrap })
	s, err := c.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return nil, fmt.Errorf("write %s (wrapped): %w", path, err)
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
