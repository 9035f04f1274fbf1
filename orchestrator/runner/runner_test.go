package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMissingProgramsAreAllNamed(t *testing.T) {
	_, err := New(Config{
		TopologyPath: filepath.Join("..", "..", "conf", "topology.hcl"),
		RunDir:       t.TempDir(),
		BinDir:       t.TempDir(),
		SpireServer:  "/nonexistent/spire-server",
		SpireAgent:   "/nonexistent/spire-agent",
		Vault:        "/nonexistent/vault",
	})
	if err == nil {
		t.Fatal("New accepted a run with no programs")
	}
	for _, want := range []string{"/nonexistent/spire-server", "/nonexistent/vault", "edgeid-helper", "edgeid-nodeattestor-kubeedge-agent", "deepstream-test5-app", "make tools"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
}

func TestPortsAreRemembered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	b, err := loadPorts(path)
	if err != nil {
		t.Fatal(err)
	}
	p1 := b.port("cloud", "spire-server", 8081)
	p2 := b.port("edge", "spire-server", 8081)
	if p1 == p2 {
		t.Fatalf("two services got port %d", p1)
	}
	if err := b.save(); err != nil {
		t.Fatal(err)
	}
	again, err := loadPorts(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.port("cloud", "spire-server", 8081) != p1 {
		t.Fatal("a re-run did not get the same port back")
	}
	if err := os.WriteFile(path, []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadPorts(path); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt ports file: %v", err)
	}
}

// TestWriteTree checks the status tree's shape: sites nested under the
// cloud with ├─ for all but the last sibling, and an edge host's sites at
// the top when no cloud server runs there.
func TestWriteTree(t *testing.T) {
	site := func(name, host string) SiteStatus {
		return SiteStatus{Name: name, Server: ServerStatus{Host: host, Running: true, Healthy: true},
			Workloads: []WorkloadStatus{{Name: "cam", SPIFFEID: "spiffe://td/edge/" + name + "/cam", Running: true}}}
	}
	st := &Status{TrustDomain: "td", Cloud: []ServerStatus{{Host: "cloud", Healthy: true}}, Sites: []SiteStatus{site("a", "edge-a"), site("b", "")}}
	var b strings.Builder
	st.WriteTree(&b)
	got := b.String()
	for _, want := range []string{
		"└─ cloud: 1 server(s) here\n",
		"   ├─ server cloud  — healthy",
		"   ├─ site a: edge server edge-a  — healthy",
		"   │  └─ workload cam (spiffe://td/edge/a/cam), helper running",
		"   └─ site b: edge server on another host\n",
		"      └─ workload cam (spiffe://td/edge/b/cam)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("tree lacks %q:\n%s", want, got)
		}
	}
	b.Reset()
	(&Status{TrustDomain: "td", Sites: []SiteStatus{site("a", "edge-a")}}).WriteTree(&b)
	if !strings.Contains(b.String(), "\n└─ site a: edge server edge-a") {
		t.Errorf("an edge host's site is not at the top:\n%s", b.String())
	}
}
