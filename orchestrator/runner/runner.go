package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/edgeid/edgeid/internal/pemutil"

	bootstrapcli "github.com/edgeid/edgeid/bootstrap/cli"
	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/kubeedgeca"
	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// Pinned versions of the third-party programs; scripts/versions.sh holds
// the same (a test keeps them in step).
const (
	SpireVersion = "v1.13.3"
	VaultVersion = "v1.21.0"
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
	// SpireServer, SpireAgent and Vault are the pinned programs; they
	// default to the build cache (see DefaultToolPath).
	SpireServer string
	SpireAgent  string
	Vault       string
	// Out receives progress lines.
	Out io.Writer
	// StepTimeout bounds each wait (health, first SVID, first message).
	StepTimeout time.Duration

	// Host, when set, runs only that host of the topology, on this
	// machine, as a real host (see HostConfig); empty runs every host as
	// local processes on loopback.
	Host string
	HostConfig

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
}

// Phase is one step of `up` with how long it took.
type Phase struct {
	Name     string
	Duration time.Duration
}

// New parses the topology, checks every program it needs, and computes the
// plan. Nothing is started.
func New(cfg Config) (*Runner, error) {
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
		return nil, err
	}
	cfg.RunDir = abs
	if cfg.SpireServer == "" {
		cfg.SpireServer = DefaultToolPath("spire-server", SpireVersion)
	}
	if cfg.SpireAgent == "" {
		cfg.SpireAgent = DefaultToolPath("spire-agent", SpireVersion)
	}
	if cfg.Vault == "" {
		cfg.Vault = DefaultToolPath("vault", VaultVersion)
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 2 * time.Minute
	}
	top, err := topology.ParseFile(cfg.TopologyPath)
	if err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, top: top, privsep: !cfg.SingleUID}
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
	var ports *portBook
	if cfg.Host == "" {
		ports, err = loadPorts(filepath.Join(cfg.RunDir, "ports.json"))
		if err != nil {
			return nil, err
		}
		r.env = render.Env{
			Embedded: true,
			HostRoot: func(host string) string { return filepath.Join(cfg.RunDir, host) },
			HostAddr: func(string) string { return "127.0.0.1" },
			Port:     ports.port,
			Bins:     bins,
		}
	} else {
		r.env = render.HostsEnv(top, bins, cfg.Root)
		r.env.KubeEdgeCA = cfg.KubeEdgeCA
		r.env.NodeCert, r.env.NodeKey = cfg.NodeCert, cfg.NodeKey
	}
	r.env.LookupUser = lookupUser
	if !r.privsep {
		top.Users = singleUIDUsers(top)
	}
	if top.Vault.Managed && r.isLocal(top.Vault.Host) {
		if err := r.checkVaultCustody(r.env.HostRoot(top.Vault.Host)); err != nil {
			return nil, err
		}
		if render.UsesLocalUnsealIdentity(top.Vault, r.env.Embedded) {
			rec, err := r.unsealRecipient(r.env.HostRoot(top.Vault.Host))
			if err != nil {
				return nil, err
			}
			r.env.UnsealRecipient = rec
		}
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
	return r, nil
}

// isLocal reports whether host runs on this machine: every host does in
// an embedded run, only Config.Host on a real host.
func (r *Runner) isLocal(host string) bool {
	return r.cfg.Host == "" || host == r.cfg.Host
}

// checkHost checks that Config.Host is a host of the topology.
func (r *Runner) checkHost() error {
	hosts := append([]string{}, r.top.Cloud.Hosts...)
	if r.top.Vault.Managed {
		hosts = append(hosts, r.top.Vault.Host)
	}
	for _, s := range r.top.Sites {
		for _, n := range s.Nodes {
			hosts = append(hosts, n.Name)
		}
	}
	if slices.Contains(hosts, r.cfg.Host) {
		return nil
	}
	slices.Sort(hosts)
	return fmt.Errorf("runner: no host %q in %s (hosts: %s)", r.cfg.Host, r.top.Path, strings.Join(slices.Compact(hosts), ", "))
}

