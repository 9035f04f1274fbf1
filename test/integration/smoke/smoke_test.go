package smoke

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edgeid/edgeid/test/harness"
)

// TestWorkloadGetsVerifiableSVID runs the whole minimal chain on the real
// binaries: server → agent (join_token) → workload (this test process).
func TestWorkloadGetsVerifiableSVID(t *testing.T) {
	td := "example.org"
	server := harness.StartSpireServer(t, harness.ServerConfig{TrustDomain: td, X509SVIDTTL: 5 * time.Minute})
	token := server.JoinToken(t, "")
	agent := harness.StartSpireAgent(t, harness.AgentConfig{Server: server, JoinToken: token})

	workloadID := "spiffe://" + td + "/smoke/workload"
	server.CreateEntry(t, harness.Entry{
		ParentID:  harness.JoinTokenAgentID(td, token),
		SPIFFEID:  workloadID,
		Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())},
	})

	svid, roots := harness.FetchX509SVIDFor(t, agent.SocketPath, workloadID)
	t.Logf("workload got %s, expires %s", svid.ID, svid.Certificates[0].NotAfter.Format(time.RFC3339))

	bundle := server.Bundle(t)
	if len(roots) != len(bundle) || !roots[0].Equal(bundle[0]) {
		t.Fatalf("Workload API bundle (%d roots) differs from `spire-server bundle show` (%d roots)", len(roots), len(bundle))
	}
	chain, err := harness.VerifySVIDChain(svid, bundle)
	if err != nil {
		t.Fatalf("SVID does not verify against the server bundle: %v", err)
	}
	if got := chain[len(chain)-1]; !got.Equal(bundle[0]) {
		t.Fatalf("chain ends at %s, want the bundle root %s", got.Subject, bundle[0].Subject)
	}
	if ttl := time.Until(svid.Certificates[0].NotAfter); ttl > 5*time.Minute+time.Minute || ttl < 3*time.Minute {
		t.Fatalf("SVID lifetime left %s, want about the configured 5m", ttl)
	}

	// The same check with OpenSSL, as an operator would run it.
	openssl := harness.RequireCommand(t, "openssl")
	dir := t.TempDir()
	leaf, inter, root := filepath.Join(dir, "svid.pem"), filepath.Join(dir, "intermediates.pem"), filepath.Join(dir, "bundle.pem")
	writePEM(t, leaf, svid.Certificates[:1])
	writePEM(t, inter, svid.Certificates[1:])
	if err := os.WriteFile(root, server.BundlePEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", "-CAfile", root}
	if len(svid.Certificates) > 1 {
		args = append(args, "-untrusted", inter)
	}
	args = append(args, leaf)
	if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
}
