package kubeedge

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
	"github.com/edgeid/edgeid/test/harness"
)

const td = harness.DefaultTrustDomain

// cluster is one KubeEdge cluster as the tests see it: cloudcore's CA, the
// CA bundle file the SPIRE server reads, and a fake kube-apiserver.
type cluster struct {
	t          *testing.T
	dir        string
	ca         *kubeedgeca.CA
	bundlePath string
	api        *fakeAPIServer
	kubeconfig string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	ca, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir, ca: ca, bundlePath: filepath.Join(dir, "kubeedge-ca.pem")}
	if err := ca.WriteCertificate(c.bundlePath); err != nil {
		t.Fatal(err)
	}
	c.api = newFakeAPIServer(t)
	c.kubeconfig = c.api.writeKubeconfig(t, dir)
	return c
}

// edgeNode is an edge node's /etc/kubeedge as edgecore lays it out.
type edgeNode struct {
	name     string
	certPath string
	keyPath  string
	creds    *kubeedgeca.NodeCredentials
}

// join plays edgecore joining: a P-256 key, a CSR, cloudcore's signature,
// and the files written. It also registers the Node with the edge label.
func (c *cluster) join(ca *kubeedgeca.CA, name string) *edgeNode {
	c.t.Helper()
	dir := filepath.Join(c.dir, "nodes", name, "certs")
	n := &edgeNode{name: name, certPath: filepath.Join(dir, "server.crt"), keyPath: filepath.Join(dir, "server.key")}
	n.rotate(c.t, ca)
	c.api.addNode(name, "uid-"+name, map[string]string{"node-role.kubernetes.io/edge": "", "kubernetes.io/arch": "arm64"})
	return n
}

