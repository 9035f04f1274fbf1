// Package cli implements the edgeid command: up, down, status, render,
// bootstrap vault, kafka acls|reproduce|rewrap, ui, and the internal kafka-demo broker and
// kafka-gateway.
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
	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/internal/version"
	"github.com/edgeid/edgeid/orchestrator/kafkademo"
	"github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/runner"
	"github.com/edgeid/edgeid/orchestrator/topology"
)

// ErrUsage marks a malformed command line (exit status 2).
var ErrUsage = cliutil.ErrUsage

// command is one edgeid subcommand.
type command struct {
	name string
	help cliutil.Command
	run  func(ctx context.Context, cmd command, args []string, stdout, stderr io.Writer) error
	// hidden commands are internal (the services edgeid starts).
	hidden bool
}

// commands are edgeid's subcommands, in the order the help lists them.
func commands() []command {
	return []command{
		{name: "up", run: up, help: cliutil.Command{Usage: "edgeid up [-f topology.hcl] [--run-dir .run] [--bin-dir bin] [flags]",
			Summary: "Run the topology: Vault, the cloud and edge SPIRE servers, their agents and the workloads, in dependency order. With --host, run one host of the topology on a real machine (scripts/deploy-*.sh)."}},
		{name: "down", run: down, help: cliutil.Command{Usage: "edgeid down [-f topology.hcl] [--run-dir .run] [--purge]",
			Summary: "Stop every process of the run, in reverse start order (and delete its state with --purge)."}},
		{name: "supervise", run: supervise, help: cliutil.Command{Usage: "edgeid supervise [-f topology.hcl] [--run-dir .run] [--interval 2s]",
			Summary: "Keep the run up: restart, in dependency order, any service that stops."}},
		{name: "status", run: status, help: cliutil.Command{Usage: "edgeid status [-f topology.hcl] [--run-dir .run] [-o text|json] [--check] [--fleet [--timeout 5s]]",
			Summary: "Show the trust tree: Vault → cloud → edges → workloads, with each process's health, uid and SVIDs. With --check, print only the problems and exit 1 if there is any: a service down, not ready or under the wrong uid, an unhealthy server, a CA or SVID past its rotation point. With --fleet (on the cloud host), every host's, read from each host's status endpoint over SPIFFE mTLS; a host not read is a problem."}},
		{name: "ui", run: uiCmd, help: cliutil.Command{Usage: "edgeid ui [-f topology.hcl] [--run-dir .run] [--listen 127.0.0.1:8443] [--allow-remote] [--interval 2s]",
			Summary: "Serve the live trust-tree page: Vault root and intermediate, cloud and site CAs, agents and workloads with SPIFFE IDs, serials and expiry countdowns, process health and the demo's Kafka messages, updated over server-sent events. Loopback only unless --allow-remote."}},
		{name: "render", run: renderCmd, help: cliutil.Command{Usage: "edgeid render [-f topology.hcl] --out DIR [--host NAME] [--plugin-dir bin]",
			Summary: "Write per-host configuration bundles for hand deployments and compose."}},
		{name: "validate", run: validate, help: cliutil.Command{Usage: "edgeid validate [-f topology.hcl]",
			Summary: "Check a topology file; errors name the file, line and key."}},
		{name: "register", run: register, help: cliutil.Command{Usage: "edgeid register --entries FILE --socket SOCK [--spire-server BIN]",
			Summary: "Load a rendered spire/entries.json into a running SPIRE server, idempotently."}},
		{name: "bootstrap", run: bootstrap, help: cliutil.Command{Usage: "edgeid bootstrap vault --config bootstrap.hcl",
			Summary: "Bootstrap a Vault's PKI and the SPIRE servers' login (see bootstrap/README.md)."}},
		{name: "kafka", run: kafkaCmd, help: cliutil.Command{Usage: "edgeid kafka acls plan|apply --policy FILE --brokers HOST:PORT[,...] [TLS flags]\n" +
			"  edgeid kafka reproduce DIR --brokers HOST:PORT[,...] [--topic T] [--reasons R,...] [--dry-run] [TLS flags]\n" +
			"  edgeid kafka rewrap DIR --vault-addr URL [--topic T] [--dry-run] [SVID flags]",
			Summary: "Push the gateway policy to a Kafka cluster as User:spiffe://… ACLs, showing the diff first (see `edgeid kafka acls plan -h`); " +
				"produce a gateway's quarantined records again (`edgeid kafka reproduce -h`); re-wrap their data keys after a key ring rotation (`edgeid kafka rewrap -h`)."}},
		{name: "version", run: versionCmd, help: cliutil.Command{Usage: "edgeid version",
			Summary: "Print edgeid's version, the Go version, and the SPIRE and Vault versions it was built for."}},
		{name: "kafka-demo", run: kafkaDemo, hidden: true, help: cliutil.Command{Usage: "edgeid kafka-demo [flags]",
			Summary: "The demo Kafka broker that `edgeid up` starts (internal)."}},
		{name: "kafka-gateway", run: kafkaGateway, hidden: true, help: cliutil.Command{Usage: "edgeid kafka-gateway [flags]",
			Summary: "The cloud-mode Kafka gateway that `edgeid up` starts in front of the demo broker: authorizes every request by the client's SPIFFE ID (internal)."}},
	}
}

