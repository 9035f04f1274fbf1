package bootstrap

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/vaultkms"
	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/edgeid/edgeid/internal/vaultconn"
)

const (
	rcProducer = "spiffe://example.org/edge/site-a/deepstream/cam"
	rcConsumer = "spiffe://example.org/cloud/analytics"
	rcStranger = "spiffe://example.org/edge/site-a/other"
	rcAdmin    = "spiffe://example.org/ops/key-admin"
	rcRing     = "rc.detections"
	rcRing2    = "rc.commands"
)

// rcBlock is the record_encryption block (and the trust domain it needs)
// with the producer on rcRing, the key administrator re-wrapping rcRing
// and, when consumer is set, the consumer.
func rcBlock(consumer bool) string {
	b := fmt.Sprintf("trust_domain = \"example.org\"\nrecord_encryption {\n  token_ttl = \"5m\"\n  key_rings = [%q, %q]\n  identity %q {\n    produce = [%q]\n  }\n  identity %q {\n    rewrap = [%q]\n  }\n",
		rcRing, rcRing2, rcProducer, rcRing, rcAdmin, rcRing)
	if consumer {
		b += fmt.Sprintf("  identity %q {\n    consume = [%q, %q]\n  }\n", rcConsumer, rcRing, rcRing2)
	}
	return b + "}\n"
}