// rotate does what edgecore does at 70–90 % of the certificate's life: a
// new key, a new CSR, a new certificate for the same node name.
func (n *edgeNode) rotate(t *testing.T, ca *kubeedgeca.CA) {
	t.Helper()
	creds, err := ca.IssueNode(n.name, kubeedgeca.SignOptions{Now: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.WriteFiles(n.certPath, n.keyPath); err != nil {
		t.Fatal(err)
	}
	n.creds = creds
}

func (n *edgeNode) serial() string { return n.creds.Certificate.SerialNumber.Text(16) }

func agentID(name string) string {
	return fmt.Sprintf("spiffe://%s/spire/agent/kubeedge/prod/%s", td, name)
}

// startServer starts a real SPIRE server with NodeAttestor "kubeedge".
func (c *cluster) startServer(t *testing.T, agentTTL time.Duration) *harness.SpireServer {
	t.Helper()
	p := harness.BuildPlugin(t, "./plugins/cmd/edgeid-nodeattestor-kubeedge-server")
	extra := ""
	if agentTTL > 0 {
		extra = fmt.Sprintf("    agent_ttl = %q\n", agentTTL.String())
	}
	return harness.StartSpireServer(t, harness.ServerConfig{
		NoJoinToken: true,
		ServerExtra: extra,
		Plugins: fmt.Sprintf(`    NodeAttestor "kubeedge" {
        plugin_cmd = %q
        plugin_checksum = %q
        plugin_data {
            cluster = "prod"
            ca_bundle_path = %q
            kubeconfig = %q
        }
    }
`, p.Path, p.Checksum, c.bundlePath, c.kubeconfig),
	})
}

// newAgentWith is newAgent with extra HCL in the agent block.
func newAgentWith(t *testing.T, s *harness.SpireServer, n *edgeNode, agentExtra string) *harness.SpireAgent {
	t.Helper()
	p := harness.BuildPlugin(t, "./plugins/cmd/edgeid-nodeattestor-kubeedge-agent")
	return harness.NewSpireAgent(t, harness.AgentConfig{
		Server:     s,
		Name:       "spire-agent-" + n.name,
		AgentExtra: agentExtra,
		Plugins: fmt.Sprintf(`    NodeAttestor "kubeedge" {
        plugin_cmd = %q
        plugin_checksum = %q
        plugin_data {
            certificate_path = %q
            private_key_path = %q
        }
    }
`, p.Path, p.Checksum, n.certPath, n.keyPath),
	})
}

// newAgent renders a real SPIRE agent with NodeAttestor "kubeedge" reading
// n's files.
func newAgent(t *testing.T, s *harness.SpireServer, n *edgeNode) *harness.SpireAgent {
	t.Helper()
	return newAgentWith(t, s, n, "")
}

// agentRecord is one agent as `spire-server agent list/show -output json`
// reports it.
type agentRecord struct {
	ID struct {
		TrustDomain string `json:"trust_domain"`
		Path        string `json:"path"`
	} `json:"id"`
	AttestationType string `json:"attestation_type"`
	Selectors       []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"selectors"`
	X509SVIDSerialNumber string `json:"x509svid_serial_number"`
	X509SVIDExpiresAt    int64  `json:"x509svid_expires_at,string"`
	Banned               bool   `json:"banned"`
	CanReattest          bool   `json:"can_reattest"`
}

func (a agentRecord) spiffeID() string { return "spiffe://" + a.ID.TrustDomain + a.ID.Path }

func (a agentRecord) selectors() []string {
	var out []string
	for _, s := range a.Selectors {
		out = append(out, s.Type+":"+s.Value)
	}
	return out
}

func listAgents(t *testing.T, s *harness.SpireServer) []agentRecord {
	t.Helper()
	out := s.CLI(t, "agent", "list", "-output", "json")
	var resp struct {
		Agents []agentRecord `json:"agents"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("parse agent list %q: %v", out, err)
	}
	return resp.Agents
}

func findAgent(t *testing.T, s *harness.SpireServer, id string) (agentRecord, bool) {
	t.Helper()
	for _, a := range listAgents(t, s) {
		if a.spiffeID() == id {
			return a, true
		}
	}
	return agentRecord{}, false
}

func hasSelector(a agentRecord, sel string) bool { return slices.Contains(a.selectors(), sel) }

func TestGoodNodeAttestsAndWorkloadGetsSVID(t *testing.T) {
	c := newCluster(t)
	n := c.join(c.ca, "edge-node-1")
	s := c.startServer(t, 0)
	a := newAgent(t, s, n)
	a.Start(t)

	rec, ok := findAgent(t, s, agentID(n.name))
	if !ok {
		t.Fatalf("agent %s not in `spire-server agent list`: %+v", agentID(n.name), listAgents(t, s))
	}
	if rec.AttestationType != "kubeedge" || !rec.CanReattest {
		t.Errorf("attestation_type %q can_reattest %v, want kubeedge true", rec.AttestationType, rec.CanReattest)
	}
	want := []string{
		"kubeedge:ca_fingerprint:" + c.ca.Fingerprint(),
		"kubeedge:cert_serial:" + n.serial(),
		"kubeedge:cluster:prod",
		"kubeedge:node_label:kubernetes.io/arch:arm64",
		"kubeedge:node_label:node-role.kubernetes.io/edge:",
		"kubeedge:node_name:edge-node-1",
		"kubeedge:node_uid:uid-edge-node-1",
	}
	got := rec.selectors()
	slices.Sort(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("agent selectors\n got %q\nwant %q", got, want)
	}

	// A node alias by node name, and a workload (this test process) under it.
	alias := fmt.Sprintf("spiffe://%s/node/prod/edge-node-1", td)
	s.CreateEntry(t, harness.Entry{Node: true, SPIFFEID: alias, Selectors: []string{"kubeedge:node_name:edge-node-1"}})
	workload := fmt.Sprintf("spiffe://%s/edge/site-a/deepstream/cam-pipeline", td)
	s.CreateEntry(t, harness.Entry{ParentID: alias, SPIFFEID: workload, Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Getuid())}})
	svid, roots := harness.FetchX509SVIDFor(t, a.SocketPath, workload)
	if _, err := harness.VerifySVIDChain(svid, roots); err != nil {
		t.Fatalf("workload SVID does not verify against the bundle: %v", err)
	}
}

