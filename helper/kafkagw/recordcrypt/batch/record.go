package batch

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// reader reads the varint-encoded record fields of one record.
type reader struct {
	src []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: record %s", ErrCorrupt, what)
	}
	r.src = nil
}

func (r *reader) varlong(what string) int64 {
	v, n := binary.Varint(r.src)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.src = r.src[n:]
	return v
}

func (r *reader) varint(what string) int32 {
	v := r.varlong(what)
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail(what)
		return 0
	}
	return int32(v)
}

// bytes reads varint-length-prefixed bytes; length -1 is null (nil), an
// empty field is a non-nil empty slice.
func (r *reader) bytes(what string, nullable bool) []byte {
	l := r.varint(what)
	if r.err != nil {
		return nil
	}
	if l == -1 && nullable {
		return nil
	}
	if l < 0 || int(l) > len(r.src) {
		r.fail(what)
		return nil
	}
	b := r.src[:l:l]
	r.src = r.src[l:]
	return b
}

// parseRecords parses n records that fill payload exactly, appending them
// to recs and their headers to hdrs. Their Key, Value and header values
// alias payload.
func parseRecords(payload []byte, n int32, recs []kmsg.Record, hdrs []kmsg.Header, keys keyInterner) ([]kmsg.Record, []kmsg.Header, error) {
	if n < 0 || int64(n) > int64(len(payload)/minRecordLen) {
		return nil, nil, fmt.Errorf("%w: %d records cannot fit %d bytes", ErrCorrupt, n, len(payload))
	}
	start := len(recs)
	recs = slices.Grow(recs, int(n))[:start+int(n)]
	rest := payload
	for i := range int(n) {
		r := reader{src: rest}
		length := r.varint("length")
		if r.err != nil || length < 0 || int(length) > len(r.src) {
			return nil, nil, fmt.Errorf("%w: record %d length", ErrCorrupt, i)
		}
		rest = r.src[length:]
		rec := &recs[start+i] // zero: grown, or cleared by the Decoder
		var err error
		if hdrs, err = parseRecord(rec, r.src[:length], hdrs, keys); err != nil {
			return nil, nil, fmt.Errorf("record %d: %w", i, err)
		}
		rec.Length = length
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(rest))
	}
	return recs, hdrs, nil
}

// parseRecord parses one record body (after its length) into rec. Its
// headers are appended to hdrs followed by one spare slot, and rec.Headers
// is that run with capacity for the spare.
func parseRecord(rec *kmsg.Record, body []byte, hdrs []kmsg.Header, keys keyInterner) ([]kmsg.Header, error) {
	r := reader{src: body}
	if len(r.src) == 0 {
		return hdrs, fmt.Errorf("%w: empty record", ErrCorrupt)
	}
	rec.Attributes = int8(r.src[0])
	r.src = r.src[1:]
	rec.TimestampDelta64 = r.varlong("timestamp delta")
	rec.TimestampDelta = int32(rec.TimestampDelta64)
	rec.OffsetDelta = r.varint("offset delta")
	rec.Key = r.bytes("key", true)
	rec.Value = r.bytes("value", true)
	count := r.varint("header count")
	if r.err != nil {
		return hdrs, r.err
	}
	// Each header takes at least two bytes.
	if count < 0 || int(count) > len(r.src)/2 {
		return hdrs, fmt.Errorf("%w: %d headers", ErrCorrupt, count)
	}
	first := len(hdrs)
	for range count {
		k := r.bytes("header key", false)
		v := r.bytes("header value", true)
		if r.err != nil {
			return hdrs, r.err
		}
		hdrs = append(hdrs, kmsg.Header{Key: keys.intern(k), Value: v})
	}
	if len(r.src) != 0 {
		return hdrs, fmt.Errorf("%w: %d bytes after the record's fields", ErrCorrupt, len(r.src))
	}
	hdrs = append(hdrs, kmsg.Header{})
	last := len(hdrs) - 1
	rec.Headers = hdrs[first:last:len(hdrs)]
	if count == 0 {
		rec.Headers = hdrs[last:last:len(hdrs)]
	}
	return hdrs, nil
}

// keyInterner keeps the header keys a Decoder has seen, so that a key
// already seen costs no allocation: a topic's records carry the same few
// header keys over and over. Nil interns nothing.
type keyInterner map[string]string

// An interner keeps at most maxInternedKeys keys of at most
// maxInternedKeyLen bytes (at most 16 KiB per Decoder, whatever a client
// sends); other keys are allocated each time.
const (
	maxInternedKeys   = 256
	maxInternedKeyLen = 64
)

func (m keyInterner) intern(k []byte) string {
	if s, ok := m[string(k)]; ok {
		return s
	}
	s := string(k)
	if m != nil && len(m) < maxInternedKeys && len(k) <= maxInternedKeyLen {
		m[s] = s
	}
	return s
}

// varintLen is the size of v as a zig-zag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

// bodyLen is the encoded size of rec after its length prefix.
func bodyLen(rec *kmsg.Record) int {
	n := 1 + varintLen(timestampDelta(rec)) + varintLen(int64(rec.OffsetDelta)) +
		bytesLen(rec.Key) + bytesLen(rec.Value) + varintLen(int64(len(rec.Headers)))
	for i := range rec.Headers {
		h := &rec.Headers[i]
		n += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	return n
}

func timestampDelta(rec *kmsg.Record) int64 {
	if rec.TimestampDelta64 != 0 {
		return rec.TimestampDelta64
	}
	return int64(rec.TimestampDelta)
}

// recordsSize is the encoded size of recs.
func recordsSize(recs []kmsg.Record) int {
	n := 0
	for i := range recs {
		l := bodyLen(&recs[i])
		n += varintLen(int64(l)) + l
	}
	return n
}

// appendRecords appends recs in wire form, each with its Length
// recomputed.
func appendRecords(dst []byte, recs []kmsg.Record) []byte {
	for i := range recs {
		rec := &recs[i]
		rec.Length = int32(bodyLen(rec))
		dst = rec.AppendTo(dst)
	}
	return dst
}
