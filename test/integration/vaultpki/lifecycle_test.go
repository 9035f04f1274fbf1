package vaultpki

import (
	"context"
	"crypto/x509"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// fetchSVID fetches the workload's current X509-SVID once: the leaf, the
// intermediates it carries (SPIRE CA first) and the trust bundle.
func fetchSVID(socketPath string) (leaf *x509.Certificate, intermediates, roots []*x509.Certificate, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+socketPath))
	if err != nil {
		return nil, nil, nil, err
	}
	s := x.DefaultSVID()
	b, err := x.Bundles.GetX509BundleForTrustDomain(s.ID.TrustDomain())
	if err != nil {
		return nil, nil, nil, err
	}
	return s.Certificates[0], s.Certificates[1:], b.X509Authorities(), nil
}

// Acceptance 4: with Vault stopped, SPIRE keeps issuing SVIDs from its
// current CA; when Vault is back (restarted, unsealed), the next CA
// rotation succeeds without restarting SPIRE.
func TestOutageThenRotationWithoutRestart(t *testing.T) {
	p := startFilePKI(t)
	roleIDFile, secretIDFile := p.appRole(t)
	// Vault backdates NotBefore by 30s, so a 150s ca_ttl gives a 180s CA
	// lifetime: SPIRE prepares the next CA at half-life, about 60s after
	// minting, and activates it when a sixth is left, about 120s after. The
	// outage below spans the preparation.
	s := harness.StartSpireServer(t, harness.ServerConfig{
		CATTL: 150 * time.Second, X509SVIDTTL: 10 * time.Second,
		Plugins: pluginBlock(t, approleData(p.v.Addr, roleIDFile, secretIDFile, `            request_timeout = "3s"`)),
	})
	pid := s.Proc.PID()
	a, id := workloadAgent(t, s)
	svid, _ := harness.FetchX509SVIDFor(t, a.SocketPath, id)
	firstCA := svid.Certificates[1]

	p.v.Stop(t)
	outageStart := time.Now()
	serials := map[string]bool{}
	var lastErr error
	// Keep Vault down until SPIRE has tried (and failed) to prepare its next
	// CA through the plugin, and at least 30s; fetch SVIDs all along.
	const failedMint = "unable to sign the CA at pki_int/root/sign-intermediate"
	for time.Since(outageStart) < 30*time.Second || !strings.Contains(s.Proc.Log(), failedMint) {
		if time.Since(outageStart) > 150*time.Second {
			t.Fatal("SPIRE did not try to prepare a CA during 150s of outage; the test did not exercise the outage")
		}
		leaf, inter, roots, err := fetchSVID(a.SocketPath)
		if err != nil {
			lastErr = err
		} else {
			if err := verifyLeaf(leaf, inter, roots); err != nil {
				t.Fatalf("SVID issued during the outage does not verify to the Vault root: %v", err)
			}
			serials[leaf.SerialNumber.String()] = true
		}
		time.Sleep(time.Second)
	}
	outage := time.Since(outageStart).Round(time.Second)
	if len(serials) < 3 {
		t.Fatalf("SPIRE issued %d distinct SVIDs during a %s outage with a 10s SVID TTL (last error %v); want it to keep issuing", len(serials), outage, lastErr)
	}
	t.Logf("Vault was down %s; SPIRE issued %d distinct SVIDs meanwhile and failed to prepare its next CA", outage, len(serials))

	p.v.Start(t)
	p.unsealVault(t)
	harness.Eventually(t, 150*time.Second, func() error {
		leaf, inter, roots, err := fetchSVID(a.SocketPath)
		if err != nil {
			return err
		}
		if inter[0].Equal(firstCA) {
			return fmt.Errorf("SVIDs still come from the first CA")
		}
		return verifyLeaf(leaf, inter, roots)
	})
	if s.Proc.PID() != pid {
		t.Fatal("the SPIRE server was restarted")
	}
	if exited, _ := s.Proc.Exited(); exited {
		t.Fatal("the SPIRE server exited")
	}
}

