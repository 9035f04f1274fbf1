package render

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	helperconfig "github.com/edgeid/edgeid/helper/config"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func fixedBinaries() Binaries {
	sum := func(c string) string { return strings.Repeat(c, 64) }
	return Binaries{
		SpireServer:    "/opt/edgeid/bin/spire-server",
		SpireAgent:     "/opt/edgeid/bin/spire-agent",
		Vault:          "/opt/edgeid/bin/vault",
		Edgeid:         "/opt/edgeid/bin/edgeid",
		Helper:         "/opt/edgeid/bin/edgeid-helper",
		VaultPKI:       Binary{Path: "/opt/edgeid/bin/edgeid-upstreamauthority-vaultpki", Checksum: sum("a")},
		KubeEdgeServer: Binary{Path: "/opt/edgeid/bin/edgeid-nodeattestor-kubeedge-server", Checksum: sum("b")},
		KubeEdgeAgent:  Binary{Path: "/opt/edgeid/bin/edgeid-nodeattestor-kubeedge-agent", Checksum: sum("c")},
		DeepStream:     Binary{Path: "/opt/edgeid/bin/edgeid-workloadattestor-deepstream", Checksum: sum("d")},
	}
}

// testEnv is HostsEnv with fixedBinaries and a fixed hash for app binaries
// (the test hosts' binaries do not exist here).
func testEnv(top *topology.Topology) Env {
	env := HostsEnv(top, fixedBinaries(), "")
	env.HashFile = func(string) (string, error) { return strings.Repeat("e", 64), nil }
	return env
}

// sampleCustodians are the age recipients the render tests give the
// sample topology's Vault: real hosts refuse a managed Vault without
// custody, and the sample leaves it to the operator. Public keys only;
// their identities were thrown away.
var sampleCustodians = []string{
	"age18lllhyn6p6zvxmda6quup73vwklfz5zsm5rr6f6zmxre8wdn44kqutyqf7",
	"age1006zpwujvdn6f4aejm3hf8k97chnzqzvlklr3070h0dygt273s4qdhjvwt",
	"age1gtyc2nwyua0ek8gv8qv6995np7v0up0a543edyu5x5gq52z7aeqqjxppa0",
}

