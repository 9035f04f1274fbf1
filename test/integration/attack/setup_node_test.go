package attack

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
	"github.com/edgeid/edgeid/test/harness"
)

// The node attestation attacks (node_test.go) need no second uid: the
// attacker is a node that was decommissioned (its Node deleted, or its name
// denied) but kept its KubeEdge certificate and key, so the "attack" is its
// own SPIRE agent attesting again. What they need is the real chain a user
// runs: a real kube-apiserver, a real SPIRE server and agent, and the real
// kubeedge plugins, with a short agent_ttl so that renewals come quickly.

const nodeCluster = "prod"

// edgeLabel is the label every KubeEdge edge Node carries.
var edgeLabel = map[string]string{"node-role.kubernetes.io/edge": ""}

// nodeEnvOptions shapes one cluster of the node attacks.
type nodeEnvOptions struct {
	// AgentTTL is the server's agent_ttl: agents re-attest at about half of
	// it (SPIRE backdates SVIDs by 10 s, so a bit earlier).
	AgentTTL time.Duration
	// KubernetesCheck is the plugin's kubernetes_check; "" leaves it at its
	// default, which a kubeconfig makes "required". With "disabled" the
	// plugin gets no kubeconfig.
	KubernetesCheck string
	// MaxStaleness is node_check_max_staleness; "" keeps the default.
	MaxStaleness string
}

// nodeEnv is one KubeEdge cluster under attack: cloudcore's CA, a real
// kube-apiserver, a deny-list file, and a real SPIRE server whose
// NodeAttestor "kubeedge" uses all three.
type nodeEnv struct {
	t        *testing.T
	dir      string
	ca       *kubeedgeca.CA
	bundle   string
	denyFile string
	kube     *harness.KubeAPIServer
	server   *harness.SpireServer
}

func newNodeEnv(t *testing.T, opts nodeEnvOptions) *nodeEnv {
	t.Helper()
	e := &nodeEnv{t: t, dir: t.TempDir()}
	var err error
	if e.ca, err = kubeedgeca.New(kubeedgeca.Options{}); err != nil {
		t.Fatal(err)
	}
	e.bundle = filepath.Join(e.dir, "kubeedge-ca.pem")
	if err := e.ca.WriteCertificate(e.bundle); err != nil {
		t.Fatal(err)
	}
	e.denyFile = filepath.Join(e.dir, "deny.txt")
	e.writeDenyList("# edge nodes that may not attest\n")
	e.kube = harness.StartKubeAPIServer(t)

	data := fmt.Sprintf("            cluster = %q\n            ca_bundle_path = %q\n            deny_list_file = %q\n            deny_list_check_interval = \"1s\"\n",
		nodeCluster, e.bundle, e.denyFile)
	if opts.KubernetesCheck != "disabled" {
		data += fmt.Sprintf("            kubeconfig = %q\n", e.kube.Kubeconfig)
	}
	if opts.KubernetesCheck != "" {
		data += fmt.Sprintf("            kubernetes_check = %q\n", opts.KubernetesCheck)
	}
	if opts.MaxStaleness != "" {
		data += fmt.Sprintf("            node_check_max_staleness = %q\n", opts.MaxStaleness)
	}
	p := harness.BuildPlugin(t, "./plugins/cmd/edgeid-nodeattestor-kubeedge-server")
	e.server = harness.StartSpireServer(t, harness.ServerConfig{
		NoJoinToken: true,
		ServerExtra: fmt.Sprintf("    agent_ttl = %q\n", opts.AgentTTL.String()),
		Plugins: fmt.Sprintf(`    NodeAttestor "kubeedge" {
        plugin_cmd = %q
        plugin_checksum = %q
        plugin_data {
%s        }
    }
`, p.Path, p.Checksum, data),
	})
	return e
}

// writeDenyList replaces the deny-list file atomically, as the plugin's doc
// tells operators to.
func (e *nodeEnv) writeDenyList(content string) {
	e.t.Helper()
	tmp := e.denyFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.denyFile); err != nil {
		e.t.Fatal(err)
	}
}

// edgeNode is one edge node: its name, its edgecore files, and its agent.
type edgeNode struct {
	name     string
	certPath string
	keyPath  string
	agentID  string
	agent    *harness.SpireAgent
}

// join enrols an edge node the KubeEdge way (a certificate from the CA,
// written where edgecore writes it), creates its Node in the API server
// with the edge label, and starts its SPIRE agent.
func (e *nodeEnv) join(name string) *edgeNode {
	e.t.Helper()
	n := &edgeNode{
		name:    name,
		agentID: fmt.Sprintf("spiffe://%s/spire/agent/kubeedge/%s/%s", harness.DefaultTrustDomain, nodeCluster, name),
	}
	_, layout, err := e.ca.JoinNode(filepath.Join(e.dir, "nodes", name), name, kubeedgeca.SignOptions{Now: time.Now().Add(-time.Minute)})
	if err != nil {
		e.t.Fatal(err)
	}
	n.certPath, n.keyPath = layout.CertificatePath, layout.PrivateKeyPath
	e.kube.CreateNode(e.t, name, edgeLabel)
	p := harness.BuildPlugin(e.t, "./plugins/cmd/edgeid-nodeattestor-kubeedge-agent")
	n.agent = harness.StartSpireAgent(e.t, harness.AgentConfig{
		Server: e.server,
		Name:   "spire-agent-" + name,
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
	return n
}

// workload registers a workload (this test process's uid) under the node's
// agent and returns its SPIFFE ID once the agent serves it.
func (e *nodeEnv) workload(n *edgeNode) (string, time.Time) {
	e.t.Helper()
	id := fmt.Sprintf("spiffe://%s/edge/site-a/%s/app", harness.DefaultTrustDomain, n.name)
	e.server.CreateEntry(e.t, harness.Entry{ParentID: n.agentID, SPIFFEID: id, Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Getuid())}})
	svid, _ := harness.FetchX509SVIDFor(e.t, n.agent.SocketPath, id)
	return id, svid.Certificates[0].NotAfter
}

