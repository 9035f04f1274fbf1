// Package cli implements the edgeid command: up, down, status, render,
// bootstrap vault, and the internal kafka-demo broker.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	bootstrapcli "github.com/edgeid/edgeid/bootstrap/cli"
	"github.com/edgeid/edgeid/orchestrator/kafkademo"
	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/runner"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// ErrUsage marks a malformed command line (exit status 2).
var ErrUsage = errors.New("usage")

const usage = `edgeid: an edge identity control plane on SPIRE.

Usage:
  edgeid up      [-f topology.hcl] [--run-dir .run] [--bin-dir bin]   run the topology on this machine
  edgeid down    [-f topology.hcl] [--run-dir .run] [--purge]         stop it (and delete its state)
  edgeid supervise [-f topology.hcl] [--run-dir .run]                 keep it up: restart what stops
      up, down and supervise with --host NAME [--root /var/lib/edgeid] [--trust-bundle F]
      run one host of the topology on a real machine (scripts/deploy-*.sh)
  edgeid status  [-f topology.hcl] [--run-dir .run] [-o text|json]    Vault → cloud → edges → workloads
  edgeid render  [-f topology.hcl] --out DIR [--host NAME] [--plugin-dir bin]
                                                                       write per-host config bundles
  edgeid validate [-f topology.hcl]                                    check a topology file
  edgeid register --entries FILE --socket SOCK [--spire-server BIN]   load a rendered spire/entries.json
                                                                       into a running server, idempotently
  edgeid bootstrap vault --config bootstrap.hcl                        bootstrap a Vault's PKI and SPIRE login
`

// Run runs the edgeid command line args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", ErrUsage)
	}
	switch args[0] {
	case "up":
		return up(ctx, args[1:], stdout, stderr)
	case "down":
		return down(args[1:], stdout, stderr)
	case "supervise":
		return supervise(ctx, args[1:], stdout, stderr)
	case "status":
		return status(ctx, args[1:], stdout, stderr)
	case "render":
		return renderCmd(args[1:], stdout, stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "register":
		return register(ctx, args[1:], stdout, stderr)
	case "bootstrap":
		return bootstrapcli.Run(ctx, args[1:], stdout, stderr)
	case "kafka-demo":
		return kafkaDemo(ctx, args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
	}
}

type common struct {
	topology  string
	runDir    string
	binDir    string
	host      string
	hc        runner.HostConfig
	singleUID bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.topology, "f", "conf/topology.hcl", "topology file")
	fs.StringVar(&c.runDir, "run-dir", ".run", "run directory (state, logs, sockets)")
	fs.StringVar(&c.binDir, "bin-dir", defaultBinDir(), "directory of edgeid's own programs and plugins (with --host: of every program)")
	fs.StringVar(&c.host, "host", "", "run only this host of the topology, as a real host (state under --root)")
	fs.StringVar(&c.hc.Root, "root", render.DefaultHostRoot, "with --host: state directory")
	fs.StringVar(&c.hc.TrustBundle, "trust-bundle", "", "with --host: the trust domain's roots, copied from the cloud host's <root>/export/trust-bundle.pem")
	fs.StringVar(&c.hc.KubeEdgeCA, "kubeedge-ca", "", "with --host: cloudcore's CA certificate (default: the topology's, or /etc/kubeedge/ca/rootCA.crt)")
	fs.StringVar(&c.hc.NodeCert, "node-cert", "", "with --host: this node's edgecore certificate (default: the topology's node_cert_path)")
	fs.StringVar(&c.hc.NodeKey, "node-key", "", "with --host: this node's edgecore key (default: the topology's node_key_path)")
	fs.BoolVar(&c.singleUID, "single-uid", false, "development only: run every service as the invoking user, without privilege separation (edgeid otherwise needs root)")
}

// defaultBinDir is the directory of the running edgeid binary, where
// `make build-bin` puts every edgeid program.
func defaultBinDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "bin"
	}
	return filepath.Dir(exe)
}

func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	return nil
}

// register loads an entries file that render wrote into a running SPIRE
// server, converging like up: for hand deployments and compose.
func register(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	file := fs.String("entries", "", "entries file written by edgeid render (<root>/"+render.EntriesFile+")")
	socket := fs.String("socket", "", "the SPIRE server's admin socket (<root>/"+render.PrivateSocketDir+"/server.sock)")
	bin := fs.String("spire-server", filepath.Join(render.DefaultBinDir, "spire-server"), "spire-server program")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *file == "" || *socket == "" {
		return fmt.Errorf("%w: register needs --entries and --socket", ErrUsage)
	}
	entries, err := render.ReadEntriesFile(*file)
	if err != nil {
		return err
	}
	counts, err := runner.RegisterEntries(ctx, *bin, *socket, entries)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "registration entries from %s: %s\n", *file, counts)
	return nil
}

func newRunner(c common, out io.Writer, timeout time.Duration) (*runner.Runner, error) {
	return runner.New(runner.Config{TopologyPath: c.topology, RunDir: c.runDir, BinDir: c.binDir, Out: out, StepTimeout: timeout,
		Host: c.host, HostConfig: c.hc, SingleUID: c.singleUID})
}

// inspectRunner is newRunner for commands that start nothing.
func inspectRunner(c common, out io.Writer) (*runner.Runner, error) {
	return runner.New(runner.Config{TopologyPath: c.topology, RunDir: c.runDir, BinDir: c.binDir, Out: out,
		Host: c.host, HostConfig: c.hc, SingleUID: c.singleUID, Inspect: true})
}

