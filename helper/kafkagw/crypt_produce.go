package kafkagw

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/batch"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errPassthroughBatch is a Produce batch the codec does not decode (a
// legacy-format or control batch): it cannot be sealed, so it is refused.
var errPassthroughBatch = errors.New("a legacy-format or control batch cannot be encrypted")

// sealCode is the Kafka error a topic gets when its records cannot be
// sealed (see README.md, "Record encryption").
func sealCode(err error) int16 {
	switch {
	case errors.Is(err, recordcrypt.ErrAccessDenied):
		return kerr.TopicAuthorizationFailed.Code
	case errors.Is(err, recordcrypt.ErrOutageBound), errors.Is(err, recordcrypt.ErrKMSUnavailable),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, batch.ErrChecksum):
		return kerr.CorruptMessage.Code
	}
	return kerr.InvalidRecord.Code
}

// sealReason labels a seal failure for the metric.
func sealReason(err error) string {
	switch {
	case errors.Is(err, errPassthroughBatch):
		return "passthrough_batch"
	case errors.Is(err, batch.ErrChecksum), errors.Is(err, batch.ErrCorrupt), errors.Is(err, batch.ErrTooLarge):
		return "corrupt_batch"
	}
	return recordcrypt.Reason(err)
}

// failedTopic is a topic cut from a Produce request, with its answer.
type failedTopic struct {
	topic kmsg.ProduceRequestTopic
	code  int16
}

// sealProduce seals every record value of the encrypted topics of r, the
// request a has passed. A topic that fails to seal is cut from the
// request and each of its partitions answered with sealCode; nothing of
// it goes upstream. Other topics go through.
func (s *session) sealProduce(r *kmsg.ProduceRequest, a action) action {
	s.scratch.batches = keepScratch(s.scratch.batches)
	var keep []kmsg.ProduceRequestTopic
	var failed []failedTopic
	sealed := false
	for _, t := range r.Topics {
		if !s.g.crypt.encrypted(t.Topic) {
			keep = append(keep, t)
			continue
		}
		n, err := s.sealTopic(&t)
		if err != nil {
			code := sealCode(err)
			s.g.cfg.Metrics.sealFailed(sealReason(err))
			// A client retries a retriable refusal every few hundred
			// milliseconds: log each topic at most once per interval.
			if s.g.denials.shouldLog("encrypt", policy.TopicResource(t.Topic), policy.Write, time.Now()) {
				s.log.Warn("Refused to produce: records not encrypted", "topic", t.Topic,
					"error", err.Error(), "kafka_error", kerr.ErrorForCode(code).Error())
			}
			failed = append(failed, failedTopic{topic: t, code: code})
			continue
		}
		s.g.cfg.Metrics.sealed(n)
		keep = append(keep, t)
		sealed = true
	}
	if !sealed && len(failed) == 0 {
		return a
	}
	r.Topics = keep
	a.modified = true
	if len(failed) == 0 {
		return a
	}
	return cutDenied(a, len(keep), kmsg.NewPtrProduceResponse, func(pr *kmsg.ProduceResponse) {
		for _, f := range failed {
			pr.Topics = append(pr.Topics, produceError(f.topic, f.code))
		}
	})
}

// sealTopic seals every record of every partition of t in place and
// returns how many records it sealed.
func (s *session) sealTopic(t *kmsg.ProduceRequestTopic) (int, error) {
	sealer, err := s.g.crypt.sealer(t.Topic)
	if err != nil {
		return 0, err
	}
	codec, sc := s.g.crypt.codec, &s.scratch
	if sc.dec == nil {
		sc.dec = codec.NewDecoder()
	}
	sc.seal = sealRun{ctx: s.ctx, sealer: sealer, values: sc.values}
	defer func() { sc.values, sc.seal = keepScratch(sc.seal.values), sealRun{} }()
	for i := range t.Partitions {
		p := &t.Partitions[i]
		batches, tail, err := sc.dec.Decode(p.Records)
		if err != nil {
			return sc.seal.n, fmt.Errorf("partition %d: %w", p.Partition, err)
		}
		if len(tail) > 0 {
			return sc.seal.n, fmt.Errorf("partition %d: %w: a partial batch", p.Partition, batch.ErrCorrupt)
		}
		start := len(sc.batches)
		out := sc.batches
		for j := range batches {
			if out, err = s.sealBatch(codec, out, &batches[j]); err != nil {
				return sc.seal.n, fmt.Errorf("partition %d: %w", p.Partition, err)
			}
		}
		sc.batches = out
		p.Records = out[start:len(out):len(out)]
	}
	return sc.seal.n, nil
}

// sealBatch appends b to dst, encoded in the codec SealedCompression
// says, with every record value sealed by s.scratch.seal as it goes.
func (s *session) sealBatch(codec *batch.Codec, dst []byte, b *batch.Batch) ([]byte, error) {
	if b.Passthrough() {
		return dst, errPassthroughBatch
	}
	produced := b.Compression()
	if s.g.crypt.cfg.SealedCompression == SealedUncompressed {
		b.SetCompression(batch.None)
	}
	dst, err := codec.EncodeEach(dst, b, s.scratch.seal.each)
	if err == nil {
		s.g.cfg.Metrics.sealedBatch(produced.String())
	}
	return dst, err
}

// sealRun seals a topic's records a run at a time as their batches are
// encoded (batch.Codec.EncodeEach), into one buffer: a run's sealed values
// are copied into the batch before the next run is sealed, so the buffer
// stays one run long and in the processor's cache. (Sealing a whole batch
// first and encoding it after moved every value through memory twice
// more.)
type sealRun struct {
	ctx    context.Context
	sealer *recordcrypt.Sealer
	values []byte
	n      int // records sealed
}

func (r *sealRun) each(run []kmsg.Record) error {
	size := 0
	for k := range run {
		size += len(run[k].Value) + recordcrypt.Overhead
	}
	var sealed int
	var err error
	r.values, sealed, err = r.sealer.SealAll(r.ctx, run, slices.Grow(r.values[:0], size))
	r.n += sealed
	return err
}

// sealScratch are the buffers the sealing of a connection's Produce
// requests reuses from one request to the next: decoded records, sealed
// values, re-encoded batches, and the re-encoded request and its parts.
// They belong to the reader goroutine, which sends a request before it
// plans the next, so a request's scratch is done with when the next one
// starts. Allocating them per request made the garbage collector a large
// share of sealing's cost.
type sealScratch struct {
	values, batches, body []byte
	// fwd are the parts of a re-encoded Produce request.
	fwd [][]byte
	// dec decodes the batches (made on first use).
	dec *batch.Decoder
	// seal seals a topic's records run by run as they are encoded.
	seal sealRun
}

// maxScratch bounds what a connection keeps between requests.
const maxScratch = 8 << 20

// keepScratch returns b emptied for the next request, or nil (left to the
// garbage collector) when it has grown past maxScratch.
func keepScratch(b []byte) []byte {
	if cap(b) > maxScratch {
		return nil
	}
	return b[:0]
}

// cryptFilter applies the encryption filter to a request the gateway
// forwards: Produce is sealed now, Fetch responses are opened.
func (s *session) cryptFilter(req kmsg.Request, a action) action {
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		return s.sealProduce(r, a)
	case *kmsg.FetchRequest:
		a.fix = chainFix(a.fix, s.openFetch)
	}
	return a
}
