package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func requestFrame(req kmsg.Request, corr int32, clientID string) []byte {
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID))
	return f.AppendRequest(nil, req, corr)
}

func TestParseRequestRoundTrip(t *testing.T) {
	for _, v := range []int16{0, 7, 12} {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = v
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("site-a.detections")
		req.Topics = append(req.Topics, rt)
		frame, err := ReadFrame(bytes.NewReader(requestFrame(req, 42, "kcat")), 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		h, got, err := ParseRequest(frame)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if id, ok := h.ClientID(); h.CorrelationID != 42 || id != "kcat" || !ok || h.Version != v || h.Flexible != (v >= 9) {
			t.Fatalf("v%d: header %+v", v, h)
		}
		if m := got.(*kmsg.MetadataRequest); len(m.Topics) != 1 || *m.Topics[0].Topic != "site-a.detections" {
			t.Fatalf("v%d: body %+v", v, m)
		}
	}
}

func TestReadFrameBounds(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"oversize", []byte{0, 0x10, 0, 0, 1}, ErrFrameSize},
		{"negative", []byte{0xff, 0xff, 0xff, 0xff}, ErrFrameSize},
		{"zero", []byte{0, 0, 0, 0}, ErrFrameSize},
		{"truncated body", []byte{0, 0, 0, 8, 1, 2}, io.ErrUnexpectedEOF},
		{"truncated size", []byte{0, 0}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tt.in), 1024, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseRequestRejects(t *testing.T) {
	tests := map[string][]byte{
		"short":              {0, 3, 0, 1},
		"unknown key":        {0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff},
		"future version":     {0, 3, 0x7f, 0, 0, 0, 0, 1, 0xff, 0xff},
		"client id past end": {0, 3, 0, 1, 0, 0, 0, 1, 0, 50, 'a'},
		"bad tags":           {0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0x05},
	}
	for name, frame := range tests {
		if _, _, err := ParseRequest(frame); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// TestHugeTagCountIsCheap: a flexible request whose tag section claims
// 2^28 tags in a 40-byte frame. kmsg v1.15.0 looped over the claimed
// count (seconds of CPU per frame; 2^63 with a longer varint); v1.15.1
// stops at the end of the data. Found by FuzzRequestFrame.
func TestHugeTagCountIsCheap(t *testing.T) {
	frame := []byte("\x00#\x00\x03\x00\x00\x00\a\x00\x04seed\x00\x00\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00<\x00")
	start := time.Now()
	_, _, _ = ParseRequest(frame)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("parsing a 40-byte frame took %s", d)
	}
}

// TestFlexibleMatchesKmsg: the header's flexibility, from the table built
// once, is what kmsg's IsFlexible says for every key and version, also
// past the highest version and below zero; a null client id reads as
// such.
func TestFlexibleMatchesKmsg(t *testing.T) {
	for k := range int16(256) {
		req := kmsg.RequestForKey(k)
		if req == nil {
			continue
		}
		for v := int16(-1); v <= req.MaxVersion()+2; v++ {
			frame := binary.BigEndian.AppendUint16(nil, uint16(k))
			frame = binary.BigEndian.AppendUint16(frame, uint16(v))
			frame = binary.BigEndian.AppendUint32(frame, 7)
			frame = binary.BigEndian.AppendUint16(frame, 0xffff) // null client id
			frame = append(frame, 0, 0, 0, 0)                    // an empty tag section, then body bytes
			h, known, err := ParseRequestHeader(frame)
			if err != nil || !known {
				t.Fatalf("key %d v%d: %v, known %v", k, v, err, known)
			}
			req.SetVersion(v)
			if h.Flexible != req.IsFlexible() {
				t.Fatalf("key %d v%d: flexible %v, kmsg says %v", k, v, h.Flexible, req.IsFlexible())
			}
			if id, ok := h.ClientID(); ok || id != "" {
				t.Fatalf("key %d v%d: null client id read as %q", k, v, id)
			}
		}
	}
}
