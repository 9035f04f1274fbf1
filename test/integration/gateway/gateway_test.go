package gateway

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw"
	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/edgeid/edgeid/test/harness"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	td      = "example.org"
	idGW    = "spiffe://example.org/cloud/kafka-gateway"
	idKafka = "spiffe://example.org/cloud/kafka"
	idPipeA = "spiffe://example.org/edge/site-a/deepstream/cam"
	idPipeB = "spiffe://example.org/edge/site-b/deepstream/cam"
	idCloud = "spiffe://example.org/cloud/consumer"
	idNoGrp = "spiffe://example.org/cloud/no-group"
	topicA  = "site-a.detections"
	topicB  = "site-b.detections"
	topicU  = "unlisted.events" // no rule covers it: allow_if_no_acl decides
)

const seedPolicy = `
allow_if_no_acl = true
allow "site-a-publish" {
  actors     = ["spiffe://example.org/edge/site-a/*"]
  resources  = ["topic:site-a.*"]
  operations = ["WRITE", "DESCRIBE"]
}
allow "site-b-publish" {
  actors     = ["spiffe://example.org/edge/site-b/*"]
  resources  = ["topic:site-b.*"]
  operations = ["WRITE", "DESCRIBE"]
}
allow "a-describes-b" {
  # so that kcat gets past Metadata and its Produce itself is refused
  actors     = ["spiffe://example.org/edge/site-a/deepstream/cam"]
  resources  = ["topic:site-b.detections"]
  operations = ["DESCRIBE"]
}
allow "cloud-consume" {
  actors     = ["spiffe://example.org/cloud/consumer"]
  resources  = ["topic:site-*", "group:cloud-*"]
  operations = ["READ"]
}
allow "no-group-consumer-reads-topics" {
  actors     = ["spiffe://example.org/cloud/no-group"]
  resources  = ["topic:site-*"]
  operations = ["READ"]
}
`

type env struct {
	t       *testing.T
	kcat    string
	ca      *svidtest.CA
	cluster *kfake.Cluster
	gw      *kafkagw.Gateway
	dir     string
	logBuf  *harness.SyncBuffer
	reg     *prometheus.Registry
}

// start runs kfake (3 brokers, mTLS, 6 partitions per topic spread over
// all brokers) and a cloud gateway that dials it with its own SVID.
func start(t *testing.T) *env {
	kcat := harness.RequireCommand(t, "kcat")
	ca, err := svidtest.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, kcat: kcat, ca: ca, dir: t.TempDir(), logBuf: &harness.SyncBuffer{}}
	trust, _ := spiffeid.TrustDomainFromString(td)
	brokerTLS := tlsconfig.MTLSServerConfig(e.source(idKafka), ca.Bundle(), tlsconfig.AuthorizeID(spiffeid.RequireFromString(idGW)))
	e.cluster, err = kfake.NewCluster(kfake.NumBrokers(3), kfake.TLS(brokerTLS), kfake.SeedTopics(6, topicA, topicB, topicU))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cluster.Close)
	spreadLeaders(t, e.cluster, e.directClient(), topicA, topicB, topicU)
	pfile := filepath.Join(e.dir, "policy.hcl")
	if err := os.WriteFile(pfile, []byte(seedPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.ParseFile(pfile)
	if err != nil {
		t.Fatal(err)
	}
	gwSrc := e.source(idGW)
	e.gw, err = kafkagw.New(kafkagw.Config{
		Name: "cloud", Mode: kafkagw.ModeCloud, Upstreams: e.cluster.ListenAddrs()[:1], TrustDomain: td,
		AdvertisedHost: "localhost", UpstreamTLS: true, UpstreamIDs: []string{idKafka},
		Policy: pol, PolicyFile: pfile, DenialLogInterval: time.Hour, Metrics: e.metrics(),
		Logger: slog.New(slog.NewTextHandler(e.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, kafkagw.Sources{SVIDs: gwSrc, Bundles: ca.Bundle()})
	if err != nil {
		t.Fatal(err)
	}
	_ = trust
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		e.gw.Wait()
		if t.Failed() {
			t.Logf("gateway log:\n%s", e.logBuf.String())
		}
	})
	return e
}

func (e *env) source(id string) *svidtest.Source {
	s, err := e.ca.SVID(id, time.Hour, "localhost")
	if err != nil {
		e.t.Fatal(err)
	}
	return svidtest.NewSource(s)
}

// spreadLeaders puts partition p of each topic of kf on broker p%3,
// asking through cl (closed after) which brokers there are.
func spreadLeaders(t *testing.T, kf *kfake.Cluster, cl *kgo.Client, topics ...string) {
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Brokers) != 3 {
		t.Fatalf("%d brokers", len(resp.Brokers))
	}
	for _, topic := range topics {
		for p := range int32(6) {
			if err := kf.MoveTopicPartition(topic, p, resp.Brokers[p%3].NodeID); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// directClient reaches kfake without the gateway, as the gateway.
func (e *env) directClient() *kgo.Client {
	trust, _ := spiffeid.TrustDomainFromString(td)
	cfg := tlsconfig.MTLSClientConfig(e.source(idGW), e.ca.Bundle(), tlsconfig.AuthorizeMemberOf(trust))
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.DialTLSConfig(cfg))
	if err != nil {
		e.t.Fatal(err)
	}
	return cl
}

// clientProps are librdkafka's connection settings for id: only the
// gateway's address, its name verified against the gateway SVID's DNS SAN.
func (e *env) clientProps(id string) []string {
	return clientProps(e.t, e.ca, e.dir, e.gw.BootstrapAddrs()[0], id)
}

// clientProps writes id's SVID files under dir and returns librdkafka's
// settings for reaching a gateway at bootstrap with them.
func clientProps(t *testing.T, ca *svidtest.CA, dir, bootstrap, id string) []string {
	dir = filepath.Join(dir, strings.NewReplacer("spiffe://", "", "/", "_").Replace(id))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := ca.SVID(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, caPath, err := ca.WriteFiles(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"bootstrap.servers=" + bootstrap,
		"security.protocol=ssl", "ssl.ca.location=" + caPath,
		"ssl.certificate.location=" + cert, "ssl.key.location=" + key,
		"ssl.endpoint.identification.algorithm=https", "broker.address.family=v4"}
}

// kcatArgs are clientProps as kcat options.
func (e *env) kcatArgs(id string) []string { return asKcatArgs(e.clientProps(id)) }

// asKcatArgs turns librdkafka properties into kcat -X options.
func asKcatArgs(props []string) []string {
	var args []string
	for _, p := range props {
		args = append(args, "-X", p)
	}
	return args
}

func (e *env) run(timeout time.Duration, stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (e *env) metrics() *kafkagw.Metrics {
	e.reg = prometheus.NewRegistry()
	m, err := kafkagw.NewMetrics(e.reg, 10)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// accepted is how many client connections the gateway has accepted.
func (e *env) accepted() float64 {
	fams, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "edgeid_kafkagw_connections_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "accepted" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// endOffsets sums the end offsets of topic's partitions, read directly.
func (e *env) endOffsets(topic string) map[int32]int64 {
	cl := e.directClient()
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range int32(6) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	out := map[int32]int64{}
	for _, sh := range cl.RequestSharded(ctx, req) {
		if sh.Err != nil {
			e.t.Fatal(sh.Err)
		}
		for _, t := range sh.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					e.t.Fatalf("list offsets %s/%d: error %d", topic, p.Partition, p.ErrorCode)
				}
				out[p.Partition] = p.Offset
			}
		}
	}
	return out
}

// committed reads group's committed offsets for topic, directly.
func (e *env) committed(group, topic string) map[int32]int64 {
	cl := e.directClient()
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{0, 1, 2, 3, 4, 5}}}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[p.Partition] = p.Offset
		}
	}
	return out
}

