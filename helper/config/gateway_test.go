package config

import (
	"strings"
	"testing"
	"time"
)

const gatewayConf = minimal + `spiffe_id = "spiffe://example.org/edge/site-a/cam"
kafka {
  deepstream_file_name = "cfg_kafka.txt"
}
kafka_gateway "uplink" {
  upstreams = ["localhost:9094"]
  port_min = 19092
  port_max = 19095
  upstream_spiffe_ids = ["spiffe://example.org/cloud/kafka-gateway"]
  max_conn_lifetime = "2m"
}
`

// TestKafkaGateway: the block becomes an edge-mode kafkagw.Config with
// loopback and the helper's trust domain by default, and the Kafka files
// point at its plaintext listener.
func TestKafkaGateway(t *testing.T) {
	c, _, err := parse(t, gatewayConf)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.KafkaGateways) != 1 {
		t.Fatalf("gateways: %+v", c.KafkaGateways)
	}
	g := c.KafkaGateways[0]
	if g.Name != "uplink" || g.Mode != "edge" || g.ListenHost != "127.0.0.1" || g.TrustDomain != "example.org" ||
		g.PortMin != 19092 || g.PortMax != 19095 || g.MaxConnLifetime != 2*time.Minute || len(g.UpstreamIDs) != 1 || g.AllowRemoteClients {
		t.Errorf("gateway: %+v", g)
	}
	if c.Kafka.Gateway != "uplink" || !c.Kafka.Plaintext || c.Kafka.BootstrapServers != "" {
		t.Errorf("kafka: gateway %q plaintext %v bootstrap %q", c.Kafka.Gateway, c.Kafka.Plaintext, c.Kafka.BootstrapServers)
	}
	// Without a gateway, the files stay TLS.
	c, _, err = parse(t, minimal+"kafka {}\n")
	if err != nil || c.Kafka.Plaintext || c.Kafka.Gateway != "" {
		t.Errorf("no gateway: %v %+v", err, c)
	}
}

// TestKafkaGatewayErrors: each problem at its key, with the file position.
func TestKafkaGatewayErrors(t *testing.T) {
	gw := func(body string) string { return minimal + "kafka_gateway \"g\" {\n" + body + "\n}\n" }
	for _, tc := range []struct{ name, src, want string }{
		{"no upstreams", gw(`trust_domain = "td"`), `helper.conf:5,1-14: kafka_gateway "g": "upstreams" is required`},
		{"upstream without port", gw("upstreams = [\"broker\"]\ntrust_domain = \"td\""), `helper.conf:6,1-10: kafka_gateway "g": "upstreams": "broker" must be host:port`},
		{"every interface", gw("upstreams = [\"b:1\"]\ntrust_domain = \"td\"\nlisten_host = \"0.0.0.0\""), `helper.conf:8,1-12: kafka_gateway "g": "listen_host"`},
		{"a name", gw("upstreams = [\"b:1\"]\ntrust_domain = \"td\"\nlisten_host = \"edge-a-1\""), `"listen_host" "edge-a-1" is not a loopback address`},
		{"no trust domain", gw(`upstreams = ["b:1"]`), `"trust_domain" is required when "spiffe_id" is not set`},
		{"bad port range", gw("upstreams = [\"b:1\"]\ntrust_domain = \"td\"\nport_min = 9000\nport_max = 8000"), `helper.conf:8,1-9: kafka_gateway "g": port range 9000-8000`},
		{"half a range", gw("upstreams = [\"b:1\"]\ntrust_domain = \"td\"\nport_max = 8000"), `port range 0-8000`},
		{"bad upstream id", gw("upstreams = [\"b:1\"]\ntrust_domain = \"td\"\nupstream_spiffe_ids = [\"x\"]"), `"upstream_spiffe_ids": "x" is not a SPIFFE ID`},
		{"unknown key", gw("upstreams = [\"b:1\"]\nmode = \"cloud\""), `unknown key "mode" in kafka_gateway "g"`},
		{"one-shot", gw("upstreams = [\"b:1\"]\ntrust_domain = \"td\"") + "daemon_mode = false\n", `kafka_gateway needs daemon mode`},
		{"twice", gw("upstreams = [\"b:1\"]\ntrust_domain = \"td\"") + "kafka_gateway \"g\" {\nupstreams = [\"b:1\"]\ntrust_domain = \"td\"\n}\n", `kafka_gateway "g": name used twice`},
		{"kafka names none", gw("upstreams = [\"b:1\"]\ntrust_domain = \"td\"") + "kafka {\n gateway = \"h\"\n}\n", `"gateway" "h" names no kafka_gateway block`},
		{"bootstrap with gateway", gw("upstreams = [\"b:1\"]\ntrust_domain = \"td\"") + "kafka {\n bootstrap_servers = \"b:1\"\n}\n", `"bootstrap_servers" is the local listener of kafka_gateway "g"`},
		{"two without a choice", gw("upstreams = [\"b:1\"]\ntrust_domain = \"td\"") + "kafka_gateway \"h\" {\nupstreams = [\"b:1\"]\ntrust_domain = \"td\"\n}\nkafka {}\n", `there are 2 kafka_gateway blocks`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parse(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	// A gateway alone is a complete config; a remote listener is allowed
	// when asked for.
	c, _, err := parse(t, "kafka_gateway \"g\" {\nupstreams = [\"b:1\"]\ntrust_domain = \"td\"\nlisten_host = \"0.0.0.0\"\nallow_remote_clients = true\n}\n")
	if err != nil || len(c.KafkaGateways) != 1 || c.KafkaGateways[0].ListenHost != "0.0.0.0" {
		t.Fatalf("gateway-only config: %v", err)
	}
}
