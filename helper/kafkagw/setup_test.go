package kafkagw

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/helper/kafkagw/wire"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	td       = "example.org"
	idGW     = "spiffe://example.org/cloud/kafka-gateway"
	idPipeA  = "spiffe://example.org/edge/site-a/deepstream/cam"
	idPipeB  = "spiffe://example.org/edge/site-b/deepstream/cam"
	idReader = "spiffe://example.org/cloud/reader"
	topicA   = "site-a.detections"
	topicB   = "site-b.detections"
)

const testPolicy = `
allow_if_no_acl = false
allow "site-a" {
  actors     = ["spiffe://example.org/edge/site-a/*"]
  resources  = ["topic:site-a.*"]
  operations = ["WRITE", "DESCRIBE"]
}
allow "site-b" {
  actors     = ["spiffe://example.org/edge/site-b/*"]
  resources  = ["topic:site-b.*"]
  operations = ["WRITE"]
}
allow "reader" {
  actors     = ["spiffe://example.org/cloud/reader"]
  resources  = ["topic:site-*", "group:readers"]
  operations = ["READ"]
}
`

type env struct {
	ca      *svidtest.CA
	cluster *kfake.Cluster
	gw      *Gateway
	dir     string
}

func mustPolicy(t testing.TB, src string) *policy.Set {
	t.Helper()
	p, err := policy.Parse([]byte(src), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newCA(t testing.TB) *svidtest.CA {
	t.Helper()
	ca, err := svidtest.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func svid(t testing.TB, ca *svidtest.CA, id string) *svidtest.Source {
	t.Helper()
	s, err := ca.SVID(id, time.Hour, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return svidtest.NewSource(s)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startCloud runs a 3-broker kfake cluster (plaintext, loopback) with
// 6-partition topics site-a.detections and site-b.detections, and a
// cloud-mode gateway in front of it.
func startCloud(t testing.TB, pol string, mut func(*Config)) *env {
	t.Helper()
	ca := newCA(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, topicA, topicB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// Partition p of each topic is led by node p%3, counting from the
	// bootstrap broker: leaders sit on all 3 brokers, and raw
	// single-connection tests can produce to partition 0.
	nodes := nodesFrom(t, c.ListenAddrs(), c.ListenAddrs()[0])
	for _, topic := range []string{topicA, topicB} {
		for p := range int32(6) {
			if err := c.MoveTopicPartition(topic, p, nodes[p%3]); err != nil {
				t.Fatal(err)
			}
		}
	}
	policyFile := filepath.Join(t.TempDir(), "policy.hcl")
	if err := os.WriteFile(policyFile, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Name: "test", Mode: ModeCloud, Upstreams: c.ListenAddrs()[:1], TrustDomain: td,
		Policy: mustPolicy(t, pol), PolicyFile: policyFile, Logger: testLogger(t),
	}
	if mut != nil {
		mut(&cfg)
	}
	gw := runGateway(t, cfg, Sources{SVIDs: svid(t, ca, idGW), Bundles: ca.Bundle()})
	return &env{ca: ca, cluster: c, gw: gw, dir: filepath.Dir(policyFile)}
}

// runGateway builds and starts a gateway that runs until the test ends.
func runGateway(t testing.TB, cfg Config, src Sources) *Gateway {
	t.Helper()
	gw, err := New(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := gw.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); gw.Wait() })
	return gw
}

func clientTLS(t testing.TB, ca *svidtest.CA, id string) *tls.Config {
	td, _ := spiffeid.TrustDomainFromString(td)
	return tlsconfig.MTLSClientConfig(svid(t, ca, id), ca.Bundle(), tlsconfig.AuthorizeMemberOf(td))
}

// client is a franz-go client that reaches the cluster only through the
// gateway.
func (e *env) client(t testing.TB, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(e.gw.BootstrapAddrs()...), kgo.DialTLSConfig(clientTLS(t, e.ca, id)),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequestRetries(0), kgo.RetryTimeout(2 * time.Second),
		kgo.ProducerLinger(0), kgo.DisableIdempotentWrite(),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// rawConn speaks Kafka on one connection, so a test can tell whether it
// stays open.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	corr int32
}

func (e *env) raw(t testing.TB, id string) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", e.gw.BootstrapAddrs()[0], clientTLS(t, e.ca, id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c}
}

// do sends req (at its set version) and returns the parsed response.
func (r *rawConn) do(req kmsg.Request) (kmsg.Response, error) {
	r.corr++
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, r.corr)
	_ = r.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(frame); err != nil {
		return nil, err
	}
	resp, err := wire.ReadFrame(r.c, 1<<26, nil)
	if err != nil {
		return nil, err
	}
	corr, _, parsed, err := wire.ParseResponse(resp, req.Key(), req.GetVersion(), req.IsFlexible())
	if err == nil && corr != r.corr {
		r.t.Fatalf("correlation id %d, want %d", corr, r.corr)
	}
	return parsed, err
}

func (r *rawConn) mustDo(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	resp, err := r.do(req)
	if err != nil {
		r.t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// sendRaw writes bytes as they are.
func (r *rawConn) sendRaw(b []byte) {
	_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = r.c.Write(b)
}

// closed reports whether the gateway closed the connection within d.
func (r *rawConn) closed(d time.Duration) bool {
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	var b [4]byte
	_, err := io.ReadFull(r.c, b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

func frameOf(parts ...[]byte) []byte { return wire.AppendFrame(nil, parts...) }

func be32(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

func produceReq(version int16, acks int16, topics ...string) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = version, acks, 5000
	for _, topic := range topics {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = 0
		rp.Records = recordBatch([]byte("v"))
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// recordBatch encodes a one-record v2 batch.
func recordBatch(value []byte) []byte {
	rec := kmsg.Record{Value: value}
	recBytes := rec.AppendTo(nil)
	b := kmsg.RecordBatch{
		FirstOffset: 0, Magic: 2, LastOffsetDelta: 0, ProducerID: -1, ProducerEpoch: -1,
		FirstSequence: -1, NumRecords: 1, Records: recBytes,
		FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli(),
	}
	raw := b.AppendTo(nil)
	// Length and CRC as a broker checks them.
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	crc := crc32c(raw[21:])
	binary.BigEndian.PutUint32(raw[17:], crc)
	return raw
}

func readFrame(c *rawConn) ([]byte, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return wire.ReadFrame(c.c, 1<<26, nil)
}

func parseV0ApiVersions(frame []byte) (int32, int, *kmsg.ApiVersionsResponse, error) {
	corr, n, resp, err := wire.ParseResponse(frame, 18, 0, false)
	if err != nil {
		return 0, 0, nil, err
	}
	return corr, n, resp.(*kmsg.ApiVersionsResponse), nil
}

// nodesFrom lists the node ids, the broker listening on addr first.
func nodesFrom(t testing.TB, seeds []string, addr string) []int32 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var first []int32
	var rest []int32
	for _, b := range resp.Brokers {
		if net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))) == addr {
			first = append(first, b.NodeID)
		} else {
			rest = append(rest, b.NodeID)
		}
	}
	if len(first) != 1 || len(rest) != 2 {
		t.Fatalf("brokers %+v: want 3 with one at %s", resp.Brokers, addr)
	}
	return append(first, rest...)
}

// newTLSCluster is a one-broker kfake cluster serving TLS.
func newTLSCluster(cfg *tls.Config) (*kfake.Cluster, error) {
	return kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(cfg), kfake.SeedTopics(1, topicA))
}
