// Package kafkagw is a Kafka-protocol gateway, a sibling of the helper's
// TCP tunnel. It decodes every request and response with franz-go's kmsg.
//
//	            cloud mode                              edge mode
//	client ──mTLS (SVID = actor)──▶ gw ──▶ broker    app ──plaintext 127.0.0.1──▶ gw ──mTLS (current SVID)──▶ broker
//
// One listener serves each upstream broker. Metadata, FindCoordinator and
// DescribeCluster responses are rewritten to name the gateway's listeners,
// and a broker seen for the first time gets a listener at once, so a client
// reaches the whole cluster through the gateway only.
//
// Per client connection there is one upstream connection and three
// goroutines: the reader decodes and authorizes each request and either
// answers it locally or forwards it; the upstream reader matches responses
// to forwarded requests by correlation id; the writer sends responses back
// in request order. In cloud mode every request is authorized against the
// current policy (see package policy); denied parts of a Produce, Fetch,
// ListOffsets, Metadata, OffsetCommit, OffsetFetch, CreateTopics or
// DeleteTopics are removed before forwarding and merged back into the
// response with Kafka's error code.
package kafkagw
