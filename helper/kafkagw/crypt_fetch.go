package kafkagw

import (
	"slices"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/batch"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/quarantine"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Actions on a record of an encrypted topic that reaches the app other
// than opened, the "action" label of the metrics.
const (
	actionPassed           = "passed"            // passed on as received
	actionQuarantined      = "quarantined"       // written to quarantine (and passed on, if encrypted)
	actionWithheld         = "withheld"          // plaintext, quarantined and not passed on
	actionQuarantineFailed = "quarantine_failed" // the write failed; passed on as received
)

// openFetch opens the records of encrypted topics in a Fetch response.
// A record that cannot be opened is never lost: it is passed on as
// received (after being quarantined, by policy). Plaintext records are
// passed, or quarantined and replaced by a marker, by policy.
func (s *session) openFetch(resp kmsg.Response) error {
	fr := resp.(*kmsg.FetchResponse)
	// The last response was encoded into its frame before this one was
	// read: its opened batches are done with.
	s.fetchScratch.batches = keepScratch(s.fetchScratch.batches)
	for i := range fr.Topics {
		t := &fr.Topics[i]
		if !s.g.crypt.encrypted(t.Topic) {
			continue
		}
		for j := range t.Partitions {
			s.openPartition(t.Topic, &t.Partitions[j])
		}
	}
	return nil
}

// openPartition opens one partition's records in place. Batches that do
// not decode are passed on untouched (the client checks them too).
func (s *session) openPartition(topic string, p *kmsg.FetchResponseTopicPartition) {
	if len(p.RecordBatches) == 0 {
		return
	}
	c := s.g.crypt
	dec, _ := c.decoders.Get().(*batch.Decoder)
	if dec == nil {
		dec = c.codec.NewDecoder()
	}
	defer func() {
		dec.Reset() // the batches are re-encoded by then
		c.decoders.Put(dec)
	}()
	batches, tail, err := dec.Decode(p.RecordBatches)
	if err != nil {
		s.g.cfg.Metrics.undecryptable("corrupt_batch", actionPassed)
		s.log.Warn("Passing on a record batch that does not decode", "topic", topic, "partition", p.Partition, "error", err.Error())
		return
	}
	if !s.anythingToOpen(batches) {
		return
	}
	sc := &s.fetchScratch
	start := len(sc.batches)
	// Opened batches are shorter than sealed ones: room for all at once.
	out := slices.Grow(sc.batches, len(p.RecordBatches))
	sc.open = openRun{s: s, topic: topic, partition: p.Partition, values: sc.values}
	defer func() { sc.values, sc.open = keepScratch(sc.open.values), openRun{} }()
	for j := range batches {
		b := &batches[j]
		if !b.Passthrough() {
			// An opened batch goes to the app beside the gateway: it is
			// handed over uncompressed instead of compressed again.
			b.SetCompression(batch.None)
		}
		sc.open.b = b
		if out, err = c.codec.EncodeEach(out, b, sc.open.each); err != nil {
			// Unreachable for batches that decoded; keep what was received.
			s.log.Error("Re-encoding a fetched batch failed; passing it on as received", "topic", topic, "error", err.Error())
			return
		}
	}
	if !sc.open.changed {
		return // nothing opened or withheld: the batches as received
	}
	out = append(out, tail...)
	sc.batches = out
	p.RecordBatches = out[start:len(out):len(out)]
}

// anythingToOpen reports whether a record of batches is sealed, or is
// plaintext that the policy does not pass as it is: otherwise the batches
// go on as received, not encoded again.
func (s *session) anythingToOpen(batches []batch.Batch) bool {
	allow := s.g.crypt.cfg.Plaintext == PlaintextAllow
	for j := range batches {
		for k := range batches[j].Records {
			rec := &batches[j].Records[k]
			if recordcrypt.Encrypted(rec) || !allow && rec.Value != nil {
				return true
			}
		}
	}
	return false
}

// fetchScratch are the buffers opening a connection's Fetch responses
// reuses from one response to the next: opened values (one run of records
// at a time, see openRun) and the encoded batches of a response (until it
// is encoded into its frame). They belong to the upstream reader, which
// handles one response at a time; allocating them per response (up to the
// client's fetch size each) was most of the garbage opening made.
type fetchScratch struct {
	values, batches []byte
	// open opens a partition's records run by run as they are encoded.
	open openRun
}

// openRun opens the records of one partition's batches a run at a time,
// as each batch is encoded (batch.Codec.EncodeEach), into one buffer: a
// run's opened values are copied into the batch before the next run is
// opened (see sealRun). Records are changed in place: opened, replaced by
// a marker when quarantined plaintext is withheld, or left as received.
type openRun struct {
	s         *session
	topic     string
	partition int32
	b         *batch.Batch // the batch being encoded
	values    []byte
	// changed: a record was opened or withheld.
	changed bool
}

func (r *openRun) each(run []kmsg.Record) error {
	s, b := r.s, r.b
	c, m := s.g.crypt, s.g.cfg.Metrics
	// Room for every opened value at once: each is shorter than its
	// sealed form.
	size := 0
	for k := range run {
		size += len(run[k].Value)
	}
	buf := slices.Grow(r.values[:0], size)
	opened := 0
	for k := range run {
		rec := &run[k]
		if !recordcrypt.Encrypted(rec) {
			if rec.Value == nil {
				// A tombstone: a null value is never sealed, so that
				// compaction keeps working.
				continue
			}
			if c.cfg.Plaintext == PlaintextAllow {
				m.plaintext(actionPassed)
				continue
			}
			if s.quarantine(r.topic, r.partition, b, rec, recordcrypt.ErrNotEncrypted) {
				m.plaintext(actionWithheld)
				*rec = withheld(rec)
				r.changed = true
				continue
			}
			m.plaintext(actionQuarantineFailed)
			continue
		}
		var err error
		if buf, err = c.opener.Open(s.ctx, r.topic, rec, buf); err != nil {
			s.undecryptable(r.topic, r.partition, b, rec, err)
		} else {
			opened++
			r.changed = true
		}
	}
	r.values = buf
	m.opened(opened)
	return nil
}

// WithheldHeader marks the record that stands in for a withheld one.
const WithheldHeader = "edgeid-withheld"

// withheld is the record the app gets in place of a quarantined
// plaintext record: same offset and timestamp, null key and value, and
// the header edgeid-withheld = "plaintext". The record is replaced, not
// removed: librdkafka 2.0.2 aborts on a batch left with no records
// (rdbuf.c rd_slice_init_full assertion), and the app's offsets stay
// contiguous.
func withheld(rec *kmsg.Record) kmsg.Record {
	return kmsg.Record{Attributes: rec.Attributes, TimestampDelta64: rec.TimestampDelta64, OffsetDelta: rec.OffsetDelta,
		Headers: []kmsg.Header{{Key: WithheldHeader, Value: []byte("plaintext")}}}
}

// undecryptable handles a record Open refused: logged, counted, and
// quarantined by policy; the record itself goes on as received.
func (s *session) undecryptable(topic string, partition int32, b *batch.Batch, rec *kmsg.Record, err error) {
	reason := recordcrypt.Reason(err)
	act := actionPassed
	if s.g.crypt.cfg.Undecryptable == UndecryptableQuarantine {
		act = actionQuarantined
		if !s.quarantine(topic, partition, b, rec, err) {
			act = actionQuarantineFailed
		}
	}
	s.g.cfg.Metrics.undecryptable(reason, act)
	s.log.Debug("Record not decrypted; passing it on encrypted", "topic", topic, "partition", partition,
		"offset", b.Header.FirstOffset+int64(rec.OffsetDelta), "reason", reason, "action", act)
}

// quarantine writes rec as received to the quarantine directory and
// reports whether it is there (now or from an earlier fetch).
func (s *session) quarantine(topic string, partition int32, b *batch.Batch, rec *kmsg.Record, cause error) bool {
	q := s.g.crypt.quarantine
	qr := quarantine.FromRecord(topic, partition, &b.Header, rec, cause)
	added, err := q.Put(qr)
	if err != nil {
		s.log.Error("Quarantine write failed; the record goes on as received", "topic", topic,
			"partition", partition, "offset", qr.Offset, "error", err.Error())
		return false
	}
	if added {
		s.log.Warn("Record quarantined", "topic", topic, "partition", partition, "offset", qr.Offset, "reason", qr.Reason)
	}
	return true
}
