package render

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/edgeid/edgeid/orchestrator/topology"
	"github.com/edgeid/edgeid/plugins/common/deepstream"
)

// Kafka gateway ports of real hosts (embedded runs take free ones).
const (
	DefaultKafkaGatewayPort        = 9094
	DefaultKafkaGatewayMetricsPort = 9095
	// DefaultEdgeGatewayPort is the first helper's local listener on a
	// host; the next helpers take the ports after it.
	DefaultEdgeGatewayPort = 19092
	// edgeGatewayName names the kafka_gateway block of every helper.
	edgeGatewayName = "cloud"
)

// cloudGateway is the cloud-mode Kafka gateway in front of the demo broker.
type cloudGateway struct {
	host     *Host
	id       string // its SPIFFE ID
	addr     string // what clients dial: advertised name and port
	brokerID string // the demo broker, whose consumer reads every topic
	policy   string // path of the rendered policy
}

// kafkaClient is a workload the gateway policy names.
type kafkaClient struct {
	id                 string
	publish, subscribe []string
	group              string
}

// buildKafkaGateway adds the cloud gateway in front of the broker at
// brokerAddr and returns the address clients use. Only the gateway may
// reach the broker (its -allow); clients reach only the gateway, which
// authorizes each request by the client's SPIFFE ID.
func (b *builder) buildKafkaGateway(h *Host, agent Service, cloudRef, brokerAddr, brokerID, advertise string) string {
	td := b.top.TrustDomain
	port := strconv.Itoa(b.env.Port(h.Name, "kafka-gateway", DefaultKafkaGatewayPort))
	metrics := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.env.Port(h.Name, "kafka-gateway-metrics", DefaultKafkaGatewayMetricsPort)))
	g := &cloudGateway{host: h, id: CloudID(td, "kafka-gateway"), addr: net.JoinHostPort(h.Addr, port), brokerID: brokerID,
		policy: h.path("kafka-gateway", "policy.hcl")}
	argv := []string{b.env.Bins.Edgeid, "kafka-gateway",
		"-workload-api", "unix://" + agent.Socket,
		"-spiffe-id", g.id,
		"-trust-domain", td,
		"-upstream", brokerAddr,
		"-upstream-id", brokerID,
		"-listen-host", h.Addr,
		"-port-min", port, "-port-max", port,
		"-policy", g.policy,
		"-metrics", metrics}
	var dnsNames []string
	if advertise != "" {
		argv = append(argv, "-advertise", advertise)
		dnsNames = []string{advertise}
		g.addr = net.JoinHostPort(advertise, port)
	}
	// Status reads the decision counts from the metrics endpoint, so the
	// gateway always has one, on loopback.
	h.addService(Service{
		Name: "kafka-gateway", Kind: KindKafkaGateway, Addr: net.JoinHostPort(h.Addr, port), Account: b.gatewayUser,
		Argv: argv, Socket: agent.Socket, DataDir: h.path("kafka-gateway"),
		MetricsURL: "http://" + metrics + "/metrics", HealthURL: "http://" + metrics + "/healthz",
	})
	b.plan.Entries = append(b.plan.Entries, Entry{
		Server: cloudRef, ParentID: agent.AgentID, SPIFFEID: g.id,
		Selectors: []string{b.gatewayUser.Selector(), "unix:path:" + b.env.Bins.Edgeid},
		X509TTL:   b.top.Cloud.X509SVIDTTL, DNSNames: dnsNames, Workload: "kafka-gateway",
	})
	b.gateway = g
	return g.addr
}

// edgeGatewayData fills a helper's kafka_gateway block.
type edgeGatewayData struct {
	Name, Upstream, UpstreamID string
	Port                       int
	MaxConnLifetime            string
	// Encrypt is the record encryption of the pipeline's topics, or nil.
	Encrypt *encryptData
}

// edgeGateway gives the helper svc on h a local gateway to the cloud one,
// or nil when there is none (an external Kafka).
func (b *builder) edgeGateway(h *Host, svcName string, ttl time.Duration) *edgeGatewayData {
	if b.gateway == nil {
		return nil
	}
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	port := b.env.Port(h.Name, svcName+"-kafka-gateway", DefaultEdgeGatewayPort+len(h.services(KindHelper)))
	return &edgeGatewayData{Name: edgeGatewayName, Upstream: b.gateway.addr, UpstreamID: b.gateway.id, Port: port,
		MaxConnLifetime: ttl.String()}
}

// addKafkaClient records what a DeepStream workload publishes (its sinks'
// topics) and subscribes to (its message consumers'), for the policy.
func (b *builder) addKafkaClient(site topology.Site, w topology.Workload, pipeline []byte, publish []string) {
	c := kafkaClient{id: WorkloadID(b.top.TrustDomain, site.Name, w.Name), publish: publish,
		group: site.Name + "." + workloadDir(w.Name)}
	if kf, err := deepstream.Parse(pipeline, deepstream.DefaultLimits); err == nil {
		if app, err := deepstream.ParseApp(kf); err == nil {
			for _, cons := range app.Consumers {
				c.subscribe = append(c.subscribe, cons.Topics...)
			}
		}
	}
	b.clients = append(b.clients, c)
}

// addGatewayPolicy writes the cloud gateway's policy, read by the gateway's
// account: a pipeline's publish topics get WRITE and DESCRIBE for its
// SPIFFE ID, its subscribe topics READ with its consumer group, and the
// broker's own consumer READ on every published topic. Nothing else is
// allowed (allow_if_no_acl = false).
func (b *builder) addGatewayPolicy() {
	g := b.gateway
	if g == nil {
		return
	}
	var out bytes.Buffer
	out.WriteString("# Rendered by edgeid from the topology; edit the topology, not this file.\n# Kafka gateway policy (see helper/kafkagw/README.md).\n")
	out.WriteString("# A site's pipeline may write only its own topics; a wrong-site publish is\n# refused with TOPIC_AUTHORIZATION_FAILED.\nallow_if_no_acl = false\n")
	for _, c := range b.clients {
		if len(c.publish) > 0 {
			rule(&out, c.id+" publish", c.id, topicResources(c.publish), "WRITE", "DESCRIBE")
		}
		if len(c.subscribe) > 0 {
			rule(&out, c.id+" subscribe", c.id, append(topicResources(c.subscribe), "group:"+c.group), "READ", "DESCRIBE")
		}
	}
	if len(b.topics) > 0 {
		rule(&out, "cloud consumer", g.brokerID, topicResources(slices.Sorted(maps.Keys(b.topics))), "READ", "DESCRIBE")
	}
	g.host.addGroupFile(g.policy, out.Bytes(), b.gatewayUser)
}

func rule(out *bytes.Buffer, name, actor string, resources []string, ops ...string) {
	fmt.Fprintf(out, "\nallow %q {\n  actors     = [%q]\n  resources  = [%s]\n  operations = [%s]\n}\n", name, actor, quoteList(resources), quoteList(ops))
}

func topicResources(topics []string) []string {
	out := make([]string, 0, len(topics))
	for _, t := range topics {
		out = append(out, "topic:"+t)
	}
	return out
}

func quoteList(items []string) string {
	var b bytes.Buffer
	for i, s := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(s))
	}
	return b.String()
}
