package recordgw

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/quarantine"
	"github.com/twmb/franz-go/pkg/kgo"
)

// checkStranger: a gateway whose SVID may make data keys but not decrypt
// them passes every record on still sealed, and quarantines each. It
// returns the gateway.
func (r *rig) checkStranger(t *testing.T, total int, secrets []string) *edge {
	e := r.startEdge(idStranger, `cert_role = "stranger"`)
	t.Logf("attempt: kcat -C through a gateway without decrypt right, %d records expected", total)
	msgs := r.consume(t, e)
	if len(msgs) != total {
		t.Fatalf("%d records reached the app, want %d (none lost)", len(msgs), total)
	}
	for _, m := range msgs {
		for _, s := range secrets {
			if bytes.Contains(m.value, []byte(s)) {
				t.Fatalf("record %d/%d reached the app as plaintext", m.partition, m.offset)
			}
		}
	}
	ids := quarantined(t, e)
	if len(ids) != total {
		t.Fatalf("quarantine holds %d records, want %d", len(ids), total)
	}
	q, _ := quarantine.Open(e.quarantine)
	rec, err := q.Get(ids[0])
	if err != nil || rec.Reason != "access_denied" {
		t.Fatalf("quarantined %s: reason %v (%v), want access_denied", ids[0], rec, err)
	}
	if n := e.counter(t, "edgeid_kafkagw_undecryptable_records_total", map[string]string{"reason": "access_denied", "action": "quarantined"}); n < float64(total) {
		t.Errorf("undecryptable metric %v, want ≥ %d", n, total)
	}
	return e
}