// TestKcatThroughGateway: kcat produces numbered messages to each of the 6
// partitions (leaders on all 3 brokers) through the gateway only, then a
// kcat -G consumer reads every one back and commits its offsets.
func TestKcatThroughGateway(t *testing.T) {
	e := start(t)
	const perPartition = 10
	pipeA := e.kcatArgs(idPipeA)
	for p := range 6 {
		var lines []string
		for i := 1; i <= perPartition; i++ {
			lines = append(lines, fmt.Sprintf("p%d-seq%03d", p, i))
			t.Logf("attempt: %s to %s/%d", lines[len(lines)-1], topicA, p)
		}
		out, stderr, err := e.run(60*time.Second, strings.Join(lines, "\n")+"\n",
			append(pipeA, "-P", "-t", topicA, "-p", strconv.Itoa(p))...)
		if err != nil || strings.Contains(stderr, "ERROR") {
			t.Fatalf("kcat produce to partition %d: %v\n%s%s", p, err, out, stderr)
		}
	}
	ends := e.endOffsets(topicA)
	for p := range int32(6) {
		if ends[p] != perPartition {
			t.Fatalf("partition %d holds %d messages, want %d (all: %v)", p, ends[p], perPartition, ends)
		}
	}
	cloud := e.kcatArgs(idCloud)
	t.Logf("attempt: kcat -G cloud-readers consumes %d messages", 6*perPartition)
	out, stderr, err := e.run(90*time.Second, "", append(cloud, "-G", "cloud-readers", "-X", "auto.offset.reset=earliest",
		"-c", strconv.Itoa(6*perPartition), "-f", "%p %s\n", topicA)...)
	if err != nil {
		t.Fatalf("kcat consume: %v\n%s", err, stderr)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var p int
		var v string
		if _, err := fmt.Sscanf(sc.Text(), "%d %s", &p, &v); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if !strings.HasPrefix(v, fmt.Sprintf("p%d-seq", p)) || seen[v] {
			t.Fatalf("message %q on partition %d is misplaced or repeated", v, p)
		}
		seen[v] = true
	}
	for p := range 6 {
		for i := 1; i <= perPartition; i++ {
			if v := fmt.Sprintf("p%d-seq%03d", p, i); !seen[v] {
				t.Errorf("message %s never consumed", v)
			}
		}
	}
	harness.Eventually(t, 20*time.Second, func() error {
		c := e.committed("cloud-readers", topicA)
		for p := range int32(6) {
			if c[p] != perPartition {
				return fmt.Errorf("committed offsets %v, want %d on each partition", c, perPartition)
			}
		}
		return nil
	})
}
