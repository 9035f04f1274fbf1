package vaultkms

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/edgeid/edgeid/internal/transitpolicy"
	"github.com/edgeid/edgeid/internal/vaultconn"
	vaultapi "github.com/hashicorp/vault/api"
)

// TestClassify maps Vault's answers (the messages of Vault 1.21's Transit)
// to recordcrypt's typed errors.
func TestClassify(t *testing.T) {
	re := func(code int, msg string) error {
		return &vaultapi.ResponseError{HTTPMethod: "PUT", StatusCode: code, Errors: []string{msg}}
	}
	cases := []struct {
		err  error
		want error
	}{
		{re(http.StatusForbidden, "permission denied"), recordcrypt.ErrAccessDenied},
		{re(http.StatusBadRequest, "invalid ciphertext: version is too new"), recordcrypt.ErrUnknownKeyVersion},
		{re(http.StatusBadRequest, "ciphertext or signature version is disallowed by policy (too old)"), recordcrypt.ErrUnknownKeyVersion},
		{re(http.StatusBadRequest, "cipher: message authentication failed"), recordcrypt.ErrBadWrappedKey},
		{re(http.StatusBadRequest, "encryption key not found"), recordcrypt.ErrBadWrappedKey},
		{re(http.StatusServiceUnavailable, "Vault is sealed"), recordcrypt.ErrKMSUnavailable},
		{re(http.StatusInternalServerError, "internal error"), recordcrypt.ErrKMSUnavailable},
		{fmt.Errorf("dial tcp 127.0.0.1:1: connect: connection refused"), recordcrypt.ErrKMSUnavailable},
	}
	for _, tc := range cases {
		if got := classify(tc.err); !errors.Is(got, tc.want) {
			t.Errorf("%v: classified %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestNewRefusesConfig(t *testing.T) {
	ca, _ := svidtest.NewCA("example.org")
	s, _ := ca.SVID("spiffe://example.org/x", 3600e9)
	for name, cfg := range map[string]Config{
		"no SVID source":    {Vault: vaultconn.Config{Address: "https://127.0.0.1:8200"}},
		"client cert files": {Vault: vaultconn.Config{Address: "https://127.0.0.1:8200", ClientCertFile: "c", ClientKeyFile: "k"}, SVID: svidtest.NewSource(s)},
		"no address":        {SVID: svidtest.NewSource(s)},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPolicies(t *testing.T) {
	p, c := transitpolicy.Producer("", "site-a.detections"), transitpolicy.Consumer("transit2", "r")
	if !strings.Contains(p, `path "transit/datakey/plaintext/site-a.detections"`) || strings.Contains(p, "decrypt") {
		t.Errorf("producer policy:\n%s", p)
	}
	if !strings.Contains(c, `path "transit2/decrypt/r"`) || strings.Contains(c, "datakey") {
		t.Errorf("consumer policy:\n%s", c)
	}
	if rw := transitpolicy.Rewrap("", "r"); !strings.Contains(rw, `path "transit/rewrap/r"`) || strings.Contains(rw, "decrypt") || strings.Contains(rw, "datakey") {
		t.Errorf("rewrap policy:\n%s", rw)
	}
}

// TestREADMEShowsRenderedPolicies keeps the README's HCL equal to what
// the functions render (and the integration test loads).
func TestREADMEShowsRenderedPolicies(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{transitpolicy.Producer("transit", "site-a.detections"), transitpolicy.Consumer("transit", "site-a.detections"),
		transitpolicy.Rewrap("transit", "site-a.detections")} {
		if !strings.Contains(string(b), "```hcl\n"+p+"```") {
			t.Errorf("README does not show the policy\n%s", p)
		}
	}
}
