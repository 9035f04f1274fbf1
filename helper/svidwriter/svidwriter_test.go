package svidwriter

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/atomicdir"
	"github.com/edgeid/edgeid/helper/internal/testpki"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

func byName(files []atomicdir.File) map[string]atomicdir.File {
	m := map[string]atomicdir.File{}
	for _, f := range files {
		m[f.Name] = f
	}
	return m
}

func certsOf(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func TestFiles(t *testing.T) {
	ca := testpki.NewCA(t, "example.org", true)
	fed := testpki.NewCA(t, "partner.test", false)
	svid := ca.SVID(t, "spiffe://example.org/edge/site-a/cam", time.Hour)
	set := x509bundle.NewSet(ca.Bundle(), fed.Bundle())

	base := Options{
		SVIDFileName: "svid.pem", KeyFileName: "svid_key.pem", BundleFileName: "svid_bundle.pem",
		CertFileMode: 0o644, KeyFileMode: 0o600,
	}
	t.Run("spiffe-helper layout", func(t *testing.T) {
		files, err := Files(svid, set, base)
		if err != nil {
			t.Fatal(err)
		}
		m := byName(files)
		if len(m) != 3 {
			t.Fatalf("%d files", len(m))
		}
		if c := certsOf(t, m["svid.pem"].Data); len(c) != 2 || !c[0].Equal(svid.Certificates[0]) || !c[1].Equal(ca.Intermediate) {
			t.Fatalf("svid.pem must hold leaf + intermediate")
		}
		if c := certsOf(t, m["svid_bundle.pem"].Data); len(c) != 1 || !c[0].Equal(ca.Root) {
			t.Fatalf("bundle must hold only the own root without include_federated_domains")
		}
		if m["svid_key.pem"].Mode != 0o600 || !bytes.HasPrefix(m["svid_key.pem"].Data, []byte("-----BEGIN PRIVATE KEY-----")) {
			t.Fatalf("key must be PKCS#8 PEM with mode 0600")
		}
		if _, err := tls.X509KeyPair(m["svid.pem"].Data, m["svid_key.pem"].Data); err != nil {
			t.Fatalf("cert and key do not pair: %v", err)
		}
	})
	t.Run("intermediates to bundle and federated", func(t *testing.T) {
		opts := base
		opts.AddIntermediatesToBundle = true
		opts.IncludeFederatedDomains = true
		files, err := Files(svid, set, opts)
		if err != nil {
			t.Fatal(err)
		}
		m := byName(files)
		if c := certsOf(t, m["svid.pem"].Data); len(c) != 1 {
			t.Fatalf("svid.pem holds %d certs, want the leaf only", len(c))
		}
		c := certsOf(t, m["svid_bundle.pem"].Data)
		if len(c) != 3 || !c[0].Equal(ca.Root) || !c[1].Equal(fed.Root) || !c[2].Equal(ca.Intermediate) {
			t.Fatalf("bundle order: want own root, federated root, intermediate; got %d certs", len(c))
		}
	})
	t.Run("omit expired", func(t *testing.T) {
		opts := base
		opts.OmitExpired = true
		opts.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		files, err := Files(svid, set, opts)
		if err != nil {
			t.Fatal(err)
		}
		if c := certsOf(t, byName(files)["svid_bundle.pem"].Data); len(c) != 0 {
			t.Fatalf("expired root kept")
		}
	})
	t.Run("combined and pkcs12", func(t *testing.T) {
		opts := base
		opts.CombinedPEMFileName = "combined.pem"
		opts.PKCS12 = &PKCS12Options{KeystoreFileName: "ks.p12", TruststoreFileName: "ts.p12", Password: "s3cret"}
		files, err := Files(svid, set, opts)
		if err != nil {
			t.Fatal(err)
		}
		m := byName(files)
		comb := m["combined.pem"]
		if comb.Mode != 0o600 {
			t.Fatalf("combined PEM holds the key; mode %v", comb.Mode)
		}
		if _, err := tls.X509KeyPair(comb.Data, comb.Data); err != nil {
			t.Fatalf("combined PEM is not a key pair: %v", err)
		}
		key, leaf, cas, err := pkcs12.DecodeChain(m["ks.p12"].Data, "s3cret")
		if err != nil {
			t.Fatal(err)
		}
		if !leaf.Equal(svid.Certificates[0]) || len(cas) != 1 || key == nil || m["ks.p12"].Mode != 0o600 {
			t.Fatalf("keystore content")
		}
		roots, err := pkcs12.DecodeTrustStore(m["ts.p12"].Data, "s3cret")
		if err != nil || len(roots) != 1 || !roots[0].Equal(ca.Root) {
			t.Fatalf("truststore: %v", err)
		}
		if _, _, err := pkcs12.Decode(m["ks.p12"].Data, "wrong"); err == nil {
			t.Fatalf("keystore opened with a wrong password")
		}
	})
	t.Run("no bundle for trust domain", func(t *testing.T) {
		_, err := Files(svid, x509bundle.NewSet(fed.Bundle()), base)
		if err == nil || !strings.Contains(err.Error(), `no bundle for trust domain "example.org"`) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestSelect(t *testing.T) {
	ca := testpki.NewCA(t, "example.org", false)
	a := ca.SVID(t, "spiffe://example.org/a", time.Hour)
	b := ca.SVID(t, "spiffe://example.org/b", time.Hour)
	b.Hint = "internal"
	ctx := &workloadapi.X509Context{SVIDs: []*x509svid.SVID{a, b}, Bundles: x509bundle.NewSet(ca.Bundle())}
	for _, tc := range []struct {
		hint, id string
		want     *x509svid.SVID
		err      string
	}{
		{want: a},
		{hint: "internal", want: b},
		{id: "spiffe://example.org/b", want: b},
		{hint: "external", err: `no SVID has hint "external"`},
		{id: "spiffe://example.org/c", err: `no SVID has SPIFFE ID`},
	} {
		got, err := Select(ctx, tc.hint, tc.id)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("hint %q id %q: error %v", tc.hint, tc.id, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("hint %q id %q: got %v, %v", tc.hint, tc.id, got, err)
		}
	}
}
