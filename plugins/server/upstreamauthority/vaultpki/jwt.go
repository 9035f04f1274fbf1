package vaultpki

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/edgeid/edgeid/plugins/common/vaultclient"
	"github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/types"
)

const (
	// maxStoredJWTKeys bounds the shared set; the keys expiring last win.
	maxStoredJWTKeys = 64
	// maxCASAttempts bounds read-merge-write rounds lost to concurrent writers.
	maxCASAttempts = 8
)

// storedJWTKey is one JWT authority as stored in KV.
type storedJWTKey struct {
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"` // base64 of the PKIX DER
	ExpiresAt int64  `json:"expires_at"` // Unix seconds, 0 for never
	Tainted   bool   `json:"tainted,omitempty"`
}

func fromPluginJWTKey(k *types.JWTKey) storedJWTKey {
	return storedJWTKey{
		KeyID:     k.KeyId,
		PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey),
		ExpiresAt: k.ExpiresAt,
		Tainted:   k.Tainted,
	}
}

func (k storedJWTKey) toPlugin() (*types.JWTKey, error) {
	der, err := base64.StdEncoding.DecodeString(k.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("key %q: public_key is not base64: %w", k.KeyID, err)
	}
	return &types.JWTKey{KeyId: k.KeyID, PublicKey: der, ExpiresAt: k.ExpiresAt, Tainted: k.Tainted}, nil
}

func (k storedJWTKey) expired(now time.Time) bool {
	return k.ExpiresAt != 0 && k.ExpiresAt <= now.Unix()
}

// jwtStore keeps the trust domain's JWT authorities in one KV v2 secret.
// Writes are read-merge-write with check-and-set, so servers sharing the
// secret never drop each other's keys.
type jwtStore struct {
	v    vault
	path string
	now  func() time.Time
}

// read returns the stored keys and the secret's version (0 when absent).
func (s *jwtStore) read(ctx context.Context) ([]storedJWTKey, int64, error) {
	sec, err := s.v.Read(ctx, s.path)
	if err != nil {
		return nil, 0, err
	}
	if sec == nil || sec.Data == nil {
		return nil, 0, nil
	}
	var version int64
	if md, ok := sec.Data["metadata"].(map[string]any); ok {
		switch n := md["version"].(type) {
		case json.Number:
			version, _ = n.Int64()
		case float64:
			version = int64(n)
		}
	}
	data, _ := sec.Data["data"].(map[string]any)
	if data == nil {
		// Deleted version, or a version without data: start over on top of it.
		return nil, version, nil
	}
	raw, err := json.Marshal(data["keys"])
	if err != nil {
		return nil, version, fmt.Errorf("%s: %w", s.path, err)
	}
	var keys []storedJWTKey
	if string(raw) != "null" {
		if err := json.Unmarshal(raw, &keys); err != nil {
			return nil, version, fmt.Errorf("%s: keys are malformed: %w", s.path, err)
		}
	}
	return keys, version, nil
}

// publish adds key to the shared set, pruning expired keys, and returns the
// resulting set.
func (s *jwtStore) publish(ctx context.Context, key storedJWTKey) ([]storedJWTKey, error) {
	for attempt := 0; attempt < maxCASAttempts; attempt++ {
		current, version, err := s.read(ctx)
		if err != nil {
			return nil, err
		}
		merged := mergeJWTKeys(current, []storedJWTKey{key}, s.now())
		if sameJWTKeys(current, merged) {
			return merged, nil
		}
		_, err = s.v.Write(ctx, s.path, map[string]any{
			"options": map[string]any{"cas": version},
			"data":    map[string]any{"keys": merged},
		})
		if err == nil {
			return merged, nil
		}
		if !casMismatch(err) {
			return nil, err
		}
		// Another server wrote in between: merge again on top of its write.
	}
	return nil, fmt.Errorf("%s: gave up after %d concurrent updates", s.path, maxCASAttempts)
}

// casMismatch reports whether err is KV v2's check-and-set refusal.
func casMismatch(err error) bool {
	return vaultclient.StatusCode(err) == http.StatusBadRequest && strings.Contains(err.Error(), "check-and-set")
}

// mergeJWTKeys returns the union of current and add by key ID (a tainted
// mark is sticky), without expired keys, sorted by key ID, keeping at most
// maxStoredJWTKeys (those expiring last).
func mergeJWTKeys(current, add []storedJWTKey, now time.Time) []storedJWTKey {
	byID := map[string]storedJWTKey{}
	for _, k := range append(append([]storedJWTKey{}, current...), add...) {
		if k.KeyID == "" || k.expired(now) {
			continue
		}
		if old, ok := byID[k.KeyID]; ok {
			k.Tainted = k.Tainted || old.Tainted
		}
		byID[k.KeyID] = k
	}
	out := make([]storedJWTKey, 0, len(byID))
	for _, k := range byID {
		out = append(out, k)
	}
	if len(out) > maxStoredJWTKeys {
		sort.Slice(out, func(i, j int) bool { return expiresLater(out[i], out[j]) })
		out = out[:maxStoredJWTKeys]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].KeyID < out[j].KeyID })
	return out
}

func expiresLater(a, b storedJWTKey) bool {
	switch {
	case a.ExpiresAt == 0:
		return b.ExpiresAt != 0
	case b.ExpiresAt == 0:
		return false
	default:
		return a.ExpiresAt > b.ExpiresAt
	}
}

func sameJWTKeys(a, b []storedJWTKey) bool {
	if len(a) != len(b) {
		return false
	}
	sa := append([]storedJWTKey{}, a...)
	sort.Slice(sa, func(i, j int) bool { return sa[i].KeyID < sa[j].KeyID })
	for i := range sa {
		if sa[i] != b[i] {
			return false
		}
	}
	return true
}

func containsKey(keys []storedJWTKey, id string) bool {
	for _, k := range keys {
		if k.KeyID == id {
			return true
		}
	}
	return false
}

// toPluginKeys converts stored keys for SPIRE, skipping expired or
// malformed ones.
func toPluginKeys(keys []storedJWTKey, now time.Time) ([]*types.JWTKey, error) {
	out := make([]*types.JWTKey, 0, len(keys))
	var errs []error
	for _, k := range keys {
		if k.expired(now) {
			continue
		}
		pk, err := k.toPlugin()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, pk)
	}
	return out, errors.Join(errs...)
}

func equalPluginKeys(a, b []*types.JWTKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].KeyId != b[i].KeyId || !bytes.Equal(a[i].PublicKey, b[i].PublicKey) ||
			a[i].ExpiresAt != b[i].ExpiresAt || a[i].Tainted != b[i].Tainted {
			return false
		}
	}
	return true
}
