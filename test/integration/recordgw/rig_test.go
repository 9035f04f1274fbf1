package recordgw

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/config"
	"github.com/edgeid/edgeid/helper/kafkagw"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/batch"
	"github.com/edgeid/edgeid/internal/svidtest"
	"github.com/edgeid/edgeid/internal/transitpolicy"
	"github.com/edgeid/edgeid/test/harness"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	td         = "example.org"
	topic      = "site-a.detections"
	ring       = "site-a"
	partitions = 6
	idKafka    = "spiffe://example.org/cloud/kafka"
	idProducer = "spiffe://example.org/edge/site-a/deepstream/cam-pipeline"
	idConsumer = "spiffe://example.org/cloud/analytics"
	idStranger = "spiffe://example.org/edge/site-b/deepstream/other"
	idDirect   = "spiffe://example.org/cloud/test-inspector"
	idRewrap   = "spiffe://example.org/cloud/quarantine-operator"
)

// dnsNames are the registration entries' DNS names: SPIRE copies the
// first into the subject CN, which Vault's cert auth needs.
var dnsNames = map[string]string{
	idKafka:    "kafka.cloud.example.org",
	idProducer: "cam-pipeline.site-a.example.org",
	idConsumer: "analytics.cloud.example.org",
	idStranger: "other.site-b.example.org",
	idDirect:   "inspector.cloud.example.org",
	idRewrap:   "quarantine-operator.cloud.example.org",
}

// rig is Vault (Transit + cert auth), a 3-broker mTLS kfake whose
// Produce requests are inspected as they arrive, and a test CA.
type rig struct {
	t       *testing.T
	kcat    string
	ca      *svidtest.CA
	vault   *harness.Vault
	cluster *kfake.Cluster

	mu       sync.Mutex
	arrived  map[batch.Compression]int // Produce batches of topic the brokers received, by codec
	produced int                       // records of topic in them
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, kcat: harness.RequireCommand(t, "kcat"), arrived: map[batch.Compression]int{}}
	var err error
	if r.ca, err = svidtest.NewCA(td); err != nil {
		t.Fatal(err)
	}
	r.startVault()
	r.startKafka()
	return r
}

// startVault: Transit key ring, cert auth trusting the test CA, and one
// role per identity bound by allowed_uri_sans. The stranger holds the
// producer policy: it may make data keys, not decrypt them. The
// quarantine operator may only re-wrap data keys (edgeid kafka rewrap).
func (r *rig) startVault() {
	t := r.t
	r.vault = harness.StartVaultDevTLS(t)
	r.vault.SetUpTransitCertAuth(t, harness.TransitCertAuth{
		Ring: ring, CAPEM: r.ca.CertificatePEM(),
		Policies: map[string]string{
			"recordgw-producer": transitpolicy.Producer("transit", ring),
			"recordgw-consumer": transitpolicy.Consumer("transit", ring),
			"recordgw-rewrap":   transitpolicy.Rewrap("transit", ring),
		},
		Roles: map[string]harness.CertRole{
			"producer": {SPIFFEID: idProducer, Policy: "recordgw-producer"},
			"consumer": {SPIFFEID: idConsumer, Policy: "recordgw-consumer"},
			"stranger": {SPIFFEID: idStranger, Policy: "recordgw-producer"},
			"rewrap":   {SPIFFEID: idRewrap, Policy: "recordgw-rewrap"},
		},
	})
}

// startKafka runs kfake with 3 brokers, mTLS for any member of the trust
// domain, the topic's partitions led by all three brokers, and a hook
// that records the compression of every Produce batch of topic.
func (r *rig) startKafka() {
	t := r.t
	trust := spiffeid.RequireTrustDomainFromString(td)
	r.cluster = harness.StartKafka3(t, tlsconfig.MTLSServerConfig(r.source(idKafka), r.ca.Bundle(), tlsconfig.AuthorizeMemberOf(trust)),
		tlsconfig.MTLSClientConfig(r.source(idDirect), r.ca.Bundle(), tlsconfig.AuthorizeMemberOf(trust)), topic, partitions, r.inspect)
	cl := r.direct()
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.advertiseOldMinVersions(ctx, cl)
}

// advertiseOldMinVersions makes kfake advertise Produce and Fetch from
// version 0, as Kafka 3.x brokers do (it still serves only what it can).
// kfake, like Kafka 4.0, advertises Produce from v3, and librdkafka 2.0.2
// then switches gzip, snappy and lz4 off ("Broker does not support
// compression type gzip: not compressing batch"): its compression
// features require Produce v2 in the advertised range. Without this, kcat
// sends those codecs uncompressed and the compression check is vacuous.
func (r *rig) advertiseOldMinVersions(ctx context.Context, cl *kgo.Client) {
	real, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		r.t.Fatalf("api versions: %v", err)
	}
	r.cluster.ControlKey(18, func(req kmsg.Request) (kmsg.Response, error, bool) {
		r.cluster.KeepControl()
		resp := req.(*kmsg.ApiVersionsRequest).ResponseKind().(*kmsg.ApiVersionsResponse)
		if resp.Version > 3 {
			return nil, nil, false
		}
		for _, k := range real.ApiKeys {
			if k.ApiKey == 0 || k.ApiKey == 1 {
				k.MinVersion = 0
			}
			resp.ApiKeys = append(resp.ApiKeys, k)
		}
		return resp, nil, true
	})
}

