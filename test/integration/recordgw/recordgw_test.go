package recordgw

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/batch"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/quarantine"
	"github.com/twmb/franz-go/pkg/kgo"
)

// codecs are librdkafka's compression.codec values, one partition each.
var codecs = []struct {
	name string
	want batch.Compression
}{{"none", batch.None}, {"gzip", batch.Gzip}, {"snappy", batch.Snappy}, {"lz4", batch.LZ4}, {"zstd", batch.Zstd}}

const perCodec = 20

// message is one consumed record.
type message struct {
	partition int
	offset    int64
	value     []byte
	null      bool
}

// consumeFmt makes kcat print each record with its value's length, so
// that binary (still encrypted) values parse exactly.
const consumeFmt = "REC %p %o %S\n%s\n"

func parseConsumed(t *testing.T, out string) []message {
	t.Helper()
	var msgs []message
	rd := bufio.NewReader(strings.NewReader(out))
	for {
		line, err := rd.ReadString('\n')
		if err == io.EOF && line == "" {
			return msgs
		}
		var m message
		var n int
		if _, err := fmt.Sscanf(line, "REC %d %d %d\n", &m.partition, &m.offset, &n); err != nil {
			t.Fatalf("kcat output line %q: %v", line, err)
		}
		m.null = n < 0 // kcat's %S is -1 for a null value, and %s prints nothing
		n = max(n, 0)
		m.value = make([]byte, n+1)
		if _, err := io.ReadFull(rd, m.value); err != nil || m.value[n] != '\n' {
			t.Fatalf("kcat output: record %d/%d value of %d bytes: %v", m.partition, m.offset, n, err)
		}
		m.value = m.value[:n]
		msgs = append(msgs, m)
	}
}

// TestRecordEncryptionThroughKcat: kcat produces through the producer's
// edge gateway with each librdkafka codec; the brokers store only sealed
// values; kcat reads the exact plaintext back through the consumer's
// gateway; a gateway whose SVID may not decrypt passes every record on
// still sealed and quarantines it; a record tampered with in the broker
// is detected, quarantined and counted while the others flow; a gateway
// whose SVID may not make data keys is refused on Produce; after a
// Transit key rotation v2 data keys are used and v1 records still open;
// once the stranger's Vault role is granted decrypt, `edgeid kafka
// reproduce` puts its quarantined records back and it reads them as
// plaintext, and a second run produces nothing; with Vault
// stopped, held keys keep working and a gateway without one fails closed.
func TestRecordEncryptionThroughKcat(t *testing.T) {
	r := newRig(t)
	prod := r.startEdge(idProducer, `cert_role = "producer"`)
	cons := r.startEdge(idConsumer, `cert_role = "consumer"`)
	sent, secrets := r.produceAll(t, prod)
	total := len(codecs) * perCodec

	t.Run("every codec sealed, stored uncompressed", func(t *testing.T) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range codecs {
			if n := prod.counter(t, "edgeid_kafkagw_sealed_batches_total", map[string]string{"compression": c.name}); n == 0 {
				t.Errorf("the gateway sealed no %s batch from kcat", c.name)
			}
		}
		// sealed_compression = "none" (the default): ciphertext is not
		// compressed again.
		if len(r.arrived) != 1 || r.arrived[batch.None] == 0 {
			t.Errorf("batches by codec at the brokers: %v, want only uncompressed ones", r.arrived)
		}
		if r.arrived[-1] != 0 || r.produced != total {
			t.Errorf("brokers received %d records (%d batches not decodable), want %d", r.produced, r.arrived[-1], total)
		}
		if n := prod.counter(t, "edgeid_kafkagw_records_sealed_total", nil); n != float64(total) {
			t.Errorf("sealed metric %v, want %d", n, total)
		}
	})
	t.Run("stored only sealed", func(t *testing.T) { r.checkStoredSealed(t, total, secrets) })
	t.Run("consumer reads plaintext", func(t *testing.T) {
		t.Logf("attempt: kcat -C through the consumer's gateway, %d records expected", total)
		msgs := r.consume(t, cons)
		checkPlaintext(t, msgs, sent, -1)
		if ids := quarantined(t, cons); len(ids) != 0 {
			t.Errorf("quarantine holds %v after a clean read", ids)
		}
		if n := cons.counter(t, "edgeid_kafkagw_records_opened_total", nil); n < float64(total) {
			t.Errorf("opened metric %v, want ≥ %d", n, total)
		}
	})
	var stranger *edge
	var strangerRead time.Time
	t.Run("no decrypt right", func(t *testing.T) { stranger, strangerRead = r.checkStranger(t, total, secrets), time.Now() })
	t.Run("tampered record", func(t *testing.T) { r.checkTamper(t, sent, total) })
	t.Run("plaintext quarantined", func(t *testing.T) { r.checkPlaintextPolicy(t, prod) })
	t.Run("no encrypt right", func(t *testing.T) {
		r.mu.Lock()
		before := r.produced
		r.mu.Unlock()
		t.Logf("attempt: produce through the consumer's gateway (its SVID may not make data keys)")
		_, stderr, err := r.runKcat(cons, "refused-value\n", "-P", "-t", topic, "-p", "5", "-X", "message.timeout.ms=10000")
		if err == nil && !strings.Contains(stderr, "uthorization") {
			t.Fatalf("produce without encrypt right: no error\n%s", stderr)
		}
		if !strings.Contains(stderr, "Topic authorization failed") {
			t.Errorf("kcat stderr does not name the refusal:\n%s", stderr)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.produced != before {
			t.Errorf("brokers received %d records of a refused produce", r.produced-before)
		}
	})
	t.Run("key rotation", func(t *testing.T) { r.checkRotation(t, cons, sent) })
	t.Run("reproduce after grant", func(t *testing.T) { r.checkReproduce(t, stranger, strangerRead, sent) })
	t.Run("vault outage", func(t *testing.T) { r.checkOutage(t, prod, cons) })
}

