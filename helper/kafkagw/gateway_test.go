package kafkagw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestThreeBrokersOnlyThroughGateway: every broker address a client
// learns is a gateway listener, and records reach all 6 partitions,
// whose leaders sit on all 3 brokers, and come back.
func TestThreeBrokersOnlyThroughGateway(t *testing.T) {
	e := startCloud(t, testPolicy+`
allow "a-reads" {
  actors = ["spiffe://example.org/edge/site-a/*"]
  resources = ["topic:site-a.*", "group:a"]
  operations = ["READ"]
}`, nil)
	leaders := map[int32]bool{}
	for p := range int32(6) {
		leaders[e.cluster.LeaderFor(topicA, p)] = true
	}
	if len(leaders) != 3 {
		t.Fatalf("leaders %v: kfake did not spread partitions over 3 brokers", leaders)
	}
	cl := e.client(t, idPipeA)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	meta := kmsg.NewPtrMetadataRequest()
	resp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	upstream := strings.Join(e.cluster.ListenAddrs(), " ")
	if len(resp.Brokers) != 3 {
		t.Fatalf("metadata lists %d brokers", len(resp.Brokers))
	}
	for _, b := range resp.Brokers {
		addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		if b.Host != "127.0.0.1" || strings.Contains(upstream, addr) {
			t.Fatalf("broker %d advertised as %s, not a gateway listener (upstream %s)", b.NodeID, addr, upstream)
		}
	}
	for p := range int32(6) {
		for i := range 5 {
			r := &kgo.Record{Topic: topicA, Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce p%d #%d: %v", p, i, err)
			}
		}
	}
	consumer := e.client(t, idPipeA, kgo.ConsumeTopics(topicA), kgo.ConsumerGroup("a"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]bool{}
	for len(got) < 30 && ctx.Err() == nil {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("fetch: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
	}
	if len(got) != 30 {
		t.Fatalf("consumed %d of 30 records", len(got))
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// TestDeniedTopicFailsAloneOnOpenConnection: one Produce for two topics;
// the denied one gets TOPIC_AUTHORIZATION_FAILED, the other is written,
// and the connection stays usable.
func TestDeniedTopicFailsAloneOnOpenConnection(t *testing.T) {
	e := startCloud(t, testPolicy, nil)
	c := e.raw(t, idPipeA)
	for _, v := range []int16{3, 7, 9, 12} {
		resp := c.mustDo(produceReq(v, -1, topicA, topicB)).(*kmsg.ProduceResponse)
		codes := map[string]int16{}
		for _, rt := range resp.Topics {
			codes[rt.Topic] = rt.Partitions[0].ErrorCode
		}
		if codes[topicA] != 0 || codes[topicB] != kerr.TopicAuthorizationFailed.Code || len(codes) != 2 {
			t.Fatalf("v%d: codes %v", v, codes)
		}
	}
	// All denied: answered locally, still on the same connection.
	resp := c.mustDo(produceReq(9, -1, topicB)).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("all denied: %+v", resp.Topics)
	}
	// acks=0 with a denied topic: nothing comes back, the next request works.
	if _, err := c.c.Write(kmsg.NewRequestFormatter().AppendRequest(nil, produceReq(9, 0, topicB), 999)); err != nil {
		t.Fatal(err)
	}
	c.mustDo(kmsg.NewPtrApiVersionsRequest())
	hw := e.highWatermark(t, topicA, 0)
	if hw != 4 {
		t.Fatalf("site-a partition 0 holds %d records, want 4", hw)
	}
	if e.highWatermark(t, topicB, 0) != 0 {
		t.Fatal("a denied record reached site-b")
	}
}

func (e *env) highWatermark(t *testing.T, topic string, p int32) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = p, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shards := cl.RequestSharded(ctx, req)
	for _, s := range shards {
		if s.Err != nil {
			t.Fatal(s.Err)
		}
		for _, t2 := range s.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, pp := range t2.Partitions {
				if pp.ErrorCode == 0 {
					return pp.Offset
				}
			}
		}
	}
	t.Fatal("no offset")
	return 0
}

// TestMetadataListsOnlyDescribableTopics, explicit and all-topics.
func TestMetadataListsOnlyDescribableTopics(t *testing.T) {
	e := startCloud(t, testPolicy, nil)
	c := e.raw(t, idPipeA)
	all := kmsg.NewPtrMetadataRequest()
	all.Version = 9
	resp := c.mustDo(all).(*kmsg.MetadataResponse)
	var names []string
	for _, rt := range resp.Topics {
		names = append(names, *rt.Topic)
	}
	if !slices.Equal(names, []string{topicA}) {
		t.Fatalf("all-topics metadata lists %v, want only %s", names, topicA)
	}
	one := kmsg.NewPtrMetadataRequest()
	one.Version = 12
	for _, n := range []string{topicA, topicB} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		one.Topics = append(one.Topics, rt)
	}
	resp = c.mustDo(one).(*kmsg.MetadataResponse)
	codes := map[string]int16{}
	for _, rt := range resp.Topics {
		codes[*rt.Topic] = rt.ErrorCode
	}
	if codes[topicA] != 0 || codes[topicB] != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("explicit metadata codes %v", codes)
	}
}

