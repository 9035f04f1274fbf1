package harness

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/edgeid/edgeid/internal/pemutil"
)

// DefaultTrustDomain is the trust domain the harness uses when none is set.
const DefaultTrustDomain = "example.org"

// ServerConfig configures a SPIRE server started by StartSpireServer.
type ServerConfig struct {
	// TrustDomain defaults to DefaultTrustDomain.
	TrustDomain string
	// CATTL defaults to 1h, X509SVIDTTL to 10m, JWTSVIDTTL to 5m.
	CATTL       time.Duration
	X509SVIDTTL time.Duration
	JWTSVIDTTL  time.Duration
	// DataStore replaces the default sqlite DataStore block (a whole
	// `DataStore "sql" { ... }` block), for example to use PostgreSQL.
	DataStore string
	// Plugins is HCL appended inside the plugins block, for example an
	// UpstreamAuthority or a NodeAttestor with plugin_cmd + plugin_checksum.
	Plugins string
	// ServerExtra is HCL appended inside the server block.
	ServerExtra string
	// NoJoinToken leaves out the join_token NodeAttestor.
	NoJoinToken bool
	// KeepAttestationRateLimit keeps SPIRE's 1/s-per-IP attestation limit.
	// The harness turns it off by default because every test agent comes
	// from 127.0.0.1 (see FACTS.md); production configs keep it.
	KeepAttestationRateLimit bool
	// Env is the server's whole environment; nil gives a clean one.
	Env []string
	// Name labels the server in logs; defaults to "spire-server".
	Name string
}

// SpireServer is a running SPIRE server.
type SpireServer struct {
	Config ServerConfig
	// Dir holds the config, data and log.
	Dir string
	// Port is the server API port on 127.0.0.1; Addr is "127.0.0.1:Port".
	Port int
	Addr string
	// SocketPath is the admin API socket.
	SocketPath string
	// ConfigPath is the rendered server.conf.
	ConfigPath string
	Proc       *Process

	bin string
}

var serverTemplate = template.Must(template.New("server").Parse(`server {
    bind_address = "127.0.0.1"
    bind_port = "{{.Port}}"
    socket_path = "{{.SocketPath}}"
    trust_domain = "{{.TrustDomain}}"
    data_dir = "{{.Dir}}/data"
    log_level = "DEBUG"
    ca_key_type = "ec-p256"
    ca_ttl = "{{.CATTL}}"
    default_x509_svid_ttl = "{{.X509SVIDTTL}}"
    default_jwt_svid_ttl = "{{.JWTSVIDTTL}}"
{{- if not .KeepAttestationRateLimit}}
    ratelimit {
        attestation = false
    }
{{- end}}
    experimental {
        cache_reload_interval = "1s"
    }
{{.ServerExtra}}
}

plugins {
{{- if .DataStore}}
{{.DataStore}}
{{- else}}
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "{{.Dir}}/data/datastore.sqlite3"
        }
    }
{{- end}}
    KeyManager "disk" {
        plugin_data {
            keys_path = "{{.Dir}}/data/keys.json"
        }
    }
{{- if not .NoJoinToken}}
    NodeAttestor "join_token" {
        plugin_data {}
    }
{{- end}}
{{.Plugins}}
}
`))

// durationHCL renders d the way SPIRE's config parser accepts it.
func durationHCL(d time.Duration) string { return d.String() }

// StartSpireServer renders a server.conf, starts a real spire-server and
// waits until its healthcheck passes.
func StartSpireServer(t testing.TB, cfg ServerConfig) *SpireServer {
	t.Helper()
	s := NewSpireServer(t, cfg)
	s.Start(t)
	return s
}

