package kubeedge

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	"github.com/spiffe/spire-plugin-sdk/plugintest"
	nodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/nodeattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
)

// logSink collects a plugin's log records (hclog's JSON lines).
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// logRecord is one log line: "@level", "@message" and the fields.
type logRecord map[string]any

func (l *logSink) records(t *testing.T) []logRecord {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logRecord
	for _, line := range bytes.Split(bytes.TrimSpace(l.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r logRecord
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// find returns the records with the given level and message.
func (l *logSink) find(t *testing.T, level, msg string) []logRecord {
	t.Helper()
	var out []logRecord
	for _, r := range l.records(t) {
		if r["@level"] == level && r["@message"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// clock is a settable clock for the plugin's hooks.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// serveLogged is serve with the plugin's log captured.
func serveLogged(t *testing.T) (*Plugin, *nodeattestorv1.NodeAttestorPluginClient, *configv1.ConfigServiceClient, *logSink) {
	t.Helper()
	sink := &logSink{}
	p := New()
	p.hooks.getenv = func(string) string { return "" }
	p.hooks.inClusterTokenPath = filepath.Join(t.TempDir(), "no-token")
	client := new(nodeattestorv1.NodeAttestorPluginClient)
	cfgClient := new(configv1.ConfigServiceClient)
	plugintest.ServeInBackground(t, plugintest.Config{
		PluginServer:   nodeattestorv1.NodeAttestorPluginServer(p),
		PluginClient:   client,
		ServiceServers: []pluginsdk.ServiceServer{configv1.ConfigServiceServer(p)},
		ServiceClients: []pluginsdk.ServiceClient{cfgClient},
		Logger:         hclog.New(&hclog.LoggerOptions{Output: sink, JSONFormat: true, Level: hclog.Trace}),
	})
	return p, client, cfgClient, sink
}

func configure(cfgClient *configv1.ConfigServiceClient, hcl string) error {
	_, err := cfgClient.Configure(context.Background(), &configv1.ConfigureRequest{
		CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: testTD},
		HclConfiguration:  hcl,
	})
	return err
}

// TestKubernetesCheckModes is the matrix of kubernetes_check against the
// credentials present: which mode results, what Configure logs, and what
// that does to a node that has no Kubernetes Node.
func TestKubernetesCheckModes(t *testing.T) {
	const (
		on  = "on"
		off = "off"
	)
	tests := []struct {
		name       string
		mode       string // kubernetes_check; "" leaves it out
		kubeconfig bool
		token      bool // the in-cluster token file exists
		env        bool // KUBERNETES_SERVICE_HOST/PORT are set
		// want is "on" or "off"; or, with err, the Configure error.
		want   string
		err    string
		level  string // what Configure logs about the check
		logMsg string
		source string // credentials of an "on" check
	}{
		{name: "default, no credentials: off with a warning", want: off, level: "warn", logMsg: warnCheckOffAuto},
		{name: "auto, no credentials: off with a warning", mode: "auto", want: off, level: "warn", logMsg: warnCheckOffAuto},
		{name: "default with kubeconfig: required", kubeconfig: true, want: on, source: "kubeconfig"},
		{name: "auto with kubeconfig: required", mode: "auto", kubeconfig: true, want: on, source: "kubeconfig"},
		{name: "default in a pod: required", token: true, env: true, want: on, source: "in-cluster"},
		{name: "default with kubeconfig in a pod: kubeconfig wins", kubeconfig: true, token: true, env: true, want: on, source: "kubeconfig"},
		{name: "default, token without service env: refused", token: true, err: "invalid configuration: the Kubernetes Node check is required because the in-cluster service account token {token} exists, but the in-cluster credentials are unusable: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; set kubeconfig, or kubernetes_check = \"disabled\" to run without the check"},
		{name: "service env without token: off", env: true, want: off, level: "warn", logMsg: warnCheckOffAuto},
		{name: "required with kubeconfig", mode: "required", kubeconfig: true, want: on, source: "kubeconfig"},
		{name: "required in a pod", mode: "required", token: true, env: true, want: on, source: "in-cluster"},
		{name: "required without credentials: refused", mode: "required", err: `invalid configuration: kubernetes_check is "required" but neither kubeconfig nor in-cluster credentials are available`},
		{name: "disabled: off with a warning", mode: "disabled", want: off, level: "warn", logMsg: warnCheckDisabled},
		{name: "disabled in a pod: off", mode: "disabled", token: true, env: true, want: off, level: "warn", logMsg: warnCheckDisabled},
		{name: "disabled with kubeconfig: refused", mode: "disabled", kubeconfig: true, err: `invalid configuration: kubeconfig is set but kubernetes_check is "disabled"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.kube.addNode("edge-node-1", "uid-1", edgeLabels(), false)
			member, ghost := f.issue("edge-node-1"), f.issue("ghost-node")

			p, client, cfgClient, logs := serveLogged(t)
			p.hooks.now = func() time.Time { return f.now }
			dir := t.TempDir()
			tokenPath, caPath := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
			p.hooks.inClusterTokenPath, p.hooks.inClusterCAPath = tokenPath, caPath
			if tt.token {
				os.WriteFile(tokenPath, []byte(f.kube.token), 0o600)
				os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.kube.srv.Certificate().Raw}), 0o644)
			}
			if tt.env {
				host, port, _ := strings.Cut(strings.TrimPrefix(f.kube.srv.URL, "https://"), ":")
				env := map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
				p.hooks.getenv = func(k string) string { return env[k] }
			}
			extra := ""
			if tt.mode != "" {
				extra += fmt.Sprintf("kubernetes_check = %q\n", tt.mode)
			}
			if tt.kubeconfig {
				extra += fmt.Sprintf("kubeconfig = %q\n", f.kubeconfig)
			}
			err := configure(cfgClient, f.hcl(extra))
			if tt.err != "" {
				want := strings.ReplaceAll(tt.err, "{token}", tokenPath)
				if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != want {
					t.Fatalf("Configure: got %v %q\nwant InvalidArgument %q", st.Code(), st.Message(), want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Configure: %v", err)
			}
			if tt.want == on {
				tt.level, tt.logMsg = "info", "Kubernetes Node check is on"
			}
			recs := logs.find(t, tt.level, tt.logMsg)
			if len(recs) != 1 {
				t.Fatalf("Configure logged %d %s records %q, want 1; log:\n%v", len(recs), tt.level, tt.logMsg, logs.records(t))
			}
			if tt.want == on && (recs[0]["mode"] != "required" || recs[0]["credentials"] != tt.source) {
				t.Errorf("log says mode %v credentials %v, want required %s", recs[0]["mode"], recs[0]["credentials"], tt.source)
			}

			// The member node attests either way; the node without a
			// Kubernetes Node only when the check is off.
			attrs, _, err := goodAgent(member, f.now).run(t, client)
			if err != nil {
				t.Fatalf("member node: %v", err)
			}
			hasUID := strings.Contains(strings.Join(attrs.SelectorValues, " "), "node_uid:uid-1")
			_, _, ghostErr := goodAgent(ghost, f.now).run(t, client)
			switch tt.want {
			case on:
				if !hasUID {
					t.Errorf("check on, but no node_uid selector: %q", attrs.SelectorValues)
				}
				want := `kubernetes node "ghost-node" does not exist`
				if st := status.Convert(ghostErr); st.Code() != codes.PermissionDenied || st.Message() != want {
					t.Errorf("node without a Node: got %v %q, want PermissionDenied %q", st.Code(), st.Message(), want)
				}
			case off:
				if hasUID {
					t.Errorf("check off, but a node_uid selector: %q", attrs.SelectorValues)
				}
				if ghostErr != nil {
					t.Errorf("check off, but the node without a Node was refused: %v", ghostErr)
				}
			}
		})
	}
}

// TestNodeCheckStaleness walks a node through API server outages and
// answers, with a settable clock, checking each attestation's exact result.
func TestNodeCheckStaleness(t *testing.T) {
	type step struct {
		at   time.Duration // clock, after the first step
		node string        // default edge-node-1
		// api changes the API server before the attestation.
		api  func(k *fakeKube)
		code codes.Code // codes.OK: the attestation succeeds
		// message is the exact error; {t0} is the first step's time, {url}
		// the API server's URL. suffix, when set, is checked instead.
		message string
		suffix  string
		// cached: the success came from the last good check (logged).
		cached bool
	}
	failWith := func(code int) func(k *fakeKube) {
		return func(k *fakeKube) { k.mu.Lock(); k.fail = code; k.mu.Unlock() }
	}
	heal := failWith(0)
	remove := func(k *fakeKube) { k.mu.Lock(); delete(k.nodes, "edge-node-1"); k.mu.Unlock() }
	deleting := func(k *fakeKube) { k.addNode("edge-node-1", "uid-1", edgeLabels(), true) }
	unlabel := func(k *fakeKube) {
		k.addNode("edge-node-1", "uid-1", map[string]string{"kubernetes.io/arch": "arm64"}, false)
	}
	down := func(k *fakeKube) { k.srv.Close() }
	hang := func(k *fakeKube) { k.mu.Lock(); k.delay = 3 * time.Second; k.mu.Unlock() }
	const (
		err500 = `unable to check kubernetes node "edge-node-1": api server answered 500 Internal Server Error: injected failure`
		stale  = `; its last successful check, at {t0} (%s ago), is older than node_check_max_staleness %s`
	)

	tests := []struct {
		name  string
		extra string
		steps []step
	}{
		{name: "500 within the bound attests on the last good check, up to the bound exactly", steps: []step{
			{at: 0},
			{at: 30 * time.Minute, api: failWith(500), cached: true},
			{at: time.Hour, cached: true},
			{at: time.Hour + time.Second, code: codes.Unavailable, message: err500 + fmt.Sprintf(stale, "1h0m1s", "1h0m0s")},
		}},
		{name: "503 and 429 are outages too", steps: []step{
			{at: 0},
			{at: 10 * time.Minute, api: failWith(503), cached: true},
			{at: 20 * time.Minute, api: failWith(429), cached: true},
		}},
		{name: "connection refused is an outage", steps: []step{
			{at: 0},
			{at: 59 * time.Minute, api: down, cached: true},
			{at: 61 * time.Minute, code: codes.Unavailable, message: `unable to check kubernetes node "edge-node-1": Get "{url}/api/v1/nodes/edge-node-1": dial tcp {host}: connect: connection refused` + fmt.Sprintf(stale, "1h1m0s", "1h0m0s")},
		}},
		{name: "a hanging API server is an outage", extra: `kubernetes_timeout = "300ms"`, steps: []step{
			{at: 0},
			{at: 5 * time.Minute, api: hang, cached: true},
			{at: 2 * time.Hour, code: codes.Unavailable, suffix: fmt.Sprintf(stale, "2h0m0s", "1h0m0s")},
		}},
		{name: "a cache hit does not extend the bound", steps: []step{
			{at: 0},
			{at: 40 * time.Minute, api: failWith(500), cached: true},
			{at: 61 * time.Minute, code: codes.Unavailable, message: err500 + fmt.Sprintf(stale, "1h1m0s", "1h0m0s")},
		}},
		{name: "a new successful check moves the bound", steps: []step{
			{at: 0},
			{at: 50 * time.Minute},
			{at: 100 * time.Minute, api: failWith(500), cached: true},
		}},
		{name: "403 is not an outage", steps: []step{
			{at: 0},
			{at: time.Minute, api: failWith(403), code: codes.Unavailable, message: `unable to check kubernetes node "edge-node-1": api server answered 403 Forbidden: injected failure`},
		}},
		{name: "401 is not an outage", steps: []step{
			{at: 0},
			{at: time.Minute, api: failWith(401), code: codes.Unavailable, message: `unable to check kubernetes node "edge-node-1": api server answered 401 Unauthorized: injected failure`},
		}},
		{name: "404 refuses at once and forgets the good check", steps: []step{
			{at: 0},
			{at: time.Minute, api: remove, code: codes.PermissionDenied, message: `kubernetes node "edge-node-1" does not exist`},
			{at: 2 * time.Minute, api: failWith(500), code: codes.Unavailable, message: err500},
		}},
		{name: "a deletionTimestamp refuses at once and forgets the good check", steps: []step{
			{at: 0},
			{at: time.Minute, api: deleting, code: codes.PermissionDenied, message: `kubernetes node "edge-node-1" is being deleted`},
			{at: 2 * time.Minute, api: failWith(500), code: codes.Unavailable, message: err500},
		}},
		{name: "a removed edge label refuses at once and forgets the good check", steps: []step{
			{at: 0},
			{at: time.Minute, api: unlabel, code: codes.PermissionDenied, message: `kubernetes node "edge-node-1" lacks the edge label "node-role.kubernetes.io/edge"`},
			{at: 2 * time.Minute, api: failWith(500), code: codes.Unavailable, message: err500},
		}},
		{name: "a node never checked has no grace", steps: []step{
			{at: 0, api: failWith(500), code: codes.Unavailable, message: err500},
		}},
		{name: "the grace is per node", steps: []step{
			{at: 0},
			{at: time.Minute, node: "edge-node-2", api: failWith(500), code: codes.Unavailable, message: `unable to check kubernetes node "edge-node-2": api server answered 500 Internal Server Error: injected failure`},
		}},
		{name: "0s turns the grace off", extra: `node_check_max_staleness = "0s"`, steps: []step{
			{at: 0},
			{at: time.Second, api: failWith(500), code: codes.Unavailable, message: err500},
		}},
		{name: "the API server comes back", steps: []step{
			{at: 0},
			{at: 2 * time.Hour, api: failWith(500), code: codes.Unavailable, message: err500 + fmt.Sprintf(stale, "2h0m0s", "1h0m0s")},
			{at: 2*time.Hour + time.Minute, api: heal},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.kube.addNode("edge-node-1", "uid-1", edgeLabels(), false)
			f.kube.addNode("edge-node-2", "uid-2", edgeLabels(), false)
			creds := map[string]*kubeedgeca.NodeCredentials{"edge-node-1": f.issue("edge-node-1"), "edge-node-2": f.issue("edge-node-2")}
			p, client, cfgClient, logs := serveLogged(t)
			clk := &clock{now: f.now}
			p.hooks.now = clk.Now
			if err := configure(cfgClient, f.hclKube(tt.extra)); err != nil {
				t.Fatal(err)
			}
			t0 := f.now
			var good []string
			repl := strings.NewReplacer("{t0}", t0.UTC().Format(time.RFC3339), "{url}", f.kube.srv.URL, "{host}", strings.TrimPrefix(f.kube.srv.URL, "https://"))
			for i, s := range tt.steps {
				if s.api != nil {
					s.api(f.kube)
				}
				if s.node == "" {
					s.node = "edge-node-1"
				}
				now := t0.Add(s.at)
				clk.Set(now)
				before := len(logs.find(t, "warn", "Kubernetes API server unreachable; node attested on its last successful Node check"))
				attrs, _, err := goodAgent(creds[s.node], now).run(t, client)
				t.Logf("step %d at t0+%s (%s): %v", i, s.at, s.node, err)
				if s.code != codes.OK {
					st := status.Convert(err)
					switch {
					case err == nil:
						t.Fatalf("step %d: attestation succeeded, want %v", i, s.code)
					case st.Code() != s.code:
						t.Fatalf("step %d: got %v %q, want %v", i, st.Code(), st.Message(), s.code)
					case s.suffix != "" && !strings.HasSuffix(st.Message(), repl.Replace(s.suffix)):
						t.Fatalf("step %d: message %q\ndoes not end in %q", i, st.Message(), repl.Replace(s.suffix))
					case s.suffix == "" && st.Message() != repl.Replace(s.message):
						t.Fatalf("step %d: message %q\nwant %q", i, st.Message(), repl.Replace(s.message))
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				hits := logs.find(t, "warn", "Kubernetes API server unreachable; node attested on its last successful Node check")
				if got := len(hits) - before; (got == 1) != s.cached || got > 1 {
					t.Fatalf("step %d: %d cache-hit log records, want cached=%v", i, got, s.cached)
				}
				if !s.cached {
					good = attrs.SelectorValues
					continue
				}
				// The grace keeps the selectors of the last good check, and
				// the log says how old it is.
				if strings.Join(attrs.SelectorValues, "\n") != strings.Join(good, "\n") {
					t.Errorf("step %d: selectors %q, want those of the last good check %q", i, attrs.SelectorValues, good)
				}
				hit := hits[len(hits)-1]
				if hit["node_name"] != s.node || hit["node_uid"] != "uid-1" || hit["checked_at"] == "" || hit["node_check_max_staleness"] != "1h0m0s" {
					t.Errorf("step %d: cache-hit log record %v", i, hit)
				}
			}
		})
	}
}

// TestGetNodeErrorClasses checks which API failures count as an outage
// (may use the last good check) and which fail closed at once.
func TestGetNodeErrorClasses(t *testing.T) {
	target := newFakeKube(t)
	target.addNode("edge-node-1", "uid-1", edgeLabels(), false)
	dir := t.TempDir()
	good := target.writeKubeconfig(t, dir)
	// A kubeconfig that trusts another CA than the one that signed the
	// server's certificate: what an interception looks like from the
	// plugin. (Every httptest server shares one certificate, so the other
	// CA is a KubeEdge-style CA made here.)
	other, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	otherCA := base64.StdEncoding.EncodeToString(other.CertificatePEM())
	raw, _ := os.ReadFile(good)
	lines := strings.Split(string(raw), "\n")
	for i, l := range lines {
		if strings.Contains(l, "certificate-authority-data:") {
			lines[i] = "    certificate-authority-data: " + otherCA
		}
	}
	wrongCA := filepath.Join(dir, "wrong-ca")
	os.WriteFile(wrongCA, []byte(strings.Join(lines, "\n")), 0o600)

	tests := []struct {
		name        string
		kubeconfig  string
		fail        int
		unreachable bool
		want        string // substring of the error
	}{
		{"500", good, 500, true, "api server answered 500 Internal Server Error"},
		{"502", good, 502, true, "api server answered 502 Bad Gateway"},
		{"503", good, 503, true, "api server answered 503 Service Unavailable"},
		{"429", good, 429, true, "api server answered 429 Too Many Requests"},
		{"401", good, 401, false, "api server answered 401 Unauthorized"},
		{"403", good, 403, false, "api server answered 403 Forbidden"},
		{"400", good, 400, false, "api server answered 400 Bad Request"},
		{"unknown certificate authority", wrongCA, 0, false, "x509: certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newKubeClientFromKubeconfig(tt.kubeconfig, "", 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			target.mu.Lock()
			target.fail = tt.fail
			target.mu.Unlock()
			_, err = c.GetNode(context.Background(), "edge-node-1")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if isUnreachable(err) != tt.unreachable {
				t.Fatalf("isUnreachable(%v) = %v, want %v", err, !tt.unreachable, tt.unreachable)
			}
		})
	}
	target.mu.Lock()
	target.fail = 0
	target.mu.Unlock()
	c, _ := newKubeClientFromKubeconfig(good, "", 2*time.Second)
	if _, err := c.GetNode(context.Background(), "ghost"); err != errNodeNotFound {
		t.Fatalf("404: got %v, want errNodeNotFound", err)
	}
	target.srv.Close()
	if _, err := c.GetNode(context.Background(), "edge-node-1"); !isUnreachable(err) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("server down: got %v, want an unreachable connection refused", err)
	}
}

// TestNodeCheckCacheBound fills the cache past its bound: entries past the
// staleness bound go first, then the oldest tenth, never the newest.
func TestNodeCheckCacheBound(t *testing.T) {
	t0 := time.Now()
	c := newNodeCheckCache(10, time.Hour)
	for i := range 10 {
		c.put(fmt.Sprintf("n%d", i), nodeCheck{at: t0.Add(time.Duration(i) * time.Minute)})
	}
	// Full: a new node evicts the oldest tenth (one entry here).
	c.put("new", nodeCheck{at: t0.Add(20 * time.Minute)})
	if _, ok := c.get("n0"); ok || c.size() != 10 {
		t.Fatalf("after overflow: n0 kept=%v size=%d, want evicted and 10", ok, c.size())
	}
	if _, ok := c.get("new"); !ok {
		t.Fatal("the newest entry was not kept")
	}
	// Updating a present node never evicts.
	c.put("n5", nodeCheck{at: t0.Add(21 * time.Minute)})
	if c.size() != 10 {
		t.Fatalf("size %d after an update, want 10", c.size())
	}
	// Two hours later, everything but the fresh entry is past the bound.
	c.put("late", nodeCheck{at: t0.Add(2 * time.Hour)})
	if c.size() != 1 {
		t.Fatalf("size %d after stale eviction, want 1 (only the new entry)", c.size())
	}
	// Off: nothing is stored.
	off := newNodeCheckCache(10, 0)
	off.put("n", nodeCheck{at: t0})
	if _, ok := off.get("n"); ok {
		t.Fatal("a cache with max staleness 0 stored an entry")
	}
}
