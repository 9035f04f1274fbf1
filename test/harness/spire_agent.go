package harness

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"
	"text/template"
	"time"
)

// AgentConfig configures a SPIRE agent started by StartSpireAgent.
type AgentConfig struct {
	// Server is the server the agent attests to.
	Server *SpireServer
	// ServerAddr overrides the server address ("host:port"), for example
	// to point an agent at one of several HA servers.
	ServerAddr string
	// JoinToken, when set, makes the agent attest with join_token.
	JoinToken string
	// TrustBundlePEM bootstraps the agent's trust; defaults to the
	// server's current bundle.
	TrustBundlePEM []byte
	// Plugins is HCL appended inside the plugins block (a NodeAttestor
	// for other attestors, WorkloadAttestor blocks, ...).
	Plugins string
	// NoUnixAttestor leaves out the default `WorkloadAttestor "unix"`.
	NoUnixAttestor bool
	// AgentExtra is HCL appended inside the agent block.
	AgentExtra string
	// Env is the agent's whole environment; nil gives a clean one.
	Env []string
	// Name labels the agent in logs; defaults to "spire-agent".
	Name string
}

// SpireAgent is a running SPIRE agent.
type SpireAgent struct {
	Config AgentConfig
	Dir    string
	// SocketPath is the Workload API socket; Addr is "unix://"+SocketPath.
	SocketPath string
	Addr       string
	ConfigPath string
	Proc       *Process

	bin string
}

var agentTemplate = template.Must(template.New("agent").Parse(`agent {
    data_dir = "{{.Dir}}/data"
    log_level = "DEBUG"
    server_address = "{{.ServerHost}}"
    server_port = "{{.ServerPort}}"
    socket_path = "{{.SocketPath}}"
    trust_bundle_path = "{{.Dir}}/bootstrap.pem"
    trust_domain = "{{.TrustDomain}}"
{{- if .JoinToken}}
    join_token = "{{.JoinToken}}"
{{- end}}
    experimental {
        sync_interval = "1s"
    }
{{.AgentExtra}}
}

plugins {
    KeyManager "memory" {
        plugin_data {}
    }
{{- if .JoinToken}}
    NodeAttestor "join_token" {
        plugin_data {}
    }
{{- end}}
{{- if not .NoUnixAttestor}}
    WorkloadAttestor "unix" {
        plugin_data {}
    }
{{- end}}
{{.Plugins}}
}
`))

// StartSpireAgent renders an agent.conf, starts a real spire-agent and waits
// until its healthcheck passes.
func StartSpireAgent(t testing.TB, cfg AgentConfig) *SpireAgent {
	t.Helper()
	a := NewSpireAgent(t, cfg)
	a.Start(t)
	return a
}

// NewSpireAgent renders an agent's configuration without starting it.
func NewSpireAgent(t testing.TB, cfg AgentConfig) *SpireAgent {
	t.Helper()
	if cfg.Server == nil {
		t.Fatalf("harness: AgentConfig.Server is required")
	}
	if cfg.Name == "" {
		cfg.Name = "spire-agent"
	}
	a := &SpireAgent{Config: cfg, Dir: ShortTempDir(t), bin: SpireAgentBin(t)}
	a.SocketPath = filepath.Join(a.Dir, "agent.sock")
	a.Addr = "unix://" + a.SocketPath
	a.ConfigPath = filepath.Join(a.Dir, "agent.conf")
	bundle := cfg.TrustBundlePEM
	if bundle == nil {
		bundle = cfg.Server.BundlePEM(t)
	}
	if err := os.WriteFile(filepath.Join(a.Dir, "bootstrap.pem"), bundle, 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}
	addr := cfg.ServerAddr
	if addr == "" {
		addr = cfg.Server.Addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("harness: server address %q: %v", addr, err)
	}
	var buf bytes.Buffer
	err = agentTemplate.Execute(&buf, map[string]any{
		"Dir":            a.Dir,
		"ServerHost":     host,
		"ServerPort":     port,
		"SocketPath":     a.SocketPath,
		"TrustDomain":    cfg.Server.Config.TrustDomain,
		"JoinToken":      cfg.JoinToken,
		"AgentExtra":     cfg.AgentExtra,
		"NoUnixAttestor": cfg.NoUnixAttestor,
		"Plugins":        cfg.Plugins,
	})
	if err != nil {
		t.Fatalf("harness: render agent.conf: %v", err)
	}
	if err := os.WriteFile(a.ConfigPath, buf.Bytes(), 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return a
}

// Start starts (or restarts) the agent and waits until it is healthy.
func (a *SpireAgent) Start(t testing.TB) {
	t.Helper()
	if a.Proc == nil {
		t.Logf("harness: starting real spire-agent (%s) against %s", a.bin, a.Config.Server.Addr)
		a.Proc = StartProcess(t, ProcessSpec{
			Name: a.Config.Name,
			Bin:  a.bin,
			Args: []string{"run", "-config", a.ConfigPath},
			Dir:  a.Dir,
			Env:  a.Config.Env,
		})
	} else {
		t.Logf("harness: restarting spire-agent %s", a.Config.Name)
		a.Proc.Restart(t)
	}
	a.WaitHealthy(t, 90*time.Second)
}

// WaitHealthy waits for `spire-agent healthcheck` to pass.
func (a *SpireAgent) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitHealthy(t, a.Proc, "spire-agent", timeout, func() error {
		_, err := a.CLIErr("healthcheck")
		return err
	})
}

// Stop stops the agent.
func (a *SpireAgent) Stop(t testing.TB) {
	t.Helper()
	t.Logf("harness: stopping spire-agent %s", a.Config.Name)
	a.Proc.Stop()
}

// CLIErr runs `spire-agent <args> -socketPath <workload socket>`.
func (a *SpireAgent) CLIErr(args ...string) (string, error) {
	return runSpireCLI(a.bin, a.Dir, a.SocketPath, args...)
}