// sampleTopology is conf/topology.hcl with sampleCustodians (2 of 3)
// added to its vault block, written next to the original so that its
// relative paths still resolve.
func sampleTopology(t *testing.T) *topology.Topology {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "conf", "topology.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "  kv_mount = \"secret\"\n"
	if !strings.Contains(string(src), anchor) {
		t.Fatalf("conf/topology.hcl has no %q in its vault block", anchor)
	}
	custody := anchor + "  unseal_custodians = [\"" + strings.Join(sampleCustodians, "\", \"") + "\"]\n  unseal_threshold  = 2\n"
	top, err := topology.Parse([]byte(strings.Replace(string(src), anchor, custody, 1)), filepath.Join("..", "..", "conf", "topology.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// samplePlan builds the sample topology for real hosts with fixedBinaries.
func samplePlan(t *testing.T) *Plan {
	t.Helper()
	top := sampleTopology(t)
	plan, err := Build(top, testEnv(top))
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestRenderGolden renders the sample topology for real hosts and compares
// every file with testdata/golden. Run with -update to accept changes.
func TestRenderGolden(t *testing.T) {
	top := sampleTopology(t)
	env := testEnv(top)
	plan, err := Build(top, env)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	hosts, err := WriteBundle(plan, out, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(hosts, ",") != "cloud,edge-a-1,edge-b-1" {
		t.Fatalf("hosts = %v", hosts)
	}
	golden := filepath.Join("testdata", "golden")
	if *update {
		os.RemoveAll(golden)
		if err := os.CopyFS(golden, os.DirFS(out)); err != nil {
			t.Fatal(err)
		}
		return
	}
	compareTrees(t, golden, out)
}

func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	files := func(root string) map[string]string {
		m := map[string]string{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			data, _ := os.ReadFile(p)
			m[rel] = string(data)
			return nil
		})
		return m
	}
	w, g := files(want), files(got)
	for name, content := range w {
		if g[name] != content {
			t.Errorf("%s differs from the golden file (run go test -update to accept):\n--- got ---\n%s", name, g[name])
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			t.Errorf("%s rendered but has no golden file", name)
		}
	}
}

// TestWorkloadFilesAndAccounts: a workload's configs are root's and only
// its group reads them; its directory is its own (0700); the control plane
// owns SPIRE's state and the private sockets; no service runs as root.
func TestWorkloadFilesAndAccounts(t *testing.T) {
	plan := samplePlan(t)
	h := plan.Host("edge-a-1")
	var helper *Service
	for i := range h.Services {
		s := &h.Services[i]
		if s.Account.IsRoot() {
			t.Errorf("service %s runs as root", s.Name)
		}
		if s.Kind == "helper" {
			helper = s
		}
	}
	if helper == nil || helper.Account.UID != 61100 {
		t.Fatalf("helper account: %+v", helper)
	}
	for _, f := range h.Files {
		if strings.HasPrefix(f.Path, helper.DataDir+"/") {
			if !f.Owner.IsRoot() || f.Group != helper.Account || f.Mode != 0o640 {
				t.Errorf("%s: owner %v group %v mode %o; want root, the workload's group, 0640", f.Path, f.Owner, f.Group, f.Mode)
			}
		}
	}
	dirs := map[string]Dir{}
	for _, d := range h.Dirs {
		dirs[d.Path] = d
	}
	for path, want := range map[string]Dir{
		helper.DataDir:                        {Mode: 0o700, Owner: helper.Account},
		"/var/lib/edgeid/" + PrivateSocketDir: {Mode: 0o700, Owner: Account{UID: 61000, GID: 61000}},
		"/var/lib/edgeid/" + PublicSocketDir:  {Mode: 0o755, Owner: Account{UID: 61000, GID: 61000}},
		"/var/lib/edgeid/spire":               {Mode: 0o700, Owner: Account{UID: 61000, GID: 61000}},
	} {
		got, ok := dirs[path]
		if !ok || got.Mode != want.Mode || got.Owner != want.Owner {
			t.Errorf("dir %s = %+v, want mode %o owner %v", path, got, want.Mode, want.Owner)
		}
	}
}

// TestRenderKubernetesCheck: for real hosts a topology kubeconfig makes the
// Node check required on every server; without one nothing is rendered (the
// plugin then warns); the embedded run turns the check off explicitly.
func TestRenderKubernetesCheck(t *testing.T) {
	top := sampleTopology(t)
	serverConfs := func(env Env) map[string]string {
		plan, err := Build(top, env)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, h := range plan.Hosts {
			for _, f := range h.Files {
				if strings.HasSuffix(f.Path, "server.conf") {
					out[h.Name+":"+f.Path] = string(f.Content)
				}
			}
		}
		if len(out) != 3 {
			t.Fatalf("%d server.conf files, want 3 (cloud and two edge sites): %v", len(out), out)
		}
		return out
	}
	const (
		kubeconfigLine = `            kubeconfig = "/etc/edgeid/kubeconfig"` + "\n"
		requiredLine   = `            kubernetes_check = "required"` + "\n"
		disabledLine   = `            kubernetes_check = "disabled"` + "\n"
	)
	for name, conf := range serverConfs(testEnv(top)) {
		if strings.Contains(conf, "kubeconfig") || strings.Contains(conf, "kubernetes_check") {
			t.Errorf("%s: no kubeconfig in the topology, yet:\n%s", name, conf)
		}
	}
	top.KubeEdge.Kubeconfig = "/etc/edgeid/kubeconfig"
	for name, conf := range serverConfs(testEnv(top)) {
		if !strings.Contains(conf, kubeconfigLine+requiredLine) {
			t.Errorf("%s: want the kubeconfig and kubernetes_check = \"required\":\n%s", name, conf)
		}
	}
	embedded := testEnv(top)
	embedded.Embedded = true
	for name, conf := range serverConfs(embedded) {
		if !strings.Contains(conf, disabledLine) || strings.Contains(conf, "kubeconfig =") {
			t.Errorf("%s: the embedded run must render kubernetes_check = \"disabled\" and no kubeconfig:\n%s", name, conf)
		}
	}
}

func TestRenderOneHost(t *testing.T) {
	plan := samplePlan(t)
	out := t.TempDir()
	if _, err := WriteBundle(plan, out, "edge-b-1"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 || entries[0].Name() != "edge-b-1" {
		t.Fatalf("--host edge-b-1 wrote %v", entries)
	}
	if _, err := WriteBundle(plan, out, "nope"); err == nil || !strings.Contains(err.Error(), `no host "nope"`) {
		t.Fatalf("unknown host: %v", err)
	}
}

func TestPlanEntries(t *testing.T) {
	plan := samplePlan(t)
	var downstream, workloads int
	for _, e := range plan.Entries {
		if e.Downstream {
			downstream++
			if e.ParentID != "spiffe://example.org/spire/agent/kubeedge/edge-cluster-1/"+map[string]string{"site-a": "edge-a-1", "site-b": "edge-b-1"}[e.Site] {
				t.Errorf("downstream entry for %s has parent %s", e.Site, e.ParentID)
			}
		}
		if strings.HasPrefix(e.Workload, "deepstream/") {
			workloads++
			// The argv-derived selectors count only for a held launch, by
			// the helper binary, under the workload's own account.
			topic := map[string]string{"site-a": "detections", "site-b": "site-b.detections"}[e.Site]
			want := []string{"deepstream:app:deepstream-test5-app", "deepstream:publish_topic:" + topic,
				"deepstream:launch:held", "deepstream:exe_sha256:" + strings.Repeat("e", 64),
				"unix:path:/opt/edgeid/bin/edgeid-helper", "unix:uid:611"}
			for _, w := range want {
				if !strings.Contains(strings.Join(e.Selectors, " "), w) {
					t.Errorf("entry %s lacks selector %s: %v", e.SPIFFEID, w, e.Selectors)
				}
			}
		}
	}
	if downstream != 2 || workloads != 2 {
		t.Fatalf("downstream entries %d, workload entries %d; want 2 and 2", downstream, workloads)
	}
}

func TestRenderPipelineConfig(t *testing.T) {
	src := []byte("[sink0]\nenable=1\ntype=6\ntopic=detections\nmsg-broker-conn-str=kafka;9092\n\n[message-consumer0]\nenable=1\nsubscribe-topic-list=a;b\n[primary-gie]\nenable=1\nconfig-file=infer.txt")
	out, topics, err := renderPipelineConfig(src, "127.0.0.1:4000", "/run/cfg_kafka.txt")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"msg-broker-conn-str=127.0.0.1;4000\n", "msg-broker-config=/run/cfg_kafka.txt\n", "conn-str=127.0.0.1;4000\n", "config-file=/run/cfg_kafka.txt\n", "[primary-gie]\nenable=1\nconfig-file=infer.txt"} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered config lacks %q:\n%s", want, s)
		}
	}
	if len(topics) != 1 || topics[0] != "detections" {
		t.Fatalf("topics = %v", topics)
	}
	if _, _, err := renderPipelineConfig([]byte("[application]\nenable-perf-measurement=1\n"), "a:1", "/x"); err == nil {
		t.Fatal("a config without a broker sink was accepted")
	}
}

func TestTunnelsRenderIntoTheirHelper(t *testing.T) {
	src := `trust_domain = "example.org"
vault {
  unseal_custodians = ["age18lllhyn6p6zvxmda6quup73vwklfz5zsm5rr6f6zmxre8wdn44kqutyqf7"]
  unseal_threshold  = 1
}
site "a" {
  node "n1" {}
  workload "edgehub" {
    kind = "edgehub"
    command = "/usr/local/bin/edgehub"
  }
  workload "other" {
    selectors = ["unix:uid:1000"]
  }
}
tunnel "mqtt" {
  site = "a"
  workload = "edgehub"
  mode = "client"
  listen = "127.0.0.1:1883"
  target = "cloud:8883"
  allowed_spiffe_ids = ["spiffe://example.org/cloud/mqtt"]
}
`
	dir := t.TempDir()
	path := filepath.Join(dir, "t.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	top, err := topology.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Build(top, testEnv(top))
	if err != nil {
		t.Fatal(err)
	}
	var hub, other string
	for _, f := range plan.Host("n1").Files {
		switch {
		case strings.HasSuffix(f.Path, "edgehub/helper.conf"):
			hub = string(f.Content)
		case strings.HasSuffix(f.Path, "other/helper.conf"):
			other = string(f.Content)
		}
	}
	want := "tunnel \"mqtt\" {\n    mode = \"client\"\n    listen = \"127.0.0.1:1883\"\n    target = \"cloud:8883\"\n    allowed_spiffe_ids = [\"spiffe://example.org/cloud/mqtt\"]\n}"
	if !strings.Contains(hub, want) {
		t.Fatalf("edgehub's helper.conf lacks the tunnel:\n%s", hub)
	}
	if strings.Contains(other, "tunnel") {
		t.Fatalf("another workload's helper got the tunnel:\n%s", other)
	}
	cfg, _, err := helperconfig.Parse("helper.conf", []byte(hub), helperconfig.Options{})
	if err != nil {
		t.Fatalf("edgeid-helper refuses the rendered config: %v", err)
	}
	if len(cfg.Tunnels) != 1 || cfg.Tunnels[0].Target != "cloud:8883" {
		t.Fatalf("parsed tunnels %+v", cfg.Tunnels)
	}
}

// Every helper.conf render writes must load in edgeid-helper as is.
func TestRenderedHelperConfigsLoad(t *testing.T) {
	plan := samplePlan(t)
	n := 0
	for _, h := range plan.Hosts {
		for _, f := range h.Files {
			if filepath.Base(f.Path) != "helper.conf" {
				continue
			}
			n++
			cfg, warns, err := helperconfig.Parse(f.Path, f.Content, helperconfig.Options{})
			if err != nil || len(warns) > 0 {
				t.Fatalf("%s: %v %v", f.Path, err, warns)
			}
			// The pipeline goes through its helper's edge gateway: plaintext
			// files, no restart on rotation, a loopback listener.
			if !cfg.HoldUntilSVID || cfg.OnRotate == "restart" || cfg.Kafka == nil || cfg.Kafka.DeepStream.FileName != "cfg_kafka.txt" ||
				!cfg.Kafka.Plaintext || cfg.Kafka.Gateway != "cloud" || len(cfg.KafkaGateways) != 1 || cfg.KafkaGateways[0].ListenHost != "127.0.0.1" {
				t.Fatalf("%s parsed as %+v", f.Path, cfg)
			}
		}
	}
	if n != 2 {
		t.Fatalf("found %d helper configs, want 2", n)
	}
}
