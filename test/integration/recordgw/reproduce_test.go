package recordgw

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/quarantine"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/vaultkms"
	"github.com/edgeid/edgeid/internal/vaultconn"
	"github.com/edgeid/edgeid/test/harness"
	"github.com/twmb/franz-go/pkg/kadm"
)

// endOffsets are the end offsets of topic's partitions, read directly.
func (r *rig) endOffsets(t *testing.T) map[int]int64 {
	t.Helper()
	cl := r.direct()
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for p := range int32(partitions) {
		o, ok := listed.Lookup(topic, p)
		if !ok || o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, p, o.Err)
		}
		out[int(p)] = o.Offset
	}
	return out
}

// reproduce runs `edgeid kafka reproduce` on dir straight to the brokers
// with the inspector's SVID files.
func (r *rig) reproduce(t *testing.T, dir string) (string, int) {
	t.Helper()
	cert, key, ca := r.svidFiles(idDirect)
	out, stderr, code := runEdgeid(t, nil, "kafka", "reproduce", dir, "--brokers", strings.Join(r.cluster.ListenAddrs(), ","),
		"--tls-ca", ca, "--tls-cert", cert, "--tls-key", key, "--timeout", "60s")
	t.Logf("edgeid kafka reproduce: exit %d\n%s%s", code, out, stderr)
	return out, code
}

// checkReproduce grants the stranger's Vault role decrypt, runs the real
// `edgeid kafka reproduce` on its quarantine directory, and reads the
// topic through the stranger's gateway again: every re-produced record
// arrives as exact plaintext, in sequence, after the originals (which
// open now too). A second run produces nothing.
func (r *rig) checkReproduce(t *testing.T, e *edge, strangerRead time.Time, sent map[int][]string) {
	if e == nil {
		t.Fatal("the stranger's gateway did not run")
	}
	total := len(codecs) * perCodec
	r.vault.WriteCertRole(t, "stranger", r.ca.CertificatePEM(), harness.CertRole{SPIFFEID: idStranger, Policy: "recordgw-producer,recordgw-consumer"})
	before := r.endOffsets(t)
	t.Logf("attempt: edgeid kafka reproduce of %d quarantined records, end offsets before %v", total, before)
	out, code := r.reproduce(t, e.quarantine)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("summary: %d produced, 0 skipped, 0 failed", total)) {
		t.Fatalf("reproduce: exit %d\n%s", code, out)
	}
	after := r.endOffsets(t)
	for p := range codecs {
		if after[p]-before[p] != perCodec {
			t.Fatalf("partition %d grew by %d records, want %d", p, after[p]-before[p], perCodec)
		}
	}
	// The gateway remembers a refused data key for 10 s (NegativeTTL);
	// after that its next call gets a 403, and it logs in again with the
	// granted policy.
	time.Sleep(time.Until(strangerRead.Add(11 * time.Second)))
	t.Logf("attempt: kcat -C through the stranger's gateway, now granted decrypt")
	msgs := r.consume(t, e)
	got := map[int][]string{}
	for _, m := range msgs {
		if m.partition < len(codecs) && (m.offset < perCodec || m.offset >= before[m.partition]) {
			got[m.partition] = append(got[m.partition], string(m.value))
		}
	}
	for p := range codecs {
		want := append(append([]string(nil), sent[p]...), sent[p]...) // the originals, then their copies
		if strings.Join(got[p], "\n") != strings.Join(want, "\n") {
			t.Fatalf("partition %d through the stranger: %d records, want the %d originals then their copies, as plaintext, in sequence", p, len(got[p]), perCodec)
		}
	}
	t.Logf("%d re-produced records read as plaintext, in sequence, after their originals", total)
	t.Logf("attempt: edgeid kafka reproduce again")
	out, code = r.reproduce(t, e.quarantine)
	if code != 0 || !strings.Contains(out, "summary: 0 produced") || !strings.Contains(out, " 0 failed") {
		t.Fatalf("second reproduce: exit %d\n%s", code, out)
	}
	if again := r.endOffsets(t); fmt.Sprint(again) != fmt.Sprint(after) {
		t.Fatalf("the second run produced: end offsets %v, were %v", again, after)
	}
}

// headerVersion is the key ring version named by the edgeid-enc header
// of the stored record id.
func headerVersion(t *testing.T, s *quarantine.Store, id string) int {
	t.Helper()
	rec, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range rec.Headers {
		if h.Key == recordcrypt.HeaderKey {
			eh, err := recordcrypt.ParseHeader(h.Value)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			v, _ := recordcrypt.WrappedKeyVersion(eh.WrappedKey)
			return v
		}
	}
	t.Fatalf("%s has no %s header", id, recordcrypt.HeaderKey)
	return 0
}

// openStored opens the stored record id with a fresh consumer identity
// (no cached key).
func (r *rig) openStored(t *testing.T, s *quarantine.Store, id string) (string, error) {
	t.Helper()
	kms, err := vaultkms.New(vaultkms.Config{Vault: vaultconn.Config{Address: r.vault.Addr, CACertFile: r.vault.CACertPath},
		SVID: r.source(idConsumer), CertRole: "consumer"})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := recordcrypt.NewOpener(kms, recordcrypt.OpenerConfig{})
	defer o.Close()
	rec, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	k := rec.Kmsg()
	_, err = o.Open(context.Background(), rec.Topic, &k, nil)
	return string(k.Value), err
}