func up(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var c common
	c.register(fs)
	timeout := fs.Duration("step-timeout", 2*time.Minute, "longest wait for any one step")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	start := time.Now()
	r, err := newRunner(c, stdout, *timeout)
	if err != nil {
		return err
	}
	where, logs := c.runDir, c.runDir+"/<host>/logs"
	if c.host != "" {
		where, logs = "host "+c.host+" under "+c.hc.Root, c.hc.Root+"/logs"
	}
	fmt.Fprintf(stdout, "edgeid up: %s → %s\n", c.topology, where)
	if err := r.Up(ctx); err != nil {
		return fmt.Errorf("up: %w (logs under %s)", err, logs)
	}
	fmt.Fprintf(stdout, "\nedgeid up: everything is up in %s\n", time.Since(start).Round(time.Millisecond))
	for _, p := range r.Phases() {
		fmt.Fprintf(stdout, "  %-75s %8s\n", p.Name, p.Duration.Round(time.Millisecond))
	}
	return nil
}

func down(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	var c common
	c.register(fs)
	purge := fs.Bool("purge", false, "also delete the run directory")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	r, err := inspectRunner(c, stdout)
	if err != nil {
		return err
	}
	return r.Down(*purge)
}

func supervise(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("supervise", flag.ContinueOnError)
	var c common
	c.register(fs)
	timeout := fs.Duration("step-timeout", 2*time.Minute, "longest wait for any one step")
	interval := fs.Duration("interval", 2*time.Second, "how often to check the services")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	r, err := newRunner(c, stdout, *timeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s edgeid supervise: watching %s every %s\n", time.Now().Format(time.RFC3339), c.topology, *interval)
	err = r.Supervise(ctx, *interval)
	if errors.Is(err, runner.ErrSupervised) {
		fmt.Fprintln(stdout, "edgeid supervise: already supervised; nothing to do")
		return nil
	}
	return err
}

func status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var c common
	c.register(fs)
	output := fs.String("o", "text", "output: text or json")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	r, err := inspectRunner(c, io.Discard)
	if err != nil {
		return err
	}
	st := r.Status(ctx)
	switch *output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	case "text":
		st.WriteTree(stdout)
		return nil
	default:
		return fmt.Errorf("%w: -o %q is not text or json", ErrUsage, *output)
	}
}

func validate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("f", "conf/topology.hcl", "topology file")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	top, err := topology.ParseFile(*path)
	if err != nil {
		return err
	}
	nodes, workloads := 0, 0
	for _, s := range top.Sites {
		nodes += len(s.Nodes)
		workloads += len(s.Workloads)
	}
	fmt.Fprintf(stdout, "%s: valid: trust domain %s, %d cloud server(s), %d site(s), %d node(s), %d workload(s)\n",
		*path, top.TrustDomain, top.Cloud.Servers, len(top.Sites), nodes, workloads)
	return nil
}

func renderCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	path := fs.String("f", "conf/topology.hcl", "topology file")
	out := fs.String("out", "", "output directory: one sub-directory per host")
	host := fs.String("host", "", "render only this host")
	pluginDir := fs.String("plugin-dir", defaultBinDir(), "directory of the built plugins and DeepStream apps shipped to the hosts' --host-bin-dir, for plugin_checksum and deepstream:exe_sha256")
	root := fs.String("root", render.DefaultHostRoot, "state directory on the hosts")
	binDir := fs.String("host-bin-dir", render.DefaultBinDir, "directory of every program on the hosts")
	localUnseal := fs.Bool("insecure-local-unseal", false, "throw-away demos only (docker compose): let a managed Vault keep its unseal share encrypted to an identity on its own host")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: render needs --out", ErrUsage)
	}
	top, err := topology.ParseFile(*path)
	if err != nil {
		return err
	}
	bins, err := render.InstalledBinaries(*binDir, *pluginDir)
	if err != nil {
		return err
	}
	env := render.HostsEnv(top, bins, *root)
	env.InsecureLocalUnseal = *localUnseal
	// Programs shipped to the hosts' bin directory are hashed from the
	// builds here, as the plugins are for plugin_checksum.
	env.HashFile = func(p string) (string, error) {
		if rel, err := filepath.Rel(*binDir, p); err == nil && !strings.HasPrefix(rel, "..") {
			return render.FileSHA256(filepath.Join(*pluginDir, rel))
		}
		return render.FileSHA256(p)
	}
	plan, err := render.Build(top, env)
	if err != nil {
		return err
	}
	hosts, err := render.WriteBundle(plan, *out, *host)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rendered %s into %s\n", strings.Join(hosts, ", "), *out)
	return nil
}

func kafkaDemo(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kafka-demo", flag.ContinueOnError)
	var cfg kafkademo.Config
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9093", "broker address")
	fs.StringVar(&cfg.WorkloadAPI, "workload-api", "", "Workload API address (unix://...)")
	fs.StringVar(&cfg.SPIFFEID, "spiffe-id", "", "the broker's SPIFFE ID")
	fs.StringVar(&cfg.TrustDomain, "trust-domain", "", "trust domain whose members may connect")
	fs.StringVar(&cfg.MessageLog, "log", "messages.log", "consumed-message log (JSON lines)")
	topics := fs.String("topics", "", "comma-separated topics to consume and log")
	allowed := fs.String("allow", "", "comma-separated client SPIFFE IDs (default: any member of the trust domain)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *topics != "" {
		cfg.Topics = strings.Split(*topics, ",")
	}
	if *allowed != "" {
		cfg.AllowedIDs = strings.Split(*allowed, ",")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	return kafkademo.Run(ctx, cfg)
}
