package vaultpki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/plugins/common/vaultclient"
	"github.com/edgeid/edgeid/plugins/common/vaultclient/vaultfake"
	upstreamauthorityv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/upstreamauthority/v1"
	"github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/types"
	"google.golang.org/grpc/codes"
)

func newJWTKey(t *testing.T, id string, ttl time.Duration) *types.JWTKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &types.JWTKey{KeyId: id, PublicKey: der, ExpiresAt: time.Now().Add(ttl).Unix()}
}

func publish(t *testing.T, l *loaded, key *types.JWTKey) (*receiver[*upstreamauthorityv1.PublishJWTKeyResponse], []*types.JWTKey, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := l.ua.PublishJWTKeyAndSubscribe(ctx, &upstreamauthorityv1.PublishJWTKeyRequest{JwtKey: key})
	if err != nil {
		return nil, nil, err
	}
	r := newReceiver(stream.Recv)
	resp, err := r.next(20 * time.Second)
	if err != nil {
		return nil, nil, err
	}
	return r, resp.UpstreamJwtKeys, nil
}

func keyIDs(keys []*types.JWTKey) map[string]bool {
	out := map[string]bool{}
	for _, k := range keys {
		out[k.KeyId] = true
	}
	return out
}

func TestTwoServersShareJWTAuthorities(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	a, b := load(t, nil), load(t, nil)
	hcl := tokenHCL(v.Addr(), f.token, `root_poll_interval = "1s"`)
	a.mustConfigure(t, hcl)
	b.mustConfigure(t, hcl)

	// An expired key left by a server long gone is pruned.
	v.PutKV(jwtPath, map[string]any{"keys": []storedJWTKey{{KeyID: "old", PublicKey: "AAAA", ExpiresAt: time.Now().Add(-time.Hour).Unix()}}})

	streamA, keysA, err := publish(t, a, newJWTKey(t, "key-a", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ids := keyIDs(keysA); len(ids) != 1 || !ids["key-a"] {
		t.Fatalf("A sees %v, want only key-a", ids)
	}
	keyB := newJWTKey(t, "key-b", time.Hour)
	_, keysB, err := publish(t, b, keyB)
	if err != nil {
		t.Fatal(err)
	}
	if ids := keyIDs(keysB); len(ids) != 2 || !ids["key-a"] || !ids["key-b"] {
		t.Fatalf("B sees %v, want key-a and key-b", ids)
	}
	// A's open stream learns about B's key.
	update, err := streamA.next(10 * time.Second)
	if err != nil {
		t.Fatalf("A got no update: %v", err)
	}
	if ids := keyIDs(update.UpstreamJwtKeys); !ids["key-a"] || !ids["key-b"] {
		t.Fatalf("A's update has %v", ids)
	}
	for _, k := range update.UpstreamJwtKeys {
		if k.KeyId == "key-b" && (string(k.PublicKey) != string(keyB.PublicKey) || k.ExpiresAt != keyB.ExpiresAt) {
			t.Fatal("key-b changed on its way through Vault")
		}
	}
	stored, _ := v.KVData(jwtPath)["keys"].([]any)
	if len(stored) != 2 {
		t.Fatalf("Vault holds %d keys, want 2 (expired one pruned)", len(stored))
	}
}

func TestPublishRepublishesMissingKey(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	l := load(t, nil)
	l.mustConfigure(t, tokenHCL(v.Addr(), f.token, `root_poll_interval = "1s"`))
	if _, _, err := publish(t, l, newJWTKey(t, "key-a", time.Hour)); err != nil {
		t.Fatal(err)
	}
	v.PutKV(jwtPath, map[string]any{"keys": []any{}}) // someone wiped the set
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if keys, _ := v.KVData(jwtPath)["keys"].([]any); len(keys) == 1 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the plugin did not publish its key again")
}

func TestPublishWithoutKVIsUnimplemented(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	l := load(t, nil)
	l.mustConfigure(t, fmt.Sprintf("vault_addr = %q\ntoken_auth { token = %q }\n", v.Addr(), f.token))
	_, _, err := publish(t, l, newJWTKey(t, "k", time.Hour))
	wantCode(t, err, codes.Unimplemented, "kv_mount_point")
	if !containsLog(l, "kv_mount_point is not set") {
		t.Fatal("no warning that JWT keys are not shared")
	}
}

func containsLog(l *loaded, s string) bool { return strings.Contains(l.logs.String(), s) }

func TestConcurrentPublishersKeepEveryKey(t *testing.T) {
	v := vaultfake.New(t)
	f := newPKI(t, v)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := vaultclient.Dial(ctx, vaultclient.Config{Address: v.Addr(), Auth: &vaultclient.TokenAuth{Token: f.token}})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			s := &jwtStore{v: c, path: jwtPath, now: time.Now}
			_, err = s.publish(ctx, fromPluginJWTKey(newJWTKey(t, fmt.Sprintf("k%d", i), time.Hour)))
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	stored, _ := v.KVData(jwtPath)["keys"].([]any)
	if len(stored) != n {
		t.Fatalf("Vault holds %d keys after %d concurrent publishers", len(stored), n)
	}
}

func TestMergeJWTKeys(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	keys := mergeJWTKeys(
		[]storedJWTKey{{KeyID: "a", ExpiresAt: now.Unix() + 10, Tainted: true}, {KeyID: "gone", ExpiresAt: now.Unix() - 1}, {KeyID: "forever"}},
		[]storedJWTKey{{KeyID: "a", ExpiresAt: now.Unix() + 10}, {KeyID: "b", ExpiresAt: now.Unix() + 20}},
		now)
	if len(keys) != 3 || keys[0].KeyID != "a" || !keys[0].Tainted || keys[1].KeyID != "b" || keys[2].KeyID != "forever" {
		t.Fatalf("merged = %+v", keys)
	}
	many := make([]storedJWTKey, maxStoredJWTKeys+5)
	for i := range many {
		many[i] = storedJWTKey{KeyID: fmt.Sprintf("k%03d", i), ExpiresAt: now.Unix() + int64(i+1)}
	}
	kept := mergeJWTKeys(many, nil, now)
	if len(kept) != maxStoredJWTKeys || kept[0].KeyID != "k005" {
		t.Fatalf("kept %d keys starting at %s, want the %d expiring last", len(kept), kept[0].KeyID, maxStoredJWTKeys)
	}
}
