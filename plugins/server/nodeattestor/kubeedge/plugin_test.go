package kubeedge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	"github.com/spiffe/spire-plugin-sdk/plugintest"
	nodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/nodeattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
	wire "github.com/edgeid/edgeid/plugins/common/kubeedge"
)

const testTD = "example.org"

// fixture is a CA, its bundle file, a fake Kubernetes API server and a clock.
type fixture struct {
	t          *testing.T
	dir        string
	ca         *kubeedgeca.CA
	caPath     string
	now        time.Time
	kube       *fakeKube
	kubeconfig string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	ca, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: dir, ca: ca, caPath: filepath.Join(dir, "rootCA.crt"), now: time.Now().Add(time.Minute)}
	if err := ca.WriteCertificate(f.caPath); err != nil {
		t.Fatal(err)
	}
	f.kube = newFakeKube(t)
	f.kubeconfig = f.kube.writeKubeconfig(t, dir)
	return f
}

// issue returns credentials for nodeName from the fixture CA.
func (f *fixture) issue(nodeName string) *kubeedgeca.NodeCredentials {
	f.t.Helper()
	creds, err := f.ca.IssueNode(nodeName, kubeedgeca.SignOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return creds
}

// load configures a new plugin over real go-plugin gRPC and returns its client.
func (f *fixture) load(hcl string) (*Plugin, *nodeattestorv1.NodeAttestorPluginClient) {
	f.t.Helper()
	p, client, cfgClient := serve(f.t)
	p.hooks.now = func() time.Time { return f.now }
	_, err := cfgClient.Configure(context.Background(), &configv1.ConfigureRequest{
		CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: testTD},
		HclConfiguration:  hcl,
	})
	if err != nil {
		f.t.Fatalf("Configure: %v", err)
	}
	return p, client
}

func (f *fixture) hcl(extra string) string {
	return fmt.Sprintf("cluster = \"prod\"\nca_bundle_path = %q\n%s", f.caPath, extra)
}

func (f *fixture) hclKube(extra string) string {
	return f.hcl(fmt.Sprintf("kubeconfig = %q\n%s", f.kubeconfig, extra))
}

func serve(t *testing.T) (*Plugin, *nodeattestorv1.NodeAttestorPluginClient, *configv1.ConfigServiceClient) {
	t.Helper()
	p := New()
	p.hooks.getenv = func(string) string { return "" }
	client := new(nodeattestorv1.NodeAttestorPluginClient)
	cfgClient := new(configv1.ConfigServiceClient)
	plugintest.ServeInBackground(t, plugintest.Config{
		PluginServer:   nodeattestorv1.NodeAttestorPluginServer(p),
		PluginClient:   client,
		ServiceServers: []pluginsdk.ServiceServer{configv1.ConfigServiceServer(p)},
		ServiceClients: []pluginsdk.ServiceClient{cfgClient},
	})
	return p, client, cfgClient
}

// agent plays the agent side of the exchange for tests.
type agent struct {
	payload []byte
	// respond answers a challenge; nil means "sign correctly with key".
	respond func(ch *wire.Challenge) []byte
	key     crypto.Signer
	td      string
	now     time.Time
}

func payloadFor(certs ...*x509.Certificate) []byte {
	ders := make([][]byte, len(certs))
	for i, c := range certs {
		ders[i] = c.Raw
	}
	b, err := wire.Marshal(&wire.AttestationData{Version: wire.ProtocolVersion, Certificates: ders})
	if err != nil {
		panic(err)
	}
	return b
}

func goodAgent(creds *kubeedgeca.NodeCredentials, now time.Time) *agent {
	return &agent{payload: payloadFor(creds.Certificate), key: creds.Key, td: testTD, now: now}
}

// respondWith signs ch as a real agent would.
func respondWith(key crypto.Signer, td string, ch *wire.Challenge, now time.Time) []byte {
	agentNonce := make([]byte, wire.NonceSize)
	rand.Read(agentNonce)
	ts := now.UnixMilli()
	sig, err := wire.Sign(nil, key, wire.SignedMessage(td, ch.Nonce, agentNonce, ts))
	if err != nil {
		panic(err)
	}
	b, _ := wire.Marshal(&wire.ChallengeResponse{Version: 1, Challenge: ch.Nonce, Nonce: agentNonce, TimeUnixMilli: ts, Signature: sig})
	return b
}