// inspect counts the batches of topic a broker receives, by codec.
func (r *rig) inspect(req *kmsg.ProduceRequest) {
	codec := batch.NewCodec(0)
	for _, tp := range req.Topics {
		if tp.Topic != topic {
			continue
		}
		for _, p := range tp.Partitions {
			bs, _, err := codec.Decode(p.Records)
			r.mu.Lock()
			if err != nil {
				r.arrived[-1]++
			}
			for i := range bs {
				r.arrived[bs[i].Compression()]++
				r.produced += len(bs[i].Records)
			}
			r.mu.Unlock()
		}
	}
}

func (r *rig) source(id string) *svidtest.Source {
	s, err := r.ca.SVID(id, time.Hour, dnsNames[id])
	if err != nil {
		r.t.Fatal(err)
	}
	return svidtest.NewSource(s)
}

// direct is a franz-go client that reaches kfake without any gateway.
func (r *rig) direct(opts ...kgo.Opt) *kgo.Client {
	trust := spiffeid.RequireTrustDomainFromString(td)
	cfg := tlsconfig.MTLSClientConfig(r.source(idDirect), r.ca.Bundle(), tlsconfig.AuthorizeMemberOf(trust))
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.cluster.ListenAddrs()...), kgo.DialTLSConfig(cfg)}, opts...)...)
	if err != nil {
		r.t.Fatal(err)
	}
	return cl
}

// edge is one edge gateway as edgeid-helper runs it.
type edge struct {
	gw         *kafkagw.Gateway
	reg        *prometheus.Registry
	quarantine string
	log        *harness.SyncBuffer
}

// startEdge parses a helper config with a kafka_gateway "uplink" block
// whose encrypt block has the given extra keys, and runs the gateway with
// id's SVID, as the helper's daemon does.
func (r *rig) startEdge(id, extra string) *edge {
	t := r.t
	e := &edge{reg: prometheus.NewRegistry(), quarantine: t.TempDir(), log: &harness.SyncBuffer{}}
	src := fmt.Sprintf(`spiffe_id = %q
kafka_gateway "uplink" {
  upstreams = [%q]
  upstream_spiffe_ids = [%q]
  encrypt {
    topics         = ["site-a.*"]
    key_ring       = %q
    vault_address  = %q
    vault_ca_file  = %q
    quarantine_dir = %q
    %s
  }
}
`, id, r.cluster.ListenAddrs()[0], idKafka, ring, r.vault.Addr, r.vault.CACertPath, e.quarantine, extra)
	cfg, _, err := config.Parse("helper.conf", []byte(src), config.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("helper config:\n%s\n%v", src, err)
	}
	gc := cfg.KafkaGateways[0]
	m, err := kafkagw.NewMetrics(e.reg, 0)
	if err != nil {
		t.Fatal(err)
	}
	gc.Metrics = m
	gc.Logger = slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if e.gw, err = kafkagw.New(gc, kafkagw.Sources{SVIDs: r.source(id), Bundles: r.ca.Bundle()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		e.gw.Wait()
		if t.Failed() {
			t.Logf("gateway %s log:\n%s", id, e.log.String())
		}
	})
	return e
}

// counter sums the counter name over series whose labels include want.
func (e *edge) counter(t *testing.T, name string, want map[string]string) float64 {
	fams, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			for k, v := range want {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == k && l.GetValue() == v)
				}
				if !found {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// runKcat runs kcat against gateway e's plaintext loopback listener.
func (r *rig) runKcat(e *edge, stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{"-b", e.gw.BootstrapAddrs()[0], "-X", "broker.address.family=v4"}, args...)
	cmd := exec.CommandContext(ctx, r.kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// svidFiles writes id's SVID, key and the trust bundle to a new directory.
func (r *rig) svidFiles(id string) (cert, key, ca string) {
	s, err := r.ca.SVID(id, time.Hour, dnsNames[id])
	if err != nil {
		r.t.Fatal(err)
	}
	if cert, key, ca, err = r.ca.WriteFiles(r.t.TempDir(), s); err != nil {
		r.t.Fatal(err)
	}
	return cert, key, ca
}

// runEdgeid runs the real edgeid binary with a clean environment plus
// env, and returns its output and exit code.
func runEdgeid(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := harness.BuildBinary(t, "./orchestrator/cmd/edgeid", "edgeid").Path
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(harness.CleanEnv(t.TempDir()), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("edgeid %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}