// produceAll produces perCodec numbered values with each codec, codec i
// to partition i, logging every attempt before kcat runs. It returns the
// values by partition, in order, and each value's random secret.
func (r *rig) produceAll(t *testing.T, e *edge) (map[int][]string, []string) {
	sent := map[int][]string{}
	var secrets []string
	for p, c := range codecs {
		var lines []string
		for i := 1; i <= perCodec; i++ {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			secret := "secret-" + hex.EncodeToString(b)
			v := fmt.Sprintf("%s-seq%03d-%s-%s", c.name, i, secret, strings.Repeat("person@cam7 ", 8))
			t.Logf("attempt: %s-seq%03d to %s/%d", c.name, i, topic, p)
			lines = append(lines, v)
			secrets = append(secrets, secret)
		}
		out, stderr, err := r.runKcat(e, strings.Join(lines, "\n")+"\n", "-P", "-t", topic, "-p", strconv.Itoa(p),
			"-X", "compression.codec="+c.name, "-X", "linger.ms=50")
		if err != nil || strings.Contains(stderr, "ERROR") {
			t.Fatalf("kcat produce with %s: %v\n%s%s", c.name, err, out, stderr)
		}
		sent[p] = lines
	}
	return sent, secrets
}

// checkStoredSealed reads the topic straight from the brokers: every
// record carries the edgeid-enc header and no secret appears anywhere in
// it.
func (r *rig) checkStoredSealed(t *testing.T, total int, secrets []string) {
	cl := r.direct(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	recs := pollN(t, cl, total)
	for _, rec := range recs {
		if len(rec.Headers) != 1 || rec.Headers[0].Key != recordcrypt.HeaderKey {
			t.Fatalf("stored record %d/%d has headers %v, want only %s", rec.Partition, rec.Offset, rec.Headers, recordcrypt.HeaderKey)
		}
		all := bytes.Join([][]byte{rec.Key, rec.Value, rec.Headers[0].Value}, nil)
		for _, s := range secrets {
			if bytes.Contains(all, []byte(s)) {
				t.Fatalf("stored record %d/%d contains plaintext %s", rec.Partition, rec.Offset, s)
			}
		}
		if bytes.Contains(all, []byte("person@cam7")) || bytes.Contains(all, []byte("-seq0")) {
			t.Fatalf("stored record %d/%d contains plaintext", rec.Partition, rec.Offset)
		}
	}
	t.Logf("%d stored records read directly: all sealed", len(recs))
}

func pollN(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records directly", len(out), n)
		}
		fs.EachRecord(func(rec *kgo.Record) { out = append(out, rec) })
	}
	return out
}

// consume reads the whole topic through e with kcat.
func (r *rig) consume(t *testing.T, e *edge) []message {
	t.Helper()
	out, stderr, err := r.runKcat(e, "", "-C", "-t", topic, "-o", "beginning", "-e", "-f", consumeFmt)
	if err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, stderr)
	}
	return parseConsumed(t, out)
}

// checkPlaintext: msgs are exactly sent, in order per partition, except
// the record at skip of partition 0 (skip < 0: none).
func checkPlaintext(t *testing.T, msgs []message, sent map[int][]string, skip int64) {
	t.Helper()
	next := map[int]int{}
	for _, m := range msgs {
		if m.partition == 0 && m.offset == skip {
			continue
		}
		want := sent[m.partition]
		i := next[m.partition]
		if i >= len(want) || string(m.value) != want[i] {
			t.Fatalf("partition %d offset %d: got %.60q, want message %d of %d", m.partition, m.offset, m.value, i+1, len(want))
		}
		next[m.partition]++
	}
	for p, want := range sent {
		if next[p] != len(want) {
			t.Errorf("partition %d: %d of %d messages consumed", p, next[p], len(want))
		}
	}
}

func quarantined(t *testing.T, e *edge) []string {
	t.Helper()
	q, err := quarantine.Open(e.quarantine)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
