package recordspire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/test/harness"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	firstBatch  = 20               // messages before the first checks
	rotationMin = 40 * time.Second // the rotation phase runs at least this long,
	rotationMax = 75 * time.Second // and at most this long
	outageMax   = 40 * time.Second // bound on the outage grace before the test calls the bound ignored
	afterOutage = 10               // messages after Vault is back
	// outageKeys makes the producer's data key due every 4 s and lets it
	// seal 6 s past that while Vault is down: a small outage bound.
	outageKeys = "    key_max_age    = \"4s\"\n    outage_max_age = \"6s\""
)

// TestRecordEncryptionRealSPIRE is issue 19's acceptance with every
// identity from a real SPIRE: kcat produces numbered messages through the
// producer's edgeid-helper, the brokers store only sealed values, kcat
// reads the exact plaintext back through the consumer's helper; the
// producer keeps producing across SVID rotations, logging in to Vault
// with each current SVID; with Vault stopped it keeps sealing with the
// data key it holds until its outage bound, then fails closed with
// KAFKA_STORAGE_ERROR; with Vault back, the message held by kcat goes
// through and every message is consumed exactly once, in order.
func TestRecordEncryptionRealSPIRE(t *testing.T) {
	tb := harness.EchoFailures(t)
	began := time.Now()
	r := newRig(tb)
	prod := r.startHelper(producerUID, idProducer, "producer", outageKeys)
	cons := r.startHelper(consumerUID, idConsumer, "consumer", "")
	s := &sender{t: tb, r: r, h: prod}
	tb.Logf("setup took %s", time.Since(began).Round(time.Second))

	for range firstBatch {
		s.produce("first batch")
	}
	r.checkStoredSealed(tb, s)
	r.checkConsumed(tb, cons, s)

	r.checkRotation(tb, s)
	r.checkOutage(tb, s, prod)
	r.checkStoredSealed(tb, s)
	r.checkConsumed(tb, cons, s)
	tb.Logf("whole test: %s, %d messages", time.Since(began).Round(time.Second), len(s.sent))
}

// sender produces numbered messages through one helper, one kcat run per
// message, logging each attempt before it is made.
type sender struct {
	t    testing.TB
	r    *rig
	h    *helper
	sent []string // values by sequence number - 1
}

// next makes and logs the next message: its key and value.
func (s *sender) next(phase string) (key, value string) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	seq := len(s.sent) + 1
	key, value = fmt.Sprintf("k%05d", seq), fmt.Sprintf("rs-seq%05d-%s-person@cam7", seq, hex.EncodeToString(b))
	s.t.Logf("attempt: seq %d (%s)", seq, phase)
	s.sent = append(s.sent, value)
	return key, value
}

// start runs kcat for the next message and returns it running, with its
// stderr.
func (s *sender) start(ctx context.Context, phase string, extra ...string) (*exec.Cmd, *harness.SyncBuffer) {
	key, value := s.next(phase)
	args := append([]string{"-P", "-t", topic, "-K", ":", "-X", "max.in.flight.requests.per.connection=1"}, extra...)
	cmd := s.r.kcat(ctx, s.h, key+":"+value+"\n", args...)
	errb := &harness.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = errb, errb
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	return cmd, errb
}

// produce sends the next message and fails the test unless kcat
// delivered it.
func (s *sender) produce(phase string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, out := s.start(ctx, phase, "-X", "message.timeout.ms=20000")
	if err := cmd.Wait(); err != nil || strings.Contains(out.String(), "ERROR") {
		s.t.Fatalf("kcat produce seq %d: %v\n%s", len(s.sent), err, out.String())
	}
}