// NewSpireServer renders the configuration of a SPIRE server without
// starting it. Call Start to run it; a test that expects the server to
// refuse its configuration uses StartExpectFailure instead.
func NewSpireServer(t testing.TB, cfg ServerConfig) *SpireServer {
	t.Helper()
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = DefaultTrustDomain
	}
	if cfg.CATTL == 0 {
		cfg.CATTL = time.Hour
	}
	if cfg.X509SVIDTTL == 0 {
		cfg.X509SVIDTTL = 10 * time.Minute
	}
	if cfg.JWTSVIDTTL == 0 {
		cfg.JWTSVIDTTL = 5 * time.Minute
	}
	if cfg.Name == "" {
		cfg.Name = "spire-server"
	}
	s := &SpireServer{
		Config: cfg,
		Dir:    ShortTempDir(t),
		Port:   FreePort(t),
		bin:    SpireServerBin(t),
	}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", s.Port)
	s.SocketPath = filepath.Join(s.Dir, "api.sock")
	s.ConfigPath = filepath.Join(s.Dir, "server.conf")
	var buf bytes.Buffer
	err := serverTemplate.Execute(&buf, map[string]any{
		"Port":                     s.Port,
		"SocketPath":               s.SocketPath,
		"TrustDomain":              cfg.TrustDomain,
		"Dir":                      s.Dir,
		"CATTL":                    durationHCL(cfg.CATTL),
		"X509SVIDTTL":              durationHCL(cfg.X509SVIDTTL),
		"JWTSVIDTTL":               durationHCL(cfg.JWTSVIDTTL),
		"KeepAttestationRateLimit": cfg.KeepAttestationRateLimit,
		"ServerExtra":              cfg.ServerExtra,
		"DataStore":                cfg.DataStore,
		"NoJoinToken":              cfg.NoJoinToken,
		"Plugins":                  cfg.Plugins,
	})
	if err != nil {
		t.Fatalf("harness: render server.conf: %v", err)
	}
	if err := os.WriteFile(s.ConfigPath, buf.Bytes(), 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return s
}

// processSpec is how the server process is run.
func (s *SpireServer) processSpec() ProcessSpec {
	return ProcessSpec{
		Name: s.Config.Name,
		Bin:  s.bin,
		Args: []string{"run", "-config", s.ConfigPath},
		Dir:  s.Dir,
		Env:  s.Config.Env,
	}
}

// Start starts (or restarts) the server and waits until it is healthy.
func (s *SpireServer) Start(t testing.TB) {
	t.Helper()
	if s.Proc == nil {
		t.Logf("harness: starting real spire-server %s (%s) for %s", s.Addr, s.bin, s.Config.TrustDomain)
		s.Proc = StartProcess(t, s.processSpec())
	} else {
		t.Logf("harness: restarting spire-server %s", s.Addr)
		s.Proc.Restart(t)
	}
	s.WaitHealthy(t, 90*time.Second)
}

// WaitHealthy waits for `spire-server healthcheck` to pass, failing the test
// early if the server exits.
func (s *SpireServer) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitHealthy(t, s.Proc, "spire-server "+s.Addr, timeout, func() error {
		_, err := s.CLIErr("healthcheck")
		return err
	})
}

// waitHealthy polls check until it passes, failing the test when it does
// not within timeout or when proc exits first.
func waitHealthy(t testing.TB, proc *Process, what string, timeout time.Duration, check func() error) {
	t.Helper()
	err := Poll(timeout, func() error {
		if exited, werr := proc.Exited(); exited {
			return &exitError{name: proc.Name, err: werr}
		}
		return check()
	})
	if err == nil {
		return
	}
	if _, ok := err.(*exitError); ok {
		t.Fatalf("harness: %v", err)
	}
	t.Fatalf("harness: %s not healthy within %s: %v", what, timeout, err)
}