// TestRefusedNodesDoNotAttest starts real agents that must be refused and
// checks that the agent exits with the plugin's code and message, and that
// the server registers no agent.
func TestRefusedNodesDoNotAttest(t *testing.T) {
	c := newCluster(t)
	s := c.startServer(t, 0)
	otherCA, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := c.join(otherCA, "edge-foreign")
	ghost := c.join(c.ca, "edge-ghost")
	c.api.removeNode("edge-ghost")
	cloud := c.join(c.ca, "cloud-worker")
	c.api.addNode("cloud-worker", "uid-cloud", map[string]string{"kubernetes.io/arch": "amd64"})

	for _, tc := range []struct {
		node *edgeNode
		want string
	}{
		{foreign, "code = PermissionDenied desc = nodeattestor(kubeedge): node certificate is not signed by a configured KubeEdge CA"},
		{ghost, `code = PermissionDenied desc = nodeattestor(kubeedge): kubernetes node "edge-ghost" does not exist`},
		{cloud, `code = PermissionDenied desc = nodeattestor(kubeedge): kubernetes node "cloud-worker" lacks the edge label "node-role.kubernetes.io/edge"`},
	} {
		t.Run(tc.node.name, func(t *testing.T) {
			a := newAgentWith(t, s, tc.node, "    retry_bootstrap = false\n")
			proc := harness.StartProcess(t, harness.ProcessSpec{
				Name: "spire-agent-" + tc.node.name,
				Bin:  harness.SpireAgentBin(t),
				Args: []string{"run", "-config", a.ConfigPath},
				Dir:  a.Dir,
			})
			select {
			case <-proc.Done():
			case <-time.After(60 * time.Second):
				t.Fatal("the agent is still running; it should have been refused and exited")
			}
			// SPIRE's logger quotes the error, escaping its inner quotes.
			if log := strings.ReplaceAll(proc.Log(), `\"`, `"`); !strings.Contains(log, tc.want) {
				t.Fatalf("agent log does not contain %q:\n%s", tc.want, log)
			}
		})
	}
	if agents := listAgents(t, s); len(agents) != 0 {
		t.Fatalf("refused nodes were registered: %+v", agents)
	}
}

func TestRecoveryAfterAgentSVIDExpired(t *testing.T) {
	c := newCluster(t)
	n := c.join(c.ca, "edge-node-1")
	const agentTTL = 20 * time.Second
	s := c.startServer(t, agentTTL)
	a := newAgent(t, s, n)
	a.Start(t)
	if _, ok := findAgent(t, s, agentID(n.name)); !ok {
		t.Fatal("agent did not attest")
	}

	// The agent is down for longer than its SVID's lifetime. The server's
	// record, read after the agent stopped, has the last SVID it issued.
	a.Stop(t)
	before, ok := findAgent(t, s, agentID(n.name))
	if !ok || before.X509SVIDExpiresAt == 0 {
		t.Fatalf("agent record without SVID expiry: %+v", before)
	}
	expiry := time.Unix(before.X509SVIDExpiresAt, 0)
	t.Logf("agent SVID expires at %s; waiting past it with the agent down", expiry.Format(time.RFC3339))
	time.Sleep(time.Until(expiry) + 2*time.Second)

	// Restart: the agent attests again with its node certificate, no
	// operator action, same agent ID, and workloads get SVIDs again.
	a.Start(t)
	after, ok := findAgent(t, s, agentID(n.name))
	if !ok {
		t.Fatal("agent is gone after recovery")
	}
	if after.X509SVIDSerialNumber == before.X509SVIDSerialNumber {
		t.Fatal("agent SVID was not renewed by re-attestation")
	}
	if time.Unix(after.X509SVIDExpiresAt, 0).Before(time.Now()) {
		t.Fatal("agent SVID after recovery is already expired")
	}
	if got := len(listAgents(t, s)); got != 1 {
		t.Fatalf("%d agents after recovery, want the same single agent", got)
	}
	workload := fmt.Sprintf("spiffe://%s/edge/site-a/app", td)
	s.CreateEntry(t, harness.Entry{ParentID: agentID(n.name), SPIFFEID: workload, Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Getuid())}})
	harness.FetchX509SVIDFor(t, a.SocketPath, workload)
}

func TestNodeCertificateRotationKeepsAgentID(t *testing.T) {
	c := newCluster(t)
	n := c.join(c.ca, "edge-node-1")
	// A short agent SVID TTL: SPIRE agents with a re-attestable attestor
	// renew their SVID by attesting again, so the new certificate is used
	// without restarting the agent.
	s := c.startServer(t, 20*time.Second)
	a := newAgent(t, s, n)
	a.Start(t)
	first, ok := findAgent(t, s, agentID(n.name))
	if !ok || !hasSelector(first, "kubeedge:cert_serial:"+n.serial()) {
		t.Fatalf("first attestation: %+v", first)
	}
	oldSerial := n.serial()

	n.rotate(t, c.ca) // new key, same node name
	if n.serial() == oldSerial {
		t.Fatal("rotation produced the same serial")
	}
	harness.Eventually(t, 60*time.Second, func() error {
		rec, ok := findAgent(t, s, agentID(n.name))
		if !ok {
			return fmt.Errorf("agent %s missing", agentID(n.name))
		}
		if !hasSelector(rec, "kubeedge:cert_serial:"+n.serial()) {
			return fmt.Errorf("agent not yet re-attested with the rotated certificate: %q", rec.selectors())
		}
		return nil
	})
	if got := len(listAgents(t, s)); got != 1 {
		t.Fatalf("%d agents after rotation, want 1 with the same ID", got)
	}
	// The agent is still serving workloads.
	workload := fmt.Sprintf("spiffe://%s/edge/site-a/app", td)
	s.CreateEntry(t, harness.Entry{ParentID: agentID(n.name), SPIFFEID: workload, Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Getuid())}})
	harness.FetchX509SVIDFor(t, a.SocketPath, workload)
}