// run drives one Attest stream. It returns the agent attributes, the
// challenge response the agent sent (for replay tests) and the error.
func (a *agent) run(t *testing.T, client *nodeattestorv1.NodeAttestorPluginClient) (*nodeattestorv1.AgentAttributes, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.Attest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&nodeattestorv1.AttestRequest{Request: &nodeattestorv1.AttestRequest_Payload{Payload: a.payload}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	if attrs := resp.GetAgentAttributes(); attrs != nil {
		t.Fatal("server returned attributes without a challenge")
	}
	ch, err := wire.DecodeChallenge(resp.GetChallenge())
	if err != nil {
		t.Fatalf("server sent a bad challenge: %v", err)
	}
	var answer []byte
	if a.respond != nil {
		answer = a.respond(ch)
	} else {
		answer = respondWith(a.key, a.td, ch, a.now)
	}
	if err := stream.Send(&nodeattestorv1.AttestRequest{Request: &nodeattestorv1.AttestRequest_ChallengeResponse{ChallengeResponse: answer}}); err != nil {
		t.Fatal(err)
	}
	resp, err = stream.Recv()
	if err != nil {
		return nil, answer, err
	}
	return resp.GetAgentAttributes(), answer, nil
}

// fakeKube is an httptest TLS server playing kube-apiserver's GET Node.
type fakeKube struct {
	srv   *httptest.Server
	token string
	mu    sync.Mutex
	nodes map[string]map[string]any
	fail  int // when non-zero, answer every request with this status
	// delay holds every answer back this long (an API server that hangs).
	delay time.Duration
	calls int
}

func newFakeKube(t *testing.T) *fakeKube {
	k := &fakeKube{token: "test-token-" + rand.Text(), nodes: map[string]map[string]any{}}
	k.srv = httptest.NewUnstartedServer(http.HandlerFunc(k.serve))
	k.srv.StartTLS()
	t.Cleanup(k.srv.Close)
	return k
}

func (k *fakeKube) serve(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	delay := k.delay
	k.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if r.Header.Get("Authorization") != "Bearer "+k.token {
		http.Error(w, `{"kind":"Status","message":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if k.fail != 0 {
		http.Error(w, `{"kind":"Status","message":"injected failure"}`, k.fail)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/api/v1/nodes/")
	if r.Method != http.MethodGet || !ok {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	n, ok := k.nodes[name]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"kind":"Status","reason":"NotFound","message":"nodes %q not found"}`, name)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(n)
}

// addNode registers a Node with labels; deleting sets a deletionTimestamp.
func (k *fakeKube) addNode(name, uid string, labels map[string]string, deleting bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	meta := map[string]any{"name": name, "uid": uid, "labels": labels}
	if deleting {
		meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
	}
	k.nodes[name] = map[string]any{"kind": "Node", "apiVersion": "v1", "metadata": meta, "status": map[string]any{"nodeInfo": map[string]any{"kubeletVersion": "v1.30.0-kubeedge-v1.20.0"}}}
}

func (k *fakeKube) writeKubeconfig(t *testing.T, dir string) string {
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.srv.Certificate().Raw})
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: test
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
contexts:
- name: test
  context:
    cluster: test
    user: spire
users:
- name: spire
  user:
    token: %s
`, k.srv.URL, base64.StdEncoding.EncodeToString(caPEM), k.token)
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func edgeLabels() map[string]string {
	return map[string]string{"node-role.kubernetes.io/edge": "", "kubernetes.io/arch": "arm64"}
}

func TestAttestGoodNode(t *testing.T) {
	f := newFixture(t)
	creds := f.issue("edge-node-1")
	_, client := f.load(f.hcl(""))
	attrs, _, err := goodAgent(creds, f.now).run(t, client)
	if err != nil {
		t.Fatalf("attestation failed: %v", err)
	}
	if want := "spiffe://example.org/spire/agent/kubeedge/prod/edge-node-1"; attrs.SpiffeId != want {
		t.Errorf("agent ID = %q, want %q", attrs.SpiffeId, want)
	}
	want := []string{
		"cluster:prod",
		"node_name:edge-node-1",
		"ca_fingerprint:" + f.ca.Fingerprint(),
		"cert_serial:" + creds.Certificate.SerialNumber.Text(16),
	}
	assertSelectors(t, attrs.SelectorValues, want)
	if !attrs.CanReattest {
		t.Error("CanReattest = false, want true")
	}
}

func TestAttestGoodNodeWithKubernetesCheck(t *testing.T) {
	f := newFixture(t)
	creds := f.issue("edge-node-1")
	f.kube.addNode("edge-node-1", "8d3c6a2e-uid", edgeLabels(), false)
	_, client := f.load(f.hclKube(""))
	attrs, _, err := goodAgent(creds, f.now).run(t, client)
	if err != nil {
		t.Fatalf("attestation failed: %v", err)
	}
	want := []string{
		"cluster:prod",
		"node_name:edge-node-1",
		"ca_fingerprint:" + f.ca.Fingerprint(),
		"cert_serial:" + creds.Certificate.SerialNumber.Text(16),
		"node_label:kubernetes.io/arch:arm64",
		"node_label:node-role.kubernetes.io/edge:",
		"node_uid:8d3c6a2e-uid",
	}
	assertSelectors(t, attrs.SelectorValues, want)
}

func assertSelectors(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("selectors:\n got %q\nwant %q", got, want)
	}
}

func TestAttestRSAPSSNode(t *testing.T) {
	f := newFixture(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.ca.SignPublicKey(kubeedgeca.NodeSubject("rsa-node"), key.Public(), kubeedgeca.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, client := f.load(f.hcl(""))
	a := &agent{payload: payloadFor(cert), key: key, td: testTD, now: f.now}
	attrs, _, err := a.run(t, client)
	if err != nil {
		t.Fatalf("attestation failed: %v", err)
	}
	if want := "spiffe://example.org/spire/agent/kubeedge/prod/rsa-node"; attrs.SpiffeId != want {
		t.Errorf("agent ID = %q, want %q", attrs.SpiffeId, want)
	}
}

// TestAttestRejections is the table of refusals: each case names the exact
// gRPC code and the message a user sees.
func TestAttestRejections(t *testing.T) {
	f := newFixture(t)
	good := f.issue("edge-node-1")
	otherCA, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fromOtherCA, err := otherCA.IssueNode("edge-node-1", kubeedgeca.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(subject pkix.Name, opts kubeedgeca.SignOptions) *kubeedgeca.NodeCredentials {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := f.ca.SignPublicKey(subject, key.Public(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return &kubeedgeca.NodeCredentials{Certificate: cert, Key: key}
	}
	expired := sign(kubeedgeca.NodeSubject("edge-node-1"), kubeedgeca.SignOptions{NotBefore: f.now.Add(-48 * time.Hour), NotAfter: f.now.Add(-time.Hour)})
	notYet := sign(kubeedgeca.NodeSubject("edge-node-1"), kubeedgeca.SignOptions{NotBefore: f.now.Add(time.Hour), NotAfter: f.now.Add(48 * time.Hour)})
	noClientAuth := sign(kubeedgeca.NodeSubject("edge-node-1"), kubeedgeca.SignOptions{Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	wrongCN := sign(pkix.Name{CommonName: "edge-node-1", Organization: []string{"system:nodes"}}, kubeedgeca.SignOptions{})
	wrongO := sign(pkix.Name{CommonName: "system:node:edge-node-1", Organization: []string{"kubeEdge"}}, kubeedgeca.SignOptions{})
	legacy := sign(pkix.Name{CommonName: "kubeedge.io", Organization: []string{"system:nodes"}}, kubeedgeca.SignOptions{})
	badName := sign(kubeedgeca.NodeSubject("Edge_Node"), kubeedgeca.SignOptions{})
	banned := f.issue("banned-node")
	bannedSerial := f.issue("edge-node-2")
	noNode := f.issue("ghost-node")
	noLabel := f.issue("cloud-node")
	wrongLabel := f.issue("worker-node")
	deleting := f.issue("leaving-node")
	f.kube.addNode("edge-node-1", "uid-1", edgeLabels(), false)
	f.kube.addNode("banned-node", "uid-b", edgeLabels(), false)
	f.kube.addNode("edge-node-2", "uid-2", edgeLabels(), false)
	f.kube.addNode("cloud-node", "uid-c", map[string]string{"kubernetes.io/arch": "amd64"}, false)
	f.kube.addNode("worker-node", "uid-w", map[string]string{"node-role.kubernetes.io/edge": "false"}, false)
	f.kube.addNode("leaving-node", "uid-l", edgeLabels(), true)
	wrongKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	_, client := f.load(f.hclKube(fmt.Sprintf("deny_node_names = [\"banned-node\"]\ndeny_cert_serials = [%q]\n", "0x"+strings.ToUpper(bannedSerial.Certificate.SerialNumber.Text(16)))))

	// A response captured from a successful exchange, replayed later.
	_, captured, err := goodAgent(good, f.now).run(t, client)
	if err != nil {
		t.Fatalf("baseline attestation failed: %v", err)
	}

	withPayload := func(p []byte) *agent { a := goodAgent(good, f.now); a.payload = p; return a }
	withResponse := func(fn func(ch *wire.Challenge) []byte) *agent { a := goodAgent(good, f.now); a.respond = fn; return a }

	tests := []struct {
		name    string
		agent   *agent
		code    codes.Code
		message string
	}{
		{"cert from another CA", goodAgent(fromOtherCA, f.now), codes.PermissionDenied, "node certificate is not signed by a configured KubeEdge CA: x509: certificate signed by unknown authority (possibly because of \"x509: ECDSA verification failure\" while trying to verify candidate authority certificate \"KubeEdge\")"},
		{"expired cert", goodAgent(expired, f.now), codes.PermissionDenied, "node certificate expired at " + expired.Certificate.NotAfter.UTC().Format(time.RFC3339)},
		{"not yet valid cert", goodAgent(notYet, f.now), codes.PermissionDenied, "node certificate is not valid before " + notYet.Certificate.NotBefore.UTC().Format(time.RFC3339)},
		{"no client auth EKU", goodAgent(noClientAuth, f.now), codes.PermissionDenied, "node certificate lacks the client authentication extended key usage"},
		{"wrong subject CN", goodAgent(wrongCN, f.now), codes.PermissionDenied, `node certificate common name "edge-node-1" does not match common_name_pattern "^(?:^system:node:(?P<node_name>.+)$)$"`},
		{"wrong subject O", goodAgent(wrongO, f.now), codes.PermissionDenied, `node certificate subject organization ["kubeEdge"] includes none of ["system:nodes"]`},
		{"legacy kubeedge.io cert", goodAgent(legacy, f.now), codes.PermissionDenied, "node certificate has the legacy KubeEdge subject CN=kubeedge.io, which names no node; rotate the node certificate with a current edgecore"},
		{"invalid node name", goodAgent(badName, f.now), codes.PermissionDenied, `node certificate names "Edge_Node", which is not a valid Kubernetes node name`},
		{"CA certificate as leaf", &agent{payload: payloadFor(f.ca.Certificate()), key: good.Key, td: testTD, now: f.now}, codes.PermissionDenied, "node certificate is a CA certificate"},
		{"wrong key", &agent{payload: payloadFor(good.Certificate), key: wrongKey, td: testTD, now: f.now}, codes.PermissionDenied, "challenge response signature does not verify with the node certificate key: kubeedge: ecdsa signature does not verify"},
		{"signed for another trust domain", &agent{payload: payloadFor(good.Certificate), key: good.Key, td: "evil.example", now: f.now}, codes.PermissionDenied, "challenge response signature does not verify with the node certificate key: kubeedge: ecdsa signature does not verify"},
		{"replayed challenge response", withResponse(func(*wire.Challenge) []byte { return captured }), codes.PermissionDenied, "challenge response answers another challenge (replayed or stale response)"},
		{"replayed signature with echoed challenge", withResponse(func(ch *wire.Challenge) []byte {
			var r wire.ChallengeResponse
			json.Unmarshal(captured, &r)
			r.Challenge = ch.Nonce
			b, _ := wire.Marshal(&r)
			return b
		}), codes.PermissionDenied, "challenge response signature does not verify with the node certificate key: kubeedge: ecdsa signature does not verify"},
		{"agent clock skew", &agent{payload: payloadFor(good.Certificate), key: good.Key, td: testTD, now: f.now.Add(-10 * time.Minute)}, codes.PermissionDenied, "challenge response time " + time.UnixMilli(f.now.Add(-10*time.Minute).UnixMilli()).UTC().Format(time.RFC3339) + " is 10m0s away from the server's clock, over max_clock_skew 5m0s"},
		{"truncated payload", withPayload(payloadFor(good.Certificate)[:40]), codes.InvalidArgument, "kubeedge: malformed attestation payload: unexpected end of JSON input"},
		{"oversized payload", withPayload(bytes.Repeat([]byte(" "), wire.MaxPayloadBytes+1)), codes.InvalidArgument, "kubeedge: attestation payload is 32769 bytes, over the 32768 byte limit"},
		{"garbage payload", withPayload([]byte("\x00\x01garbage")), codes.InvalidArgument, "kubeedge: malformed attestation payload: invalid character '\\x00' looking for beginning of value"},
		{"unknown field", withPayload([]byte(`{"version":1,"certificates":[],"admin":true}`)), codes.InvalidArgument, `kubeedge: malformed attestation payload: json: unknown field "admin"`},
		{"wrong version", withPayload([]byte(`{"version":2,"certificates":["AA=="]}`)), codes.InvalidArgument, "kubeedge: unsupported attestation payload version 2 (want 1)"},
		{"no certificate", withPayload([]byte(`{"version":1,"certificates":[]}`)), codes.InvalidArgument, "kubeedge: attestation payload holds no certificate"},
		{"too many certificates", withPayload(payloadFor(good.Certificate, good.Certificate, good.Certificate, good.Certificate, good.Certificate)), codes.InvalidArgument, "kubeedge: attestation payload holds 5 certificates, over the limit of 4"},
		{"garbage certificate", withPayload([]byte(`{"version":1,"certificates":["AAEC"]}`)), codes.InvalidArgument, "kubeedge: malformed certificate 0: x509: malformed certificate"},
		{"garbage challenge response", withResponse(func(*wire.Challenge) []byte { return []byte("{not json") }), codes.InvalidArgument, "kubeedge: malformed challenge response: invalid character 'n' looking for beginning of object key string"},
		{"oversized challenge response", withResponse(func(*wire.Challenge) []byte { return make([]byte, wire.MaxChallengeResponseBytes+1) }), codes.InvalidArgument, "kubeedge: challenge response is 4097 bytes, over the 4096 byte limit"},
		{"short agent nonce", withResponse(func(ch *wire.Challenge) []byte {
			b, _ := wire.Marshal(&wire.ChallengeResponse{Version: 1, Challenge: ch.Nonce, Nonce: []byte{1}, TimeUnixMilli: 1, Signature: []byte{1}})
			return b
		}), codes.InvalidArgument, "kubeedge: challenge response nonce is 1 bytes, want 32"},
		{"banned node name", goodAgent(banned, f.now), codes.PermissionDenied, `node "banned-node" is on the deny list`},
		{"banned certificate serial", goodAgent(bannedSerial, f.now), codes.PermissionDenied, "node certificate serial " + bannedSerial.Certificate.SerialNumber.Text(16) + " is on the deny list"},
		{"kubernetes node missing", goodAgent(noNode, f.now), codes.PermissionDenied, `kubernetes node "ghost-node" does not exist`},
		{"kubernetes node without edge label", goodAgent(noLabel, f.now), codes.PermissionDenied, `kubernetes node "cloud-node" lacks the edge label "node-role.kubernetes.io/edge"`},
		{"kubernetes node with wrong edge label value", goodAgent(wrongLabel, f.now), codes.PermissionDenied, `kubernetes node "worker-node" has edge label "node-role.kubernetes.io/edge"="false", want ""`},
		{"kubernetes node being deleted", goodAgent(deleting, f.now), codes.PermissionDenied, `kubernetes node "leaving-node" is being deleted`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs, _, err := tt.agent.run(t, client)
			if err == nil {
				t.Fatalf("attestation succeeded with %s, want %v", attrs.GetSpiffeId(), tt.code)
			}
			st := status.Convert(err)
			if st.Code() != tt.code || st.Message() != tt.message {
				t.Fatalf("got %v %q\nwant %v %q", st.Code(), st.Message(), tt.code, tt.message)
			}
		})
	}
}

func TestAttestKubernetesFailsClosed(t *testing.T) {
	f := newFixture(t)
	creds := f.issue("edge-node-1")
	f.kube.addNode("edge-node-1", "uid-1", edgeLabels(), false)
	_, client := f.load(f.hclKube(""))
	f.kube.mu.Lock()
	f.kube.fail = http.StatusInternalServerError
	f.kube.mu.Unlock()
	_, _, err := goodAgent(creds, f.now).run(t, client)
	st := status.Convert(err)
	want := `unable to check kubernetes node "edge-node-1": api server answered 500 Internal Server Error: injected failure`
	if st.Code() != codes.Unavailable || st.Message() != want {
		t.Fatalf("got %v %q, want Unavailable %q", st.Code(), st.Message(), want)
	}

	// An API server that is gone also refuses.
	f.kube.srv.Close()
	_, _, err = goodAgent(creds, f.now).run(t, client)
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), `unable to check kubernetes node "edge-node-1"`) {
		t.Fatalf("with the API server down: got %v", err)
	}
}

func TestKubernetesNotCalledBeforeProofOfPossession(t *testing.T) {
	f := newFixture(t)
	good := f.issue("edge-node-1")
	f.kube.addNode("edge-node-1", "uid-1", edgeLabels(), false)
	_, client := f.load(f.hclKube(""))
	wrongKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a := &agent{payload: payloadFor(good.Certificate), key: wrongKey, td: testTD, now: f.now}
	if _, _, err := a.run(t, client); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("wrong key: got %v", err)
	}
	f.kube.mu.Lock()
	calls := f.kube.calls
	f.kube.mu.Unlock()
	if calls != 0 {
		t.Fatalf("the API server was called %d times for an agent that failed proof of possession", calls)
	}
}

func TestChallengeTimeout(t *testing.T) {
	f := newFixture(t)
	creds := f.issue("edge-node-1")
	p, client := f.load(f.hcl(`challenge_timeout = "2s"`))
	var mu sync.Mutex
	clock := f.now
	p.hooks.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	a := goodAgent(creds, f.now)
	a.respond = func(ch *wire.Challenge) []byte {
		mu.Lock()
		clock = clock.Add(3 * time.Second)
		mu.Unlock()
		return respondWith(creds.Key, testTD, ch, f.now)
	}
	_, _, err := a.run(t, client)
	want := "challenge response came 3s after the challenge, over challenge_timeout 2s"
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != want {
		t.Fatalf("got %v %q, want PermissionDenied %q", st.Code(), st.Message(), want)
	}
}

func TestNodeCertificateRotationKeepsAgentID(t *testing.T) {
	f := newFixture(t)
	first := f.issue("edge-node-1")
	second := f.issue("edge-node-1")
	_, client := f.load(f.hcl(""))
	a1, _, err := goodAgent(first, f.now).run(t, client)
	if err != nil {
		t.Fatal(err)
	}
	a2, _, err := goodAgent(second, f.now).run(t, client)
	if err != nil {
		t.Fatal(err)
	}
	if a1.SpiffeId != a2.SpiffeId {
		t.Fatalf("agent ID changed on rotation: %s -> %s", a1.SpiffeId, a2.SpiffeId)
	}
	if a1.SelectorValues[3] == a2.SelectorValues[3] {
		t.Fatalf("cert_serial selector did not change on rotation: %s", a1.SelectorValues[3])
	}
}

func TestCARotationBothGenerationsAttest(t *testing.T) {
	f := newFixture(t)
	oldCreds := f.issue("edge-node-1")
	newCA, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	newCreds, err := newCA.IssueNode("edge-node-2", kubeedgeca.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newPath := filepath.Join(f.dir, "newCA.crt")
	if err := newCA.WriteCertificate(newPath); err != nil {
		t.Fatal(err)
	}
	// Only the old CA: the new generation is refused.
	p, client := f.load(f.hcl(""))
	p.state.bundle.recheck = 0 // see file changes at once
	if _, _, err := goodAgent(newCreds, f.now).run(t, client); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("new-CA node before rotation: got %v, want PermissionDenied", err)
	}
	// Both CAs in one bundle file (same CN and serial, as cloudcore makes them).
	both := append(f.ca.CertificatePEM(), newCA.CertificatePEM()...)
	if err := os.WriteFile(f.caPath, both, 0o644); err != nil {
		t.Fatal(err)
	}
	// The file changed on disk; no reconfigure needed. Bump mtime in case the
	// filesystem's resolution hides the change.
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(f.caPath, later, later)
	for _, c := range []struct {
		creds *kubeedgeca.NodeCredentials
		fp    string
	}{{oldCreds, f.ca.Fingerprint()}, {newCreds, newCA.Fingerprint()}} {
		attrs, _, err := goodAgent(c.creds, f.now).run(t, client)
		if err != nil {
			t.Fatalf("attestation with both CAs: %v", err)
		}
		if attrs.SelectorValues[2] != "ca_fingerprint:"+c.fp {
			t.Errorf("selector %s, want ca_fingerprint:%s", attrs.SelectorValues[2], c.fp)
		}
	}
	// ca_bundle_paths with two files works too.
	_, client2 := f.load(fmt.Sprintf("cluster = \"prod\"\nca_bundle_paths = [%q, %q]\n", f.caPath, newPath))
	// (client keeps using p's bundle, which rechecks at every attestation.)
	if _, _, err := goodAgent(newCreds, f.now).run(t, client2); err != nil {
		t.Fatalf("ca_bundle_paths: %v", err)
	}
	// Dropping the old CA retires its generation.
	if err := os.WriteFile(f.caPath, newCA.CertificatePEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	later = later.Add(2 * time.Second)
	os.Chtimes(f.caPath, later, later)
	if _, _, err := goodAgent(oldCreds, f.now).run(t, client); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("old-CA node after retiring the old CA: got %v, want PermissionDenied", err)
	}
}

func TestNotConfigured(t *testing.T) {
	_, client, _ := serve(t)
	stream, err := client.Attest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&nodeattestorv1.AttestRequest{Request: &nodeattestorv1.AttestRequest_Payload{Payload: []byte("{}")}})
	_, err = stream.Recv()
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "not configured" {
		t.Fatalf("got %v, want FailedPrecondition not configured", err)
	}
}

func TestConfigure(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		td   string
		hcl  string
		want string // substring of the InvalidArgument message; empty = success
	}{
		{name: "minimal", td: testTD, hcl: f.hcl("")},
		{name: "with kubeconfig", td: testTD, hcl: f.hclKube("")},
		{name: "every problem at once", td: testTD, hcl: `cluster = "a/b"
common_name_pattern = "^system:node:(.+)$"
deny_cert_serials = ["xyz"]
max_clock_skew = "soon"
kubernetes_check = "maybe"`, want: `invalid configuration: cluster "a/b" must be a SPIFFE ID path segment (letters, digits, '.', '-', '_'); ca_bundle_path or ca_bundle_paths is required; common_name_pattern "^system:node:(.+)$" has no named group (?P<node_name>...); deny_cert_serials: serial "xyz" is not a hexadecimal number; max_clock_skew "soon" must be a positive duration such as "30s"; kubernetes_check "maybe" must be "auto", "required" or "disabled"`},
		{name: "missing cluster", td: testTD, hcl: fmt.Sprintf("ca_bundle_path = %q", f.caPath), want: "invalid configuration: cluster is required"},
		{name: "bad trust domain", td: "Not A TD", hcl: f.hcl(""), want: `trust domain "Not A TD" from the core configuration is invalid`},
		{name: "unknown key", td: testTD, hcl: f.hcl("kubeconfg = \"x\""), want: `Unsupported argument; An argument named "kubeconfg" is not expected here`},
		{name: "missing CA file", td: testTD, hcl: "cluster = \"prod\"\nca_bundle_path = \"/nonexistent/rootCA.crt\"", want: "invalid configuration: ca bundle: stat /nonexistent/rootCA.crt: no such file or directory"},
		{name: "required without credentials", td: testTD, hcl: f.hcl(`kubernetes_check = "required"`), want: `kubernetes_check is "required" but neither kubeconfig nor in-cluster credentials are available`},
		{name: "missing kubeconfig", td: testTD, hcl: f.hcl(`kubeconfig = "/nonexistent/kubeconfig"`), want: "invalid configuration: kubeconfig: unable to read kubeconfig: open /nonexistent/kubeconfig: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, cfgClient := serve(t)
			_, err := cfgClient.Configure(context.Background(), &configv1.ConfigureRequest{
				CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: tt.td},
				HclConfiguration:  tt.hcl,
			})
			vresp, verr := cfgClient.Validate(context.Background(), &configv1.ValidateRequest{
				CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: tt.td},
				HclConfiguration:  tt.hcl,
			})
			if verr != nil {
				t.Fatalf("Validate: %v", verr)
			}
			if tt.want == "" {
				if err != nil || !vresp.Valid {
					t.Fatalf("Configure: %v; Validate: %v", err, vresp)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.want) {
				t.Fatalf("Configure error %v, want InvalidArgument containing %q", err, tt.want)
			}
			if vresp.Valid || len(vresp.Notes) == 0 || !strings.Contains(vresp.Notes[0], tt.want) {
				t.Fatalf("Validate = %v, want invalid with note containing %q", vresp, tt.want)
			}
		})
	}
}

func TestInClusterCredentials(t *testing.T) {
	f := newFixture(t)
	creds := f.issue("edge-node-1")
	f.kube.addNode("edge-node-1", "uid-1", edgeLabels(), false)
	dir := t.TempDir()
	tokenPath, caPath := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	os.WriteFile(tokenPath, []byte(f.kube.token+"\n"), 0o600)
	os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.kube.srv.Certificate().Raw}), 0o644)
	host, port, _ := strings.Cut(strings.TrimPrefix(f.kube.srv.URL, "https://"), ":")
	env := map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}

	p, client, cfgClient := serve(t)
	p.hooks.now = func() time.Time { return f.now }
	p.hooks.getenv = func(k string) string { return env[k] }
	p.hooks.inClusterTokenPath, p.hooks.inClusterCAPath = tokenPath, caPath
	if _, err := cfgClient.Configure(context.Background(), &configv1.ConfigureRequest{
		CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: testTD},
		HclConfiguration:  f.hcl(""),
	}); err != nil {
		t.Fatal(err)
	}
	attrs, _, err := goodAgent(creds, f.now).run(t, client)
	if err != nil {
		t.Fatal(err)
	}
	if got := attrs.SelectorValues[len(attrs.SelectorValues)-1]; got != "node_uid:uid-1" {
		t.Fatalf("in-cluster check did not run: last selector %q", got)
	}
	// The token is re-read: a rotated token that the API server refuses
	// makes attestation fail closed.
	os.WriteFile(tokenPath, []byte("stale"), 0o600)
	if _, _, err := goodAgent(creds, f.now).run(t, client); status.Code(err) != codes.Unavailable {
		t.Fatalf("with a refused token: got %v, want Unavailable", err)
	}
}

func TestKubeconfigRefusesInsecureOptions(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, rand.Text())
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	base := "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
	tests := []struct{ name, body, want string }{
		{"http server", base + "clusters:\n- name: k\n  cluster: {server: \"http://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {token: t}\n", `must use https`},
		{"skip verify", base + "clusters:\n- name: k\n  cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: t}\n", "insecure-skip-tls-verify is refused"},
		{"exec plugin", base + "clusters:\n- name: k\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {exec: {command: aws}}\n", "exec credential plugins are not supported"},
		{"no context", "clusters: []\n", "has no current-context"},
		{"missing cluster", base + "clusters: []\nusers: []\n", `has no cluster "k"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newKubeClientFromKubeconfig(write(tt.body), "", time.Second)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// TestVerifiedChainCacheKeepsChecks re-attests with the same certificate
// (a cache hit) and checks that validity is still enforced on the hit.
func TestVerifiedChainCacheKeepsChecks(t *testing.T) {
	f := newFixture(t)
	creds := f.issue("edge-node-1")
	p, client := f.load(f.hcl(""))
	var mu sync.Mutex
	clock := f.now
	p.hooks.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	for i := range 2 {
		if _, _, err := goodAgent(creds, f.now).run(t, client); err != nil {
			t.Fatalf("attestation %d: %v", i, err)
		}
	}
	mu.Lock()
	clock = creds.Certificate.NotAfter.Add(time.Second)
	mu.Unlock()
	_, _, err := goodAgent(creds, clock).run(t, client)
	want := "node certificate expired at " + creds.Certificate.NotAfter.UTC().Format(time.RFC3339)
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != want {
		t.Fatalf("cached chain past its NotAfter: got %v, want PermissionDenied %q", err, want)
	}
}