// TestBootstrapRecordEncryption: the bootstrap sets up Transit and cert
// auth for record encryption on a real Vault 1.21 (TLS), and with the real
// vaultkms client: the producer's SVID may make data keys of its ring but
// not decrypt them nor use another ring nor re-wrap; the consumer's may
// decrypt but not make data keys; the key administrator's may have a data
// key of its ring re-wrapped (the same key, as the consumer checks) but
// may not make, decrypt, or re-wrap another ring's; an SVID of another
// SPIFFE ID, or of the producer's
// ID from another CA, is refused. A second run changes nothing; with the
// consumer removed from the configuration its role and policy are gone
// (the key rings stay), and a look-alike role edgeid did not write stays.
func TestBootstrapRecordEncryption(t *testing.T) {
	e := newEnv(t, envOptions{tls: true, extraHCL: rcBlock(true)})
	sum := e.mustRun()
	if !slices.Contains(sum.Changed, vaultboot.StepRecordEncryption) || sum.RecordEncryption == nil || len(sum.RecordEncryption.Roles) != 3 {
		t.Fatalf("first run: changed %v, record encryption %+v", sum.Changed, sum.RecordEncryption)
	}
	certs := e.issueSVIDs(rcProducer, rcConsumer, rcStranger, rcAdmin)
	prod, cons, stranger := e.kms(t, certs[rcProducer], rcProducer), e.kms(t, certs[rcConsumer], rcConsumer), e.kms(t, certs[rcStranger], rcStranger)
	ctx := context.Background()

	var key recordcrypt.DataKey
	if e.attempt("producer datakey "+rcRing, func() (err error) { key, err = prod.GenerateDataKey(ctx, rcRing); return err }, nil) != nil {
		t.FailNow()
	}
	e.attempt("producer decrypt "+rcRing, func() error { _, err := prod.DecryptDataKey(ctx, rcRing, key.Wrapped); return err }, recordcrypt.ErrAccessDenied)
	e.attempt("producer datakey "+rcRing2, func() error { _, err := prod.GenerateDataKey(ctx, rcRing2); return err }, recordcrypt.ErrAccessDenied)
	e.attempt("consumer decrypt "+rcRing, func() error {
		plain, err := cons.DecryptDataKey(ctx, rcRing, key.Wrapped)
		if err == nil && !bytes.Equal(plain, key.Plaintext) {
			return errors.New("the consumer unwrapped another key")
		}
		return err
	}, nil)
	e.attempt("consumer datakey "+rcRing, func() error { _, err := cons.GenerateDataKey(ctx, rcRing); return err }, recordcrypt.ErrAccessDenied)
	admin := e.kms(t, certs[rcAdmin], rcAdmin)
	e.attempt("key administrator rewrap "+rcRing, func() error {
		again, err := admin.RewrapDataKey(ctx, rcRing, key.Wrapped)
		if err != nil {
			return err
		}
		plain, err := cons.DecryptDataKey(ctx, rcRing, again)
		if err == nil && !bytes.Equal(plain, key.Plaintext) {
			return errors.New("the re-wrapped key unwraps to another key")
		}
		return err
	}, nil)
	e.attempt("key administrator decrypt "+rcRing, func() error { _, err := admin.DecryptDataKey(ctx, rcRing, key.Wrapped); return err }, recordcrypt.ErrAccessDenied)
	e.attempt("key administrator datakey "+rcRing, func() error { _, err := admin.GenerateDataKey(ctx, rcRing); return err }, recordcrypt.ErrAccessDenied)
	e.attempt("key administrator rewrap "+rcRing2, func() error { _, err := admin.RewrapDataKey(ctx, rcRing2, key.Wrapped); return err }, recordcrypt.ErrAccessDenied)
	e.attempt("producer rewrap "+rcRing, func() error { _, err := prod.RewrapDataKey(ctx, rcRing, key.Wrapped); return err }, recordcrypt.ErrAccessDenied)
	e.attempt("stranger datakey "+rcRing, func() error { _, err := stranger.GenerateDataKey(ctx, rcRing); return err }, recordcrypt.ErrAccessDenied)
	// The stranger names the producer's role: refused all the same.
	posing := e.kmsRole(t, certs[rcStranger], vaultboot.RecordCryptRoleName(spiffeid.RequireFromString(rcProducer)))
	e.attempt("stranger as the producer's role", func() error { _, err := posing.GenerateDataKey(ctx, rcRing); return err }, recordcrypt.ErrAccessDenied)
	// The producer's SPIFFE ID from a CA Vault does not trust.
	forged := e.forgedKMS(t, rcProducer)
	e.attempt("producer ID from another CA", func() error { _, err := forged.GenerateDataKey(ctx, rcRing); return err }, recordcrypt.ErrAccessDenied)

	// A second run changes nothing.
	if sum2 := e.mustRun(); len(sum2.Changed) != 0 {
		t.Fatalf("second run changed %v, want nothing", sum2.Changed)
	}

	// The consumer leaves the configuration: its grant goes, a look-alike
	// role and policy that edgeid did not write stay, the rings stay.
	lookAlike := vaultboot.RecordCryptRolePrefix("example.org") + "handmade"
	e.withRoot(func(c *vaultapi.Client, _ string) {
		if err := c.Sys().PutPolicy(lookAlike, "path \"transit/decrypt/"+rcRing+"\" {\n  capabilities = [\"update\"]\n}\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Logical().Write("auth/cert/certs/"+lookAlike, map[string]any{"certificate": certs[rcStranger].caPEM, "allowed_uri_sans": rcStranger, "token_policies": lookAlike}); err != nil {
			t.Fatal(err)
		}
	})
	writeFile(t, e.cfgPath, strings.Replace(mustReadString(t, e.cfgPath), rcBlock(true), rcBlock(false), 1), 0o600)
	sum3 := e.mustRun()
	consRole := vaultboot.RecordCryptRoleName(spiffeid.RequireFromString(rcConsumer))
	if !slices.Equal(sum3.Changed, []string{vaultboot.StepRecordEncryption}) || sum3.RecordEncryption == nil ||
		!slices.Equal(sum3.RecordEncryption.Removed, []string{"role " + consRole, "policy " + consRole}) {
		t.Fatalf("after removing the consumer: changed %v, record encryption %+v", sum3.Changed, sum3.RecordEncryption)
	}
	cons = e.kms(t, certs[rcConsumer], rcConsumer)
	e.attempt("removed consumer decrypt "+rcRing, func() error { _, err := cons.DecryptDataKey(ctx, rcRing, key.Wrapped); return err }, recordcrypt.ErrAccessDenied)
	e.attempt("producer datakey after the removal", func() error { _, err := prod.GenerateDataKey(ctx, rcRing); return err }, nil)
	e.withRoot(func(c *vaultapi.Client, _ string) {
		for _, path := range []string{"auth/cert/certs/" + lookAlike, "sys/policies/acl/" + lookAlike, "transit/keys/" + rcRing, "transit/keys/" + rcRing2} {
			if s, err := c.Logical().Read(path); err != nil || s == nil {
				t.Errorf("%s is gone after the removal (%v)", path, err)
			}
		}
	})
	if sum4 := e.mustRun(); len(sum4.Changed) != 0 {
		t.Fatalf("fourth run changed %v, want nothing", sum4.Changed)
	}
}