// checkTamper copies the first record of partition 0 with one byte of its
// ciphertext flipped, produces the copy straight to the brokers, and
// reads the topic through the consumer's gateway again.
func (r *rig) checkTamper(t *testing.T, sent map[int][]string, total int) {
	cl := r.direct(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	orig := pollN(t, cl, 1)[0]
	value := bytes.Clone(orig.Value)
	value[20] ^= 0x01 // inside the ciphertext, after the 12-byte nonce
	bad := &kgo.Record{Topic: topic, Partition: 0, Value: value, Headers: orig.Headers}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Logf("attempt: produce a copy of %s/0@0 with byte 20 flipped, directly", topic)
	if err := cl.ProduceSync(ctx, bad).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tampered := int64(perCodec) // the copy's offset in partition 0
	e := r.startEdge(idConsumer, `cert_role = "consumer"`)
	t.Logf("attempt: kcat -C through the consumer's gateway, %d records expected", total+1)
	msgs := r.consume(t, e)
	if len(msgs) != total+1 {
		t.Fatalf("%d records reached the app, want %d (none lost)", len(msgs), total+1)
	}
	checkPlaintext(t, msgs, sent, tampered)
	for _, m := range msgs {
		if m.partition == 0 && m.offset == tampered && !bytes.Equal(m.value, value) {
			t.Fatalf("the tampered record reached the app changed: %.40q", m.value)
		}
	}
	ids := quarantined(t, e)
	if len(ids) != 1 {
		t.Fatalf("quarantine holds %v, want the tampered record only", ids)
	}
	q, _ := quarantine.Open(e.quarantine)
	rec, err := q.Get(ids[0])
	if err != nil || rec.Reason != "tampered" || rec.Partition != 0 || rec.Offset != tampered {
		t.Fatalf("quarantined %s: %+v (%v), want reason tampered at 0@%d", ids[0], rec, err, tampered)
	}
	if n := e.counter(t, "edgeid_kafkagw_undecryptable_records_total", map[string]string{"reason": "tampered"}); n < 1 {
		t.Errorf("undecryptable metric for tampered: %v", n)
	}
}

// checkPlaintextPolicy: plaintext records written straight to the encrypted
// topic (bypassing every gateway) are quarantined by a gateway with
// plaintext = "quarantine" and reach the app only as null markers,
// counted, and the sealed record after them still flows.
func (r *rig) checkPlaintextPolicy(t *testing.T, prod *edge) {
	cl := r.direct(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := range 3 {
		t.Logf("attempt: plaintext-%d to %s/5, directly", i, topic)
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 5, Value: []byte(fmt.Sprintf("plaintext-%d", i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	t.Logf("attempt: sealed-after-plaintext to %s/5 through the producer's gateway", topic)
	if _, stderr, err := r.runKcat(prod, "sealed-after-plaintext\n", "-P", "-t", topic, "-p", "5"); err != nil || strings.Contains(stderr, "ERROR") {
		t.Fatalf("kcat produce: %v\n%s", err, stderr)
	}
	e := r.startEdge(idConsumer, "cert_role = \"consumer\"\nplaintext = \"quarantine\"")
	t.Logf("attempt: kcat -C -p 5 through a gateway with plaintext = quarantine")
	out, stderr, err := r.runKcat(e, "", "-C", "-t", topic, "-p", "5", "-o", "beginning", "-e", "-f", consumeFmt)
	if err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, stderr)
	}
	msgs := parseConsumed(t, out)
	if len(msgs) != 4 || string(msgs[3].value) != "sealed-after-plaintext" || msgs[3].offset != 3 {
		t.Fatalf("app got %+v, want 3 markers then the sealed record at offset 3", msgs)
	}
	for _, m := range msgs[:3] {
		if !m.null {
			t.Fatalf("plaintext record at offset %d reached the app: %q", m.offset, m.value)
		}
	}
	if ids := quarantined(t, e); len(ids) != 3 {
		t.Fatalf("quarantine holds %v, want the 3 plaintext records", ids)
	}
	if n := e.counter(t, "edgeid_kafkagw_plaintext_records_total", map[string]string{"action": "withheld"}); n != 3 {
		t.Errorf("plaintext metric %v, want 3 withheld", n)
	}
}

// checkOutage stops Vault. The producer's gateway keeps sealing with the
// data key it holds (outage grace) and the consumer's gateway opens those
// records with the key it has cached; a gateway that never had a key and
// has no grace refuses every attempt with a retriable error, and nothing
// of it reaches the brokers.
func (r *rig) checkOutage(t *testing.T, prod, cons *edge) {
	fresh := r.startEdge(idProducer, "cert_role = \"producer\"\noutage_grace = false")
	r.vault.Stop(t)
	var lines []string
	for i := 1; i <= 5; i++ {
		lines = append(lines, fmt.Sprintf("during-outage-seq%03d", i))
		t.Logf("attempt: %s to %s/5 through the producer's gateway, Vault stopped", lines[i-1], topic)
	}
	if _, stderr, err := r.runKcat(prod, strings.Join(lines, "\n")+"\n", "-P", "-t", topic, "-p", "5"); err != nil || strings.Contains(stderr, "ERROR") {
		t.Fatalf("produce within the outage grace: %v\n%s", err, stderr)
	}
	r.mu.Lock()
	before := r.produced
	r.mu.Unlock()
	t.Logf("attempt: refused-in-outage to %s/5 through a gateway without key or grace", topic)
	_, stderr, err := r.runKcat(fresh, "refused-in-outage\n", "-P", "-t", topic, "-p", "5", "-X", "message.timeout.ms=4000")
	if err == nil && !strings.Contains(stderr, "ERROR") {
		t.Fatalf("produce without key or grace during the outage succeeded\n%s", stderr)
	}
	if n := fresh.counter(t, "edgeid_kafkagw_seal_failures_total", map[string]string{"reason": "kms_unavailable"}); n < 2 {
		t.Errorf("seal failures %v: want ≥ 2 (KAFKA_STORAGE_ERROR is retried)", n)
	}
	r.mu.Lock()
	if r.produced != before {
		t.Errorf("brokers received %d records from the refused producer", r.produced-before)
	}
	r.mu.Unlock()
	t.Logf("attempt: kcat -C -p 5 through the consumer's gateway, Vault stopped")
	out, stderr, err := r.runKcat(cons, "", "-C", "-t", topic, "-p", "5", "-o", "beginning", "-e", "-f", consumeFmt)
	if err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, stderr)
	}
	msgs := parseConsumed(t, out)
	if len(msgs) < len(lines) {
		t.Fatalf("consumed %d records of partition 5", len(msgs))
	}
	for i, m := range msgs[len(msgs)-len(lines):] {
		if string(m.value) != lines[i] {
			t.Fatalf("offset %d: %.40q, want %s", m.offset, m.value, lines[i])
		}
	}
}

// checkRotation rotates the Transit key: a producer gateway started after
// it seals with v2 data keys (one per record here), and the consumer's
// gateway opens the v1 and v2 records of the partition alike.
func (r *rig) checkRotation(t *testing.T, cons *edge, sent map[int][]string) {
	if _, err := r.vault.Client(t).Logical().Write("transit/keys/"+ring+"/rotate", nil); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	prod := r.startEdge(idProducer, "cert_role = \"producer\"\nrecords_per_key = 1")
	const p = 4
	var lines []string
	for i := 1; i <= 3; i++ {
		lines = append(lines, fmt.Sprintf("after-rotation-seq%03d", i))
		t.Logf("attempt: %s to %s/%d", lines[i-1], topic, p)
	}
	if _, stderr, err := r.runKcat(prod, strings.Join(lines, "\n")+"\n", "-P", "-t", topic, "-p", "4"); err != nil || strings.Contains(stderr, "ERROR") {
		t.Fatalf("kcat produce: %v\n%s", err, stderr)
	}
	cl := r.direct(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(perCodec)}}))
	defer cl.Close()
	wrapped := map[string]bool{}
	for _, rec := range pollN(t, cl, len(lines)) {
		h, err := recordcrypt.ParseHeader(rec.Headers[0].Value)
		if v, _ := recordcrypt.WrappedKeyVersion(h.WrappedKey); err != nil || v != 2 {
			t.Fatalf("record %d: header %v (%v), data key of version %d, want 2", rec.Offset, h.Ring, err, v)
		}
		wrapped[string(h.WrappedKey)] = true
	}
	if len(wrapped) != len(lines) {
		t.Errorf("%d distinct data keys for %d records with records_per_key = 1", len(wrapped), len(lines))
	}
	t.Logf("attempt: kcat -C -p %d through the consumer's gateway, v1 and v2 records", p)
	out, stderr, err := r.runKcat(cons, "", "-C", "-t", topic, "-p", "4", "-o", "beginning", "-e", "-f", consumeFmt)
	if err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, stderr)
	}
	want := append(append([]string(nil), sent[p]...), lines...)
	msgs := parseConsumed(t, out)
	if len(msgs) != len(want) {
		t.Fatalf("consumed %d records of partition %d, want %d", len(msgs), p, len(want))
	}
	for i, m := range msgs {
		if string(m.value) != want[i] {
			t.Fatalf("offset %d: %.40q, want %.40q", m.offset, m.value, want[i])
		}
	}
}
