// Package wire reads and writes Kafka protocol frames: the 4-byte size
// prefix, the request header (v1, or v2 with tagged fields for flexible
// versions) and the response header. Bodies are left to kmsg.
//
// Every function here treats its input as hostile: sizes are bounded and
// a short or malformed frame is an error, never a panic.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors returned for bad frames.
var (
	ErrFrameSize = errors.New("wire: frame size out of range")
	ErrTruncated = errors.New("wire: truncated header")
)

// ReadFrame reads one size-prefixed frame and returns it without its
// size prefix. A size of zero, a negative size or one above max is
// ErrFrameSize; the body is not read then. beforeBody, when not nil, is
// called once the size prefix has arrived (to move a read deadline).
func ReadFrame(r io.Reader, max int32, beforeBody func()) ([]byte, error) {
	f := FrameReader{R: r}
	return f.Read(max, beforeBody, nil)
}

// FrameReader reads frames from R, one at a time, with no allocation of
// its own (a connection's reader keeps one).
type FrameReader struct {
	R    io.Reader
	size [4]byte
}

// Read is ReadFrame with the body read into buf(n), which must return a
// slice of exactly n bytes (a pooled buffer); a nil buf allocates.
func (f *FrameReader) Read(max int32, beforeBody func(), buf func(n int) []byte) ([]byte, error) {
	if _, err := io.ReadFull(f.R, f.size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(f.size[:]))
	if n <= 0 || n > max {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrFrameSize, n, max)
	}
	if beforeBody != nil {
		beforeBody()
	}
	var body []byte
	if buf != nil {
		body = buf(int(n))
	} else {
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(f.R, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// AppendFrame appends the size prefix and then the parts.
func AppendFrame(dst []byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

// RequestHeader is the decoded header of a request frame.
type RequestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	// clientID is the client id's bytes in the frame; nil when the
	// client sent a null client id.
	clientID []byte
	// Flexible is true for header v2 (the request version is flexible).
	Flexible bool
	// Len is the header's length in the frame; the body starts there.
	Len int
}

// ClientID returns the client id, and false when the client sent a null
// one.
func (h RequestHeader) ClientID() (string, bool) {
	return string(h.clientID), h.clientID != nil
}

// flexibleFrom maps every API key kmsg knows to its first flexible
// version (-1: none): what kmsg's IsFlexible says, without a request
// value per frame.
var flexibleFrom = func() map[int16]int16 {
	m := map[int16]int16{}
	for k := range int16(1024) {
		req := kmsg.RequestForKey(k)
		if req == nil {
			continue
		}
		m[k] = -1
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			if req.IsFlexible() {
				m[k] = v
				break
			}
		}
	}
	return m
}()

// ParseRequestHeader decodes the header of frame (a frame without its size
// prefix). Whether the header carries tagged fields depends on whether the
// API version is flexible, which kmsg knows; for a key kmsg does not know,
// known is false and the header is decoded up to the client id.
func ParseRequestHeader(frame []byte) (h RequestHeader, known bool, err error) {
	if len(frame) < 10 {
		return h, false, ErrTruncated
	}
	h.Key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.Version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.CorrelationID = int32(binary.BigEndian.Uint32(frame[4:]))
	idLen := int16(binary.BigEndian.Uint16(frame[8:]))
	off := 10
	if idLen >= 0 {
		if len(frame) < off+int(idLen) {
			return h, false, ErrTruncated
		}
		h.clientID = frame[off : off+int(idLen) : off+int(idLen)]
		off += int(idLen)
	} else if idLen != -1 {
		return h, false, fmt.Errorf("wire: client id length %d", idLen)
	}
	flexFrom, known := flexibleFrom[h.Key]
	if !known {
		h.Len = off
		return h, false, nil
	}
	h.Flexible = flexFrom >= 0 && h.Version >= flexFrom
	if h.Flexible {
		n, err := skipTags(frame[off:])
		if err != nil {
			return h, true, err
		}
		off += n
	}
	h.Len = off
	return h, true, nil
}

// ResponseHeaderLen is the length of a response header: the correlation
// id, plus the tag section when the response header is flexible. The
// ApiVersions response header is never flexible.
func ResponseHeaderLen(frame []byte, flexible bool) (corr int32, n int, err error) {
	if len(frame) < 4 {
		return 0, 0, ErrTruncated
	}
	corr = int32(binary.BigEndian.Uint32(frame))
	if !flexible {
		return corr, 4, nil
	}
	t, err := skipTags(frame[4:])
	if err != nil {
		return corr, 0, err
	}
	return corr, 4 + t, nil
}

// FlexibleResponseHeader says whether the response to a request of this
// key and flexibility has a flexible header.
func FlexibleResponseHeader(key int16, flexibleRequest bool) bool {
	return flexibleRequest && key != 18
}

// maxTags bounds the tagged fields of one header.
const maxTags = 64

// skipTags returns the length of a tag section at the start of b.
func skipTags(b []byte) (int, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count > maxTags {
		return 0, ErrTruncated
	}
	off := n
	for range count {
		_, n := binary.Uvarint(b[off:]) // tag id
		if n <= 0 {
			return 0, ErrTruncated
		}
		off += n
		size, n := binary.Uvarint(b[off:])
		if n <= 0 || size > uint64(len(b)) {
			return 0, ErrTruncated
		}
		off += n
		if off+int(size) > len(b) {
			return 0, ErrTruncated
		}
		off += int(size)
	}
	return off, nil
}

// ParseRequest decodes frame into its header and kmsg request. The
// request's version is the header's.
func ParseRequest(frame []byte) (RequestHeader, kmsg.Request, error) {
	h, known, err := ParseRequestHeader(frame)
	if err != nil {
		return h, nil, err
	}
	if !known {
		return h, nil, fmt.Errorf("wire: unknown API key %d", h.Key)
	}
	req := kmsg.RequestForKey(h.Key)
	if h.Key == 7 && h.Version == 0 {
		// ControlledShutdown v0 alone uses request header v0, without a
		// client id; it is broker-to-broker and never proxied.
		return h, nil, fmt.Errorf("wire: ControlledShutdown v0 (request header v0) is not supported")
	}
	if h.Version < 0 || h.Version > req.MaxVersion() {
		return h, nil, fmt.Errorf("wire: %s v%d is beyond v%d", kmsg.NameForKey(h.Key), h.Version, req.MaxVersion())
	}
	req.SetVersion(h.Version)
	if err := req.ReadFrom(frame[h.Len:]); err != nil {
		return h, nil, fmt.Errorf("wire: %s v%d: %w", kmsg.NameForKey(h.Key), h.Version, err)
	}
	return h, req, nil
}

// ParseResponse decodes a response frame (without size prefix) to a
// request of key and version, returning the header length.
func ParseResponse(frame []byte, key, version int16, flexibleRequest bool) (int32, int, kmsg.Response, error) {
	corr, n, err := ResponseHeaderLen(frame, FlexibleResponseHeader(key, flexibleRequest))
	if err != nil {
		return corr, 0, nil, err
	}
	resp := kmsg.ResponseForKey(key)
	if resp == nil {
		return corr, n, nil, fmt.Errorf("wire: unknown API key %d", key)
	}
	resp.SetVersion(version)
	if err := resp.ReadFrom(frame[n:]); err != nil {
		return corr, n, nil, fmt.Errorf("wire: %s v%d response: %w", kmsg.NameForKey(key), version, err)
	}
	return corr, n, resp, nil
}
