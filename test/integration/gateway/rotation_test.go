package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw"
	"github.com/edgeid/edgeid/internal/svidsource"
	"github.com/edgeid/edgeid/test/harness"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	idEdgeGW        = "spiffe://example.org/edge/site-a/kafka-gateway"
	rotationTopic   = "site-a.rotation"
	rotationSVIDTTL = 20 * time.Second
	rotationRun     = 220 * time.Second // ≥ 10 rotations of a 20 s SVID renewed at half-life
	rotationEvery   = 200 * time.Millisecond
	minRotations    = 10
)

// serialLog records the client certificate serial of every connection the
// broker accepts from the gateway.
type serialLog struct {
	mu      sync.Mutex
	conns   int
	serials map[string]int
}

func (s *serialLog) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("no client certificate")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns++
	s.serials[cs.PeerCertificates[0].SerialNumber.String()]++
	return nil
}

func (s *serialLog) counts() (conns, distinct int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, len(s.serials)
}

// watchRotations samples the gateway's SVID and returns the distinct
// serials it has had, as a function.
func watchRotations(ctx context.Context, src *svidsource.Source) func() int {
	var mu sync.Mutex
	seen := map[string]bool{}
	go func() {
		for ctx.Err() == nil {
			if s, err := src.GetX509SVID(); err == nil {
				mu.Lock()
				seen[s.Certificates[0].SerialNumber.String()] = true
				mu.Unlock()
			}
			time.Sleep(250 * time.Millisecond)
		}
	}()
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
}

// startRotatingSPIRE runs a server and agent with 20 s SVIDs for the edge
// gateway and the broker, and returns the agent's Workload API address.
func startRotatingSPIRE(t *testing.T) string {
	server := harness.StartSpireServer(t, harness.ServerConfig{TrustDomain: td, X509SVIDTTL: rotationSVIDTTL})
	token := server.JoinToken(t, "")
	agent := harness.StartSpireAgent(t, harness.AgentConfig{Server: server, JoinToken: token})
	for _, id := range []string{idEdgeGW, idKafka} {
		server.CreateEntry(t, harness.Entry{ParentID: harness.JoinTokenAgentID(td, token), SPIFFEID: id,
			Selectors: []string{"unix:uid:" + strconv.Itoa(os.Getuid())}, X509SVIDTTL: rotationSVIDTTL})
	}
	for _, id := range []string{idEdgeGW, idKafka} {
		harness.FetchX509SVIDFor(t, agent.SocketPath, id)
	}
	return agent.Addr
}

// startRotationCluster runs a 3-broker mTLS kfake that accepts only the
// edge gateway and records its certificate serials; the topic's three
// partitions lead on three brokers.
func startRotationCluster(t *testing.T, broker, gw *svidsource.Source, seen *serialLog) *kfake.Cluster {
	cfg := tlsconfig.MTLSServerConfig(broker, broker, tlsconfig.AuthorizeID(spiffeid.RequireFromString(idEdgeGW)))
	cfg.VerifyConnection = seen.verify
	return harness.StartKafka3(t, cfg, tlsconfig.MTLSClientConfig(gw, gw, tlsconfig.AuthorizeID(spiffeid.RequireFromString(idKafka))),
		rotationTopic, 3, nil)
}

// producer is one long-running librdkafka producer process fed on stdin.
type producer struct {
	cmd       *exec.Cmd
	pid       int
	stdin     io.WriteCloser
	exited    chan error
	out       *harness.SyncBuffer
	attempts  *os.File
	mu        sync.Mutex
	delivered map[string]bool
	failed    []string
}

// startProducer runs testdata/rdkafka_stdin_producer.py: kcat 1.7.1 -P
// reads stdin to EOF before producing anything (checked with -u, -T,
// -l /dev/stdin and linger.ms=0), so the same librdkafka is driven through
// ctypes instead, one message per line as it arrives.
func startProducer(t *testing.T, dir, topic string, props ...string) *producer {
	python := harness.RequireCommand(t, "python3")
	script, err := filepath.Abs("testdata/rdkafka_stdin_producer.py")
	if err != nil {
		t.Fatal(err)
	}
	p := &producer{out: &harness.SyncBuffer{}, exited: make(chan error, 1), delivered: map[string]bool{}}
	if p.attempts, err = os.Create(filepath.Join(dir, "attempts.log")); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(python, append([]string{script, topic}, props...)...)
	p.cmd.Stderr = p.out
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.pid = p.cmd.Process.Pid
	go p.read(stdout)
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	return p
}

func (p *producer) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		_, _ = p.out.Write([]byte(line + "\n"))
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		p.mu.Lock()
		switch f[0] {
		case "delivered":
			p.delivered[f[1]] = true
		case "failed":
			p.failed = append(p.failed, line)
		}
		p.mu.Unlock()
	}
}

// send logs the attempt, then writes it to the producer.
func (p *producer) send(seq int) error { return p.sendText(fmt.Sprintf("seq-%06d", seq)) }

// sendText logs the attempt of one message (one word), then writes it to
// the producer.
func (p *producer) sendText(msg string) error {
	if _, err := fmt.Fprintf(p.attempts, "%s attempt %s\n", time.Now().Format(time.RFC3339Nano), msg); err != nil {
		return err
	}
	_, err := io.WriteString(p.stdin, msg+"\n")
	return err
}

