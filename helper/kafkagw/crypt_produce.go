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
	merge := func(resp kmsg.Response) error {
		pr := resp.(*kmsg.ProduceResponse)
		for _, f := range failed {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = f.topic.Topic
			for _, p := range f.topic.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, f.code
				rt.Partitions = append(rt.Partitions, rp)
			}
			pr.Topics = append(pr.Topics, rt)
		}
		return nil
	}
	a.fix = chainFix(a.fix, merge)
	if len(keep) == 0 {
		if a.noResponse {
			return action{drop: true}
		}
		resp := kmsg.NewPtrProduceResponse()
		_ = a.fix(resp)
		return action{local: resp}
	}
	return a
}

// sealTopic seals every record of every partition of t in place and
// returns how many records it sealed.
func (s *session) sealTopic(t *kmsg.ProduceRequestTopic) (int, error) {
	sealer, err := s.g.crypt.sealer(t.Topic)
	if err != nil {
		return 0, err
	}
	codec := s.g.crypt.codec
	if s.scratch.dec == nil {
		s.scratch.dec = codec.NewDecoder()
	}
	n := 0
	for i := range t.Partitions {
		p := &t.Partitions[i]
		batches, tail, err := s.scratch.dec.Decode(p.Records)
		if err != nil {
			return n, fmt.Errorf("partition %d: %w", p.Partition, err)
		}
		if len(tail) > 0 {
			return n, fmt.Errorf("partition %d: %w: a partial batch", p.Partition, batch.ErrCorrupt)
		}
		// The partition's sealed values, in the connection's scratch: the
		// records refer to them until their batches are encoded below.
		values := s.scratch.values[:0]
		for j := range batches {
			if values, err = s.sealBatch(sealer, &batches[j], values, &n); err != nil {
				return n, fmt.Errorf("partition %d: %w", p.Partition, err)
			}
		}
		start := len(s.scratch.batches)
		out, err := codec.EncodeAll(s.scratch.batches, batches)
		if err != nil {
			return n, fmt.Errorf("partition %d: %w", p.Partition, err)
		}
		s.scratch.batches, s.scratch.values = out, keepScratch(values)
		p.Records = out[start:len(out):len(out)]
	}
	return n, nil
}

// sealBatch seals every record value of b into values, counting them in
// n, and sets the codec b is encoded with (SealedCompression).
func (s *session) sealBatch(sealer *recordcrypt.Sealer, b *batch.Batch, values []byte, n *int) ([]byte, error) {
	if b.Passthrough() {
		return values, errPassthroughBatch
	}
	size := 0
	for k := range b.Records {
		size += len(b.Records[k].Value) + recordcrypt.Overhead
	}
	values, sealed, err := sealer.SealAll(s.ctx, b.Records, slices.Grow(values, size))
	*n += sealed
	if err != nil {
		return values, err
	}
	s.g.cfg.Metrics.sealedBatch(b.Compression().String())
	if s.g.crypt.cfg.SealedCompression == SealedUncompressed {
		b.SetCompression(batch.None)
	}
	return values, err
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

// chainFix runs first (if any), then second.
func chainFix(first, second fixFunc) fixFunc {
	if first == nil {
		return second
	}
	return func(resp kmsg.Response) error {
		if err := first(resp); err != nil {
			return err
		}
		return second(resp)
	}
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
