package recordgw

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/helper/kafkaconf"
)

// TestRenderedBatchLimitsFitSealing: sealing makes every record longer on
// its way to the broker. With librdkafka's default batches (up to
// 1,000,000 bytes) a burst of 1 KiB records produced through an
// encrypting gateway reaches the broker as batches over its 1 MiB limit,
// and kcat reports them as too large: the failure a pipeline would hit.
// With the kafka.properties the helper renders for a sealing gateway
// (batch.size and batch.num.messages capped), the same burst is stored
// whole and reads back in order through the consumer's gateway.
func TestRenderedBatchLimitsFitSealing(t *testing.T) {
	r := newRig(t)
	prod := r.startEdge(idProducer, `cert_role = "producer"`)
	cons := r.startEdge(idConsumer, `cert_role = "consumer"`)
	const n = 4000
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("burst-seq%05d-%s", i+1, strings.Repeat("x", 1000))
	}
	burst := strings.Join(lines, "\n") + "\n"

	t.Logf("attempt: %d records of about 1 KiB with librdkafka's default batches to %s/1", n, topic)
	_, stderr, err := r.runKcat(prod, burst, "-P", "-t", topic, "-p", "1", "-X", "linger.ms=200", "-X", "message.timeout.ms=20000")
	t.Logf("default batches: exit %v", err)
	if !strings.Contains(stderr, "too large") {
		t.Fatalf("with librdkafka's default batches the sealed burst was accepted: the control does not reach the broker's limit, so the rendered limits prove nothing\n%.2000s", stderr)
	}

	props, err := kafkaconf.Librdkafka(kafkaconf.Paths{}, kafkaconf.Settings{
		BootstrapServers: prod.gw.BootstrapAddrs()[0], Plaintext: true, SealingGateway: true})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "kafka.properties")
	if err := os.WriteFile(file, props, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("rendered kafka.properties:\n%s", props)
	t.Logf("attempt: the same %d records with the rendered properties to %s/2", n, topic)
	out, stderr, err := r.runKcat(prod, burst, "-F", file, "-P", "-t", topic, "-p", "2", "-X", "linger.ms=200", "-X", "message.timeout.ms=20000")
	if err != nil || strings.Contains(stderr, "ERROR") || strings.Contains(stderr, "too large") {
		t.Fatalf("rendered properties: %v\n%s%.2000s", err, out, stderr)
	}
	got := msgsOf(r.consume(t, cons), 2)
	checkPlaintext(t, got, map[int][]string{2: lines}, -1)
	t.Logf("%d of %d records read back through the consumer's gateway, in order", len(got), n)
}

// msgsOf keeps the messages of partition p.
func msgsOf(msgs []message, p int) []message {
	var out []message
	for _, m := range msgs {
		if m.partition == p {
			out = append(out, m)
		}
	}
	return out
}