// stage copies every program of an embedded run into the run directory
// (see stagePrograms) and resolves the programs there.
func (r *Runner) stage() (render.Binaries, error) {
	progs := []*string{&r.cfg.SpireServer, &r.cfg.SpireAgent}
	if r.top.Vault.Managed {
		progs = append(progs, &r.cfg.Vault)
	}
	srcs := make([]string, 0, len(progs)+8)
	for _, p := range progs {
		srcs = append(srcs, *p)
	}
	own := []string{"edgeid", "edgeid-helper", "edgeid-upstreamauthority-vaultpki", "edgeid-nodeattestor-kubeedge-server",
		"edgeid-nodeattestor-kubeedge-agent", "edgeid-workloadattestor-deepstream"}
	for _, s := range r.top.Sites {
		for _, w := range s.Workloads {
			if w.Kind == topology.KindDeepStream && w.Command == "" && !slices.Contains(own, w.App) {
				own = append(own, w.App)
			}
		}
	}
	for _, name := range own {
		srcs = append(srcs, filepath.Join(r.cfg.BinDir, name))
	}
	staged, err := stagePrograms(stageDir(r.cfg.RunDir), srcs)
	if err != nil {
		return render.Binaries{}, err
	}
	for i, p := range progs {
		*p = staged[i]
	}
	r.cfg.BinDir = stageDir(r.cfg.RunDir)
	return r.binaries()
}

// binaries resolves every program and reports all missing ones at once.
func (r *Runner) binaries() (render.Binaries, error) {
	var missing []string
	need := func(path, what string) string {
		abs, err := filepath.Abs(path)
		if err == nil {
			path = abs
		}
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			missing = append(missing, fmt.Sprintf("%s (%s)", path, what))
		}
		return path
	}
	plugin := func(name string) render.Binary {
		p := need(filepath.Join(r.cfg.BinDir, name), "edgeid plugin; run `make build-bin`")
		sum, _ := render.FileSHA256(p)
		return render.Binary{Path: p, Checksum: sum}
	}
	b := render.Binaries{
		SpireServer:    need(r.cfg.SpireServer, "pinned SPIRE; run `make tools`"),
		SpireAgent:     need(r.cfg.SpireAgent, "pinned SPIRE; run `make tools`"),
		Edgeid:         need(filepath.Join(r.cfg.BinDir, "edgeid"), "run `make build-bin`"),
		Helper:         need(filepath.Join(r.cfg.BinDir, "edgeid-helper"), "run `make build-bin`"),
		VaultPKI:       plugin("edgeid-upstreamauthority-vaultpki"),
		KubeEdgeServer: plugin("edgeid-nodeattestor-kubeedge-server"),
		KubeEdgeAgent:  plugin("edgeid-nodeattestor-kubeedge-agent"),
		DeepStream:     plugin("edgeid-workloadattestor-deepstream"),
	}
	if r.top.Vault.Managed && r.isLocal(r.top.Vault.Host) {
		b.Vault = need(r.cfg.Vault, "pinned Vault; run `make tools`")
	}
	for _, s := range r.top.Sites {
		for _, w := range s.Workloads {
			if w.Kind == topology.KindDeepStream && w.Command == "" && r.isLocal(w.Node) {
				need(filepath.Join(r.cfg.BinDir, w.App), "DeepStream app or stand-in; run `make build-bin`")
			}
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("runner: missing programs:\n  %s", strings.Join(missing, "\n  "))
	}
	return b, nil
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

func (r *Runner) proc(h *render.Host, s *render.Service) *proc {
	return &proc{
		name:    h.Name + "/" + s.Name,
		argv:    s.Argv,
		dir:     h.Root,
		env:     append(cleanEnv(), "HOME="+h.Root),
		pidFile: filepath.Join(h.Root, "pids", s.Name+".pid"),
		logFile: filepath.Join(h.Root, "logs", s.Name+".log"),
		account: s.Account,
		caps:    s.Caps,
		privsep: r.privsep,
	}
}

// owner is who owns a file the runner writes for a service: the service's
// account when the run separates privileges, else the runner itself.
func (r *Runner) owner(a render.Account) fsutil.Owner {
	if !r.privsep {
		return fsutil.Keep
	}
	return a.Owner()
}

// control is the control plane's account (the SPIRE servers' and agents').
func (r *Runner) control() render.Account {
	for _, ref := range r.services("spire-server", "") {
		return ref.s.Account
	}
	for _, ref := range r.services("spire-agent", "") {
		return ref.s.Account
	}
	return render.Account{}
}

// cleanEnv is the environment of every process the runner starts: PATH
// only. SPIRE's built-in vault plugin lets VAULT_ADDR and VAULT_TOKEN
// override its configuration, and nothing of the operator's shell should
// leak into a workload.
func cleanEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH")}
}

