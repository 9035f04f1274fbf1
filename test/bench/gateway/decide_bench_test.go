package gatewaybench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
)

// thousandRules is a 1,000-rule policy: 500 rules on literal topics and
// 500 on topic prefixes (each prefix rule is scanned on every uncached
// lookup), one exact actor each.
func thousandRules(tb testing.TB) *policy.Set {
	var b strings.Builder
	for i := range 1000 {
		res := fmt.Sprintf("topic:site-%d.detections", i)
		if i%2 == 1 {
			res = fmt.Sprintf("topic:site-%d.*", i)
		}
		fmt.Fprintf(&b, "allow \"r%d\" {\n  actors = [\"spiffe://example.org/edge/site-%d/cam\"]\n  resources = [%q]\n  operations = [\"WRITE\", \"DESCRIBE\"]\n}\n", i, i, res)
	}
	set, err := policy.Parse([]byte(b.String()), "thousand.hcl")
	if err != nil {
		tb.Fatal(err)
	}
	if n := len(set.Rules()); n != 1000 {
		tb.Fatalf("%d rules", n)
	}
	return set
}

var sink policy.Decision

// The actor of rule 501 on its own prefixed topic: a candidate list built
// from the literal map and all 500 prefixes.
const (
	decideActor = "spiffe://example.org/edge/site-501/cam"
	decideTopic = "site-501.tracks"
)

func BenchmarkDecideCached(b *testing.B) {
	set := thousandRules(b)
	res := policy.TopicResource(decideTopic)
	if !set.Decide(decideActor, res, policy.Write).Allowed {
		b.Fatal("not allowed")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sink = set.Decide(decideActor, res, policy.Write)
	}
}

func BenchmarkDecideUncached(b *testing.B) {
	set := thousandRules(b)
	res := policy.TopicResource(decideTopic)
	if !set.DecideUncached(decideActor, res, policy.Write).Allowed {
		b.Fatal("not allowed")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sink = set.DecideUncached(decideActor, res, policy.Write)
	}
}