// checkStoredSealed reads the topic straight from the brokers: one record
// per message sent, each with the edgeid-enc header, none with any part
// of any message's value in its value or header.
func (r *rig) checkStoredSealed(t testing.TB, s *sender) {
	if got := r.arrivedCount(); got != len(s.sent) {
		t.Fatalf("the brokers received %d records, %d messages were sent", got, len(s.sent))
	}
	cl := r.direct(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < len(s.sent) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d stored records directly", len(recs), len(s.sent))
		}
		fs.EachRecord(func(rec *kgo.Record) { recs = append(recs, rec) })
	}
	for _, rec := range recs {
		if len(rec.Headers) != 1 || rec.Headers[0].Key != recordcrypt.HeaderKey {
			t.Fatalf("stored record %d/%d has headers %v, want only %s", rec.Partition, rec.Offset, rec.Headers, recordcrypt.HeaderKey)
		}
		stored := append(append([]byte{}, rec.Value...), rec.Headers[0].Value...)
		if bytes.Contains(stored, []byte("rs-seq")) || bytes.Contains(stored, []byte("person@cam7")) {
			t.Fatalf("stored record %d/%d holds plaintext", rec.Partition, rec.Offset)
		}
		for _, v := range s.sent {
			if bytes.Contains(stored, []byte(v[12:36])) { // the value's random part
				t.Fatalf("stored record %d/%d holds the plaintext of %.11s", rec.Partition, rec.Offset, v)
			}
		}
	}
	t.Logf("check: %d stored records read directly from the brokers, all sealed", len(recs))
}