// services returns every service of the given kind, optionally only of
// one name, in plan order.
func (r *Runner) services(kind, name string) []svcRef {
	var out []svcRef
	for _, h := range r.plan.Hosts {
		if !r.isLocal(h.Name) {
			continue
		}
		for i := range h.Services {
			s := &h.Services[i]
			if s.Kind == kind && (name == "" || s.Name == name) {
				out = append(out, svcRef{h, s})
			}
		}
	}
	return out
}

type svcRef struct {
	h *render.Host
	s *render.Service
}

// job is a service to start and how to tell it is ready.
type job struct {
	ref   svcRef
	ready func() error
}

// startAll starts every job's service (unless it runs already with the
// same configuration), then waits for all of them to be ready, in
// parallel, failing early with the log tail of a process that dies. Sites
// are independent, so their services come up side by side.
func (r *Runner) startAll(jobs []job) error {
	procs := make([]*proc, len(jobs))
	verbs := make([]string, len(jobs))
	for _, j := range jobs {
		if err := missingNeeds(j.ref); err != nil {
			return err
		}
		// The operator copied them, most likely as root; the service
		// reads them as its own account.
		if err := chownFiles(r.owner(j.ref.s.Account), j.ref.s.Needs...); err != nil {
			return err
		}
	}
	for i, j := range jobs {
		p := r.proc(j.ref.h, j.ref.s)
		procs[i] = p
		if p.pid() != 0 && (r.readsChanged(j.ref.s) || p.argvChanged()) {
			r.logf("      %s: configuration changed, restarting", p.name)
			if err := p.stop(30 * time.Second); err != nil {
				return err
			}
		}
		started, err := p.start()
		if err != nil {
			return err
		}
		verbs[i] = "already running"
		if started {
			verbs[i] = "started"
		}
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := procs[i]
			err := poll(r.cfg.StepTimeout, func() error {
				if dead, tail := p.exited(); dead {
					return permanentError{fmt.Errorf("%s exited; last log lines (%s):\n%s", p.name, p.logFile, tail)}
				}
				return j.ready()
			})
			if err != nil {
				errs[i] = fmt.Errorf("%s not ready within %s: %w", p.name, r.cfg.StepTimeout, err)
			}
		}()
	}
	wg.Wait()
	for i, p := range procs {
		if errs[i] == nil {
			r.logf("      %s %s (pid %d)", p.name, verbs[i], p.pid())
		}
	}
	return errors.Join(errs...)
}

// missingNeeds names the files a service needs from another host that
// are not here yet.
func missingNeeds(ref svcRef) error {
	var missing []string
	for _, f := range ref.s.Needs {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s/%s needs files made on host %s; copy them from there to the same paths here (keep the secrets 0600): %s",
		ref.h.Name, ref.s.Name, ref.s.NeedsFrom, strings.Join(missing, ", "))
}