// attempt runs one Vault call, logs it, and checks its outcome: no error
// when want is nil, else an error that is want.
func (e *env) attempt(what string, call func() error, want error) error {
	e.t.Helper()
	err := call()
	e.t.Logf("attempt %s: err=%v", what, err)
	switch {
	case want == nil && err != nil:
		e.t.Errorf("%s: %v, want success", what, err)
	case want != nil && !errors.Is(err, want):
		e.t.Errorf("%s: %v, want %v", what, err, want)
	}
	return err
}

// issuedSVID is a client certificate from Vault's intermediate.
type issuedSVID struct {
	svid  *x509svid.SVID
	caPEM string
}

// issueSVIDs issues, from pki_int (whose root cert auth trusts), an SVID
// for each ID with a DNS name (the CN Vault's cert auth needs), as SPIRE's
// chain would: leaf then intermediate.
func (e *env) issueSVIDs(ids ...string) map[string]issuedSVID {
	e.t.Helper()
	out := map[string]issuedSVID{}
	e.withRoot(func(c *vaultapi.Client, _ string) {
		if _, err := c.Logical().Write("pki_int/roles/test-svid", map[string]any{
			"allowed_uri_sans": "spiffe://example.org/*", "allow_any_name": true, "enforce_hostnames": false,
			"server_flag": false, "client_flag": true, "key_type": "ec", "key_bits": 256, "max_ttl": "1h",
		}); err != nil {
			e.t.Fatal(err)
		}
		for i, id := range ids {
			s, err := c.Logical().Write("pki_int/issue/test-svid", map[string]any{
				"common_name": fmt.Sprintf("svid-%d.example.org", i), "uri_sans": id, "ttl": "30m", "private_key_format": "pkcs8",
			})
			if err != nil {
				e.t.Fatal(err)
			}
			out[id] = issuedSVID{svid: e.parseSVID(id, s.Data), caPEM: s.Data["issuing_ca"].(string)}
		}
	})
	return out
}

func (e *env) parseSVID(id string, data map[string]any) *x509svid.SVID {
	e.t.Helper()
	chain, err := pemutil.ParseCertificates([]byte(data["certificate"].(string) + "\n" + data["issuing_ca"].(string)))
	if err != nil {
		e.t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(data["private_key"].(string)))
	if block == nil {
		e.t.Fatal("no PEM private key in Vault's answer")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		e.t.Fatal(err)
	}
	return &x509svid.SVID{ID: spiffeid.RequireFromString(id), Certificates: chain, PrivateKey: key.(crypto.Signer)}
}

// kms is the real vaultkms client logging in with s as the role of id.
func (e *env) kms(t *testing.T, s issuedSVID, id string) *vaultkms.KMS {
	return e.kmsRole(t, s, vaultboot.RecordCryptRoleName(spiffeid.RequireFromString(id)))
}

func (e *env) kmsRole(t *testing.T, s issuedSVID, role string) *vaultkms.KMS {
	t.Helper()
	return e.newKMS(t, svidtest.NewSource(s.svid), role)
}

func (e *env) newKMS(t *testing.T, src x509svid.Source, role string) *vaultkms.KMS {
	t.Helper()
	k, err := vaultkms.New(vaultkms.Config{Vault: vaultconn.Config{Address: e.vault.Addr, CACertFile: e.vault.CACertPath, Timeout: 10 * time.Second},
		SVID: src, CertRole: role})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// forgedKMS logs in with an SVID of id, with a CN, from a CA of its own.
func (e *env) forgedKMS(t *testing.T, id string) *vaultkms.KMS {
	t.Helper()
	ca, err := svidtest.NewCA("example.org")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.SVID(id, 30*time.Minute, "forged.example.org")
	if err != nil {
		t.Fatal(err)
	}
	return e.newKMS(t, svidtest.NewSource(s), vaultboot.RecordCryptRoleName(spiffeid.RequireFromString(id)))
}

func mustReadString(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
