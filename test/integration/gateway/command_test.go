package gateway

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/fakewlapi"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCommandBesideBroker: the `edgeid kafka-gateway` program with
// -upstream-plaintext, in front of a 3-broker plaintext kfake on loopback
// whose 6 partitions have leaders on every broker. kcat (mTLS, hostname
// verified) writes every partition as pipeline A and reads everything back
// as the cloud consumer, each message checked; A is refused on site B's
// topic; then the policy file is edited, with no signal, and A is refused
// on its own topic within the watcher's bound.
func TestCommandBesideBroker(t *testing.T) {
	kcat := harness.RequireCommand(t, "kcat")
	edgeid := harness.BuildBinary(t, "./orchestrator/cmd/edgeid", "edgeid").Path
	ca, err := svidtest.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, kcat: kcat, ca: ca, dir: t.TempDir()}
	api := fakewlapi.Start(t)
	gwSVID, err := ca.SVID(idGW, time.Hour, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	api.Push([]*x509svid.SVID{gwSVID}, ca.Bundle())
	kf, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, topicA, topicB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kf.Close)
	plain, err := kgo.NewClient(kgo.SeedBrokers(kf.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	spreadLeaders(t, kf, plain, topicA, topicB)
	pfile := filepath.Join(e.dir, "policy.hcl")
	if err := os.WriteFile(pfile, []byte(seedPolicy), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	gw := exec.CommandContext(ctx, edgeid, "kafka-gateway", "-workload-api", api.Addr, "-spiffe-id", idGW, "-trust-domain", td,
		"-upstream", kf.ListenAddrs()[0], "-upstream-plaintext", "-advertise", "localhost", "-policy", pfile)
	logs := &harness.SyncBuffer{}
	gw.Stdout, gw.Stderr = logs, logs
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = gw.Wait()
		if t.Failed() {
			t.Logf("edgeid kafka-gateway:\n%s", logs.String())
		}
	})
	bootstrap := regexp.MustCompile(`bootstrap=\[?([^\] ]+:[0-9]+)`)
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := bootstrap.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatal("edgeid kafka-gateway never said where it serves")
	}
	pipeA := asKcatArgs(clientProps(t, ca, e.dir, addr, idPipeA))

	var want []string
	for p := range 6 {
		var lines []string
		for i := range 5 {
			lines = append(lines, fmt.Sprintf("a-%d-%d", p, i))
		}
		t.Logf("attempt: %d messages to %s/%d", len(lines), topicA, p)
		if _, stderr, err := e.run(30*time.Second, strings.Join(lines, "\n")+"\n", append(pipeA, "-P", "-t", topicA, "-p", fmt.Sprint(p))...); err != nil || strings.Contains(stderr, "ERROR") {
			t.Fatalf("produce to %s/%d: %v\n%s", topicA, p, err, stderr)
		}
		want = append(want, lines...)
	}
	out, stderr, err := e.run(60*time.Second, "", append(asKcatArgs(clientProps(t, ca, e.dir, addr, idCloud)), "-C", "-t", topicA, "-o", "beginning", "-e", "-q")...)
	if err != nil {
		t.Fatalf("consume %s: %v\n%s", topicA, err, stderr)
	}
	got := strings.Fields(out)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("consumed %d messages %v, want the %d produced %v", len(got), got, len(want), want)
	}

	t.Logf("attempt: a-denied to %s/0", topicB)
	if _, stderr, _ := e.run(30*time.Second, "a-denied\n", append(pipeA, "-P", "-t", topicB, "-p", "0")...); !strings.Contains(stderr, "Topic authorization failed") {
		t.Fatalf("pipeline A on %s:\n%s", topicB, stderr)
	}

	closed := strings.Replace(seedPolicy, `resources  = ["topic:site-a.*"]`, `resources  = ["topic:site-a.archive"]`, 1)
	if closed == seedPolicy {
		t.Fatal("the policy edit changed nothing")
	}
	if err := os.WriteFile(pfile, []byte(closed), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := false
	for n := 1; n <= 10 && !refused; n++ { // the file is read every second
		t.Logf("attempt %d: a-after-edit to %s/0", n, topicA)
		_, stderr, _ := e.run(30*time.Second, "a-after-edit\n", append(pipeA, "-P", "-t", topicA, "-p", "0")...)
		refused = strings.Contains(stderr, "Topic authorization failed")
		if !refused {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if !refused {
		t.Fatalf("pipeline A still writes %s after its rule left the policy file", topicA)
	}
	if !strings.Contains(logs.String(), "Policy file changed; reloading") {
		t.Fatal("the gateway did not log the reload")
	}
}