// workloadAPIServes reports whether the agent's Workload API still answers
// with an SVID for id, within a few seconds.
func workloadAPIServes(n *edgeNode, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(n.agent.Addr))
	if err != nil {
		return err
	}
	for _, s := range x.SVIDs {
		if s.ID.String() == id {
			return nil
		}
	}
	return fmt.Errorf("no SVID for %s among %d", id, len(x.SVIDs))
}

// agentRecord is what `spire-server agent show` says about an agent.
type agentRecord struct {
	SerialNumber string `json:"x509svid_serial_number"`
	ExpiresAt    int64  `json:"x509svid_expires_at,string"`
	Selectors    []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"selectors"`
}

func (e *nodeEnv) agentRecord(n *edgeNode) agentRecord {
	e.t.Helper()
	out := e.server.CLI(e.t, "agent", "show", "-spiffeID", n.agentID, "-output", "json")
	var rec agentRecord
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.SerialNumber == "" || rec.ExpiresAt == 0 {
		e.t.Fatalf("parse `agent show` output %q: %v (no SVID serial or expiry)", out, err)
	}
	return rec
}

// Kinds of events read from the logs.
const (
	// evAttested: the server completed an attestation of the agent (first
	// or renewal) and issued it an SVID.
	evAttested = "server: attestation completed"
	// evRefused: the kubeedge plugin refused the node (reason field).
	evRefused = "server: kubeedge refused"
	// evGrace: the plugin attested the node on its last good Node check.
	evGrace = "server: attested on last good Node check"
	// evReattested and evReattestFailed: the agent's view of a renewal.
	evReattested     = "agent: reattested"
	evReattestFailed = "agent: reattest failed"
)

// logEvent is one line of a server or agent log that matters here.
type logEvent struct {
	Kind   string
	Time   string // the log's own timestamp
	Detail string
	Fields map[string]string
}

// events reads the server's and n's agent's logs and returns what happened
// to n, each log in its order (server events first, then the agent's).
func (e *nodeEnv) events(n *edgeNode) (server, agent []logEvent) {
	for _, f := range readLogFields(e.server.Proc.Log()) {
		switch {
		case f["msg"] == "Agent attestation request completed" && f["agent_id"] == n.agentID:
			server = append(server, logEvent{evAttested, f["time"], "", f})
		case f["msg"] == "Node attestation failed" && f["node_name"] == n.name:
			server = append(server, logEvent{evRefused, f["time"], f["reason"], f})
		case f["msg"] == "Kubernetes API server unreachable; node attested on its last successful Node check" && f["node_name"] == n.name:
			server = append(server, logEvent{evGrace, f["time"], "age " + f["age"] + ", checked at " + f["checked_at"] + "; " + f["error"], f})
		}
	}
	for _, f := range readLogFields(n.agent.Proc.Log()) {
		switch f["msg"] {
		case "Successfully reattested node":
			agent = append(agent, logEvent{evReattested, f["time"], "", f})
		case "Could not reattest agent":
			agent = append(agent, logEvent{evReattestFailed, f["time"], f["error"], f})
		}
	}
	return server, agent
}

// logEvents writes every event through t.Log, so a reader sees each
// attempt before the test counts them.
func logEvents(t *testing.T, what string, server, agent []logEvent) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d server events, %d agent events", what, len(server), len(agent))
	for i, ev := range server {
		fmt.Fprintf(&b, "\n  server %2d %s %-42s %s", i, ev.Time, ev.Kind, ev.Detail)
	}
	for i, ev := range agent {
		fmt.Fprintf(&b, "\n  agent  %2d %s %-42s %s", i, ev.Time, ev.Kind, ev.Detail)
	}
	t.Log(b.String())
}

func count(evs []logEvent, kind string) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// waitEvents polls n's events until done says so, failing after timeout
// with every event logged.
func (e *nodeEnv) waitEvents(n *edgeNode, what string, timeout time.Duration, done func(server, agent []logEvent) error) ([]logEvent, []logEvent) {
	e.t.Helper()
	var server, agent []logEvent
	err := harness.Poll(timeout, func() error {
		server, agent = e.events(n)
		return done(server, agent)
	})
	if err != nil {
		logEvents(e.t, what+" (not reached)", server, agent)
		e.t.Fatalf("%s: not within %s: %v", what, timeout, err)
	}
	return server, agent
}

// readLogFields parses SPIRE's logfmt lines (key=value, values quoted Go
// style when they need it) into one map per line.
func readLogFields(log string) []map[string]string {
	var out []map[string]string
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if f := parseLogfmt(sc.Text()); f["msg"] != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseLogfmt(line string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		eq := strings.IndexByte(line[i:], '=')
		if eq <= 0 {
			break
		}
		key := line[i : i+eq]
		if strings.ContainsAny(key, " \"") {
			break
		}
		i += eq + 1
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(line) {
				break
			}
			v, err := strconv.Unquote(line[i : j+1])
			if err != nil {
				v = line[i+1 : j]
			}
			out[key] = v
			i = j + 1
			continue
		}
		j := strings.IndexByte(line[i:], ' ')
		if j < 0 {
			j = len(line) - i
		}
		out[key] = line[i : i+j]
		i += j
	}
	return out
}
