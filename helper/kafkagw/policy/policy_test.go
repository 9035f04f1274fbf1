package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const seed = `
allow_if_no_acl = true

allow "site-a-pipelines-write" {
  actors     = ["spiffe://example.org/edge/site-a/*"]
  resources  = ["topic:site-a.detections"]
  operations = ["WRITE"]
}
allow "cloud-consumer" {
  actors     = ["spiffe://example.org/cloud/consumer"]
  resources  = ["topic:site-*", "group:cloud-*"]
  operations = ["READ"]
}
allow "ops" {
  actors     = ["spiffe://example.org"]
  resources  = ["cluster"]
  operations = ["DESCRIBE"]
}
deny "no-quarantined" {
  actors     = ["spiffe://example.org/edge/site-a/quarantined"]
  resources  = ["topic:site-a.detections"]
  operations = ["ALL"]
}
`

func TestDecide(t *testing.T) {
	s, err := Parse([]byte(seed), "seed.hcl")
	if err != nil {
		t.Fatal(err)
	}
	const (
		pipeA = "spiffe://example.org/edge/site-a/deepstream/cam"
		cloud = "spiffe://example.org/cloud/consumer"
	)
	tests := []struct {
		actor  string
		res    Resource
		op     Operation
		allow  bool
		reason string
	}{
		{pipeA, TopicResource("site-a.detections"), Write, true, "allow_rule"},
		{pipeA, TopicResource("site-a.detections"), Describe, true, "allow_rule"}, // WRITE implies DESCRIBE
		{pipeA, TopicResource("site-a.detections"), Read, false, "no_matching_allow"},
		{pipeA, TopicResource("site-b.detections"), Write, false, "no_matching_allow"},                                 // covered by cloud-consumer's prefix
		{pipeA, TopicResource("unrelated"), Write, true, "no_acl"},                                                     // allow_if_no_acl
		{"spiffe://example.org/edge/site-a", TopicResource("site-a.detections"), Write, false, "no_matching_allow"},    // prefix needs a child
		{"spiffe://example.org/edge/site-ab/x", TopicResource("site-a.detections"), Write, false, "no_matching_allow"}, // "/" boundary
		{"spiffe://other.org/edge/site-a/x", TopicResource("site-a.detections"), Write, false, "no_matching_allow"},
		{"spiffe://example.org/edge/site-a/quarantined", TopicResource("site-a.detections"), Write, false, "deny_rule"},
		{cloud, TopicResource("site-b.detections"), Read, true, "allow_rule"},
		{cloud, GroupResource("cloud-readers"), Read, true, "allow_rule"},
		{cloud, GroupResource("cloud-readers"), Describe, true, "allow_rule"},
		{cloud, TopicResource("site-b.detections"), Write, false, "no_matching_allow"},
		{cloud, ClusterResource(), Describe, true, "allow_rule"},
		{cloud, ClusterResource(), Alter, false, "no_matching_allow"},
		{"not-a-spiffe-id", TopicResource("site-a.detections"), Write, false, "no_matching_allow"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%s", tt.actor, tt.res, tt.op), func(t *testing.T) {
			for range 2 { // the second answer comes from the cache
				d := s.Decide(tt.actor, tt.res, tt.op)
				if d.Allowed != tt.allow || d.Reason != tt.reason {
					t.Fatalf("got %+v, want allowed=%v reason=%s", d, tt.allow, tt.reason)
				}
			}
		})
	}
}

func TestAllowIfNoACLDefaultsToFalse(t *testing.T) {
	s, err := Parse([]byte(`
allow "x" {
  actors = ["*"]
  resources = ["topic:a"]
  operations = ["READ"]
}`), "p.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Decide("spiffe://example.org/x", TopicResource("b"), Read); d.Allowed || d.Reason != "no_acl" {
		t.Fatalf("uncovered topic: %+v", d)
	}
	if d := s.Decide("spiffe://example.org/x", TopicResource("a"), Read); !d.Allowed {
		t.Fatalf("\"*\" actor: %+v", d)
	}
}

func TestParseErrorsNameFileLineAndKey(t *testing.T) {
	src := `allow "a" {
  actors     = ["example.org/x"]
  resources  = ["queue:x", "topic:a*b"]
  operations = ["FLY"]
}
deny "a" {
  actors     = []
  resources  = ["cluster"]
  operations = ["ALL"]
}
`
	_, err := Parse([]byte(src), "bad.hcl")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	want := []string{
		"bad.hcl:2,3: rule \"a\": actors:",
		"bad.hcl:3,3: rule \"a\": resources: \"queue:x\"",
		"bad.hcl:3,3: rule \"a\": resources: \"topic:a*b\"",
		"bad.hcl:4,3: rule \"a\": operations: unknown operation \"FLY\"",
		"bad.hcl:6,6: duplicate rule name \"a\"",
		"bad.hcl:7,3: rule \"a\": actors is empty",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d: got %q, want prefix %q", i, errs[i].Error(), w)
		}
	}
}

func TestParseRejectsUnknownKeys(t *testing.T) {
	_, err := Parse([]byte("allow_everyone = true\n"), "p.hcl")
	if err == nil || !strings.Contains(err.Error(), "p.hcl:1,1") {
		t.Fatalf("got %v", err)
	}
}

func TestACLs(t *testing.T) {
	s, err := Parse([]byte(seed), "seed.hcl")
	if err != nil {
		t.Fatal(err)
	}
	acls, skipped := s.ACLs()
	var got []string
	for _, a := range acls {
		got = append(got, a.String())
	}
	want := []string{
		"ALLOW User:spiffe://example.org/cloud/consumer READ on group:cloud- (PREFIXED) from *",
		"ALLOW User:spiffe://example.org/cloud/consumer READ on topic:site- (PREFIXED) from *",
		"DENY User:spiffe://example.org/edge/site-a/quarantined ALL on topic:site-a.detections (LITERAL) from *",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ACLs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(skipped) != 2 {
		t.Fatalf("skipped %v, want the site-a prefix and the trust domain actor", skipped)
	}
}

// rules1000 is a policy of 1,000 rules: one literal topic rule per
// pipeline plus prefixed group rules.
func rules1000() *Set {
	var b strings.Builder
	for i := range 1000 {
		res := fmt.Sprintf("topic:site-%d.detections", i)
		if i%10 == 0 {
			res = fmt.Sprintf("group:site-%d-*", i)
		}
		fmt.Fprintf(&b, "allow \"r%d\" {\n actors = [\"spiffe://example.org/edge/site-%d/*\"]\n resources = [%q]\n operations = [\"WRITE\"]\n}\n", i, i, res)
	}
	s, err := Parse([]byte(b.String()), "big.hcl")
	if err != nil {
		panic(err)
	}
	return s
}

func BenchmarkDecideCached(b *testing.B) {
	s := rules1000()
	actor, res := "spiffe://example.org/edge/site-777/deepstream/cam", TopicResource("site-777.detections")
	s.Decide(actor, res, Write)
	for b.Loop() {
		if !s.Decide(actor, res, Write).Allowed {
			b.Fatal("denied")
		}
	}
}

func BenchmarkDecideUncached(b *testing.B) {
	s := rules1000()
	actor, res := "spiffe://example.org/edge/site-777/deepstream/cam", TopicResource("site-777.detections")
	for b.Loop() {
		if !s.DecideUncached(actor, res, Write).Allowed {
			b.Fatal("denied")
		}
	}
}
