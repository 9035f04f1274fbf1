package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgeid/edgeid/internal/version"
	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// Config configures a Runner.
type Config struct {
	// TopologyPath is the topology file.
	TopologyPath string
	// RunDir holds every host's configs, data, sockets, PID files and
	// logs. Defaults to .run next to the working directory.
	RunDir string
	// BinDir holds edgeid's own programs: edgeid, edgeid-helper, the
	// plugins and the DeepStream stand-in.
	BinDir string
	// SpireServer, SpireAgent, Vault and Prometheus are the pinned
	// programs; they default to the build cache (see DefaultToolPath).
	SpireServer string
	SpireAgent  string
	Vault       string
	Prometheus  string
	// Out receives progress lines.
	Out io.Writer
	// StepTimeout bounds each wait (health, first SVID, first message).
	StepTimeout time.Duration

	// Host, when set, runs only that host of the topology, on this
	// machine, as a real host (see HostConfig); empty runs every host as
	// local processes on loopback.
	Host string
	HostConfig

	// Inspect is for commands that start nothing (status, down): the
	// programs staged in the run directory are named, never copied.
	Inspect bool

	// SingleUID runs every service as the invoking user, without
	// privilege separation: for development machines where edgeid cannot
	// run as root. Without it, a run that is not root is refused.
	SingleUID bool
}

// HostConfig configures a real host (Config.Host set).
type HostConfig struct {
	// Root holds the host's configs, data, sockets, PID files and logs
	// (render.DefaultHostRoot when empty). Every program is in BinDir.
	Root string
	// TrustBundle is a PEM file with the trust domain's roots (the Vault
	// root CA), for agents whose server runs on another host. The cloud
	// host exports it as <root>/export/trust-bundle.pem.
	TrustBundle string
	// KubeEdgeCA is cloudcore's CA on servers; NodeCert and NodeKey the
	// edgecore certificate and key on nodes. Empty means the topology's
	// (or KubeEdge's standard) paths.
	KubeEdgeCA string
	NodeCert   string
	NodeKey    string
}

// DefaultToolPath is where scripts/build-tools.sh puts a pinned program:
// ${EDGEID_CACHE:-$HOME/.cache/edgeid}/bin/<name>-<version>/<name>.
func DefaultToolPath(name, version string) string {
	cache := os.Getenv("EDGEID_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "edgeid")
	}
	return filepath.Join(cache, "bin", name+"-"+version, name)
}

// Runner runs one topology as local processes.
type Runner struct {
	cfg  Config
	top  *topology.Topology
	plan *render.Plan
	env  render.Env

	// privsep is true when services run under their own accounts (the
	// runner is root and SingleUID is off).
	privsep bool

	mu     sync.Mutex
	phases []Phase
	// changed holds the files install rewrote; a running service that
	// reads one is restarted so that a re-run of up converges.
	changed map[string]bool

	// edgeidExe is the edgeid program in BinDir as given (before staging
	// moves BinDir into the run directory): the one that runs `up`,
	// `supervise` and `status`, which the status identities pin.
	edgeidExe string

	// launch is the process seam (nil: real processes), cp the seam to
	// what the started programs answer.
	launch launcher
	cp     controlPlane
}

// Phase is one step of `up` with how long it took.
type Phase struct {
	Name     string
	Duration time.Duration
}

