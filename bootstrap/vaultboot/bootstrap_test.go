package vaultboot

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeVault answers sys/seal-status and sys/generate-root/attempt like an
// initialised Vault, and records every request that could change state.
type fakeVault struct {
	sealed bool
	mu     sync.Mutex
	writes []string
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		f.mu.Lock()
		f.writes = append(f.writes, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/sys/seal-status":
		json.NewEncoder(w).Encode(map[string]any{"type": "shamir", "initialized": true, "sealed": f.sealed, "t": 2, "n": 3, "progress": 0, "version": "fake"})
	case "/v1/sys/generate-root/attempt":
		json.NewEncoder(w).Encode(map[string]any{"started": false, "progress": 0, "required": 2, "complete": false})
	default:
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errors":["permission denied"]}`)
	}
}

func (f *fakeVault) stateChanges() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...)
}

// TestBadIdentityChangesNothing: with the key shares on disk but a wrong or
// missing decryption identity, the run fails naming the problem before it
// sends Vault a single state-changing request, sealed or not.
func TestBadIdentityChangesNothing(t *testing.T) {
	recs, ids := testRecipients(t, 3)
	_, others := testRecipients(t, 1)
	for _, sealed := range []bool{true, false} {
		for _, tc := range []struct {
			name     string
			identity string // "" for none
			want     string
		}{
			{"wrong identity", others[0].String(), "decrypted 0 of the 2 key shares needed"},
			{"one identity short", ids[0].String(), "decrypted 1 of the 2 key shares needed"},
			{"missing identity", "", "no age identity is available"},
		} {
			name := tc.name + map[bool]string{true: " sealed", false: " unsealed"}[sealed]
			t.Run(name, func(t *testing.T) {
				fake := &fakeVault{sealed: sealed}
				srv := httptest.NewServer(fake)
				defer srv.Close()
				dir := t.TempDir()
				c := ageConfig(t, dir, recs, true)
				enc, err := newShareEncrypter(c)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := enc.writeShares(c.sharesDir, kindUnseal, 2, fakeShares(t, 3), nil, nil); err != nil {
					t.Fatal(err)
				}
				text := "state_dir = \"" + dir + "\"\nvault {\n address = \"" + srv.URL + "\"\n wait_timeout = \"5s\"\n}\ninit {\n secret_shares = 3\n secret_threshold = 2\n age_recipients = [\"" + strings.Join(recs, "\", \"") + "\"]\n}\nunseal {\n age_identity_env = \"TEST_AGE_IDS\"\n}\n"
				cfg, err := Parse(filepath.Join(dir, "b.hcl"), []byte(text))
				if err != nil {
					t.Fatal(err)
				}
				b, err := New(cfg, Options{
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
					Getenv: func(k string) string {
						if k == "TEST_AGE_IDS" {
							return tc.identity
						}
						return ""
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				_, err = b.Run(context.Background())
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one containing %q", err, tc.want)
				}
				if w := fake.stateChanges(); len(w) != 0 {
					t.Fatalf("state-changing requests sent to Vault: %v", w)
				}
			})
		}
	}
}

func TestUnreachableVault(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	recs, _ := testRecipients(t, 3)
	dir := t.TempDir()
	text := "state_dir = \"" + dir + "\"\nvault {\n address = \"http://" + addr + "\"\n wait_timeout = \"1s\"\n}\ninit {\n secret_shares = 3\n secret_threshold = 2\n age_recipients = [\"" + strings.Join(recs, "\", \"") + "\"]\n}\n"
	cfg, err := Parse(filepath.Join(dir, "b.hcl"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = b.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "did not answer within 1s") || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "vault.wait_timeout") {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s for a 1s wait_timeout", d)
	}
	// Nothing was written locally either.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("state_dir has %d entries after a failed wait", len(entries))
	}
}
