package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression is a batch's compression codec, the low three bits of its
// attributes.
type Compression int8

// The codecs of Kafka's message format v2.
const (
	None   Compression = 0
	Gzip   Compression = 1
	Snappy Compression = 2
	LZ4    Compression = 3
	Zstd   Compression = 4
)

// String names c as Kafka's compression.type does.
func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("unknown(%d)", int8(c))
}

// xerialMagic starts a snappy payload in the xerial framing the Java client
// writes: the magic, then two big-endian int32 versions, then blocks each
// prefixed by its big-endian int32 length.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderLen = 16

// zstdEncoder is safe for concurrent EncodeAll calls.
var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
})

// Readers of the streaming codecs with the source they read, reset for
// each batch: a new reader allocates its window and block buffers every
// time. A pooled one keeps no reference to the batch it last read.
type (
	gzipSource struct {
		src bytes.Reader
		r   *gzip.Reader
	}
	lz4Source struct {
		src bytes.Reader
		r   *lz4.Reader
	}
)

var gzipReaders, lz4Readers sync.Pool // *gzipSource, *lz4Source

// decompress returns the records payload of a batch compressed with c,
// written over dst's storage (dst[:0], grown as needed), refusing to
// produce more than limit bytes.
func (cd *Codec) decompress(dst []byte, c Compression, src []byte, limit int) ([]byte, error) {
	switch c {
	case Gzip:
		g, _ := gzipReaders.Get().(*gzipSource)
		if g == nil {
			g = new(gzipSource)
		}
		defer func() { g.src.Reset(nil); gzipReaders.Put(g) }()
		g.src.Reset(src)
		var err error
		if g.r == nil {
			g.r, err = gzip.NewReader(&g.src)
		} else {
			err = g.r.Reset(&g.src)
		}
		if err != nil {
			g.r = nil // a reader whose Reset failed is not reused
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		return readLimited(dst, g.r, limit, "gzip")
	case Snappy:
		if bytes.HasPrefix(src, xerialMagic) {
			return unxerial(dst, src, limit)
		}
		return unsnappy(dst[:0], src, limit)
	case LZ4:
		l, _ := lz4Readers.Get().(*lz4Source)
		if l == nil {
			l = &lz4Source{r: lz4.NewReader(nil)}
		}
		defer func() { l.src.Reset(nil); lz4Readers.Put(l) }()
		l.src.Reset(src)
		l.r.Reset(&l.src)
		return readLimited(dst, l.r, limit, "lz4")
	case Zstd:
		return cd.unzstd(dst, src, limit)
	}
	return nil, fmt.Errorf("%w: compression %s", ErrCorrupt, c)
}

// readLimited reads r to its end over dst's storage, refusing more than
// limit bytes.
func readLimited(dst []byte, r io.Reader, limit int, name string) ([]byte, error) {
	dst = dst[:0]
	for {
		if len(dst) == cap(dst) {
			// Room to read limit+1 bytes at most: one more than allowed
			// tells a payload over the limit.
			dst = slices.Grow(dst, min(max(cap(dst), 64<<10), limit+1-len(dst)))
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), limit+1)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return nil, fmt.Errorf("%w: %s records exceed %d bytes", ErrTooLarge, name, limit)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
		}
	}
}

// unsnappy appends the decoding of one raw snappy block to dst.
func unsnappy(dst, src []byte, limit int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	if n > limit-len(dst) {
		return nil, fmt.Errorf("%w: snappy records exceed %d bytes", ErrTooLarge, limit)
	}
	if cap(dst)-len(dst) < n {
		dst = append(make([]byte, 0, len(dst)+n), dst...)
	}
	out, err := s2.Decode(dst[len(dst):len(dst)+n], src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	return dst[:len(dst)+len(out)], nil
}

// unxerial decodes xerial-framed snappy over dst's storage.
func unxerial(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < xerialHeaderLen {
		return nil, fmt.Errorf("%w: xerial snappy header truncated", ErrCorrupt)
	}
	src = src[xerialHeaderLen:]
	total := 0
	// First pass: sizes, so that one buffer of the right size is made.
	for rest := src; len(rest) > 0; {
		block, next, err := xerialBlock(rest)
		if err != nil {
			return nil, err
		}
		n, err := s2.DecodedLen(block)
		if err != nil {
			return nil, fmt.Errorf("%w: xerial snappy: %v", ErrCorrupt, err)
		}
		if n > limit-total {
			return nil, fmt.Errorf("%w: snappy records exceed %d bytes", ErrTooLarge, limit)
		}
		total += n
		rest = next
	}
	out := slices.Grow(dst[:0], total)
	for rest := src; len(rest) > 0; {
		block, next, _ := xerialBlock(rest)
		var err error
		if out, err = unsnappy(out, block, total); err != nil {
			return nil, err
		}
		rest = next
	}
	return out, nil
}

func xerialBlock(src []byte) (block, rest []byte, err error) {
	if len(src) < 4 {
		return nil, nil, fmt.Errorf("%w: xerial snappy block length truncated", ErrCorrupt)
	}
	n := binary.BigEndian.Uint32(src)
	if uint64(n) > uint64(len(src)-4) {
		return nil, nil, fmt.Errorf("%w: xerial snappy block truncated", ErrCorrupt)
	}
	return src[4 : 4+n], src[4+n:], nil
}

func (cd *Codec) unzstd(dst, src []byte, limit int) ([]byte, error) {
	cd.zstdOnce.Do(func() {
		cd.zstdDec, cd.zstdErr = zstd.NewReader(nil, zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(cd.max)), zstd.WithDecoderMaxWindow(uint64(max(cd.max, zstd.MinWindowSize))))
	})
	if cd.zstdErr != nil {
		return nil, fmt.Errorf("batch: zstd: %w", cd.zstdErr)
	}
	out, err := cd.zstdDec.DecodeAll(src, dst[:0])
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) || len(out) > limit {
		return nil, fmt.Errorf("%w: zstd records exceed %d bytes", ErrTooLarge, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
	}
	return out, nil
}

// compress appends src compressed with c to dst.
func compress(dst []byte, c Compression, src []byte) ([]byte, error) {
	switch c {
	case None:
		return append(dst, src...), nil
	case Gzip:
		buf := bytes.NewBuffer(dst)
		w := gzip.NewWriter(buf)
		if _, err := w.Write(src); err != nil {
			return nil, fmt.Errorf("batch: gzip: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("batch: gzip: %w", err)
		}
		return buf.Bytes(), nil
	case Snappy:
		return append(dst, s2.EncodeSnappy(nil, src)...), nil
	case LZ4:
		buf := bytes.NewBuffer(dst)
		w := lz4.NewWriter(buf)
		if _, err := w.Write(src); err != nil {
			return nil, fmt.Errorf("batch: lz4: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("batch: lz4: %w", err)
		}
		return buf.Bytes(), nil
	case Zstd:
		enc, err := zstdEncoder()
		if err != nil {
			return nil, fmt.Errorf("batch: zstd: %w", err)
		}
		return enc.EncodeAll(src, dst), nil
	}
	return nil, fmt.Errorf("batch: cannot compress with %s", c)
}
