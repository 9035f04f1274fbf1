package cli

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/fakewlapi"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	gwTestID   = "spiffe://example.org/cloud/kafka-gateway"
	gwTestCam  = "spiffe://example.org/edge/site-a/cam"
	gwTestOpen = `
allow "site-a-publish" {
  actors     = ["spiffe://example.org/edge/site-a/*"]
  resources  = ["topic:site-a.*"]
  operations = ["WRITE", "DESCRIBE"]
}
allow "site-a-idempotent" {
  actors     = ["spiffe://example.org/edge/site-a/*"]
  resources  = ["cluster"]
  operations = ["IDEMPOTENT_WRITE"]
}
`
)

// gatewayTestSetup is a CA, a Workload API serving the gateway's SVID
// from it, and a policy file holding gwTestOpen.
func gatewayTestSetup(t *testing.T) (*svidtest.CA, *fakewlapi.Server, string) {
	t.Helper()
	ca, err := svidtest.NewCA("example.org")
	if err != nil {
		t.Fatal(err)
	}
	api := fakewlapi.Start(t)
	gwSVID, err := ca.SVID(gwTestID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	api.Push([]*x509svid.SVID{gwSVID}, ca.Bundle())
	policyFile := filepath.Join(t.TempDir(), "policy.hcl")
	if err := os.WriteFile(policyFile, []byte(gwTestOpen), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca, api, policyFile
}

// TestKafkaGatewayBesideBroker: `edgeid kafka-gateway -upstream-plaintext`
// in front of a plaintext broker on loopback. A client with an SVID
// produces through it; the policy file is then edited (no signal) and the
// same client, on the same connection, is refused within the watcher's
// bound.
func TestKafkaGatewayBesideBroker(t *testing.T) {
	ca, api, policyFile := gatewayTestSetup(t)
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "site-a.detections"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kf.Close)

	ctx, cancel := context.WithCancel(context.Background())
	stderr := &harness.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"kafka-gateway", "-workload-api", api.Addr, "-spiffe-id", gwTestID, "-trust-domain", "example.org",
			"-upstream", kf.ListenAddrs()[0], "-upstream-plaintext", "-policy", policyFile}, os.Stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("kafka-gateway returned %v", err)
		}
	})
	bootstrap := regexp.MustCompile(`bootstrap=\[?([0-9.]+:[0-9]+)`)
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := bootstrap.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("the gateway never said where it serves:\n%s", stderr.String())
	}

	cam, err := ca.SVID(gwTestCam, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int64
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.ProduceRequestTimeout(5*time.Second),
		kgo.DialTLSConfig(tlsconfig.MTLSClientConfig(svidtest.NewSource(cam), ca.Bundle(), tlsconfig.AuthorizeID(spiffeid.RequireFromString(gwTestID)))),
		kgo.WithHooks(dialCounter{&dials}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	t.Log("produce 1 to site-a.detections, allowed")
	if err := cl.ProduceSync(pctx, &kgo.Record{Topic: "site-a.detections", Value: []byte("one")}).FirstErr(); err != nil {
		t.Fatalf("allowed produce through the gateway: %v\n%s", err, stderr.String())
	}
	before := dials.Load()

	closed := strings.Replace(gwTestOpen, `resources  = ["topic:site-a.*"]`, `resources  = ["topic:site-a.archive"]`, 1)
	if err := os.WriteFile(policyFile, []byte(closed), 0o600); err != nil {
		t.Fatal(err)
	}
	var last error
	for n := 2; n <= 40; n++ { // the watcher reads the file every second
		t.Logf("produce %d to site-a.detections after the edit", n)
		last = cl.ProduceSync(pctx, &kgo.Record{Topic: "site-a.detections", Value: []byte("after")}).FirstErr()
		if errors.Is(last, kerr.TopicAuthorizationFailed) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(last, kerr.TopicAuthorizationFailed) {
		t.Fatalf("after the policy file lost the rule, produce got %v, want TOPIC_AUTHORIZATION_FAILED\n%s", last, stderr.String())
	}
	if n := dials.Load(); n != before {
		t.Fatalf("the client dialed %d more times: the reload must not drop connections", n-before)
	}
	if !strings.Contains(stderr.String(), "Policy file changed; reloading") {
		t.Fatalf("no reload logged:\n%s", stderr.String())
	}
}

// dialCounter counts a client's broker connections.
type dialCounter struct{ n *atomic.Int64 }

func (d dialCounter) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		d.n.Add(1)
	}
}

// TestKafkaGatewayPlaintextRefusals: -upstream-plaintext to a broker that
// is not on loopback, or with -upstream-id, is refused before anything
// listens.
func TestKafkaGatewayPlaintextRefusals(t *testing.T) {
	_, api, policyFile := gatewayTestSetup(t)
	base := []string{"kafka-gateway", "-workload-api", api.Addr, "-spiffe-id", gwTestID, "-trust-domain", "example.org", "-policy", policyFile, "-upstream-plaintext"}
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{[]string{"-upstream", "10.0.0.7:9092"}, `upstream "10.0.0.7:9092": plaintext to the brokers is for a gateway beside them`},
		{[]string{"-upstream", "127.0.0.1:9092", "-upstream-id", "spiffe://example.org/cloud/kafka"}, "-upstream-id names the brokers' SVIDs"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := Run(ctx, append(base, tc.extra...), os.Stdout, &strings.Builder{})
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.extra, err, tc.want)
		}
	}
}