// New parses the topology, checks every program it needs, and computes the
// plan. Nothing is started.
func New(cfg Config) (*Runner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	top, err := topology.ParseFile(cfg.TopologyPath)
	if err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, top: top, privsep: !cfg.SingleUID, edgeidExe: filepath.Join(cfg.BinDir, "edgeid")}
	if r.privsep && os.Geteuid() != 0 {
		return nil, errors.New("runner: edgeid runs the control plane and every workload under accounts of their own, which needs root; run as root, or pass --single-uid on a development machine (no privilege separation: every workload can then reach the SPIRE admin sockets and keys)")
	}
	if cfg.Host != "" {
		if err := r.checkHost(); err != nil {
			return nil, err
		}
	}
	bins, err := r.binaries()
	if err != nil {
		return nil, err
	}
	if r.privsep {
		if err := checkTraversable(cfg.RunDir); err != nil {
			return nil, err
		}
		if cfg.Host == "" {
			if bins, err = r.stage(); err != nil {
				return nil, err
			}
		}
	}
	ports, err := r.setEnv(bins)
	if err != nil {
		return nil, err
	}
	if !r.privsep {
		top.Users = singleUIDUsers(top)
	}
	if err := r.setUnsealRecipient(); err != nil {
		return nil, err
	}
	plan, err := render.Build(top, r.env)
	if err != nil {
		return nil, err
	}
	if ports != nil {
		if err := ports.save(); err != nil {
			return nil, err
		}
	}
	r.plan = plan
	r.cp = liveControl{bins: r.env.Bins}
	return r, nil
}

// withDefaults fills in what the caller left empty: a real host's root
// and programs, the run directory (absolute), the pinned tools from the
// build cache, the output and the step timeout.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Host != "" {
		// A real host: its state under Root, every program in BinDir.
		if cfg.Root == "" {
			cfg.Root = render.DefaultHostRoot
		}
		if cfg.BinDir == "" {
			cfg.BinDir = render.DefaultBinDir
		}
		cfg.RunDir = cfg.Root
		for _, p := range []struct {
			dst  *string
			name string
		}{{&cfg.SpireServer, "spire-server"}, {&cfg.SpireAgent, "spire-agent"}, {&cfg.Vault, "vault"}} {
			if *p.dst == "" {
				*p.dst = filepath.Join(cfg.BinDir, p.name)
			}
		}
	}
	if cfg.RunDir == "" {
		cfg.RunDir = ".run"
	}
	abs, err := filepath.Abs(cfg.RunDir)
	if err != nil {
		return cfg, err
	}
	cfg.RunDir = abs
	if cfg.SpireServer == "" {
		cfg.SpireServer = DefaultToolPath("spire-server", version.SPIRE)
	}
	if cfg.SpireAgent == "" {
		cfg.SpireAgent = DefaultToolPath("spire-agent", version.SPIRE)
	}
	if cfg.Vault == "" {
		cfg.Vault = DefaultToolPath("vault", version.Vault)
	}
	if cfg.Prometheus == "" {
		cfg.Prometheus = DefaultToolPath("prometheus", version.Prometheus)
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 2 * time.Minute
	}
	return cfg, nil
}

// setEnv sets the render environment: every host on loopback with
// remembered ports in an embedded run (the port book is returned, to be
// saved once the plan is built), or the topology's hosts on a real one.
func (r *Runner) setEnv(bins render.Binaries) (*portBook, error) {
	var ports *portBook
	if r.cfg.Host == "" {
		var err error
		ports, err = loadPorts(filepath.Join(r.cfg.RunDir, "ports.json"))
		if err != nil {
			return nil, err
		}
		runDir := r.cfg.RunDir
		r.env = render.Env{
			Embedded: true,
			HostRoot: func(host string) string { return filepath.Join(runDir, host) },
			HostAddr: func(string) string { return "127.0.0.1" },
			Port:     ports.port,
			Bins:     bins,
		}
	} else {
		r.env = render.HostsEnv(r.top, bins, r.cfg.Root)
		r.env.KubeEdgeCA = r.cfg.KubeEdgeCA
		r.env.NodeCert, r.env.NodeKey = r.cfg.NodeCert, r.cfg.NodeKey
	}
	r.env.LookupUser = lookupUser
	r.setOrchestratorIdentity()
	return ports, nil
}