// outcome waits for msg's delivery report: "" when delivered, else the
// error librdkafka reported.
func (p *producer) outcome(t *testing.T, msg string, timeout time.Duration) string {
	t.Helper()
	var got string
	harness.Eventually(t, timeout, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.delivered[msg] {
			got = ""
			return nil
		}
		for _, f := range p.failed {
			if w := strings.Fields(f); len(w) >= 3 && w[1] == msg {
				got = w[2]
				return nil
			}
		}
		return fmt.Errorf("no delivery report for %s yet:\n%s", msg, tailOf(p.out.String(), 10))
	})
	return got
}

// alive reports whether pid is still the producer's process.
func (p *producer) alive() error {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
	if err != nil || !strings.Contains(string(cmdline), "rdkafka_stdin_producer.py") {
		return fmt.Errorf("pid %d is no longer the producer (%v)", p.pid, err)
	}
	return nil
}

// consumeAll reads the topic through the gateway until every sequence
// number 1..n is seen or the deadline passes; it returns the missing ones.
func consumeAll(t *testing.T, bootstrap string, n int) (missing []int, dups int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumeTopics(rotationTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	for i := 1; i <= n; i++ {
		c := seen[fmt.Sprintf("seq-%06d", i)]
		if c == 0 {
			missing = append(missing, i)
		}
		dups += max(c-1, 0)
	}
	return missing, dups
}

// Acceptance 3: a librdkafka producer behind an edge gateway keeps one
// process and loses nothing across ≥ 10 rotations of real SPIRE SVIDs,
// and the broker sees the new certificates on new upstream connections.
func TestEdgeModeAcrossSPIRERotations(t *testing.T) {
	addr := startRotatingSPIRE(t)
	gwSrc, brokerSrc := harness.X509Source(t, addr, idEdgeGW), harness.X509Source(t, addr, idKafka)
	seen := &serialLog{serials: map[string]int{}}
	cluster := startRotationCluster(t, brokerSrc, gwSrc, seen)
	logBuf := &harness.SyncBuffer{}
	gw, err := kafkagw.New(kafkagw.Config{Name: "edge", Mode: kafkagw.ModeEdge, Upstreams: cluster.ListenAddrs()[:1],
		TrustDomain: td, UpstreamIDs: []string{idKafka}, MaxConnLifetime: 12 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		kafkagw.Sources{SVIDs: gwSrc, Bundles: gwSrc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	bootstrap := gw.BootstrapAddrs()[0]
	rotations := watchRotations(ctx, gwSrc)
	p := startProducer(t, t.TempDir(), rotationTopic, "bootstrap.servers="+bootstrap,
		"linger.ms=5", "broker.address.family=v4", "client.id=edge-rotation")
	defer func() {
		if t.Failed() {
			t.Logf("producer output (tail):\n%s\ngateway log (tail):\n%s", tailOf(p.out.String(), 40), tailOf(logBuf.String(), 60))
		}
	}()
	n := produceFor(t, p, rotationRun)
	checkProducer(t, p, n)
	missing, dups := consumeAll(t, bootstrap, n)
	conns, distinct := seen.counts()
	t.Logf("%d messages over %s; gateway SVID rotations %d; broker saw %d upstream connections with %d distinct client certificates; %d duplicate(s)",
		n, rotationRun, rotations()-1, conns, distinct, dups)
	if len(missing) > 0 {
		t.Errorf("%d of %d messages lost, first %v", len(missing), n, missing[:min(len(missing), 10)])
	}
	if rotations()-1 < minRotations {
		t.Errorf("only %d SVID rotations during the run, want ≥ %d", rotations()-1, minRotations)
	}
	if distinct < minRotations {
		t.Errorf("the broker saw %d distinct client certificates on %d connections, want ≥ %d", distinct, conns, minRotations)
	}
}

// produceFor feeds the producer one sequence number every rotationEvery
// for d, failing at once if its process ends; it returns the count sent.
func produceFor(t *testing.T, p *producer, d time.Duration) int {
	tick := time.NewTicker(rotationEvery)
	defer tick.Stop()
	end := time.After(d)
	for n := 1; ; n++ {
		select {
		case err := <-p.exited:
			t.Fatalf("producer pid %d exited mid-run after %d messages: %v", p.pid, n-1, err)
		case <-end:
			return n - 1
		case <-tick.C:
		}
		if err := p.send(n); err != nil {
			t.Fatalf("send seq %d: %v", n, err)
		}
	}
}

// checkProducer proves it is the same process, then lets it flush and exit.
func checkProducer(t *testing.T, p *producer, n int) {
	if err := p.alive(); err != nil {
		t.Fatal(err)
	}
	_ = p.stdin.Close()
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("producer exited with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("producer did not flush and exit within 60s of EOF")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.failed) > 0 || len(p.delivered) != n {
		t.Errorf("producer: %d of %d delivery reports, %d failed (first: %v)", len(p.delivered), n, len(p.failed), p.failed[:min(len(p.failed), 3)])
	}
}

func tailOf(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
