package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors a Decode can fail with, each wrapped with the details.
var (
	// ErrCorrupt is a batch that does not follow the format: a length,
	// count or field that does not fit, or a payload that does not
	// decompress.
	ErrCorrupt = errors.New("batch: corrupt record batch")
	// ErrChecksum is a batch whose CRC32C does not match its content.
	ErrChecksum = errors.New("batch: record batch CRC32C mismatch")
	// ErrTooLarge is a batch whose records exceed Codec's MaxBatchBytes
	// once decompressed (a decompression bomb, or a limit set too low).
	ErrTooLarge = errors.New("batch: record batch over the size limit")
)

// DefaultMaxBatchBytes is the decompressed size limit of NewCodec(0).
const DefaultMaxBatchBytes = 64 << 20

// Offsets of the v2 batch header fields.
const (
	offLength     = 8
	offMagic      = 16
	offCRC        = 17
	offAttributes = 21
	headerLen     = 61
	// lengthBase is the part of headerLen that Length counts.
	lengthBase = headerLen - 12
	// minRecordLen is the smallest encoded record: length, attributes,
	// timestamp delta, offset delta, key, value and header count, one
	// byte each.
	minRecordLen = 7
)

const (
	attrCompression = 0x07
	attrControl     = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// A Codec decodes and encodes record batches. It is safe for concurrent
// use.
type Codec struct {
	max int

	zstdOnce sync.Once
	zstdDec  *zstd.Decoder
	zstdErr  error
}

// NewCodec returns a Codec that refuses a batch whose records take more
// than maxBatchBytes once decompressed; 0 means DefaultMaxBatchBytes.
func NewCodec(maxBatchBytes int) *Codec {
	if maxBatchBytes <= 0 {
		maxBatchBytes = DefaultMaxBatchBytes
	}
	return &Codec{max: maxBatchBytes}
}

// MaxBatchBytes is the decompressed size limit.
func (c *Codec) MaxBatchBytes() int { return c.max }

// Batch is one decoded record batch.
type Batch struct {
	// Header holds the batch header fields as read. Its Records field is
	// the records payload as read (compressed or not); Encode ignores it
	// and recomputes Length, CRC and NumRecords.
	Header kmsg.RecordBatch
	// Records are the decoded records, nil for a passthrough batch. Each
	// decoded record's Headers has room for one more header, so that one
	// can be appended without allocating.
	Records []kmsg.Record
	// Raw is the whole batch as read.
	Raw []byte
}

// Compression is the batch's compression codec.
func (b *Batch) Compression() Compression {
	return Compression(b.Header.Attributes & attrCompression)
}

// SetCompression sets the codec Encode compresses b's records with.
func (b *Batch) SetCompression(c Compression) {
	b.Header.Attributes = b.Header.Attributes&^attrCompression | int16(c)&attrCompression
}

// Control reports a control batch (transaction markers).
func (b *Batch) Control() bool { return b.Header.Attributes&attrControl != 0 }

// Passthrough reports a batch whose records are not decoded and that
// Encode writes back as read: a control batch or a legacy-format one.
func (b *Batch) Passthrough() bool { return b.Header.Magic != 2 || b.Control() }

// Decode splits src, the Records field of a Produce request partition or
// of a Fetch response partition, into its batches. A Fetch response may
// end with a partial batch (the broker cuts at its byte limit); those
// bytes are returned as tail, untouched. A Produce request has none.
func (c *Codec) Decode(src []byte) (batches []Batch, tail []byte, err error) {
	return (&Decoder{c: c}).Decode(src)
}

// A Decoder decodes as its Codec does, into storage it keeps from one
// Decode to the next: what a Decode returns is valid until the next
// Decode. A connection that decodes uncompressed batch after batch
// allocates nothing once its Decoder has grown to its batches' size and
// seen their header keys (up to 256 of up to 64 bytes). A fresh records
// array per batch was most of decoding's cost, in allocation and in the
// garbage collector's write barriers. It is not safe for concurrent use.
type Decoder struct {
	c       *Codec
	batches []Batch
	recs    []kmsg.Record
	hdrs    []kmsg.Header
	keys    keyInterner
	// payloads are the decompressed records of the last Decode's
	// batches, by index; their storage is kept for the next Decode.
	payloads [][]byte
}

// NewDecoder returns a Decoder of c.
func (c *Codec) NewDecoder() *Decoder { return &Decoder{c: c, keys: keyInterner{}} }

// maxKeptRecords bounds the records (and headers) a Decoder keeps between
// Decodes: past it, the storage of an exceptional batch is left to the
// garbage collector.
const maxKeptRecords = 64 << 10

// maxKeptPayload and maxKeptPayloads bound the decompression buffers a
// Decoder keeps between Decodes: past them, an exceptional batch's
// buffer is left to the garbage collector.
const (
	maxKeptPayload  = 4 << 20
	maxKeptPayloads = 16
)

// Reset drops d's references to what it last decoded (its records alias
// the bytes they were decoded from), keeping its storage for the next
// Decode, or dropping that too past maxKeptRecords.
func (d *Decoder) Reset() {
	if cap(d.recs) > maxKeptRecords || cap(d.hdrs) > maxKeptRecords {
		d.recs, d.hdrs = nil, nil
	}
	clear(d.recs[:cap(d.recs)])
	clear(d.hdrs[:cap(d.hdrs)])
	clear(d.batches[:cap(d.batches)])
	d.batches, d.recs, d.hdrs = d.batches[:0], d.recs[:0], d.hdrs[:0]
	if len(d.payloads) > maxKeptPayloads {
		clear(d.payloads[maxKeptPayloads:])
		d.payloads = d.payloads[:maxKeptPayloads]
	}
	for i, p := range d.payloads {
		if cap(p) > maxKeptPayload {
			d.payloads[i] = nil
		}
	}
}

// payload returns the kept decompression buffer of the i-th batch of a
// Decode, emptied.
func (d *Decoder) payload(i int) []byte {
	for len(d.payloads) <= i {
		d.payloads = append(d.payloads, nil)
	}
	return d.payloads[i][:0]
}

// Decode is Codec.Decode into d's storage.
func (d *Decoder) Decode(src []byte) (batches []Batch, tail []byte, err error) {
	d.Reset()
	for len(src) > 0 {
		if len(src) < offMagic+1 {
			return d.batches, src, nil
		}
		length := int32(binary.BigEndian.Uint32(src[offLength:]))
		if length < offMagic+1-12 {
			return nil, nil, fmt.Errorf("%w: batch length %d", ErrCorrupt, length)
		}
		if int64(length) > int64(len(src)-12) {
			return d.batches, src, nil
		}
		raw := src[: 12+int(length) : 12+int(length)]
		src = src[len(raw):]
		b, err := d.decodeOne(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("batch at offset %d: %w", int64(binary.BigEndian.Uint64(raw)), err)
		}
		d.batches = append(d.batches, b)
	}
	return d.batches, nil, nil
}

// decodeOne decodes one whole batch.
func (d *Decoder) decodeOne(raw []byte) (Batch, error) {
	c := d.c
	b := Batch{Raw: raw}
	b.Header.Magic = int8(raw[offMagic])
	if b.Header.Magic != 2 {
		b.Header.FirstOffset = int64(binary.BigEndian.Uint64(raw))
		b.Header.Length = int32(len(raw) - 12)
		return b, nil
	}
	if len(raw) < headerLen {
		return Batch{}, fmt.Errorf("%w: batch of %d bytes is shorter than its header", ErrCorrupt, len(raw))
	}
	if err := b.Header.ReadFrom(raw); err != nil {
		return Batch{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if got := crc32.Checksum(raw[offAttributes:], castagnoli); got != uint32(b.Header.CRC) {
		return Batch{}, fmt.Errorf("%w: computed %08x, header %08x", ErrChecksum, got, uint32(b.Header.CRC))
	}
	if b.Control() {
		return b, nil
	}
	payload := b.Header.Records
	comp := b.Compression()
	if comp > Zstd {
		return Batch{}, fmt.Errorf("%w: unknown compression %d", ErrCorrupt, comp)
	}
	if comp != None {
		var err error
		i := len(d.batches)
		if payload, err = c.decompress(d.payload(i), comp, payload, c.max); err != nil {
			return Batch{}, err
		}
		d.payloads[i] = payload
	} else if len(payload) > c.max {
		return Batch{}, fmt.Errorf("%w: %d bytes of records, limit %d", ErrTooLarge, len(payload), c.max)
	}
	start := len(d.recs)
	var err error
	if d.recs, d.hdrs, err = parseRecords(payload, b.Header.NumRecords, d.recs, d.hdrs, d.keys); err != nil {
		return Batch{}, err
	}
	b.Records = d.recs[start:len(d.recs):len(d.recs)]
	return b, nil
}

// Encode appends b to dst in wire form: a passthrough batch as read;
// otherwise its records, compressed with the batch's compression, under
// its header with Length, NumRecords and the CRC32C recomputed.
func (c *Codec) Encode(dst []byte, b *Batch) ([]byte, error) {
	return c.EncodeEach(dst, b, nil)
}

// EachRun is how many records EncodeEach hands its function at a time:
// about 64 KiB of 1 KiB records, so that what the function writes for a
// run is still in the processor's cache when the run is encoded.
const EachRun = 64

// EncodeEach is Encode, calling each (unless nil) on the records of a
// non-passthrough batch, a run of at most EachRun at a time, just before
// the run is encoded: each may change the records (sealing their values),
// and the run's fields are copied into dst before each is called again,
// so that every run can use the same buffer. An error from each is
// returned as is.
func (c *Codec) EncodeEach(dst []byte, b *Batch, each func([]kmsg.Record) error) ([]byte, error) {
	if b.Passthrough() {
		return append(dst, b.Raw...), nil
	}
	if len(b.Records) > math.MaxInt32 {
		return nil, fmt.Errorf("batch: %d records do not fit a batch", len(b.Records))
	}
	start := len(dst)
	h := b.Header
	h.Records = nil
	h.NumRecords = int32(len(b.Records))
	dst = h.AppendTo(dst)
	comp := b.Compression()
	// Uncompressed, the records go straight into dst, and the CRC32C is
	// taken run by run while the run is in the cache; compressed, they go
	// into a buffer of their own first.
	var plain []byte
	crc := crc32.Update(0, castagnoli, dst[start+offAttributes:])
	if each == nil {
		// Room for every record at once: grown record by record, a
		// batch of small records was copied over and over.
		if comp != None {
			plain = make([]byte, 0, recordsSize(b.Records))
		} else {
			dst = slices.Grow(dst, recordsSize(b.Records))
		}
	}
	for recs := b.Records; len(recs) > 0; {
		run := recs[:min(len(recs), EachRun)]
		recs = recs[len(run):]
		if each != nil {
			before := 0
			if comp != None && plain == nil {
				before = recordsSize(run)
			}
			if err := each(run); err != nil {
				return nil, err
			}
			if before > 0 {
				// Room for the whole batch as each changes it, judged
				// by how the first run grew: sized before the change, the
				// buffer was copied to a larger one near its end.
				plain = make([]byte, 0, changedSize(recordsSize(run), before, recordsSize(recs)))
			}
		}
		if comp != None {
			plain = appendRecords(plain, run)
			continue
		}
		at := len(dst)
		dst = appendRecords(slices.Grow(dst, recordsSize(run)), run)
		crc = crc32.Update(crc, castagnoli, dst[at:])
	}
	if comp != None {
		var err error
		if dst, err = compress(dst, comp, plain); err != nil {
			return nil, err
		}
		crc = crc32.Checksum(dst[start+offAttributes:], castagnoli)
	}
	out := dst[start:]
	if int64(len(out))-12 > math.MaxInt32 {
		return nil, fmt.Errorf("batch: encoded batch of %d bytes is too long", len(out))
	}
	binary.BigEndian.PutUint32(out[offLength:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[offCRC:], crc)
	return dst, nil
}

// changedSize is the size of a batch's records once changed, when its
// first run went from before to after bytes and rest bytes follow it.
func changedSize(after, before, rest int) int {
	return after + int(int64(rest)*int64(after)/int64(before)) + after/8
}

// EncodeAll appends every batch to dst, in order.
func (c *Codec) EncodeAll(dst []byte, batches []Batch) ([]byte, error) {
	for i := range batches {
		var err error
		if dst, err = c.Encode(dst, &batches[i]); err != nil {
			return nil, err
		}
	}
	return dst, nil
}
