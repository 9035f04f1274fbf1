package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/edgeid/edgeid/helper/config"
	"github.com/edgeid/edgeid/helper/internal/testpki"
	"github.com/edgeid/edgeid/internal/fakewlapi"
	"github.com/edgeid/edgeid/internal/pemutil"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	c, _, err := config.Parse("helper.conf", []byte(text), config.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runDaemon(t *testing.T, c *config.Config, getenv func(string) string) *Daemon {
	t.Helper()
	d, _ := runDaemonLogged(t, c, getenv)
	return d
}

func runDaemonLogged(t *testing.T, c *config.Config, getenv func(string) string) (*Daemon, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := New(Config{Helper: c, Getenv: getenv, Stdout: io.Discard, Stderr: io.Discard, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	})
	return d, logs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func serialIn(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return certs[0].SerialNumber.String(), nil
}

func TestDaemonPublishesRotatesAndSignals(t *testing.T) {
	api := fakewlapi.Start(t)
	ca := testpki.NewCA(t, "example.org", true)
	id := "spiffe://example.org/edge/site-a/cam"
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	events := filepath.Join(dir, "events")
	port := freePort(t)
	c := parse(t, `
agent_address = "`+api.Addr+`"
cert_dir = "`+certDir+`"
spiffe_id = "`+id+`"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
combined_pem_file_name = "svid_combined.pem"
cmd = "/bin/sh"
cmd_args = "-c \"trap 'echo usr1 >> `+events+`' USR1; echo start >> `+events+`; while :; do sleep 0.05; done\""
renew_signal = "SIGUSR1"
pkcs12 {
  keystore_file_name = "keystore.p12"
  truststore_file_name = "truststore.p12"
  password_env = "STORE_PASS"
}
kafka {
  bootstrap_servers = "127.0.0.1:9093"
  endpoint_identification_algorithm = "none"
  librdkafka_file_name = "kafka.properties"
  deepstream_file_name = "cfg_kafka.txt"
  java_file_name = "client.properties"
  java_keystore_type = "PKCS12"
}
health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = `+strconv.Itoa(port)+`
}
`)
	d, logs := runDaemonLogged(t, c, func(k string) string {
		if k == "STORE_PASS" {
			return "s3cret"
		}
		return ""
	})
	defer func() {
		out := logs.String()
		if !strings.Contains(out, "X.509 SVID updated") {
			t.Errorf("logs lack the rotation record:\n%s", out)
		}
		for _, secret := range []string{"PRIVATE KEY", "s3cret"} {
			if strings.Contains(out, secret) {
				t.Errorf("logs contain %q", secret)
			}
		}
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	eventually(t, "health server", func() error {
		if code, _ := get(t, base+"/healthz"); code != 200 {
			return fmt.Errorf("healthz %d", code)
		}
		return nil
	})
	if code, body := get(t, base+"/readyz"); code != 503 {
		t.Fatalf("ready before any SVID: %d %s", code, body)
	}

	other := ca.SVID(t, "spiffe://example.org/other", time.Hour)
	first := ca.SVID(t, id, time.Hour)
	api.Push([]*x509svid.SVID{other, first}, ca.Bundle())
	eventually(t, "first set", func() error {
		s, err := serialIn(filepath.Join(certDir, "svid.pem"))
		if err != nil {
			return err
		}
		if s != first.Certificates[0].SerialNumber.String() {
			return fmt.Errorf("svid.pem holds %s, want the SVID selected by spiffe_id", s)
		}
		return nil
	})
	eventually(t, "program started", func() error {
		if b, _ := os.ReadFile(events); string(b) != "start\n" {
			return fmt.Errorf("events %q", b)
		}
		return nil
	})
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("not ready after the first SVID: %d %s", code, body)
	}

	// Every output is there, with its mode, and refers to cert_dir paths.
	for name, mode := range map[string]os.FileMode{
		"svid.pem": 0o644, "svid_key.pem": 0o600, "svid_bundle.pem": 0o644, "svid_combined.pem": 0o600,
		"keystore.p12": 0o600, "truststore.p12": 0o644, "kafka.properties": 0o644, "cfg_kafka.txt": 0o644, "client.properties": 0o600,
	} {
		st, err := os.Stat(filepath.Join(certDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	props := string(mustRead(t, filepath.Join(certDir, "kafka.properties")))
	for _, want := range []string{
		"bootstrap.servers=127.0.0.1:9093", "ssl.endpoint.identification.algorithm=none",
		"ssl.certificate.location=" + filepath.Join(certDir, "svid.pem"), "ssl.key.location=" + filepath.Join(certDir, "svid_key.pem"),
		"ssl.ca.location=" + filepath.Join(certDir, "svid_bundle.pem"),
	} {
		if !strings.Contains(props, want) {
			t.Errorf("kafka.properties lacks %q:\n%s", want, props)
		}
	}
	if java := string(mustRead(t, filepath.Join(certDir, "client.properties"))); !strings.Contains(java, "ssl.keystore.password=s3cret") {
		t.Errorf("client.properties lacks the store password")
	}
	if _, leaf, _, err := pkcs12.DecodeChain(mustRead(t, filepath.Join(certDir, "keystore.p12")), "s3cret"); err != nil || !leaf.Equal(first.Certificates[0]) {
		t.Errorf("keystore: %v", err)
	}

	// Rotation: new files, one signal.
	second := ca.SVID(t, id, time.Hour)
	api.Push([]*x509svid.SVID{other, second}, ca.Bundle())
	eventually(t, "second set", func() error {
		s, err := serialIn(filepath.Join(certDir, "svid.pem"))
		if err != nil {
			return err
		}
		if s != second.Certificates[0].SerialNumber.String() {
			return fmt.Errorf("still %s", s)
		}
		return nil
	})
	eventually(t, "renew signal", func() error {
		if b, _ := os.ReadFile(events); string(b) != "start\nusr1\n" {
			return fmt.Errorf("events %q", b)
		}
		return nil
	})
	if pair, err := tls.LoadX509KeyPair(filepath.Join(certDir, "svid.pem"), filepath.Join(certDir, "svid_key.pem")); err != nil || pair.Leaf == nil {
		t.Errorf("published pair: %v", err)
	}
	// The daemon counts a rotation once it has also settled the files,
	// after the program was signalled: the metrics may lag what the
	// program saw by that much.
	eventually(t, "metrics of both rotations", func() error {
		_, metrics := get(t, base+"/metrics")
		for _, want := range []string{"edgeid_helper_rotations_total 2\n", "edgeid_helper_process_starts_total 1\n", "edgeid_helper_process_signals_total 1\n", "edgeid_helper_svid_expiry_seconds ",
			// Both rotations in the latency histogram, for both stages.
			"edgeid_helper_rotation_duration_seconds_count{stage=\"swap\"} 2\n", "edgeid_helper_rotation_duration_seconds_count{stage=\"signal\"} 2\n"} {
			if !strings.Contains(metrics, want) {
				return fmt.Errorf("metrics lack %q:\n%s", want, metrics)
			}
		}
		return nil
	})

	// An update without the configured ID keeps the previous files.
	api.Push([]*x509svid.SVID{other}, ca.Bundle())
	eventually(t, "write error counted", func() error {
		if v := testutil.ToFloat64(d.metrics.writeErrors.WithLabelValues("select")); v != 1 {
			return fmt.Errorf("select errors %v", v)
		}
		return nil
	})
	if s, _ := serialIn(filepath.Join(certDir, "svid.pem")); s != second.Certificates[0].SerialNumber.String() {
		t.Errorf("files changed on a failed update")
	}
	if code, _ := get(t, base+"/healthz"); code != 503 {
		t.Errorf("healthz after a failed update: %d, want 503 (spiffe-helper liveness)", code)
	}
}

func TestDaemonOneShot(t *testing.T) {
	api := fakewlapi.Start(t)
	ca := testpki.NewCA(t, "example.org", false)
	certDir := filepath.Join(t.TempDir(), "certs")
	conf := `
agent_address = "` + api.Addr + `"
cert_dir = "` + certDir + `"
daemon_mode = false
workload_api_timeout = "1s"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
`
	err := Run(context.Background(), Config{Helper: parse(t, conf)})
	if err == nil {
		t.Fatal("one-shot without an SVID must fail")
	}
	svid := ca.SVID(t, "spiffe://example.org/app", time.Hour)
	api.Push([]*x509svid.SVID{svid}, ca.Bundle())
	if err := Run(context.Background(), Config{Helper: parse(t, conf)}); err != nil {
		t.Fatal(err)
	}
	if s, err := serialIn(filepath.Join(certDir, "svid.pem")); err != nil || s != svid.Certificates[0].SerialNumber.String() {
		t.Fatalf("one-shot files: %v", err)
	}
}

func TestDaemonTunnelFollowsRotation(t *testing.T) {
	api := fakewlapi.Start(t)
	ca := testpki.NewCA(t, "example.org", false)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	c := parse(t, `
agent_address = "`+api.Addr+`"
spiffe_id = "spiffe://example.org/broker"
tunnel "t" {
  mode = "server"
  listen = "127.0.0.1:0"
  target = "`+echo.Addr().String()+`"
  allowed_spiffe_ids = ["spiffe://example.org/clients/*"]
}
`)
	d := runDaemon(t, c, nil)
	if err := d.Ready(); err == nil {
		t.Fatal("ready before the tunnel listens")
	}
	first := ca.SVID(t, "spiffe://example.org/broker", time.Hour)
	api.Push([]*x509svid.SVID{first}, ca.Bundle())
	eventually(t, "tunnel listening", func() error {
		if d.TunnelAddr("t") == nil {
			return fmt.Errorf("not yet")
		}
		return d.Ready()
	})
	client := ca.SVID(t, "spiffe://example.org/clients/cam", time.Hour)
	bundles := x509bundle.NewSet(ca.Bundle())
	probe := func() (string, error) {
		cfg := tlsconfig.MTLSClientConfig(client, bundles, tlsconfig.AuthorizeID(spiffeid.RequireFromString("spiffe://example.org/broker")))
		conn, err := tls.Dial("tcp", d.TunnelAddr("t").String(), cfg)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("hi")); err != nil {
			return "", err
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(conn, buf); err != nil {
			return "", err
		}
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
	}
	if s, err := probe(); err != nil || s != first.Certificates[0].SerialNumber.String() {
		t.Fatalf("first probe: %s %v", s, err)
	}
	second := ca.SVID(t, "spiffe://example.org/broker", time.Hour)
	api.Push([]*x509svid.SVID{second}, ca.Bundle())
	eventually(t, "new connections use the new SVID", func() error {
		s, err := probe()
		if err != nil {
			return err
		}
		if s != second.Certificates[0].SerialNumber.String() {
			return fmt.Errorf("still the first SVID")
		}
		return nil
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDaemonHoldsProgramUntilFirstSVID(t *testing.T) {
	api := fakewlapi.Start(t)
	ca := testpki.NewCA(t, "example.org", false)
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	ran := filepath.Join(dir, "ran")
	// The program records whether the certificate existed when it ran.
	c := parse(t, `
agent_address = "`+api.Addr+`"
cert_dir = "`+certDir+`"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
cmd = "/bin/sh"
cmd_args = "-c \"test -s `+filepath.Join(certDir, "svid.pem")+` && echo with-cert > `+ran+` || echo without-cert > `+ran+`; sleep 30\""
hold_until_svid = true
`)
	runDaemon(t, c, nil)
	time.Sleep(500 * time.Millisecond)
	if _, err := os.Stat(ran); err == nil {
		t.Fatal("the program ran before the first SVID")
	}
	api.Push([]*x509svid.SVID{ca.SVID(t, "spiffe://example.org/app", time.Hour)}, ca.Bundle())
	eventually(t, "program ran", func() error {
		b, err := os.ReadFile(ran)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) != "with-cert" {
			return fmt.Errorf("program saw no certificate: %q", b)
		}
		return nil
	})
}

// TestDaemonRendersKafkaTemplates renders the three Kafka files from user
// templates: each sees the built-in properties (with its own extra
// properties applied), the paths and the SVID's ID, and a template that
// may show the store password gets the key file mode.
func TestDaemonRendersKafkaTemplates(t *testing.T) {
	api := fakewlapi.Start(t)
	ca := testpki.NewCA(t, "example.org", false)
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	tmpl := `# {{.SPIFFEID}} key={{.Key}}
{{range .Properties}}{{.Key}}={{.Value}}
{{end}}`
	// Only the librdkafka template names the store password: only its file
	// is a secret.
	for name, text := range map[string]string{
		"librdkafka.tmpl": tmpl + "# store password: {{.Password}}\n",
		"deepstream.tmpl": tmpl,
		"java.tmpl":       tmpl,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := `
agent_address = "` + api.Addr + `"
cert_dir = "` + certDir + `"
daemon_mode = false
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
combined_pem_file_name = "svid_combined.pem"
kafka {
  bootstrap_servers = "127.0.0.1:9093"
  librdkafka_file_name = "kafka.properties"
  librdkafka_template = "` + filepath.Join(dir, "librdkafka.tmpl") + `"
  librdkafka_properties = { "client.id" = "cam-1" }
  deepstream_file_name = "cfg_kafka.txt"
  deepstream_template = "` + filepath.Join(dir, "deepstream.tmpl") + `"
  deepstream_properties = { "ssl.cipher.suites" = "" }
  java_file_name = "client.properties"
  java_template = "` + filepath.Join(dir, "java.tmpl") + `"
  java_properties = { "client.id" = "java-1" }
}
`
	svid := ca.SVID(t, "spiffe://example.org/app", time.Hour)
	api.Push([]*x509svid.SVID{svid}, ca.Bundle())
	if err := Run(context.Background(), Config{Helper: parse(t, conf)}); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(certDir, "svid_key.pem")
	for _, c := range []struct {
		file     string
		mode     os.FileMode
		has, not []string
	}{
		{"kafka.properties", 0o600, []string{"ssl.key.location=" + key, "client.id=cam-1", "ssl.cipher.suites="}, []string{"java-1"}},
		{"cfg_kafka.txt", 0o644, []string{"ssl.key.location=" + key}, []string{"client.id", "ssl.cipher.suites"}},
		{"client.properties", 0o644, []string{"ssl.keystore.type=PEM", "ssl.keystore.location=" + filepath.Join(certDir, "svid_combined.pem"), "client.id=java-1"}, []string{"cam-1"}},
	} {
		path := filepath.Join(certDir, c.file)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if !strings.HasPrefix(text, "# spiffe://example.org/app key="+key+"\n") {
			t.Errorf("%s: template header missing:\n%s", c.file, text)
		}
		for _, s := range c.has {
			if !strings.Contains(text, s) {
				t.Errorf("%s: %q missing:\n%s", c.file, s, text)
			}
		}
		for _, s := range c.not {
			if strings.Contains(text, s) {
				t.Errorf("%s: %q should not be there:\n%s", c.file, s, text)
			}
		}
		if st, err := os.Stat(path); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.file, st.Mode().Perm(), c.mode)
		}
	}
}
