package render

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
)

// TestGatewayPolicyFromTopology: the cloud gateway's rendered policy lets
// each pipeline write and describe only its own publish topics, read its
// subscribe topics with its own group, and lets the broker's consumer read
// what is published; every pipeline's DeepStream config names its helper's
// local gateway, and the broker admits only the gateway.
func TestGatewayPolicyFromTopology(t *testing.T) {
	plan := samplePlan(t)
	cloud := plan.Host("cloud")
	var src []byte
	for _, f := range cloud.Files {
		if strings.HasSuffix(f.Path, filepath.Join("kafka-gateway", "policy.hcl")) {
			src = f.Content
		}
	}
	if src == nil {
		t.Fatal("no kafka-gateway/policy.hcl on the cloud host")
	}
	p, err := policy.Parse(src, "policy.hcl")
	if err != nil {
		t.Fatalf("the gateway refuses the rendered policy: %v\n%s", err, src)
	}
	a := WorkloadID(plan.TrustDomain, "site-a", "deepstream/cam-pipeline")
	b := WorkloadID(plan.TrustDomain, "site-b", "deepstream/cam-pipeline")
	broker := CloudID(plan.TrustDomain, "kafka")
	topic := policy.TopicResource
	for _, tc := range []struct {
		actor string
		res   policy.Resource
		op    policy.Operation
		want  bool
	}{
		{a, topic("detections"), policy.Write, true},
		{a, topic("detections"), policy.Describe, true},
		{a, topic("detections"), policy.Read, false},
		{a, topic("commands"), policy.Read, true},
		{a, topic("commands"), policy.Write, false},
		{a, policy.GroupResource("site-a.deepstream_cam-pipeline"), policy.Read, true},
		{a, policy.GroupResource("site-b.deepstream_cam-pipeline"), policy.Read, false},
		{b, policy.GroupResource("site-b.deepstream_cam-pipeline"), policy.Read, true},
		{broker, topic("detections"), policy.Read, true},
		{broker, topic("detections"), policy.Write, false},
		{"spiffe://example.org/edge/site-a/other", topic("detections"), policy.Write, false},
		{a, policy.ClusterResource(), policy.Create, false},
	} {
		if got := p.Decide(tc.actor, tc.res, tc.op); got.Allowed != tc.want {
			t.Errorf("%s %s %s: allowed %v (%s), want %v", tc.actor, tc.res, tc.op, got.Allowed, got.Reason, tc.want)
		}
	}

	_, gw := plan.Service("cloud/kafka-gateway")
	_, kafka := plan.Service("cloud/kafka")
	if gw == nil || gw.Kind != KindKafkaGateway || gw.MetricsURL == "" || kafka == nil {
		t.Fatalf("cloud services: gateway %+v, broker %+v", gw, kafka)
	}
	if i := slices.Index(kafka.Argv, "-allow"); i < 0 || kafka.Argv[i+1] != CloudID(plan.TrustDomain, "kafka-gateway") {
		t.Errorf("the broker admits more than the gateway: %v", kafka.Argv)
	}
	entry := slices.IndexFunc(plan.Entries, func(e Entry) bool { return e.SPIFFEID == CloudID(plan.TrustDomain, "kafka-gateway") })
	if entry < 0 || len(plan.Entries[entry].DNSNames) == 0 {
		t.Errorf("no gateway entry with the DNS name it advertises")
	}
	for _, host := range []string{"edge-a-1", "edge-b-1"} {
		for _, f := range plan.Host(host).Files {
			if filepath.Base(f.Path) == "test5_config.txt" && !strings.Contains(string(f.Content), "msg-broker-conn-str=127.0.0.1;") {
				t.Errorf("%s: the pipeline does not publish through its local gateway:\n%s", f.Path, f.Content)
			}
		}
	}
}
