package wire

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzRequestFrame feeds arbitrary frames to the request path and, for
// frames that parse, the matching response path: neither may panic, and
// a request that parses must re-encode to a frame that parses again.
func FuzzRequestFrame(f *testing.F) {
	for _, req := range []kmsg.Request{
		kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrMetadataRequest(), kmsg.NewPtrProduceRequest(),
		kmsg.NewPtrFetchRequest(), kmsg.NewPtrFindCoordinatorRequest(), kmsg.NewPtrOffsetCommitRequest(),
	} {
		for _, v := range []int16{0, 3, 9, 12} {
			if v > req.MaxVersion() {
				continue
			}
			req.SetVersion(v)
			f.Add(requestFrame(req, 7, "seed")[4:], []byte{0, 0, 0, 7, 0, 0, 0, 0})
		}
	}
	f.Fuzz(func(t *testing.T, frame, response []byte) {
		h, req, err := ParseRequest(frame)
		if err != nil {
			return
		}
		again := kmsg.NewRequestFormatter().AppendRequest(nil, req, h.CorrelationID)
		if _, _, err := ParseRequest(again[4:]); err != nil {
			t.Fatalf("re-encoded %s v%d does not parse: %v", kmsg.NameForKey(h.Key), h.Version, err)
		}
		_, _, _, _ = ParseResponse(response, h.Key, h.Version, h.Flexible)
	})
}