// TestRewrapQuarantined: records quarantined by a gateway without decrypt
// right are v1; after a rotation, the real `edgeid kafka rewrap` (logged
// in with an SVID whose role may only re-wrap) gives them v2 headers that
// still open; a second run changes nothing; with min_decryption_version
// raised to 2 the re-wrapped records open and an un-re-wrapped copy does
// not.
func TestRewrapQuarantined(t *testing.T) {
	r := newRig(t)
	prod := r.startEdge(idProducer, `cert_role = "producer"`)
	stranger := r.startEdge(idStranger, `cert_role = "stranger"`)
	lines := []string{"rewrap-seq001", "rewrap-seq002"}
	for _, l := range lines {
		t.Logf("attempt: %s to %s/0 through the producer's gateway", l, topic)
	}
	if _, stderr, err := r.runKcat(prod, strings.Join(lines, "\n")+"\n", "-P", "-t", topic, "-p", "0"); err != nil || strings.Contains(stderr, "ERROR") {
		t.Fatalf("kcat produce: %v\n%s", err, stderr)
	}
	t.Logf("attempt: kcat -C -p 0 through the stranger's gateway (no decrypt right)")
	if _, stderr, err := r.runKcat(stranger, "", "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", consumeFmt); err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, stderr)
	}
	store, _ := quarantine.Open(stranger.quarantine)
	ids, _ := store.List()
	control, _ := quarantine.Open(t.TempDir()) // a copy that is never re-wrapped
	if len(ids) != len(lines) {
		t.Fatalf("quarantine holds %v, want %d records", ids, len(lines))
	}
	first, _ := store.Get(ids[0])
	if _, err := control.Put(first); err != nil || headerVersion(t, store, ids[0]) != 1 {
		t.Fatalf("control copy: %v, or the record is not v1", err)
	}
	if _, err := r.vault.Client(t).Logical().Write("transit/keys/"+ring+"/rotate", nil); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	r.checkRewrapRuns(t, stranger.quarantine, len(ids))
	for i, id := range ids {
		v := headerVersion(t, store, id)
		value, err := r.openStored(t, store, id)
		t.Logf("%s: v%d after rewrap, opens: %v", id, v, err)
		if v != 2 || err != nil || value != lines[i] {
			t.Fatalf("%s after rewrap: v%d, %v, value %.20q", id, v, err, value)
		}
	}
	if _, err := r.vault.Client(t).Logical().Write("transit/keys/"+ring+"/config", map[string]any{"min_decryption_version": 2}); err != nil {
		t.Fatalf("raise min_decryption_version: %v", err)
	}
	value, err := r.openStored(t, store, ids[0])
	t.Logf("min_decryption_version 2: the re-wrapped record opens: %v", err)
	if err != nil || value != lines[0] {
		t.Fatalf("re-wrapped record with min_decryption_version 2: %v", err)
	}
	_, err = r.openStored(t, control, ids[0])
	t.Logf("min_decryption_version 2: the v1 copy: %v", err)
	if !errors.Is(err, recordcrypt.ErrUnknownKeyVersion) {
		t.Fatalf("v1 copy with min_decryption_version 2: %v, want ErrUnknownKeyVersion", err)
	}
}

// checkRewrapRuns runs the real `edgeid kafka rewrap` on dir: a dry run
// with a Vault token, which changes nothing; a run with the operator's
// SVID; a second run, which changes nothing.
func (r *rig) checkRewrapRuns(t *testing.T, dir string, n int) {
	cert, key, _ := r.svidFiles(idRewrap)
	vault := []string{"--vault-addr", r.vault.Addr, "--vault-ca", r.vault.CACertPath}
	for i, step := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"VAULT_TOKEN=" + r.vault.RootToken}, []string{"--dry-run"}, fmt.Sprintf("summary: %d would rewrap, 0 skipped, 0 failed", n)},
		{nil, []string{"--tls-cert", cert, "--tls-key", key, "--cert-role", "rewrap"}, fmt.Sprintf("summary: %d rewrapped, 0 skipped, 0 failed", n)},
		{nil, []string{"--tls-cert", cert, "--tls-key", key, "--cert-role", "rewrap"}, fmt.Sprintf("summary: 0 rewrapped, %d skipped, 0 failed", n)},
	} {
		t.Logf("attempt %d: edgeid kafka rewrap %s", i, strings.Join(step.args, " "))
		out, stderr, code := runEdgeid(t, step.env, append(append([]string{"kafka", "rewrap", dir}, vault...), step.args...)...)
		t.Logf("exit %d\n%s%s", code, out, stderr)
		if code != 0 || !strings.Contains(out, step.want) || strings.Contains(out+stderr, r.vault.RootToken) {
			t.Fatalf("step %d: exit %d, want %q (and no token)\n%s%s", i, code, step.want, out, stderr)
		}
	}
}
