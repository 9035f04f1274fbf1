package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/kmstest"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/quarantine"
	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// quarantineDir writes sealed records of topic t, partition i%2, offset
// i, one per reason, into a new quarantine directory; partition 5 (which
// the test topic lacks) for reason "access_denied@5".
func quarantineDir(t *testing.T, reasons ...string) string {
	t.Helper()
	p, _ := recordcrypt.NewProducer(kmstest.New("r"), recordcrypt.ProducerConfig{})
	sl, _ := p.Sealer(recordcrypt.SealerConfig{Topic: "t", Ring: "r", Fields: recordcrypt.FieldValue})
	dir := t.TempDir()
	s, err := quarantine.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, reason := range reasons {
		rec := kmsg.Record{Value: fmt.Appendf(nil, "secret-value-%d", i)}
		if _, err := sl.Seal(context.Background(), &rec, nil); err != nil {
			t.Fatal(err)
		}
		part := int32(i % 2)
		if r, ok := strings.CutSuffix(reason, "@5"); ok {
			reason, part = r, 5
		}
		q := &quarantine.Record{Topic: "t", Partition: part, Offset: int64(i), Timestamp: time.UnixMilli(1_800_000_000_000).UTC(),
			Value: rec.Value, Headers: []quarantine.Header{{Key: rec.Headers[0].Key, Value: rec.Headers[0].Value}}, Reason: reason}
		if _, err := s.Put(q); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// `edgeid kafka reproduce` against an mTLS kfake with the SVID files: a
// dry run produces nothing, a run produces the default reasons' records
// and exits 0, a second run produces nothing; a record the brokers cannot
// take fails the run (exit 1, named) and stays unmarked.
func TestKafkaReproduceAgainstKfake(t *testing.T) {
	ca, _ := svidtest.NewCA("example.org")
	broker, _ := ca.SVID("spiffe://example.org/cloud/kafka", time.Hour)
	trust := spiffeid.RequireTrustDomainFromString("example.org")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"),
		kfake.TLS(tlsconfig.MTLSServerConfig(svidtest.NewSource(broker), ca.Bundle(), tlsconfig.AuthorizeMemberOf(trust))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client, _ := ca.SVID("spiffe://example.org/cloud/reproducer", time.Hour)
	cert, key, caFile, err := ca.WriteFiles(t.TempDir(), client)
	if err != nil {
		t.Fatal(err)
	}
	dir := quarantineDir(t, "access_denied", "kms_unavailable", "tampered")
	tlsArgs := []string{"--brokers", strings.Join(c.ListenAddrs(), ","), "--tls-ca", caFile, "--tls-cert", cert, "--tls-key", key, "--timeout", "20s"}
	for i, step := range []struct {
		args []string
		want []string
	}{
		{[]string{"--dry-run"}, []string{"would produce t-0-0 (access_denied)", "skipped       t-0-2 (tampered): reason tampered", "summary: 2 would produce, 1 skipped, 0 failed"}},
		{tlsArgs, []string{"produced      t-0-0 (access_denied)", "produced      t-1-1 (kms_unavailable)", "summary: 2 produced, 1 skipped, 0 failed"}},
		{tlsArgs, []string{"skipped       t-0-0 (access_denied): already reproduced", "summary: 0 produced, 3 skipped, 0 failed"}},
	} {
		t.Logf("attempt %d: edgeid kafka reproduce DIR %s", i, strings.Join(step.args[:1], " "))
		code, out, errOut := run(append([]string{"kafka", "reproduce", dir}, step.args...)...)
		for _, w := range step.want {
			if code != cliutil.ExitOK || !strings.Contains(out, w) || strings.Contains(out, "secret-value") {
				t.Fatalf("step %d: exit %d, stdout:\n%s\nstderr:\n%s\nwant %q", i, code, out, errOut, w)
			}
		}
	}
	if n := countRecords(t, c, caFile, cert, key); n != 2 {
		t.Fatalf("brokers hold %d records, want 2", n)
	}
	bad := quarantineDir(t, "access_denied", "access_denied@5")
	var buf strings.Builder
	err = Run(context.Background(), append([]string{"kafka", "reproduce", bad}, tlsArgs...), &buf, &buf)
	t.Logf("attempt: a record for a partition the topic lacks: %v\n%s", err, buf.String())
	if cliutil.ExitCode(err) != cliutil.ExitFailure || !strings.Contains(err.Error(), "t-5-1") || !strings.Contains(buf.String(), "summary: 1 produced, 0 skipped, 1 failed") {
		t.Fatalf("a failed record: %v\n%s", err, buf.String())
	}
	s, _ := quarantine.Open(bad)
	if r, _ := s.Get("t-5-1"); r.Reproduced {
		t.Fatal("the failed record was marked reproduced")
	}
}

func countRecords(t *testing.T, c *kfake.Cluster, caFile, cert, key string) int {
	t.Helper()
	tlsCfg, closeTLS, err := kafkaTLS(context.Background(), "test", kafkaTLSFlags{caFile: caFile, certFile: cert, keyFile: key}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer closeTLS()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DialTLSConfig(tlsCfg), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n := 0
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		n += len(cl.PollFetches(ctx).Records())
		cancel()
	}
	return n
}

func TestKafkaQuarantineUsage(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("VAULT_ADDR", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"kafka", "reproduce"}, "needs the quarantine directory"},
		{[]string{"kafka", "reproduce", "/nonexistent/q", "--dry-run"}, "quarantine directory"},
		{[]string{"kafka", "reproduce", dir}, "needs --brokers (or --dry-run)"},
		{[]string{"kafka", "reproduce", dir, "--dry-run", "extra"}, `unexpected argument "extra"`},
		{[]string{"kafka", "reproduce", dir, "--dry-run", "--reasons", "access_denied,nope"}, `unknown reason "nope"`},
		{[]string{"kafka", "reproduce", dir, "--dry-run", "--topic", "../x"}, "--topic"},
		{[]string{"kafka", "reproduce", dir, "--brokers", "b", "--tls-cert", "c"}, "give all of --tls-ca"},
		{[]string{"kafka", "rewrap", dir}, "needs --vault-addr"},
		{[]string{"kafka", "rewrap", dir, "--vault-addr", "https://v:8200"}, "needs a Vault login: VAULT_TOKEN"},
		{[]string{"kafka", "rewrap", dir, "--vault-addr", "https://v:8200", "--tls-cert", "c"}, "give --tls-cert and --tls-key"},
		{[]string{"kafka", "rewrap", "--vault-addr", "https://v:8200", dir, "--tls-cert", "c", "--tls-key", "k", "--workload-api", "unix:///x"}, "or --workload-api, or neither"},
	} {
		code, _, errOut := run(tc.args...)
		if code != cliutil.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("edgeid %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	// --reasons all and flags after the directory are accepted.
	code, out, errOut := run("kafka", "reproduce", "--reasons", "all", dir, "--dry-run", "--topic", "t")
	if code != cliutil.ExitOK || !strings.Contains(out, "summary: 0 would produce, 0 skipped, 0 failed") {
		t.Errorf("an empty dry run: exit %d\n%s%s", code, out, errOut)
	}
}