// StartExpectFailure starts the server and waits for it to exit on its own,
// as it must with a configuration it refuses. It returns the server's log.
// The test fails if the server becomes healthy or keeps running past timeout.
func (s *SpireServer) StartExpectFailure(t testing.TB, timeout time.Duration) string {
	t.Helper()
	s.Proc = StartProcess(t, s.processSpec())
	select {
	case <-s.Proc.Done():
		return s.Proc.Log()
	case <-time.After(timeout):
		healthy := ""
		if _, err := s.CLIErr("healthcheck"); err == nil {
			healthy = " and is healthy"
		}
		t.Fatalf("harness: spire-server is still running after %s%s; expected it to refuse its configuration", timeout, healthy)
		return ""
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after a grace period).
func (s *SpireServer) Stop(t testing.TB) {
	t.Helper()
	t.Logf("harness: stopping spire-server %s", s.Addr)
	s.Proc.Stop()
}

type exitError struct {
	name string
	err  error
}

func (e *exitError) Error() string {
	return fmt.Sprintf("%s exited before it became healthy: %v", e.name, e.err)
}

// CLI runs `spire-server <args> -socketPath <admin socket>` and returns its
// standard output, failing the test on error.
func (s *SpireServer) CLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.CLIErr(args...)
	if err != nil {
		t.Fatalf("harness: spire-server %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// CLIErr is CLI returning the error instead of failing the test.
func (s *SpireServer) CLIErr(args ...string) (string, error) {
	return runSpireCLI(s.bin, s.Dir, s.SocketPath, args...)
}

// runSpireCLI runs `<bin> <args> -socketPath <socket>` with a clean
// environment, bounded to 30 s.
func runSpireCLI(bin, home, socket string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append(append([]string{}, args...), "-socketPath", socket)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = CleanEnv(home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s%s", err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// JoinToken creates a join token whose agent gets spiffeID (empty for
// SPIRE's default spiffe://<td>/spire/agent/join_token/<token>).
func (s *SpireServer) JoinToken(t testing.TB, spiffeID string) string {
	t.Helper()
	args := []string{"token", "generate", "-output", "json", "-ttl", "600"}
	if spiffeID != "" {
		args = append(args, "-spiffeID", spiffeID)
	}
	out := s.CLI(t, args...)
	var resp struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Value == "" {
		t.Fatalf("harness: parse join token from %q: %v", out, err)
	}
	return resp.Value
}

// Entry is a registration entry to create.
type Entry struct {
	ParentID    string
	SPIFFEID    string
	Selectors   []string
	X509SVIDTTL time.Duration
	Downstream  bool
	DNSNames    []string
	Hint        string
	// Node makes a node entry (-node): SPIFFEID is given to matching agents.
	Node bool
}

// CreateEntry creates a registration entry and returns its ID.
func (s *SpireServer) CreateEntry(t testing.TB, e Entry) string {
	t.Helper()
	id, err := s.CreateEntryErr(e)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return id
}

// CreateEntryErr creates a registration entry and returns its ID or an error.
func (s *SpireServer) CreateEntryErr(e Entry) (string, error) {
	args := []string{"entry", "create", "-output", "json", "-spiffeID", e.SPIFFEID}
	if e.Node {
		args = append(args, "-node")
	} else {
		args = append(args, "-parentID", e.ParentID)
	}
	for _, sel := range e.Selectors {
		args = append(args, "-selector", sel)
	}
	if e.X509SVIDTTL > 0 {
		args = append(args, "-x509SVIDTTL", itoa(int(e.X509SVIDTTL.Seconds())))
	}
	if e.Downstream {
		args = append(args, "-downstream")
	}
	for _, dns := range e.DNSNames {
		args = append(args, "-dns", dns)
	}
	if e.Hint != "" {
		args = append(args, "-hint", e.Hint)
	}
	out, err := s.CLIErr(args...)
	if err != nil {
		return "", fmt.Errorf("create entry %s: %w", e.SPIFFEID, err)
	}
	var resp struct {
		Results []struct {
			Status struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"status"`
			Entry struct {
				ID string `json:"id"`
			} `json:"entry"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.Results) != 1 {
		return "", fmt.Errorf("create entry %s: unexpected output %q: %v", e.SPIFFEID, out, err)
	}
	r := resp.Results[0]
	if r.Status.Code != 0 {
		return "", fmt.Errorf("create entry %s: %s", e.SPIFFEID, r.Status.Message)
	}
	return r.Entry.ID, nil
}

// BundlePEM returns the server's X.509 trust bundle as PEM.
func (s *SpireServer) BundlePEM(t testing.TB) []byte {
	t.Helper()
	return []byte(s.CLI(t, "bundle", "show", "-format", "pem"))
}

// Bundle returns the server's X.509 trust bundle.
func (s *SpireServer) Bundle(t testing.TB) []*x509.Certificate {
	t.Helper()
	certs, err := pemutil.ParseCertificates(s.BundlePEM(t))
	if err != nil {
		t.Fatalf("harness: parse bundle: %v", err)
	}
	return certs
}

// ReadCertsPEM reads the certificates of a PEM file, failing the test when
// there are none or the file is unreadable.
func ReadCertsPEM(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		t.Fatalf("harness: %s: %v", path, err)
	}
	return certs
}

// SPIRELogLinesSince returns the lines of a SPIRE log (logfmt, time="RFC 3339")
// at or after since that contain substr.
func SPIRELogLinesSince(t testing.TB, path string, since time.Time, substr string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, substr) {
			continue
		}
		ts, _, ok := strings.Cut(strings.TrimPrefix(line, `time="`), `"`)
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339, ts)
		if err != nil || at.Before(since.Truncate(time.Second)) {
			continue
		}
		out = append(out, line)
	}
	return out
}
