package kafkagw

import "github.com/twmb/franz-go/pkg/kmsg"

// Kafka API keys and error codes the gateway uses by number.
const (
	fetchKey            int16 = 1
	apiVersionsKey      int16 = 18
	saslHandshakeKey    int16 = 17
	saslAuthenticateKey int16 = 36
	unsupportedVersion        = 35
)

// cloudCaps are the requests a cloud gateway authorizes, each up to the
// highest version whose resources it can name: Produce and Fetch v13+
// name topics by id only, OffsetCommit v10+ and OffsetFetch v8+ (groups
// array, then topic ids) and DeleteTopics v6+ likewise. Requests not here
// are not advertised and close the connection if sent anyway.
var cloudCaps = map[int16]int16{
	0:  12, // Produce
	1:  12, // Fetch
	2:  11, // ListOffsets
	3:  13, // Metadata
	8:  9,  // OffsetCommit
	9:  7,  // OffsetFetch
	10: 6,  // FindCoordinator
	11: 9,  // JoinGroup
	12: 4,  // Heartbeat
	13: 5,  // LeaveGroup
	14: 5,  // SyncGroup
	18: 5,  // ApiVersions
	19: 7,  // CreateTopics
	20: 5,  // DeleteTopics
	22: 5,  // InitProducerId
	29: 3,  // DescribeAcls
	30: 3,  // CreateAcls
	31: 3,  // DeleteAcls
	60: 2,  // DescribeCluster
}

// edgeParsed are the requests an edge gateway decodes (to rewrite broker
// addresses or learn whether a response follows); it relays the rest
// as they are.
var edgeParsed = map[int16]bool{0: true, 3: true, 10: true, 18: true, 60: true}

// supportedVersions is the highest version per API key the gateway
// accepts and advertises: the cloud caps, or every request kmsg can
// parse in edge mode; never above kmsg's own maximum.
func supportedVersions(mode string) map[int16]int16 {
	out := map[int16]int16{}
	if mode == ModeCloud {
		for k, v := range cloudCaps {
			out[k] = min(v, kmsg.RequestForKey(k).MaxVersion())
		}
		return out
	}
	for k := int16(0); k < 1000; k++ {
		if r := kmsg.RequestForKey(k); r != nil {
			out[k] = r.MaxVersion()
		}
	}
	return out
}

// intersectVersions keeps the keys both sides support, each up to the
// lower maximum, so a client never picks a version the gateway cannot
// parse.
func intersectVersions(keys []kmsg.ApiVersionsResponseApiKey, ours map[int16]int16) []kmsg.ApiVersionsResponseApiKey {
	out := keys[:0]
	for _, k := range keys {
		max, ok := ours[k.ApiKey]
		if !ok || k.MinVersion > max {
			continue
		}
		k.MaxVersion = min(k.MaxVersion, max)
		out = append(out, k)
	}
	return out
}
