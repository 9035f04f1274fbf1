package runner

import (
	"bytes"
	"strings"
	"testing"
)

// TestParseGatewayMetrics: decisions are summed by result across
// operations and resource types, denials kept by actor, and the tree
// names both.
func TestParseGatewayMetrics(t *testing.T) {
	text := `# HELP edgeid_kafkagw_decisions_total Authorization decisions by result and operation.
# TYPE edgeid_kafkagw_decisions_total counter
edgeid_kafkagw_decisions_total{operation="DESCRIBE",resource_type="topic",result="allow"} 40
edgeid_kafkagw_decisions_total{operation="WRITE",resource_type="topic",result="allow"} 12
edgeid_kafkagw_decisions_total{operation="DESCRIBE",resource_type="topic",result="deny"} 1
edgeid_kafkagw_denials_total{actor="spiffe://example.org/edge/site-a/deepstream/cam"} 1
edgeid_kafkagw_connections_active 3
`
	dec, den := ParseGatewayMetrics(text)
	if dec["allow"] != 52 || dec["deny"] != 1 || len(den) != 1 || den["spiffe://example.org/edge/site-a/deepstream/cam"] != 1 {
		t.Fatalf("decisions %v, denials %v", dec, den)
	}
	var out bytes.Buffer
	st := &Status{TrustDomain: "example.org", KafkaGateways: []*GatewayStatus{{Addr: "127.0.0.1:9094", Running: true, Decisions: dec, DenialsByActor: den}}}
	st.WriteTree(&out)
	for _, want := range []string{"policy decisions 52 allowed, 1 denied", "1 denial(s) for spiffe://example.org/edge/site-a/deepstream/cam"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status tree lacks %q:\n%s", want, out.String())
		}
	}
}