// checkConsumed reads the whole topic through the consumer's helper with
// kcat: every message sent exactly once, with its exact value, in
// sequence order within each partition.
func (r *rig) checkConsumed(t testing.TB, cons *helper, s *sender) {
	t.Logf("attempt: kcat -C through the consumer's helper, %d messages expected", len(s.sent))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := r.kcat(ctx, cons, "", "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p %k %s\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, errb.String())
	}
	seen := map[int]bool{}
	last := map[string]int{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || len(f[1]) != 6 {
			t.Fatalf("consumed line %q: not a message sent", sc.Text())
		}
		seq, err := strconv.Atoi(f[1][1:])
		switch {
		case err != nil || seq < 1 || seq > len(s.sent) || f[2] != s.sent[seq-1]:
			t.Fatalf("consumed %q: not the exact plaintext of a message sent", sc.Text())
		case seen[seq]:
			t.Fatalf("seq %d consumed twice", seq)
		case seq < last[f[0]]:
			t.Fatalf("partition %s: seq %d after seq %d", f[0], seq, last[f[0]])
		}
		seen[seq], last[f[0]] = true, seq
	}
	for seq := 1; seq <= len(s.sent); seq++ {
		if !seen[seq] {
			t.Errorf("seq %d was never consumed", seq)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("check: %d messages consumed through the consumer's helper, each once, exact, in order", len(seen))
}

// checkRotation keeps producing until the producer's gateway has logged
// in to Vault with at least three SVIDs (two rotations), one login
// happening after the first login's SVID had expired.
func (r *rig) checkRotation(t testing.TB, s *sender) {
	began := time.Now()
	for {
		s.produce("rotation")
		time.Sleep(200 * time.Millisecond)
		serials, span := producerLogins(r.logins())
		elapsed := time.Since(began)
		if len(serials) >= 3 && span > workloadSVIDTTL && elapsed >= rotationMin {
			for _, l := range r.logins() {
				t.Logf("vault audit: %s cert login, role %s, SVID serial %s", l.at.Format(time.TimeOnly), l.role, l.serial)
			}
			t.Logf("check: producer logged in to Vault with %d SVIDs over %s (SVID TTL %s); %d messages produced across them",
				len(serials), span.Round(time.Second), workloadSVIDTTL, len(s.sent))
			return
		}
		if elapsed > rotationMax {
			t.Fatalf("after %s: producer logins with %d distinct SVIDs over %s; want ≥ 3 over more than %s\n%v",
				elapsed.Round(time.Second), len(serials), span, workloadSVIDTTL, r.logins())
		}
	}
}

// producerLogins is the distinct SVID serials of the producer's logins
// and the time from the first login to the last.
func producerLogins(ls []login) (map[string]bool, time.Duration) {
	serials := map[string]bool{}
	var first, last time.Time
	for _, l := range ls {
		if l.role != "producer" || l.serial == "" {
			continue
		}
		if first.IsZero() {
			first = l.at
		}
		serials[l.serial], last = true, l.at
	}
	return serials, last.Sub(first)
}

// checkOutage stops Vault while messages keep coming: they are sealed
// with the data key held until its outage bound, then refused
// (KAFKA_STORAGE_ERROR, which kcat retries) with nothing reaching the
// brokers; with Vault restarted (same storage, unsealed) the held
// message goes through and production resumes.
func (r *rig) checkOutage(t testing.TB, s *sender, prod *helper) {
	before := r.arrivedCount()
	r.vault.Stop(t)
	stopped := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	for grace := 0; ; {
		if time.Since(stopped) > outageMax {
			t.Fatalf("%d messages sealed in %s of Vault outage: the outage bound (outage_max_age 6s past key_max_age 4s) was not applied", grace, outageMax)
		}
		cmd, out := s.start(ctx, "vault outage", "-X", "message.timeout.ms=120000", "-d", "msg")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil || strings.Contains(out.String(), "ERROR") {
				t.Fatalf("kcat produce seq %d in the outage grace: %v\n%s", len(s.sent), err, out.String())
			}
			if grace++; r.arrivedCount() != before+grace {
				t.Fatalf("kcat was told seq %d was delivered in the outage, but the brokers received %d records of the %d messages since Vault stopped: lost", len(s.sent), r.arrivedCount()-before, grace)
			}
			time.Sleep(200 * time.Millisecond)
		case <-time.After(3 * time.Second):
			r.waitHeld(t, prod, done, out, s, grace, before, stopped)
			return
		}
	}
}

// waitHeld: the message kcat holds is refused with the documented error
// and nothing reaches the brokers; Vault is restarted and unsealed; the
// held message is delivered, and production resumes.
func (r *rig) waitHeld(t testing.TB, prod *helper, done <-chan error, out *harness.SyncBuffer, s *sender, grace, before int, stopped time.Time) {
	if grace < 1 || r.arrivedCount() != before+grace {
		t.Fatalf("in the outage grace %d messages were delivered and %d records reached the brokers; want ≥ 1, all of them", grace, r.arrivedCount()-before)
	}
	t.Logf("check: %d messages sealed with the held data key in %s of Vault outage; seq %d is held", grace, time.Since(stopped).Round(time.Second), len(s.sent))
	harness.Eventually(t, 20*time.Second, func() error {
		log := prod.log.String()
		if !strings.Contains(log, "Refused to produce: records not encrypted") || !strings.Contains(log, recordcrypt.ErrOutageBound.Error()) {
			return fmt.Errorf("the producer's helper has not logged the refusal naming the outage bound")
		}
		if !strings.Contains(out.String(), "Disk error") && !strings.Contains(out.String(), "KAFKA_STORAGE_ERROR") {
			return fmt.Errorf("kcat has not been told KAFKA_STORAGE_ERROR:\n%s", tail(out.String(), 20))
		}
		return nil
	})
	t.Logf("producer's helper: %s", firstLine(prod.log.String(), recordcrypt.ErrOutageBound.Error()))
	t.Logf("kcat: %s", firstLine(out.String(), "Disk error"))
	at := r.arrivedCount()
	time.Sleep(2 * time.Second)
	if got := r.arrivedCount(); got != at {
		t.Fatalf("%d records reached the brokers past the outage bound", got-at)
	}
	t.Logf("check: past the outage bound the produce is refused (KAFKA_STORAGE_ERROR to kcat, the helper's log names the bound); nothing reaches the brokers")
	r.vault.Start(t)
	r.unseal()
	select {
	case err := <-done:
		if err != nil || strings.Contains(out.String(), "% ERROR") {
			t.Fatalf("the held message seq %d after Vault's restart: %v\n%s", len(s.sent), err, tail(out.String(), 30))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the held message seq %d was not delivered within 60 s of Vault's restart", len(s.sent))
	}
	t.Logf("check: Vault restarted and unsealed; the held seq %d was delivered", len(s.sent))
	for range afterOutage {
		s.produce("after the outage")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// firstLine is the first line of s that contains substr.
func firstLine(s, substr string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}