// readsChanged reports whether a service's command line names a file that
// install rewrote.
func (r *Runner) readsChanged(s *render.Service) bool {
	for _, a := range s.Argv {
		if r.changed[a] {
			return true
		}
	}
	return false
}

// Up brings the whole topology up, or finishes bringing it up.
func (r *Runner) Up(ctx context.Context) error {
	r.mu.Lock()
	r.phases = nil
	r.mu.Unlock()
	const total = 9
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"Render configs and KubeEdge node certificates", r.install},
		{"Vault and its bootstrap", r.upVault},
		{"Cloud SPIRE servers (UpstreamAuthority vault_pki)", r.upCloud},
		{"Cloud agents (join token on the cloud host, kubeedge on edge server nodes)", r.upCloudAgents},
		{"Edge SPIRE servers (UpstreamAuthority spire)", r.upEdgeServers},
		{"Workload entries and edge agents (kubeedge)", r.upEdgeAgents},
		{"Demo Kafka broker (mTLS, its own SVID)", r.upKafka},
		{"Workloads under edgeid-helper", r.upWorkloads},
		{"First message from every site consumed in the cloud", r.waitMessages},
	}
	for i, st := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.phase(i+1, total, st.name, func() error { return st.fn(ctx) }); err != nil {
			return err
		}
	}
	return nil
}

// install writes every host's files and the KubeEdge credentials.
func (r *Runner) install(context.Context) error {
	r.changed = map[string]bool{}
	for _, h := range r.plan.Hosts {
		if !r.isLocal(h.Name) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(h.Root), 0o755); err != nil {
			return err
		}
		changed, err := render.Install(h, r.privsep)
		if err != nil {
			return err
		}
		for _, c := range changed {
			r.changed[c] = true
		}
		for _, s := range h.Services {
			if s.Kind == "vault" && !r.env.Embedded {
				if err := ensureVaultTLS(h, r.owner(s.Account)); err != nil {
					return err
				}
			}
		}
	}
	if r.cfg.Host != "" {
		// KubeEdge's cloudcore issued this host's node certificate, and
		// edgecore (root) owns it; the agent reads it as the control
		// account.
		for _, ref := range r.services("spire-agent", "") {
			if err := grantGroupRead(r.owner(ref.s.Account), ref.s.NodeCert, ref.s.NodeKey); err != nil {
				return fmt.Errorf("KubeEdge node credentials of %s: %w", ref.h.Name, err)
			}
		}
		return nil
	}
	return r.kubeedgeCredentials()
}

// kubeedgeCredentials plays cloudcore's CA in the embedded mode: one CA
// for the cluster, and an edgecore-style certificate for every node,
// issued again when missing or within 30% of its end of life.
func (r *Runner) kubeedgeCredentials() error {
	caDir := filepath.Join(r.cfg.RunDir, "kubeedge-ca")
	certPath, keyPath := filepath.Join(caDir, "rootCA.crt"), filepath.Join(caDir, "rootCA.key")
	var ca *kubeedgeca.CA
	certPEM, err1 := os.ReadFile(certPath)
	keyPEM, err2 := os.ReadFile(keyPath)
	if err1 == nil && err2 == nil {
		c, err := kubeedgeca.Load(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("kubeedge CA in %s: %w", caDir, err)
		}
		ca = c
	} else {
		c, err := kubeedgeca.New(kubeedgeca.Options{})
		if err != nil {
			return err
		}
		key, err := c.KeyPEM()
		if err != nil {
			return err
		}
		if err := render.WriteFileAtomic(keyPath, key, 0o600); err != nil {
			return err
		}
		if err := render.WriteFileAtomic(certPath, c.CertificatePEM(), 0o644); err != nil {
			return err
		}
		ca = c
	}
	for _, h := range r.plan.Hosts {
		if err := render.WriteFileAtomic(filepath.Join(h.Root, "kubeedge", "ca", "rootCA.crt"), ca.CertificatePEM(), 0o644); err != nil {
			return err
		}
	}
	for _, ref := range r.services("spire-agent", "") {
		s := ref.s
		if s.NodeCert == "" || certFresh(s.NodeCert) {
			continue
		}
		creds, err := ca.IssueNode(ref.h.Name, kubeedgeca.SignOptions{})
		if err != nil {
			return fmt.Errorf("issue node certificate for %s: %w", ref.h.Name, err)
		}
		if err := creds.WriteFiles(s.NodeCert, s.NodeKey); err != nil {
			return err
		}
		// The agent reads them as the control account.
		if err := chownFiles(r.owner(s.Account), s.NodeCert, s.NodeKey); err != nil {
			return err
		}
	}
	return nil
}