// verifyLeaf verifies leaf through intermediates (SPIRE CA, pki_int
// intermediate) to one of roots.
func verifyLeaf(leaf *x509.Certificate, intermediates, roots []*x509.Certificate) error {
	if len(intermediates) < 2 {
		return fmt.Errorf("SVID carries %d intermediates, want the SPIRE CA and the pki_int intermediate", len(intermediates))
	}
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	rootPool := x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: rootPool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// Acceptance 5: Vault root rotation (a new root issuer in pki, the
// intermediate's key re-signed by it and imported into pki_int) reaches
// SPIRE's bundle without a restart; SVIDs under the old root stay valid.
func TestRootRotationReachesBundle(t *testing.T) {
	p := startDevPKI(t, false)
	s := harness.StartSpireServer(t, harness.ServerConfig{Plugins: pluginBlock(t, tokenData(p.v.Addr, p.token(t), ""))})
	pid := s.Proc.PID()
	a, id := workloadAgent(t, s)
	oldSVID, _ := harness.FetchX509SVIDFor(t, a.SocketPath, id)

	root2 := p.write(t, "pki/root/rotate/internal", map[string]any{
		"common_name": "edgeid test root 2", "issuer_name": "root-2", "key_type": "ec", "ttl": "87600h",
	})
	newRoot := mustCert(t, root2.Data["certificate"].(string))
	csr := p.write(t, "pki_int/intermediate/cross-sign", map[string]any{
		"common_name": "edgeid test intermediate", "key_ref": "int-key",
	})
	signed := p.write(t, "pki/root/sign-intermediate", map[string]any{
		"csr": csr.Data["csr"], "issuer_ref": "root-2", "use_csr_values": true, "ttl": "43800h", "format": "pem",
	})
	p.write(t, "pki_int/intermediate/set-signed", map[string]any{
		"certificate": signed.Data["certificate"].(string) + "\n" + root2.Data["certificate"].(string),
	})

	harness.Eventually(t, 60*time.Second, func() error { return bundleEquals(s, t, p.root, newRoot) })
	if s.Proc.PID() != pid {
		t.Fatal("the SPIRE server was restarted")
	}
	if _, err := harness.VerifySVIDChain(oldSVID, s.Bundle(t)); err != nil {
		t.Fatalf("an SVID issued before the rotation no longer verifies against the bundle: %v", err)
	}
	if !strings.Contains(s.Proc.Log(), "Vault's root set changed") {
		t.Fatal("the plugin did not log the root change")
	}
}

// Acceptance 6: two SPIRE servers on the same Vault see each other's JWT
// authorities, and a JWT-SVID minted by one validates with the other's
// bundle.
func TestTwoServersShareJWTAuthorities(t *testing.T) {
	p := startDevPKI(t, false)
	sa := harness.StartSpireServer(t, harness.ServerConfig{Name: "spire-server-a", Plugins: pluginBlock(t, tokenData(p.v.Addr, p.token(t), ""))})
	sb := harness.StartSpireServer(t, harness.ServerConfig{Name: "spire-server-b", Plugins: pluginBlock(t, tokenData(p.v.Addr, p.token(t), ""))})

	td := spiffeid.RequireTrustDomainFromString(trustDomain)
	jwtKeys := func(s *harness.SpireServer) ([]string, *spiffebundle.Bundle, error) {
		out, err := s.CLIErr("bundle", "show", "-format", "spiffe")
		if err != nil {
			return nil, nil, err
		}
		b, err := spiffebundle.Parse(td, []byte(out))
		if err != nil {
			return nil, nil, err
		}
		var ids []string
		for kid := range b.JWTAuthorities() {
			ids = append(ids, kid)
		}
		sort.Strings(ids)
		return ids, b, nil
	}
	var bundleA *spiffebundle.Bundle
	harness.Eventually(t, 60*time.Second, func() error {
		a, ba, err := jwtKeys(sa)
		if err != nil {
			return err
		}
		b, _, err := jwtKeys(sb)
		if err != nil {
			return err
		}
		if len(a) < 2 || strings.Join(a, ",") != strings.Join(b, ",") {
			return fmt.Errorf("JWT authorities: server a %v, server b %v; want the same set of both servers' keys", a, b)
		}
		bundleA = ba
		return nil
	})

	out := sb.CLI(t, "jwt", "mint", "-spiffeID", "spiffe://"+trustDomain+"/cloud/jwt-test", "-audience", "edgeid-test")
	token := ""
	for _, f := range strings.Fields(out) {
		if strings.Count(f, ".") == 2 {
			token = f
		}
	}
	if token == "" {
		t.Fatalf("no JWT in `jwt mint` output %q", out)
	}
	svid, err := jwtsvid.ParseAndValidate(token, bundleA, []string{"edgeid-test"})
	if err != nil {
		t.Fatalf("a JWT-SVID from server b does not validate with server a's bundle: %v", err)
	}
	if svid.ID.String() != "spiffe://"+trustDomain+"/cloud/jwt-test" {
		t.Fatalf("JWT-SVID subject %s", svid.ID)
	}
}

// Acceptance 7: a CA TTL capped by Vault is reported in the log with both
// values, and a cap below min_ttl stops the server.
func TestTTLCapWarningAndMinTTL(t *testing.T) {
	p := startDevPKI(t, false)
	if err := p.c.Sys().TuneMount("pki_int", vaultTune("1h")); err != nil {
		t.Fatalf("tune pki_int: %v", err)
	}
	s := harness.StartSpireServer(t, harness.ServerConfig{CATTL: 2 * time.Hour, Plugins: pluginBlock(t, tokenData(p.v.Addr, p.token(t), ""))})
	log := s.Proc.Log()
	for _, want := range []string{"shorter lifetime than requested", "requested_ttl=2h0m0s", "granted_ttl=1h0m0s"} {
		if !strings.Contains(log, want) {
			t.Fatalf("server log lacks %q:\n%s", want, lastLines(log, 40))
		}
	}

	s2 := harness.NewSpireServer(t, harness.ServerConfig{Name: "spire-server-min-ttl", CATTL: 2 * time.Hour,
		Plugins: pluginBlock(t, tokenData(p.v.Addr, p.token(t), `            min_ttl = "90m"`))})
	log = s2.StartExpectFailure(t, 90*time.Second)
	if !strings.Contains(log, "below min_ttl 1h30m0s") {
		t.Fatalf("server log lacks the min_ttl failure:\n%s", lastLines(log, 40))
	}
}