func TestCARotationBothGenerationsAttest(t *testing.T) {
	c := newCluster(t)
	oldNode := c.join(c.ca, "edge-old")
	s := c.startServer(t, 20*time.Second)
	oldAgent := newAgent(t, s, oldNode)
	oldAgent.Start(t)

	// cloudcore gets a new CA (same CN=KubeEdge and serial 1024, new key).
	// The operator appends it to the bundle file; the server picks up the
	// change without a restart.
	newCA, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	both := append(c.ca.CertificatePEM(), newCA.CertificatePEM()...)
	if err := os.WriteFile(c.bundlePath, both, 0o644); err != nil {
		t.Fatal(err)
	}
	// The server looks at the bundle file at most once a second.
	time.Sleep(1500 * time.Millisecond)
	newNode := c.join(newCA, "edge-new")
	newAgent := newAgent(t, s, newNode)
	newAgent.Start(t)

	rec, ok := findAgent(t, s, agentID("edge-new"))
	if !ok || !hasSelector(rec, "kubeedge:ca_fingerprint:"+newCA.Fingerprint()) {
		t.Fatalf("new-CA node: %+v", rec)
	}
	// The old generation keeps re-attesting (its SVID renews by attestation)
	// while both CAs are trusted.
	old, _ := findAgent(t, s, agentID("edge-old"))
	harness.Eventually(t, 60*time.Second, func() error {
		rec, ok := findAgent(t, s, agentID("edge-old"))
		if !ok {
			return fmt.Errorf("old-CA agent missing")
		}
		if rec.X509SVIDSerialNumber == old.X509SVIDSerialNumber {
			return fmt.Errorf("old-CA agent has not re-attested yet")
		}
		if !hasSelector(rec, "kubeedge:ca_fingerprint:"+c.ca.Fingerprint()) {
			return fmt.Errorf("old-CA agent selectors %q", rec.selectors())
		}
		return nil
	})
	// Both generations serve workloads.
	for _, a := range []struct {
		agent *harness.SpireAgent
		node  string
	}{{oldAgent, "edge-old"}, {newAgent, "edge-new"}} {
		workload := fmt.Sprintf("spiffe://%s/edge/%s/app", td, a.node)
		s.CreateEntry(t, harness.Entry{ParentID: agentID(a.node), SPIFFEID: workload, Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Getuid())}})
		harness.FetchX509SVIDFor(t, a.agent.SocketPath, workload)
	}
}

// fakeAPIServer plays kube-apiserver's GET /api/v1/nodes/{name} over TLS on
// loopback, with a bearer token.
type fakeAPIServer struct {
	srv   *httptest.Server
	token string
	mu    sync.Mutex
	nodes map[string]map[string]any
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	f := &fakeAPIServer{token: "sa-token-" + fmt.Sprint(time.Now().UnixNano()), nodes: map[string]map[string]any{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			http.Error(w, `{"kind":"Status","message":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/api/v1/nodes/")
		f.mu.Lock()
		n, found := f.nodes[name]
		f.mu.Unlock()
		if !ok || !found {
			http.Error(w, `{"kind":"Status","reason":"NotFound"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(n)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPIServer) addNode(name, uid string, labels map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[name] = map[string]any{"kind": "Node", "apiVersion": "v1", "metadata": map[string]any{"name": name, "uid": uid, "labels": labels}}
}

func (f *fakeAPIServer) removeNode(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nodes, name)
}

func (f *fakeAPIServer) writeKubeconfig(t *testing.T, dir string) string {
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: spire
clusters:
- name: kubeedge
  cluster:
    server: %s
    certificate-authority-data: %s
contexts:
- name: spire
  context: {cluster: kubeedge, user: spire-server}
users:
- name: spire-server
  user:
    token: %s
`, f.srv.URL, base64.StdEncoding.EncodeToString(caPEM), f.token)
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