// TestGroupDenied: a consumer without READ on the group.
func TestGroupDenied(t *testing.T) {
	e := startCloud(t, testPolicy, nil)
	c := e.raw(t, idPipeA)
	join := kmsg.NewPtrJoinGroupRequest()
	join.Version, join.Group, join.ProtocolType, join.SessionTimeoutMillis = 5, "readers", "consumer", 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if code := c.mustDo(join).(*kmsg.JoinGroupResponse).ErrorCode; code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("join: code %d", code)
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorKeys = 4, []string{"readers"}
	fr := c.mustDo(fc).(*kmsg.FindCoordinatorResponse)
	if len(fr.Coordinators) != 1 || fr.Coordinators[0].ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("find coordinator: %+v", fr.Coordinators)
	}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version, commit.Group = 8, "readers"
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic, ct.Partitions = topicA, []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}
	commit.Topics = append(commit.Topics, ct)
	cr := c.mustDo(commit).(*kmsg.OffsetCommitResponse)
	if cr.Topics[0].Partitions[0].ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("commit: %+v", cr.Topics)
	}
	// The reader may: the coordinator comes back as a gateway address.
	fr = e.raw(t, idReader).mustDo(fc).(*kmsg.FindCoordinatorResponse)
	co := fr.Coordinators[0]
	if co.ErrorCode != 0 || co.Host != "127.0.0.1" || slices.Contains(e.cluster.ListenAddrs(), net.JoinHostPort(co.Host, strconv.Itoa(int(co.Port)))) {
		t.Fatalf("reader's coordinator: %+v", co)
	}
}

