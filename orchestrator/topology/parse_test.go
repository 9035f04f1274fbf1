package topology

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSampleTopologyParses(t *testing.T) {
	top, err := ParseFile(filepath.Join("..", "..", "conf", "topology.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if top.TrustDomain != "example.org" || len(top.Sites) != 2 || !top.Vault.Managed || !top.Kafka.Demo {
		t.Fatalf("unexpected topology %+v", top)
	}
	a := top.Sites[0]
	if a.Name != "site-a" || a.ServerNode != "edge-a-1" || a.CATTL != 2*time.Hour || a.X509SVIDTTL != 5*time.Minute {
		t.Fatalf("site-a = %+v", a)
	}
	w := a.Workloads[0]
	if w.Kind != KindDeepStream || w.App != "deepstream-test5-app" || !filepath.IsAbs(w.Config) || w.Node != "edge-a-1" {
		t.Fatalf("workload = %+v", w)
	}
	if top.Sites[1].ServerNode != "edge-b-1" {
		t.Fatalf("site-b server node defaults to its first node, got %q", top.Sites[1].ServerNode)
	}
}

// TestAccounts: the control plane, the demo broker and each workload run
// under accounts of their own; workloads without a user are numbered from
// users.workload_uid_base in file order.
func TestAccounts(t *testing.T) {
	src := strings.Replace(base, "  workload \"app1\" {", "  workload \"app0\" {\n    selectors = [\"unix:uid:1\"]\n  }\n  workload \"named\" {\n    user = \"cam1\"\n    selectors = [\"unix:uid:1\"]\n  }\n  workload \"app1\" {", 1) +
		"users {\n  control = \"edgeid\"\n  workload_uid_base = 70000\n}\nkafka {}\n"
	top, err := Parse([]byte(src), "top.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if got := top.Users.Control; got != (User{Name: "edgeid"}) {
		t.Errorf("control = %+v", got)
	}
	if got := top.Users.KafkaDemo; got != (User{UID: DefaultKafkaDemoUID}) {
		t.Errorf("kafka demo = %+v", got)
	}
	want := []User{{UID: 70000}, {Name: "cam1"}, {UID: 70002}}
	for i, w := range top.Sites[0].Workloads {
		if w.User != want[i] {
			t.Errorf("workload %s user = %+v, want %+v", w.Name, w.User, want[i])
		}
	}
}

// base is a minimal valid topology that the bad cases below break one
// piece at a time.
const base = `trust_domain = "example.org"
cloud {
  ca_ttl = "24h"
  x509_svid_ttl = "1h"
}
site "a" {
  ca_ttl = "2h"
  x509_svid_ttl = "5m"
  node "n1" {}
  workload "app1" {
    selectors = ["unix:uid:1000"]
  }
}
`

func TestBadTopologies(t *testing.T) {
	dir := t.TempDir()
	write := func(src string) string {
		p := filepath.Join(dir, "topology.hcl")
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown top-level key", base + "trust_domian = \"x\"\n", []string{"topology.hcl:14,1", `An argument named "trust_domian" is not expected here`}},
		{"unknown key in a site", strings.Replace(base, `node "n1" {}`, "node \"n1\" {}\n  nodes = 3", 1), []string{"topology.hcl:10,3", `"nodes" is not expected`}},
		{"syntax error", base + "site {\n", []string{"topology.hcl:14"}},
		{"bad trust domain", strings.Replace(base, "example.org", "Example Org", 1), []string{"topology.hcl:1,1", "trust_domain"}},
		{"duplicate site", base + "site \"a\" {\n  node \"n2\" {}\n}\n", []string{"topology.hcl:14,6", `duplicate site "a" (first defined at`}},
		{"duplicate node across sites", base + "site \"b\" {\n  node \"n1\" {}\n}\n", []string{"topology.hcl:15,8", `duplicate node "n1"`}},
		{"duplicate workload", strings.Replace(base, "  workload \"app1\" {", "  workload \"app1\" {\n    selectors = [\"unix:uid:1\"]\n  }\n  workload \"app1\" {", 1), []string{`duplicate workload "app1"`}},
		{"site CA too long for cloud CA", strings.Replace(base, `ca_ttl = "2h"`, `ca_ttl = "5h"`, 1), []string{"topology.hcl:7,3", "cloud.ca_ttl (24h0m0s) must be at least 6 × site \"a\" ca_ttl (5h0m0s)"}},
		{"SVID TTL too long for site CA", strings.Replace(base, `x509_svid_ttl = "5m"`, `x509_svid_ttl = "30m"`, 1), []string{"topology.hcl:8,3", "its x509_svid_ttl (30m0s)"}},
		{"cloud SVID TTL too long", strings.Replace(base, `x509_svid_ttl = "1h"`, `x509_svid_ttl = "5h"`, 1), []string{"topology.hcl:3,3", "cloud.x509_svid_ttl"}},
		{"bad duration", strings.Replace(base, `ca_ttl = "2h"`, `ca_ttl = "two hours"`, 1), []string{"topology.hcl:7,3", `site.ca_ttl: "two hours" is not a positive duration`}},
		{"port clash", base + "kafka {\n  port = 8081\n}\n", []string{"topology.hcl:15,3", "port clash: the demo Kafka broker and cloud server 1 both use port 8081"}},
		{"server node not in site", strings.Replace(base, `node "n1" {}`, "node \"n1\" {}\n  server_node = \"n9\"", 1), []string{`server_node "n9" is not one of its nodes`}},
		{"HA without postgres", strings.Replace(base, "cloud {", "cloud {\n  servers = 2", 1), []string{"topology.hcl:3,3", `cloud.servers = 2 needs datastore = "postgres"`}},
		{"deepstream without config", strings.Replace(base, "selectors = [\"unix:uid:1000\"]", "kind = \"deepstream\"", 1), []string{`kind "deepstream" needs config`}},
		{"deepstream config missing", strings.Replace(base, "selectors = [\"unix:uid:1000\"]", "kind = \"deepstream\"\n    config = \"nope.txt\"", 1), []string{"topology.hcl:12,5", "nope.txt: no such file"}},
		{"no sites", "trust_domain = \"example.org\"\n", []string{"no site blocks"}},
		{"external vault without address", base + "vault {\n  mode = \"external\"\n}\n", []string{"topology.hcl:14,1", `mode "external" needs address`}},
		{"tunnel to unknown site", base + "tunnel \"t\" {\n  site = \"zz\"\n  workload = \"app1\"\n  mode = \"client\"\n  listen = \"127.0.0.1:1883\"\n  target = \"127.0.0.1:8883\"\n  allowed_spiffe_ids = [\"spiffe://example.org/x\"]\n}\n", []string{"topology.hcl:15,3", `site "zz" is not defined`}},
		{"bad selector", strings.Replace(base, "unix:uid:1000", "uid1000", 1), []string{`selector "uid1000" is not type:value`}},
		{"workload as root", strings.Replace(base, "selectors = [", "user = \"0\"\n    selectors = [", 1), []string{"topology.hcl:11,5", `workload "app1" user: uid 0 is out of range (1000..1073741824): edgeid never runs a process as root`}},
		{"control as root by name", base + "users {\n  control = \"root\"\n}\n", []string{"topology.hcl:15,3", `users.control: "root" is not a user name`}},
		{"bad user name", strings.Replace(base, "selectors = [", "user = \"Cam One\"\n    selectors = [", 1), []string{`workload "app1" user: "Cam One" is not a user name`}},
		{"workload shares the control account", base + "users {\n  control = \"61100\"\n}\n", []string{`workload "app1" of site "a" runs as 61100, like the control plane (users.control): every workload needs an account of its own`}},
		{"two workloads share a user", strings.Replace(base, "  workload \"app1\" {", "  workload \"app0\" {\n    user = \"cam\"\n    selectors = [\"unix:uid:1\"]\n  }\n  workload \"app1\" {\n    user = \"cam\"", 1), []string{`workload "app1" of site "a" runs as cam, like workload "app0" of site "a"`}},
		{"uid base too low", base + "users {\n  workload_uid_base = 10\n}\n", []string{"topology.hcl:15,3", "users.workload_uid_base 10 is out of range"}},
		{"exe_sha256 on an app", strings.Replace(base, "selectors = [", "exe_sha256 = \"abc\"\n    selectors = [", 1), []string{"exe_sha256 applies to deepstream workloads only"}},
		{"relative kubeconfig", base + "kubeedge {\n  kubeconfig = \"kubeconfig\"\n}\n", []string{"topology.hcl:15,3", `kubeedge.kubeconfig: "kubeconfig" must be an absolute path: it is read by the SPIRE servers on their hosts`}},
		{"kubeconfig with a newline", base + "kubeedge {\n  kubeconfig = \"/etc/k\\nubeconfig\"\n}\n", []string{"topology.hcl:15,3", `kubeedge.kubeconfig: "/etc/k\nubeconfig" contains a control character`}},
		{"status port clashes with a server", base + "observability {\n  status_port = 8081\n}\n", []string{"topology.hcl:15,3", "port clash: the status endpoint of edgeid supervise (observability.status_port) and cloud server 1 both use port 8081"}},
		{"status port is a fixed one", base + "observability {\n  status_port = 9096\n}\n", []string{"topology.hcl:15,3", "observability.status_port: port 9096 is edgeid supervise's metrics's on every host"}},
		{"status port out of range", base + "observability {\n  status_port = 70000\n}\n", []string{"topology.hcl:15,3", "port 70000 is out of range"}},
		{"fleet status on a loopback node", strings.Replace(base, `node "n1" {}`, "node \"n1\" {\n    address = \"127.0.0.1\"\n  }", 1) + "observability {\n  fleet_status = true\n}\n", []string{"topology.hcl:17,3", `observability.fleet_status: node "n1" has address 127.0.0.1`}},
		{"fleet status not a bool", base + "observability {\n  fleet_status = \"yes\"\n}\n", []string{"topology.hcl:15,19", "a bool is required"}},
		{"kubeconfig directory", base + "kubeedge {\n  kubeconfig = \"/etc/kubernetes/\"\n}\n", []string{"topology.hcl:15,3", `kubeedge.kubeconfig: "/etc/kubernetes/" names a directory, not a file`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(tt.src)
			top, err := ParseFile(path)
			if err == nil {
				t.Fatalf("accepted a bad topology: %+v", top)
			}
			if top != nil {
				t.Fatal("returned a topology along with an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestStatusEndpointDefaults(t *testing.T) {
	top, err := Parse([]byte(base), filepath.Join(t.TempDir(), "top.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if top.Observability.FleetStatus || top.Observability.StatusPort != DefaultStatusPort {
		t.Fatalf("observability = %+v, want fleet_status off on port %d", top.Observability, DefaultStatusPort)
	}
	top, err = Parse([]byte(base+"observability {\n  fleet_status = true\n  status_port = 9444\n}\n"), filepath.Join(t.TempDir(), "top.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if !top.Observability.FleetStatus || top.Observability.StatusPort != 9444 {
		t.Fatalf("observability = %+v, want fleet_status on port 9444", top.Observability)
	}
}

func TestKubeconfigKept(t *testing.T) {
	top, err := Parse([]byte(base+"kubeedge {\n  kubeconfig = \"/etc/edgeid/kubeconfig\"\n}\n"), filepath.Join(t.TempDir(), "top.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if top.KubeEdge.Kubeconfig != "/etc/edgeid/kubeconfig" {
		t.Fatalf("kubeconfig = %q", top.KubeEdge.Kubeconfig)
	}
}

func TestAllErrorsReported(t *testing.T) {
	src := strings.Replace(strings.Replace(base, `ca_ttl = "2h"`, `ca_ttl = "5h"`, 1), `node "n1" {}`, "node \"n1\" {}\n  server_node = \"n9\"", 1)
	_, err := Parse([]byte(src), "top.hcl")
	errs, ok := err.(Errors)
	if !ok || len(errs) < 2 {
		t.Fatalf("want every error reported at once, got %v", err)
	}
}

func TestOversizedFileRefused(t *testing.T) {
	_, err := Parse(make([]byte, MaxFileBytes+1), "big.hcl")
	if err == nil || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("err = %v", err)
	}
}
