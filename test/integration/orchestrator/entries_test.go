package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/orchestrator/cli"
	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
	"github.com/edgeid/edgeid/test/harness"
)

// The entries file `edgeid render` writes for each server host loads into a
// real SPIRE server, with SPIRE's own `spire-server entry create -data` and
// with `edgeid register` (which a second time finds every entry present),
// and the server then holds exactly the plan's entries: what someone
// deploying the rendered configs by hand runs instead of `edgeid up`.
func TestRenderedEntriesLoadIntoSpire(t *testing.T) {
	// Real hosts refuse a managed Vault without unseal custody, and the
	// sample leaves custody to the operator: give it two custodians
	// (public keys only; their identities were thrown away).
	sample := filepath.Join(harness.RepoRoot(t), "conf", "topology.hcl")
	src, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	custody := "vault {\n  unseal_custodians = [\"age18lllhyn6p6zvxmda6quup73vwklfz5zsm5rr6f6zmxre8wdn44kqutyqf7\", \"age1006zpwujvdn6f4aejm3hf8k97chnzqzvlklr3070h0dygt273s4qdhjvwt\"]\n  unseal_threshold  = 2\n"
	top, err := topology.Parse([]byte(strings.Replace(string(src), "vault {\n", custody, 1)), sample)
	if err != nil {
		t.Fatal(err)
	}
	bin := func(name string) render.Binary {
		return render.Binary{Path: "/opt/edgeid/bin/" + name, Checksum: strings.Repeat("0", 64)}
	}
	env := render.HostsEnv(top, render.Binaries{
		SpireServer: "/opt/edgeid/bin/spire-server", SpireAgent: "/opt/edgeid/bin/spire-agent", Vault: "/opt/edgeid/bin/vault",
		Edgeid: "/opt/edgeid/bin/edgeid", Helper: "/opt/edgeid/bin/edgeid-helper",
		VaultPKI: bin("vaultpki"), KubeEdgeServer: bin("kes"), KubeEdgeAgent: bin("kea"), DeepStream: bin("ds"),
	}, render.DefaultHostRoot)
	// The app binaries of the sample hosts are not on this machine.
	env.HashFile = func(string) (string, error) { return strings.Repeat("1", 64), nil }
	plan, err := render.Build(top, env)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := render.WriteBundle(plan, out, ""); err != nil {
		t.Fatal(err)
	}

	want := map[string][]string{}
	for _, e := range plan.Entries {
		host, _, _ := strings.Cut(e.Server, "/")
		want[host] = append(want[host], describe(e.SPIFFEID, e.ParentID, e.Selectors, int64(e.X509TTL.Seconds()), e.Downstream, e.DNSNames))
	}
	if len(want) < 2 {
		t.Fatalf("the sample topology should put entries on the cloud and on edge servers, got %v", want)
	}
	spireServer := harness.SpireServerBin(t)
	for host, entries := range want {
		file := filepath.Join(out, host, strings.TrimPrefix(render.DefaultHostRoot, "/"), render.EntriesFile)
		t.Run(host+"/spire-server entry create -data", func(t *testing.T) {
			s := harness.StartSpireServer(t, harness.ServerConfig{TrustDomain: top.TrustDomain})
			s.CLI(t, "entry", "create", "-data", file)
			checkHolds(t, s, entries)
		})
		t.Run(host+"/edgeid register", func(t *testing.T) {
			s := harness.StartSpireServer(t, harness.ServerConfig{TrustDomain: top.TrustDomain})
			register := func(file, report string) {
				t.Helper()
				var stdout, stderr bytes.Buffer
				err := cli.Run(context.Background(), []string{"register", "--entries", file, "--socket", s.SocketPath, "--spire-server", spireServer}, &stdout, &stderr)
				if err != nil || !strings.Contains(stdout.String(), report) {
					t.Fatalf("register %s: %v\n%s%s\nwant %q", file, err, stdout.String(), stderr.String(), report)
				}
			}
			register(file, fmt.Sprintf("%d created, 0 updated, 0 already present", len(entries)))
			register(file, fmt.Sprintf("0 created, 0 updated, %d already present", len(entries)))
			checkHolds(t, s, entries)

			// A topology change of the SVID TTL reaches the entries that
			// exist: every entry is updated in place.
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			changed := filepath.Join(t.TempDir(), "entries.json")
			re := regexp.MustCompile(`"x509_svid_ttl": \d+`)
			if !re.Match(data) {
				t.Fatalf("%s sets no x509_svid_ttl", file)
			}
			if err := os.WriteFile(changed, re.ReplaceAll(data, []byte(`"x509_svid_ttl": 1234`)), 0o600); err != nil {
				t.Fatal(err)
			}
			register(changed, fmt.Sprintf("0 created, %d updated, 0 already present", len(entries)))
			var longer []string
			for _, e := range entries {
				longer = append(longer, regexp.MustCompile(`ttl=\d+`).ReplaceAllString(e, "ttl=1234"))
			}
			checkHolds(t, s, longer)
		})
	}
}

// checkHolds fails unless the server holds exactly the described entries.
func checkHolds(t *testing.T, s *harness.SpireServer, want []string) {
	t.Helper()
	type id struct {
		TrustDomain string `json:"trust_domain"`
		Path        string `json:"path"`
	}
	var shown struct {
		Entries []struct {
			SPIFFEID  id                             `json:"spiffe_id"`
			ParentID  id                             `json:"parent_id"`
			Selectors []struct{ Type, Value string } `json:"selectors"`
			X509TTL   int64                          `json:"x509_svid_ttl"`
			Down      bool                           `json:"downstream"`
			DNSNames  []string                       `json:"dns_names"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(s.CLI(t, "entry", "show", "-output", "json")), &shown); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range shown.Entries {
		var sel []string
		for _, x := range e.Selectors {
			sel = append(sel, x.Type+":"+x.Value)
		}
		got = append(got, describe("spiffe://"+e.SPIFFEID.TrustDomain+e.SPIFFEID.Path, "spiffe://"+e.ParentID.TrustDomain+e.ParentID.Path,
			sel, e.X509TTL, e.Down, e.DNSNames))
	}
	want = slices.Sorted(slices.Values(want))
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("the server holds\n%s\nthe plan has\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func describe(id, parent string, selectors []string, ttl int64, downstream bool, dns []string) string {
	sel := slices.Clone(selectors)
	slices.Sort(sel)
	return strings.Join([]string{id, "parent=" + parent, "selectors=" + strings.Join(sel, ","),
		"ttl=" + strconv.FormatInt(ttl, 10), "downstream=" + strconv.FormatBool(downstream),
		"dns=" + strings.Join(dns, ",")}, " ")
}