// TestReloadAppliesToOpenConnection: the same connection is allowed,
// then after Reload denied, then allowed again, without reconnecting.
func TestReloadAppliesToOpenConnection(t *testing.T) {
	e := startCloud(t, testPolicy, nil)
	c := e.raw(t, idPipeA)
	code := func() int16 {
		return c.mustDo(produceReq(9, -1, topicA)).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	if got := code(); got != 0 {
		t.Fatalf("before reload: %d", got)
	}
	revoked := strings.Replace(testPolicy, `"WRITE", "DESCRIBE"`, `"DESCRIBE"`, 1)
	if err := os.WriteFile(e.gw.cfg.PolicyFile, []byte(revoked), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := code(); got != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("after revoking: %d", got)
	}
	if err := os.WriteFile(e.gw.cfg.PolicyFile, []byte("this is { not hcl"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.Reload(); err == nil {
		t.Fatal("a broken policy file loaded")
	}
	if got := code(); got != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("a failed reload changed the policy: %d", got)
	}
	e.gw.SetPolicy(mustPolicy(t, testPolicy))
	if got := code(); got != 0 {
		t.Fatalf("after restoring: %d", got)
	}
}

// TestAllowIfNoACL: a topic no rule covers follows allow_if_no_acl; a
// covered topic is denied to actors no rule allows either way.
func TestAllowIfNoACL(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(strconv.FormatBool(allow), func(t *testing.T) {
			pol := strings.Replace(testPolicy, "allow_if_no_acl = false", "allow_if_no_acl = "+strconv.FormatBool(allow), 1)
			e := startCloud(t, pol, nil)
			c := e.raw(t, idPipeB)
			uncovered := c.mustDo(produceReq(9, -1, "unlisted")).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
			covered := c.mustDo(produceReq(9, -1, topicA)).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
			wantUncovered := kerr.TopicAuthorizationFailed.Code
			if allow {
				wantUncovered = kerr.UnknownTopicOrPartition.Code // allowed; kfake has no such topic
			}
			if uncovered != wantUncovered || covered != kerr.TopicAuthorizationFailed.Code {
				t.Fatalf("uncovered %d (want %d), covered %d", uncovered, wantUncovered, covered)
			}
		})
	}
}

// TestApiVersionsIntersected: the gateway never advertises a version it
// cannot authorize, nor SASL, and answers a future ApiVersions with v0
// UNSUPPORTED_VERSION.
func TestApiVersionsIntersected(t *testing.T) {
	e := startCloud(t, testPolicy, nil)
	c := e.raw(t, idPipeA)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version, req.ClientSoftwareName, req.ClientSoftwareVersion = 3, "test", "1.0"
	resp := c.mustDo(req).(*kmsg.ApiVersionsResponse)
	if len(resp.ApiKeys) == 0 || resp.ErrorCode != 0 {
		t.Fatal("no API keys")
	}
	for _, k := range resp.ApiKeys {
		max, ok := cloudCaps[k.ApiKey]
		if !ok || k.MaxVersion > max {
			t.Errorf("advertised %s up to v%d", kmsg.NameForKey(k.ApiKey), k.MaxVersion)
		}
	}
	future := kmsg.NewRequestFormatter().AppendRequest(nil, req, 77)
	future[6] = 0x7f // version 0x7f03
	c.sendRaw(future)
	frame, err := readFrame(c)
	if err != nil {
		t.Fatal(err)
	}
	_, _, r0, err := parseV0ApiVersions(frame)
	if err != nil || r0.ErrorCode != unsupportedVersion {
		t.Fatalf("future ApiVersions: %v %+v", err, r0)
	}
}

// TestSASLRefused: SASL is answered locally with an error, the
// connection stays.
func TestSASLRefused(t *testing.T) {
	e := startCloud(t, testPolicy, nil)
	c := e.raw(t, idPipeA)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "PLAIN"
	if code := c.mustDo(hs).(*kmsg.SASLHandshakeResponse).ErrorCode; code != kerr.UnsupportedSaslMechanism.Code {
		t.Fatalf("handshake: %d", code)
	}
	c.mustDo(kmsg.NewPtrApiVersionsRequest())
}

// TestAdminNeedsCluster: ACL and topic admin without cluster rights.
func TestAdminNeedsCluster(t *testing.T) {
	e := startCloud(t, testPolicy, nil)
	c := e.raw(t, idPipeA)
	da := kmsg.NewPtrDescribeACLsRequest()
	da.Version = 2
	if code := c.mustDo(da).(*kmsg.DescribeACLsResponse).ErrorCode; code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("describe acls: %d", code)
	}
	ca := kmsg.NewPtrCreateACLsRequest()
	ca.Version, ca.Creations = 2, []kmsg.CreateACLsRequestCreation{kmsg.NewCreateACLsRequestCreation()}
	if r := c.mustDo(ca).(*kmsg.CreateACLsResponse); r.Results[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("create acls: %+v", r.Results)
	}
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Version = 5
	tt := kmsg.NewCreateTopicsRequestTopic()
	tt.Topic, tt.NumPartitions, tt.ReplicationFactor = "new", 1, 1
	ct.Topics = append(ct.Topics, tt)
	if r := c.mustDo(ct).(*kmsg.CreateTopicsResponse); r.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("create topics: %+v", r.Topics)
	}
	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.Version, dt.TopicNames = 4, []string{topicA}
	if r := c.mustDo(dt).(*kmsg.DeleteTopicsResponse); r.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("delete topics: %+v", r.Topics)
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	if code := c.mustDo(dc).(*kmsg.DescribeClusterResponse).ErrorCode; code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("describe cluster: %d", code)
	}
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.Version = 4
	if code := c.mustDo(ip).(*kmsg.InitProducerIDResponse).ErrorCode; code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("init producer id: %d", code)
	}
}
