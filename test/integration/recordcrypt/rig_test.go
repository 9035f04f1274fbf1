package recordcrypt

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/vaultkms"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/edgeid/edgeid/internal/transitpolicy"
	"github.com/edgeid/edgeid/internal/vaultconn"
	"github.com/edgeid/edgeid/test/harness"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

const (
	ring        = "site-a.detections"
	topic       = "site-a.detections"
	producerID  = "spiffe://example.org/edge/site-a/deepstream/cam-pipeline"
	consumerID  = "spiffe://example.org/cloud/analytics"
	strangerID  = "spiffe://example.org/edge/site-b/deepstream/other"
	producerPol = "recordcrypt-producer-site-a"
	consumerPol = "recordcrypt-consumer-site-a"
)

// rig is a dev Vault over TLS with Transit key ring, cert auth trusting
// the test CA, and one role per identity bound by allowed_uri_sans.
type rig struct {
	v    *harness.Vault
	root *vaultapi.Client
	ca   *svidtest.CA
}

func newRig(t *testing.T) *rig {
	t.Helper()
	v := harness.StartVaultDevTLS(t)
	r := &rig{v: v, root: v.Client(t)}
	var err error
	if r.ca, err = svidtest.NewCA("example.org"); err != nil {
		t.Fatal(err)
	}
	// The policies as vaultkms renders them, verbatim.
	v.SetUpTransitCertAuth(t, harness.TransitCertAuth{
		Ring: ring, CAPEM: r.ca.CertificatePEM(),
		Policies: map[string]string{
			producerPol: transitpolicy.Producer("transit", ring),
			consumerPol: transitpolicy.Consumer("transit", ring),
		},
		Roles: map[string]harness.CertRole{
			"producer": {SPIFFEID: producerID, Policy: producerPol},
			"consumer": {SPIFFEID: consumerID, Policy: consumerPol},
		},
	})
	return r
}

func (r *rig) write(t *testing.T, path string, data map[string]any) *vaultapi.Secret {
	t.Helper()
	s, err := r.root.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return s
}

// dnsNames are the DNS names the identities' registration entries carry:
// SPIRE copies the first into the subject CN, which Vault's cert auth
// needs (it names the identity alias after it).
var dnsNames = map[string]string{
	producerID: "cam-pipeline.site-a.example.org",
	consumerID: "analytics.cloud.example.org",
	strangerID: "other.site-b.example.org",
}

// svid issues an SVID for id as SPIRE would for an entry with a DNS name.
func (r *rig) svid(t *testing.T, id string) *x509svid.SVID {
	t.Helper()
	s, err := r.ca.SVID(id, time.Hour, dnsNames[id])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// logins counts the "Logged in" records of a vaultkms logger.
type logins struct {
	mu sync.Mutex
	n  int
}

func (l *logins) Enabled(context.Context, slog.Level) bool { return true }
func (l *logins) Handle(_ context.Context, rec slog.Record) error {
	if strings.HasPrefix(rec.Message, "Logged in") {
		l.mu.Lock()
		l.n++
		l.mu.Unlock()
	}
	return nil
}
func (l *logins) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logins) WithGroup(string) slog.Handler      { return l }
func (l *logins) count() int                         { l.mu.Lock(); defer l.mu.Unlock(); return l.n }

// kms returns a vaultkms.KMS for src, logging in with role (empty: Vault
// picks), with a login counter and clock.
func (r *rig) kms(t *testing.T, src x509svid.Source, role string, now func() time.Time) (*vaultkms.KMS, *logins) {
	t.Helper()
	l := &logins{}
	k, err := vaultkms.New(vaultkms.Config{
		Vault:    vaultconn.Config{Address: r.v.Addr, CACertFile: r.v.CACertPath, Timeout: 10 * time.Second},
		SVID:     src,
		CertRole: role,
		Logger:   slog.New(l),
		Now:      now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return k, l
}
