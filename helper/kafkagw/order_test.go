package kafkagw

import (
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/wire"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestResponsesInRequestOrder pipelines requests on one connection: in
// each write, one request the gateway forwards (Produce, or Metadata,
// whose response it rewrites), then two it answers itself at once (a SASL
// handshake, and a Produce to a denied topic), so that local answers are
// ready while an earlier response is still upstream. The client must get
// every response in the order of its requests (Kafka's rule, which
// clients rely on to match responses), whichever is ready first.
func TestResponsesInRequestOrder(t *testing.T) {
	e := startCloud(t, testPolicy, nil)
	c := e.raw(t, idPipeA)
	const groups = 40
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("order"))
	var keys []int16
	var writes [][]byte
	for g := range groups {
		var forwarded kmsg.Request = produceReq(7, 1, topicA)
		if g%2 == 1 {
			m := kmsg.NewPtrMetadataRequest()
			m.Version = 9
			forwarded = m
		}
		sasl := kmsg.NewPtrSASLHandshakeRequest()
		sasl.Mechanism = "PLAIN"
		var w []byte
		for _, req := range []kmsg.Request{forwarded, sasl, produceReq(7, 1, "site-b.detections")} {
			keys = append(keys, req.Key())
			// (AppendRequest writes its size prefix at dst[0]: one frame
			// per call.)
			w = append(w, f.AppendRequest(nil, req, int32(len(keys)))...)
		}
		writes = append(writes, w)
	}
	go func() {
		for _, w := range writes {
			_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.c.Write(w); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for i := range keys {
		frame, err := readFrame(c)
		if err != nil {
			t.Fatalf("response %d of %d: %v", i+1, len(keys), err)
		}
		corr, _, err := wire.ResponseHeaderLen(frame, false)
		if err != nil {
			t.Fatal(err)
		}
		if corr != int32(i+1) {
			t.Fatalf("response %d carries correlation id %d (%s's): out of request order", i+1, corr, kmsg.NameForKey(keys[corr-1]))
		}
	}
}