// usage is edgeid's help: every public command's synopsis.
func usage() string {
	var b strings.Builder
	b.WriteString("edgeid: an edge identity control plane on SPIRE.\n\nUsage:\n")
	for _, c := range commands() {
		if !c.hidden {
			fmt.Fprintf(&b, "  %s\n", c.help.Usage)
		}
	}
	b.WriteString("\nRun `edgeid <command> -h` for a command's flags.\n" +
		"Exit status: 0 success (and help), 1 failure, 2 a malformed command line.\n")
	return b.String()
}

// Run runs the edgeid command line args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		err := fmt.Errorf("%w: no command", ErrUsage)
		fmt.Fprintf(stderr, "%v\n\n%s", err, usage())
		return err
	}
	if cliutil.IsHelpArg(args[0]) {
		fmt.Fprint(stdout, usage())
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, c, args[1:], stdout, stderr)
		}
	}
	err := fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
	fmt.Fprintf(stderr, "%v\n\n%s", err, usage())
	return err
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

// register loads an entries file that render wrote into a running SPIRE
// server, converging like up: for hand deployments and compose.
func register(ctx context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	file := fs.String("entries", "", "entries file written by edgeid render (<root>/"+render.EntriesFile+")")
	socket := fs.String("socket", "", "the SPIRE server's admin socket (<root>/"+render.PrivateSocketDir+"/server.sock)")
	bin := fs.String("spire-server", filepath.Join(render.DefaultBinDir, "spire-server"), "spire-server program")
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
		return err
	}
	if *file == "" || *socket == "" {
		return cliutil.Usagef(fs, cmd.help, stderr, "register needs --entries and --socket")
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

func up(ctx context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var c common
	c.register(fs)
	timeout := fs.Duration("step-timeout", 2*time.Minute, "longest wait for any one step")
	supervised := fs.Bool("supervise", false, "once up, leave a detached `edgeid supervise` running (restarts what stops; serves the orchestrator's metrics)")
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
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
	if *supervised {
		logDir := c.runDir // next to supervisor.pid
		if c.host != "" {
			logDir = filepath.Join(c.hc.Root, "logs")
		}
		return startSupervisor(args, logDir, stdout)
	}
	return nil
}

func down(_ context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	var c common
	c.register(fs)
	purge := fs.Bool("purge", false, "also delete the run directory")
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
		return err
	}
	r, err := inspectRunner(c, stdout)
	if err != nil {
		return err
	}
	return r.Down(*purge)
}