// certFresh reports whether the certificate at path exists and has more
// than 30% of its life left (edgecore rotates at 70-90%).
func certFresh(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return false
	}
	c := certs[0]
	life := c.NotAfter.Sub(c.NotBefore)
	return time.Until(c.NotAfter) > life*3/10
}

// unsealRecipient loads or creates the age identity that encrypts a
// managed Vault's local key share, and returns its recipient. It is called
// only where render.UsesLocalUnsealIdentity: an embedded run, or the
// recovery share of a Vault that unseals itself and has no custodians;
// never for custodians, whose identities stay off the host.
func (r *Runner) unsealRecipient(root string) (string, error) {
	h := &render.Host{Root: root}
	path := render.UnsealIdentityPath(h)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return "", err
		}
		if err := render.WriteFileAtomic(path, []byte(id.String()+"\n"), 0o600); err != nil {
			return "", err
		}
		return id.Recipient().String(), nil
	}
	if err != nil {
		return "", err
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil || len(ids) != 1 {
		return "", fmt.Errorf("unseal identity %s: %v", path, err)
	}
	x, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return "", fmt.Errorf("unseal identity %s: not an X25519 identity", path)
	}
	return x.Recipient().String(), nil
}

func (r *Runner) upVault(ctx context.Context) error {
	if !r.top.Vault.Managed {
		r.logf("      external Vault at %s: nothing to start", r.top.Vault.Address)
		return nil
	}
	for _, ref := range r.services("vault", "") {
		addr := ref.s.URL
		if err := r.startAll([]job{{ref, func() error { return dial(ctx, ref.s.Addr) }}}); err != nil {
			return err
		}
		cfgPath := filepath.Join(ref.h.Root, "vault", "bootstrap.hcl")
		if done, err := r.bootstrapCurrent(ctx, ref, cfgPath); err != nil {
			return err
		} else if done {
			r.logf("      Vault %s is unsealed and bootstrapped with this configuration already; bootstrap skipped", addr)
			continue
		}
		var stdout, stderr bytes.Buffer
		if err := bootstrapcli.Run(ctx, []string{"vault", "--config", cfgPath}, &stdout, &stderr); err != nil {
			return fmt.Errorf("bootstrap of %s: %w%s\n%s", addr, err, r.custodyHint(), lastLines(stderr.String(), 15))
		}
		if err := render.WriteFileAtomic(filepath.Join(ref.h.Root, "logs", "bootstrap.log"), stderr.Bytes(), 0o600); err != nil {
			return err
		}
		// The bootstrap ran here, as root; the cloud servers read its
		// AppRole login files as the control account. The unseal identity
		// is not in this tree and stays root's.
		if err := chownTree(r.owner(ref.s.Account), filepath.Join(ref.h.Root, "vault", "bootstrap")); err != nil {
			return err
		}
		if err := r.markBootstrapped(cfgPath); err != nil {
			return err
		}
		r.logf("      Vault %s bootstrapped (PKI root %s, intermediate %s; root token revoked)", addr, r.top.Vault.PKIMount, r.top.Vault.PKIIntMount)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (r *Runner) server(ref svcRef) serverCLI {
	return serverCLI{bin: r.env.Bins.SpireServer, socket: ref.s.Socket}
}

func (r *Runner) upCloud(ctx context.Context) error {
	var jobs []job
	for _, ref := range r.services("spire-server", "") {
		if ref.s.Site == "" {
			srv := r.server(ref)
			jobs = append(jobs, job{ref, func() error { return srv.healthy(ctx) }})
		}
	}
	if err := r.startAll(jobs); err != nil {
		return err
	}
	return r.exportTrustBundle(ctx, jobs)
}

// writeBundle fetches a server's bundle into an agent's bootstrap file.
// An agent whose server runs on another host bootstraps from the trust
// bundle the operator copied from the cloud host instead.
func (r *Runner) writeBundle(ctx context.Context, serverRef string, path string) error {
	h, s := r.plan.Service(serverRef)
	if s == nil {
		return fmt.Errorf("no service %s", serverRef)
	}
	if !r.isLocal(h.Name) {
		return r.copyTrustBundle(serverRef, path)
	}
	pem, err := r.server(svcRef{h, s}).bundlePEM(ctx)
	if err != nil {
		return err
	}
	return render.WriteFileAtomic(path, pem, 0o644)
}

// createEntries registers the plan's entries held by the servers matching
// keep, before the agents that will serve them start.
func (r *Runner) createEntries(ctx context.Context, keep func(server string) bool) error {
	byServer := map[string][]render.Entry{}
	var servers []string
	for _, e := range r.plan.Entries {
		if !keep(e.Server) || !r.isLocal(strings.SplitN(e.Server, "/", 2)[0]) {
			continue
		}
		if _, seen := byServer[e.Server]; !seen {
			servers = append(servers, e.Server)
		}
		byServer[e.Server] = append(byServer[e.Server], e)
	}
	var total EntryCounts
	for _, ref := range servers {
		h, s := r.plan.Service(ref)
		c, err := r.server(svcRef{h, s}).ensureEntries(ctx, byServer[ref])
		total.Created, total.Updated, total.Present = total.Created+c.Created, total.Updated+c.Updated, total.Present+c.Present
		if err != nil {
			return err
		}
	}
	r.logf("      registration entries: %s", total)
	return nil
}

func (r *Runner) isCloud(ref string) bool {
	_, s := r.plan.Service(ref)
	return s != nil && s.Site == ""
}

func (r *Runner) upCloudAgents(ctx context.Context) error {
	if err := r.createEntries(ctx, r.isCloud); err != nil {
		return err
	}
	var jobs []job
	for _, ref := range r.services("spire-agent", "") {
		if !r.isCloud(ref.s.Server) {
			continue
		}
		if err := r.writeBundle(ctx, ref.s.Server, ref.s.BundlePath); err != nil {
			return err
		}
		if ref.s.NodeCert == "" {
			// The cloud host's agent joins with a one-time token, made
			// only when it has no SVID of its own yet.
			if err := r.ensureJoinToken(ctx, ref); err != nil {
				return err
			}
		}
		agent := agentCLI{bin: r.env.Bins.SpireAgent, socket: ref.s.Socket}
		jobs = append(jobs, job{ref, func() error { return agent.healthy(ctx) }})
	}
	return r.startAll(jobs)
}

func (r *Runner) ensureJoinToken(ctx context.Context, ref svcRef) error {
	if svid, err := AgentSVID(ref.s.DataDir); err == nil && time.Now().Before(svid.NotAfter) {
		return nil
	}
	if r.proc(ref.h, ref.s).pid() != 0 {
		return nil
	}
	h, s := r.plan.Service(ref.s.Server)
	token, err := r.server(svcRef{h, s}).joinToken(ctx, ref.s.AgentID)
	if err != nil {
		return err
	}
	return render.WriteFileAtomicOwned(filepath.Join(ref.h.Root, "spire", "join-token"), []byte(token+"\n"), 0o600, r.owner(ref.s.Account))
}

func (r *Runner) upEdgeServers(ctx context.Context) error {
	var jobs []job
	for _, ref := range r.services("spire-server", "") {
		if ref.s.Site != "" {
			srv := r.server(ref)
			jobs = append(jobs, job{ref, func() error { return srv.healthy(ctx) }})
		}
	}
	return r.startAll(jobs)
}

func (r *Runner) upEdgeAgents(ctx context.Context) error {
	if err := r.createEntries(ctx, func(s string) bool { return !r.isCloud(s) }); err != nil {
		return err
	}
	var jobs []job
	for _, ref := range r.services("spire-agent", "") {
		if r.isCloud(ref.s.Server) {
			continue
		}
		if err := r.writeBundle(ctx, ref.s.Server, ref.s.BundlePath); err != nil {
			return err
		}
		agent := agentCLI{bin: r.env.Bins.SpireAgent, socket: ref.s.Socket}
		jobs = append(jobs, job{ref, func() error { return agent.healthy(ctx) }})
	}
	return r.startAll(jobs)
}

func (r *Runner) upKafka(ctx context.Context) error {
	var jobs []job
	for _, ref := range r.services("kafka", "") {
		jobs = append(jobs, job{ref, func() error { return dial(ctx, ref.s.Addr) }})
	}
	return r.startAll(jobs)
}

func (r *Runner) upWorkloads(ctx context.Context) error {
	var jobs []job
	for _, ref := range r.services("helper", "") {
		jobs = append(jobs, job{ref, func() error { return svidValid(ref.s.ReadyFile) }})
	}
	return r.startAll(jobs)
}

// dial checks that something accepts TCP connections at addr.
func dial(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// svidValid checks that path holds a certificate that is valid now: a
// helper's SVID left from an earlier run does not count.
func svidValid(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if now := time.Now(); now.After(certs[0].NotAfter) || now.Before(certs[0].NotBefore) {
		return fmt.Errorf("%s: SVID not valid now (expired %s)", path, certs[0].NotAfter.Format(time.RFC3339))
	}
	return nil
}

// waitMessages waits until the demo broker's consumer has logged a message
// from every site's workloads.
func (r *Runner) waitMessages(ctx context.Context) error {
	refs := r.services("kafka", "")
	if r.cfg.Host != "" {
		r.logf("      real host: the sites come up on their own hosts; see %s", filepath.Join(r.cfg.Root, "kafka", "messages.log"))
		return nil
	}
	if len(refs) == 0 {
		r.logf("      external Kafka: nothing to wait for")
		return nil
	}
	logPath := filepath.Join(refs[0].s.DataDir, "messages.log")
	want := map[string]bool{}
	for _, s := range r.top.Sites {
		for _, w := range s.Workloads {
			if w.Kind == topology.KindDeepStream {
				want[render.WorkloadID(r.top.TrustDomain, s.Name, w.Name)] = true
			}
		}
	}
	return poll(r.cfg.StepTimeout, func() error {
		got, err := ConsumedFrom(logPath)
		if err != nil {
			return err
		}
		var missing []string
		for id := range want {
			if got[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no message yet from %s", strings.Join(missing, ", "))
		}
		for id := range want {
			r.logf("      %d message(s) from %s consumed in the cloud over mTLS", got[id], id)
		}
		return nil
	})
}

// ConsumedFrom counts the messages in the demo broker's consumer log by
// the SPIFFE ID of the client that produced them.
func ConsumedFrom(logPath string) (map[string]int, error) {
	data, err := os.ReadFile(logPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		var m struct {
			Producer string `json:"producer"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Producer != "" {
			out[m.Producer]++
		}
	}
	return out, nil
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
				r.logf("stopping %s (pid %d)", p.name, pid)
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
