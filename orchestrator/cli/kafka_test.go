package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/twmb/franz-go/pkg/kfake"
)

const kafkaTestPolicy = `
allow "site-a-publish" {
  actors     = ["spiffe://example.org/edge/site-a/cam", "spiffe://example.org/edge/site-a/*"]
  resources  = ["topic:site-a.*"]
  operations = ["WRITE"]
}
`

// `edgeid kafka acls` against an mTLS kfake, as a user runs it with the
// helper's SVID files: plan changes nothing, apply creates, a second apply
// finds nothing to do.
func TestKafkaACLsAgainstKfake(t *testing.T) {
	ca, err := svidtest.NewCA("example.org")
	if err != nil {
		t.Fatal(err)
	}
	broker, err := ca.SVID("spiffe://example.org/cloud/kafka", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	trust := spiffeid.RequireTrustDomainFromString("example.org")
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.TLS(tlsconfig.MTLSServerConfig(svidtest.NewSource(broker), ca.Bundle(), tlsconfig.AuthorizeMemberOf(trust))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	admin, err := ca.SVID("spiffe://example.org/cloud/acl-admin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, caFile, err := ca.WriteFiles(dir, admin)
	if err != nil {
		t.Fatal(err)
	}
	pfile := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(pfile, []byte(kafkaTestPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--policy", pfile, "--brokers", strings.Join(c.ListenAddrs(), ","),
		"--tls-ca", caFile, "--tls-cert", cert, "--tls-key", key, "--timeout", "20s"}
	acl := "ALLOW User:spiffe://example.org/edge/site-a/cam WRITE on topic:site-a. (PREFIXED) from *"
	for i, step := range []struct {
		verb, want string
	}{
		{"plan", "+ " + acl + "\n"},
		{"plan", "1 to create, 0 to delete, 0 unchanged, 1 skipped actor(s)"}, // plan changed nothing
		{"apply", "applied: 1 created, 0 deleted"},
		{"apply", "= " + acl + "\n"},
		{"apply", "applied: 0 created, 0 deleted"},
	} {
		code, out, errOut := run(append([]string{"kafka", "acls", step.verb}, args...)...)
		if code != cliutil.ExitOK || !strings.Contains(out, step.want) || !strings.Contains(out, `actor "spiffe://example.org/edge/site-a/*" is a pattern`) {
			t.Fatalf("step %d: kafka acls %s: exit %d, stdout:\n%s\nstderr:\n%s\nwant %q and the skipped pattern", i, step.verb, code, out, errOut, step.want)
		}
	}
}

func TestKafkaACLsUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"kafka"}, "want `kafka acls plan|apply`, `kafka reproduce DIR` or `kafka rewrap DIR`"},
		{[]string{"kafka", "acls", "sync"}, "want `kafka acls plan|apply`"},
		{[]string{"kafka", "acls", "plan"}, "needs --policy and --brokers"},
		{[]string{"kafka", "acls", "plan", "--policy", "p", "--brokers", "b", "--tls-ca", "x"}, "give all of --tls-ca"},
	} {
		code, _, errOut := run(tc.args...)
		if code != cliutil.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("edgeid %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}