func supervise(ctx context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("supervise", flag.ContinueOnError)
	var c common
	c.register(fs)
	timeout := fs.Duration("step-timeout", 2*time.Minute, "longest wait for any one step")
	interval := fs.Duration("interval", 2*time.Second, "how often to check the services")
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
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

func status(ctx context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var c common
	c.register(fs)
	output := fs.String("o", "text", "output: text or json")
	asJSON := fs.Bool("json", false, "output JSON (as -o json)")
	check := fs.Bool("check", false, "print only the problems, one line each, and exit 1 if there is any (for cron or a systemd timer)")
	fleet := fs.Bool("fleet", false, "on the cloud host: read every host's status endpoint over mTLS with the orchestrator's SVID (a host not read is a problem)")
	timeout := fs.Duration("timeout", 5*time.Second, "with --fleet: longest wait for each host")
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
		return err
	}
	if *asJSON {
		*output = "json"
	}
	if *output != "text" && *output != "json" {
		return cliutil.Usagef(fs, cmd.help, stderr, "-o %q is not text or json", *output)
	}
	r, err := inspectRunner(c, io.Discard)
	if err != nil {
		return err
	}
	if *fleet {
		return fleetStatus(ctx, r, *output, *check, *timeout, stdout)
	}
	st := r.Status(ctx)
	st.Problems = r.Check(st, time.Now())
	switch {
	case *output == "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	case *check:
		for _, p := range st.Problems {
			fmt.Fprintln(stdout, p)
		}
		if len(st.Problems) == 0 {
			fmt.Fprintf(stdout, "ok: %d processes running and ready, no rotation overdue\n", len(st.Processes))
		}
	default:
		st.WriteTree(stdout)
		if url := runningUIURL(c); url != "" {
			fmt.Fprintf(stdout, "live trust-tree page (edgeid ui): %s\n", url)
		} else {
			where := "--run-dir " + c.runDir
			if c.host != "" {
				where = "--host " + c.host + " --root " + c.hc.Root
			}
			fmt.Fprintf(stdout, "live trust-tree page: not served; `edgeid ui -f %s %s` serves it at http://%s/\n", c.topology, where, DefaultUIListen)
		}
	}
	if *check && len(st.Problems) > 0 {
		return fmt.Errorf("status: %d problem(s)", len(st.Problems))
	}
	return nil
}

func validate(_ context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("f", "conf/topology.hcl", "topology file")
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
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

func renderCmd(_ context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	path := fs.String("f", "conf/topology.hcl", "topology file")
	out := fs.String("out", "", "output directory: one sub-directory per host")
	host := fs.String("host", "", "render only this host")
	pluginDir := fs.String("plugin-dir", defaultBinDir(), "directory of the built plugins and DeepStream apps shipped to the hosts' --host-bin-dir, for plugin_checksum and deepstream:exe_sha256")
	root := fs.String("root", render.DefaultHostRoot, "state directory on the hosts")
	binDir := fs.String("host-bin-dir", render.DefaultBinDir, "directory of every program on the hosts")
	localUnseal := fs.Bool("insecure-local-unseal", false, "throw-away demos only (docker compose): let a managed Vault keep its unseal share encrypted to an identity on its own host")
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
		return err
	}
	if *out == "" {
		return cliutil.Usagef(fs, cmd.help, stderr, "render needs --out")
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

func kafkaDemo(ctx context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kafka-demo", flag.ContinueOnError)
	var cfg kafkademo.Config
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9093", "address the broker binds")
	fs.StringVar(&cfg.Advertise, "advertise", "", "host name the broker advertises, which its SVID carries (default: the bound host)")
	fs.StringVar(&cfg.WorkloadAPI, "workload-api", "", "Workload API address (unix://...)")
	fs.StringVar(&cfg.SPIFFEID, "spiffe-id", "", "the broker's SPIFFE ID")
	fs.StringVar(&cfg.TrustDomain, "trust-domain", "", "trust domain whose members may connect")
	fs.StringVar(&cfg.MessageLog, "log", "messages.log", "consumed-message log (JSON lines)")
	topics := fs.String("topics", "", "comma-separated topics to consume and log")
	allowed := fs.String("allow", "", "comma-separated client SPIFFE IDs (default: any member of the trust domain)")
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
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

// bootstrap is edgeid-bootstrap's command line under edgeid.
func bootstrap(ctx context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	return bootstrapcli.Run(ctx, args, stdout, stderr)
}

func versionCmd(_ context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, version.String("edgeid"))
	return nil
}