// setUnsealRecipient checks the custody of a managed Vault that runs here
// and, when it keeps its unseal identity on the host, names its recipient.
func (r *Runner) setUnsealRecipient() error {
	v := r.top.Vault
	if !v.Managed || !r.isLocal(v.Host) {
		return nil
	}
	root := r.env.HostRoot(v.Host)
	if err := r.checkVaultCustody(root); err != nil {
		return err
	}
	if render.UsesLocalUnsealIdentity(v, r.env.Embedded) {
		rec, err := r.unsealRecipient(root)
		if err != nil {
			return err
		}
		r.env.UnsealRecipient = rec
	}
	return nil
}

// isLocal reports whether host runs on this machine: every host does in
// an embedded run, only Config.Host on a real host.
func (r *Runner) isLocal(host string) bool {
	return r.cfg.Host == "" || host == r.cfg.Host
}

// Plan returns the plan the runner executes.
func (r *Runner) Plan() *render.Plan { return r.plan }

// Phases returns the phases of the last Up with their durations.
func (r *Runner) Phases() []Phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Phase{}, r.phases...)
}

func (r *Runner) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Out, format+"\n", args...)
}

// phase runs one step of Up, printing its name and how long it took.
func (r *Runner) phase(n, total int, name string, fn func() error) error {
	start := time.Now()
	r.logf("[%d/%d] %s ...", n, total, name)
	err := fn()
	d := time.Since(start)
	r.mu.Lock()
	r.phases = append(r.phases, Phase{Name: name, Duration: d})
	r.mu.Unlock()
	if err != nil {
		r.logf("[%d/%d] %s: FAILED after %s", n, total, name, d.Round(time.Millisecond))
		return fmt.Errorf("%s: %w", name, err)
	}
	r.logf("[%d/%d] %s: done in %s", n, total, name, d.Round(time.Millisecond))
	return nil
}

// Up brings the whole topology up, or finishes bringing it up.
func (r *Runner) Up(ctx context.Context) error {
	r.mu.Lock()
	r.phases = nil
	r.mu.Unlock()
	steps := r.upSteps()
	for i, st := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.phase(i+1, len(steps), st.name, func() error { return st.fn(ctx) }); err != nil {
			return err
		}
	}
	return nil
}

// step is one phase of up.
type step struct {
	name string
	fn   func(context.Context) error
}

// upSteps are the phases of up, in dependency order: each layer of the
// nested topology starts once the one it attests to serves.
func (r *Runner) upSteps() []step {
	return []step{
		{"Render configs and KubeEdge node certificates", r.install},
		{"Vault and its bootstrap", r.upVault},
		{"Cloud SPIRE servers (UpstreamAuthority vault_pki)", r.upCloud},
		{"Cloud agents (join token on the cloud host, kubeedge on edge server nodes)", r.upCloudAgents},
		{"Edge SPIRE servers (UpstreamAuthority spire)", r.upEdgeServers},
		{"Workload entries and edge agents (kubeedge)", r.upEdgeAgents},
		{"Demo Kafka broker and the cloud Kafka gateway in front of it (mTLS, their own SVIDs)", r.upKafka},
		{"Workloads under edgeid-helper", r.upWorkloads},
		{"Prometheus (scrapes every service, evaluates the alert rules)", r.upPrometheus},
		{"First message from every site consumed in the cloud", r.waitMessages},
	}
}

// Down stops every process of the run in reverse start order. With purge
// it also deletes the run directory.
func (r *Runner) Down(purge bool) error {
	var errs []error
	// First the supervisor, or it would start what is being stopped.
	if p := r.supervisorProc(); p.pid() != 0 {
		r.logf("stopping the supervisor (pid %d)", p.pid())
		if err := p.stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(r.plan.Hosts) - 1; i >= 0; i-- {
		h := r.plan.Hosts[i]
		if !r.isLocal(h.Name) {
			continue
		}
		for j := len(h.Services) - 1; j >= 0; j-- {
			p := r.proc(h, &h.Services[j])
			if pid := p.pid(); pid != 0 {
				r.logf("stopping %s (pid %d)", p.label(), pid)
			}
			if err := p.stop(10 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if purge {
		r.logf("removing %s", r.cfg.RunDir)
		if err := os.RemoveAll(r.cfg.RunDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
