package aclsync

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const basePolicy = `
allow "site-a-publish" {
  actors     = ["spiffe://example.org/edge/site-a/cam"]
  resources  = ["topic:site-a.*"]
  operations = ["WRITE", "DESCRIBE"]
}
allow "cloud-consume" {
  actors     = ["spiffe://example.org/cloud/consumer", "spiffe://example.org/edge/*"]
  resources  = ["topic:site-a.detections", "group:cloud-consumers"]
  operations = ["READ"]
}
deny "no-admin" {
  actors     = ["spiffe://example.org/edge/site-a/cam"]
  resources  = ["cluster"]
  operations = ["ALTER"]
}
`

// without "cloud-consume": its ACLs must go.
const reducedPolicy = `
allow "site-a-publish" {
  actors     = ["spiffe://example.org/edge/site-a/cam"]
  resources  = ["topic:site-a.*"]
  operations = ["WRITE", "DESCRIBE"]
}
deny "no-admin" {
  actors     = ["spiffe://example.org/edge/site-a/cam"]
  resources  = ["cluster"]
  operations = ["ALTER"]
}
`

// foreign ACLs: other principals, another trust domain, a bare prefix
// lookalike. The sync must never touch them.
var foreign = []policy.ACL{
	{Principal: "User:alice", Host: "*", ResourceType: policy.Topic, ResourceName: "site-a.detections", PatternType: policy.PatternLiteral, Operation: policy.Write, Permission: policy.PermissionAllow},
	{Principal: "User:spiffe://other.org/cloud/consumer", Host: "*", ResourceType: policy.Topic, ResourceName: "site-a.detections", PatternType: policy.PatternLiteral, Operation: policy.Read, Permission: policy.PermissionAllow},
	{Principal: "User:spiffe://example.organisation/x", Host: "*", ResourceType: policy.Group, ResourceName: "g", PatternType: policy.PatternPrefixed, Operation: policy.Read, Permission: policy.PermissionAllow},
}

// stale is managed (this trust domain) and implied by no rule.
var stale = policy.ACL{Principal: "User:spiffe://example.org/edge/site-z/old", Host: "*", ResourceType: policy.Topic, ResourceName: "site-z.detections", PatternType: policy.PatternLiteral, Operation: policy.Write, Permission: policy.PermissionAllow}

func mustParse(t *testing.T, src string) *policy.Set {
	t.Helper()
	s, err := policy.Parse([]byte(src), "policy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newAdmin(t *testing.T) *kadm.Client {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func sorted(acls []policy.ACL) []string {
	out := make([]string, len(acls))
	for i, a := range acls {
		out[i] = a.String()
	}
	slices.Sort(out)
	return out
}

// syncOnce fetches, plans and applies, and returns the plan.
func syncOnce(t *testing.T, ctx context.Context, adm Admin, set *policy.Set) *Plan {
	t.Helper()
	have, err := Fetch(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	p := Compute(set, "example.org", have)
	if err := Apply(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSyncAgainstKfake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := newAdmin(t)
	seed := &Plan{Create: append(slices.Clone(foreign), stale)}
	if err := Apply(ctx, adm, seed); err != nil {
		t.Fatal(err)
	}
	set := mustParse(t, basePolicy)
	want, skipped := set.ACLs()
	if len(want) != 5 || len(skipped) != 1 || !strings.Contains(skipped[0], "spiffe://example.org/edge/*") {
		t.Fatalf("policy implies %d ACLs, skipped %q; want 5 and the edge/* pattern", len(want), skipped)
	}

	// First apply: creates exactly the planned ACLs, deletes the stale one.
	p := syncOnce(t, ctx, adm, set)
	if !slices.Equal(sorted(p.Create), sorted(want)) || !slices.Equal(sorted(p.Delete), []string{stale.String()}) ||
		len(p.Unchanged) != 0 || p.Unmanaged != len(foreign) {
		t.Fatalf("first plan: create %q delete %q unchanged %d unmanaged %d", sorted(p.Create), sorted(p.Delete), len(p.Unchanged), p.Unmanaged)
	}
	have, _ := Fetch(ctx, adm)
	if got, exp := sorted(have), sorted(append(slices.Clone(want), foreign...)); !slices.Equal(got, exp) {
		t.Fatalf("cluster after apply:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(exp, "\n"))
	}

	// Second apply: nothing to do.
	p = syncOnce(t, ctx, adm, set)
	if !p.Empty() || len(p.Unchanged) != len(want) {
		t.Fatalf("second plan not empty: create %q delete %q unchanged %d", sorted(p.Create), sorted(p.Delete), len(p.Unchanged))
	}

	// Removing a rule deletes its ACLs and nothing else.
	reduced := mustParse(t, reducedPolicy)
	rwant, _ := reduced.ACLs()
	p = syncOnce(t, ctx, adm, reduced)
	if len(p.Create) != 0 || len(p.Delete) != len(want)-len(rwant) {
		t.Fatalf("reduced plan: create %q delete %q", sorted(p.Create), sorted(p.Delete))
	}
	for _, a := range p.Delete {
		if a.Operation != policy.Read {
			t.Errorf("deleted %s, which the remaining rules imply", a)
		}
	}
	have, _ = Fetch(ctx, adm)
	if got, exp := sorted(have), sorted(append(slices.Clone(rwant), foreign...)); !slices.Equal(got, exp) {
		t.Fatalf("cluster after removing a rule:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(exp, "\n"))
	}
}

func TestPlanWrite(t *testing.T) {
	set := mustParse(t, basePolicy)
	p := Compute(set, "example.org", append(slices.Clone(foreign), stale))
	var b bytes.Buffer
	p.Write(&b)
	out := b.String()
	for _, want := range []string{
		"+ ALLOW User:spiffe://example.org/edge/site-a/cam WRITE on topic:site-a. (PREFIXED) from *",
		"+ DENY User:spiffe://example.org/edge/site-a/cam ALTER on cluster:kafka-cluster (LITERAL) from *",
		"- " + stale.String(),
		`! not expressible as an ACL: rule "cloud-consume": actor "spiffe://example.org/edge/*"`,
		"5 to create, 1 to delete, 0 unchanged, 1 skipped actor(s); 3 other ACL(s) outside User:spiffe://example.org/* left alone",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}
}

func TestTrustDomain(t *testing.T) {
	for _, tc := range []struct {
		src, want, err string
	}{
		{basePolicy, "example.org", ""},
		{`allow "x" {
  actors = ["*"]
  resources = ["topic:t"]
  operations = ["READ"]
}`, "", "names no trust domain"},
		{`allow "x" {
  actors = ["spiffe://a.org/x", "spiffe://b.org"]
  resources = ["topic:t"]
  operations = ["READ"]
}`, "", "several trust domains (a.org, b.org)"},
	} {
		got, err := TrustDomain(mustParse(t, tc.src))
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("TrustDomain = %q, %v; want %q, %q", got, err, tc.want, tc.err)
		}
	}
}
