package orchestrator

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

// autonomyTopology: SVIDs live 20 s, the edge CA 4 min (SPIRE prepares the
// next one at 2 min and activates it at 3m20s), the cloud CA 30 min.
const autonomyTopology = `trust_domain = "example.org"
cloud {
  ca_ttl        = "30m"
  x509_svid_ttl = "1m"
}
site "site-a" {
  ca_ttl        = "4m"
  x509_svid_ttl = "20s"
  node "edge-a-1" {}
  workload "deepstream/cam" {
    kind   = "deepstream"
    config = %q
  }
}
`

// TestEdgeKeepsIssuingWhileCloudIsDown stops the cloud SPIRE server and
// Vault. The outage lasts past the edge CA's half-life, so the edge server
// tries to prepare its next CA while the uplink is down and must log that
// failure; meanwhile the site must keep rotating its workloads' SVIDs for
// at least three SVID periods. Once the cloud is back (a plain `edgeid up`)
// the edge server must prepare and activate its next CA from it with no
// manual step.
func TestEdgeKeepsIssuingWhileCloudIsDown(t *testing.T) {
	harness.SpireServerBin(t)
	harness.VaultBin(t)
	bin := harness.BuildEdgeidBinDir(t)
	runDir := harness.ShortTempDir(t)
	config := filepath.Join(harness.RepoRoot(t), "conf", "deepstream", "test5_config.txt")
	topo := filepath.Join(t.TempDir(), "topology.hcl")
	if err := os.WriteFile(topo, []byte(fmt.Sprintf(autonomyTopology, config)), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"-f", topo, "--run-dir", runDir, "--bin-dir", bin}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, runDir)
		}
		if out, err := edgeid(t, bin, 2*time.Minute, append([]string{"down"}, common...)...); err != nil {
			t.Errorf("edgeid down: %v\n%s", err, out)
		}
	})
	if out, err := edgeid(t, bin, 5*time.Minute, append([]string{"up"}, common...)...); err != nil {
		t.Fatalf("edgeid up: %v\n%s", err, out)
	}
	svidPath := filepath.Join(runDir, "edge-a-1", "workloads", "deepstream_cam", "svid", "svid.pem")
	bundlePath := filepath.Join(runDir, "edge-a-1", "workloads", "deepstream_cam", "svid", "bundle.pem")
	firstCA := harness.ReadCertsPEM(t, svidPath)[1]

	// The schedule. SPIRE prepares the next CA at the current one's
	// half-life and retries every 10 s: the outage ends two retries after
	// that, and lasts three SVID periods (60 s), no longer. SPIRE's client
	// to the cloud server redials with gRPC's backoff (×1.6 per failure,
	// ±20 %, at most 2 min), so after an outage of d it may wait up to
	// about 0.75 d more before it tries again. The 100 s outage this test
	// had left the next CA prepared 29 s before the old one expired in a
	// run here, and by that backoff's arithmetic after it, with the site's
	// agents locked out, in about one run in ten (a CI run that waited the
	// full 4 minutes for the new CA fits that). The README's TTL sizing
	// allows for the backoff's 2 min; this test keeps the outage short
	// instead, to stay within a 4-minute CA: 15-45 s to the next CA here.
	prepareAt := firstCA.NotBefore.Add(firstCA.NotAfter.Sub(firstCA.NotBefore) / 2)
	const outageLength = 60 * time.Second
	outageStart := prepareAt.Add(25*time.Second - outageLength)
	// Let the edge server settle first: in its first seconds SPIRE's
	// "spire" UpstreamAuthority subscribes to the cloud's bundle, and a
	// failure of that first fetch is fatal to the edge server (SPIRE
	// v1.13.3, pkg/server/plugin/upstreamauthority/spire). An outage after
	// that is survived, which is what this test is about.
	if settled := time.Now().Add(15 * time.Second); outageStart.Before(settled) {
		outageStart = settled
	}
	time.Sleep(time.Until(outageStart))

	// The outage: the cloud server and Vault go away.
	for _, svc := range []string{"spire-server", "vault"} {
		killByPIDFile(t, filepath.Join(runDir, "cloud", "pids", svc+".pid"))
	}
	outage := time.Now()
	t.Logf("cloud SPIRE server and Vault stopped at %s", outage.Format(time.RFC3339))
	outageEnd := prepareAt.Add(25 * time.Second)
	if min := outage.Add(outageLength); outageEnd.Before(min) {
		outageEnd = min
	}
	t.Logf("edge CA %s → %s; its successor is due at %s; the outage lasts until %s", firstCA.NotBefore.Format(time.RFC3339), firstCA.NotAfter.Format(time.RFC3339), prepareAt.Format(time.RFC3339), outageEnd.Format(time.RFC3339))
	edgeServerLog := filepath.Join(runDir, "edge-a-1", "logs", "spire-server.log")

	// Throughout, the edge keeps issuing new SVIDs, each verifying against
	// the bundle the workload holds.
	seen := map[string]bool{}
	for time.Now().Before(outageEnd) {
		chain := harness.ReadCertsPEM(t, svidPath)
		verify(t, chain, harness.ReadCertsPEM(t, bundlePath), fmt.Sprintf("SVID during the cloud outage (chain expiries %s)", expiries(chain)))
		if time.Now().After(chain[0].NotAfter) {
			t.Fatalf("the workload's SVID expired during the outage (%s)", chain[0].NotAfter)
		}
		seen[chain[0].SerialNumber.String()] = true
		time.Sleep(2 * time.Second)
	}
	if len(seen) < 4 {
		t.Fatalf("only %d distinct SVIDs during a %s outage with a 20 s SVID TTL; the edge stopped rotating", len(seen), outageLength)
	}
	t.Logf("%d distinct SVIDs issued at the edge during the cloud outage", len(seen))
	failed := harness.SPIRELogLinesSince(t, edgeServerLog, outage, `msg="Unable to rotate X509 CA"`)
	if len(failed) == 0 {
		t.Fatalf("the edge server logged no failed CA preparation during the outage (%s to %s): the outage did not cover one", outage.Format(time.RFC3339), time.Now().Format(time.RFC3339))
	}
	t.Logf("the edge server could not prepare its next CA during the outage (%d attempts), e.g. %s", len(failed), failed[0])
	if prepared := harness.SPIRELogLinesSince(t, edgeServerLog, outage, `msg="X509 CA prepared"`); len(prepared) > 0 {
		t.Fatalf("the edge server prepared a CA while its upstream was down: %s", prepared[0])
	}
	back := time.Now()

	// The cloud comes back; the edge server renews its CA on its own.
	if out, err := edgeid(t, bin, 5*time.Minute, append([]string{"up"}, common...)...); err != nil {
		t.Fatalf("edgeid up after the outage: %v\n%s", err, out)
	}
	returned := time.Now()
	t.Logf("cloud back at %s", returned.Format(time.RFC3339))
	err := harness.Poll(4*time.Minute, func() error {
		chain := harness.ReadCertsPEM(t, svidPath)
		if chain[1].Equal(firstCA) {
			return fmt.Errorf("the workload's SVID is still issued by the edge CA from before the outage (expires %s)", firstCA.NotAfter.Format(time.RFC3339))
		}
		verify(t, chain, harness.ReadCertsPEM(t, bundlePath), "SVID after the cloud returned")
		return nil
	})
	if err != nil {
		// Why, from the edge server's CA manager: its last line first
		// (a CI summary keeps a message's first line), then all of them.
		caLines := append([]string{"(none)"}, harness.SPIRELogLinesSince(t, edgeServerLog, back, `X509 CA`)...)
		t.Fatalf("4 min after the cloud returned at %s: %v; the edge server's CA manager last logged: %s; since the return:\n%s",
			returned.Format(time.RFC3339), err, caLines[len(caLines)-1], strings.Join(caLines[1:], "\n"))
	}
	prepared := harness.SPIRELogLinesSince(t, edgeServerLog, back, `msg="X509 CA prepared"`)
	if len(prepared) == 0 {
		t.Fatal("the edge server serves a new CA but logged no preparation after the cloud returned")
	}
	t.Logf("the edge server prepared and activated a new CA signed by the returned cloud, with no manual step (the workload held an SVID from it %s after the cloud returned): %s", time.Since(returned).Round(time.Second), prepared[0])
}

func killByPIDFile(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// Each service leads its own process group (its plugins included).
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	harness.Eventually(t, 10*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("pid %d still alive", pid)
		}
		return nil
	})
}

func expiries(chain []*x509.Certificate) string {
	var parts []string
	for _, c := range chain {
		parts = append(parts, c.Subject.String()+" "+c.NotAfter.Format(time.RFC3339))
	}
	return strings.Join(parts, " | ")
}
