package harness

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/svidsource"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// JoinTokenAgentID is the SPIFFE ID SPIRE gives an agent that attested with
// the join token token.
func JoinTokenAgentID(trustDomain, token string) string {
	return fmt.Sprintf("spiffe://%s/spire/agent/join_token/%s", trustDomain, token)
}

// FetchX509Context fetches the calling process's X.509 context (SVIDs and
// bundles) from the Workload API at socketPath, retrying until one arrives or
// 60 s pass. The agent answers with PermissionDenied until an entry matches
// the caller, so retrying covers entry propagation.
func FetchX509Context(t testing.TB, socketPath string) *workloadapi.X509Context {
	t.Helper()
	var out *workloadapi.X509Context
	Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+socketPath))
		if err != nil {
			return fmt.Errorf("fetch X.509 context from %s: %w", socketPath, err)
		}
		out = x
		return nil
	})
	return out
}

// FetchX509SVID fetches the calling process's default X509-SVID from the
// Workload API at socketPath, retrying as FetchX509Context does.
func FetchX509SVID(t testing.TB, socketPath string) *x509svid.SVID {
	t.Helper()
	return FetchX509Context(t, socketPath).DefaultSVID()
}

// FetchX509SVIDFor waits until the Workload API at socketPath offers the
// caller an SVID with the given SPIFFE ID and returns it along with the
// bundle for its trust domain.
func FetchX509SVIDFor(t testing.TB, socketPath, id string) (*x509svid.SVID, []*x509.Certificate) {
	t.Helper()
	want, err := spiffeid.FromString(id)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	var svid *x509svid.SVID
	var roots []*x509.Certificate
	Eventually(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+socketPath))
		if err != nil {
			return fmt.Errorf("fetch X.509 context from %s: %w", socketPath, err)
		}
		for _, s := range x.SVIDs {
			if s.ID == want {
				b, err := x.Bundles.GetX509BundleForTrustDomain(want.TrustDomain())
				if err != nil {
					return err
				}
				svid, roots = s, b.X509Authorities()
				return nil
			}
		}
		return fmt.Errorf("no SVID for %s yet (%d SVIDs offered)", id, len(x.SVIDs))
	})
	return svid, roots
}

// VerifySVIDChain verifies svid's leaf through its intermediates to one of
// roots and returns the verified chain (leaf first, root last).
func VerifySVIDChain(svid *x509svid.SVID, roots []*x509.Certificate) ([]*x509.Certificate, error) {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range svid.Certificates[1:] {
		inter.AddCert(c)
	}
	chains, err := svid.Certificates[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, err
	}
	return chains[0], nil
}

// X509Source watches the Workload API at addr until the test ends and
// returns once it holds an SVID: id's when the agent offers it, else the
// agent's default (internal/svidsource, which edgeid's own programs use;
// go-spiffe's X509Source reads its bundles without its watcher's lock, and
// the race detector flags that).
func X509Source(t testing.TB, addr, id string) *svidsource.Source {
	t.Helper()
	s, err := svidsource.New(context.Background(), addr, spiffeid.RequireFromString(id), 30*time.Second)
	if err != nil {
		t.Fatalf("harness: %s: %v", id, err)
	}
	t.Cleanup(s.Close)
	return s
}
