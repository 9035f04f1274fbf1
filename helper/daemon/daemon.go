package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/edgeid/edgeid/helper/atomicdir"
	"github.com/edgeid/edgeid/helper/config"
	"github.com/edgeid/edgeid/helper/health"
	"github.com/edgeid/edgeid/helper/kafkaconf"
	"github.com/edgeid/edgeid/helper/kafkagw"
	"github.com/edgeid/edgeid/helper/process"
	"github.com/edgeid/edgeid/helper/svidwriter"
	"github.com/edgeid/edgeid/helper/tunnel"
)

// Config is what the daemon runs.
type Config struct {
	// Helper is the parsed configuration file.
	Helper *config.Config
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Stdin, Stdout and Stderr are attached to the managed program.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the PKCS#12 password variable; nil means os.Getenv.
	Getenv func(string) string
}

// Daemon is a configured helper.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	src     *source
	metrics *metrics
	writer  *atomicdir.Writer
	svidOps svidwriter.Options
	kafka   *kafkaconf.Renderer
	client  *workloadapi.Client
	proc    *process.Manager
	tunnels []*tunnel.Tunnel
	// gateways are the kafka_gateway blocks, in config order.
	gateways []*kafkagw.Gateway

	stdin          io.Reader
	stdout, stderr io.Writer

	firstSVID     chan struct{}
	firstSVIDOnce sync.Once
	x509Status    atomic.Value // "unwritten", "written", "failed"
	jwtStatus     sync.Map     // file name -> status
	tunnelsUp     atomic.Bool
	gatewaysUp    atomic.Bool
	healthAddr    atomic.Value // net.Addr
}

const (
	statusUnwritten = "unwritten"
	statusWritten   = "written"
	statusFailed    = "failed"
)

// New checks what can be checked before connecting: output directory,
// templates, store password, tunnel settings.
func New(cfg Config) (*Daemon, error) {
	c := cfg.Helper
	if c == nil {
		return nil, errors.New("daemon: no helper configuration")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	d := &Daemon{
		cfg:       c,
		log:       cfg.Logger,
		src:       &source{},
		stdin:     cfg.Stdin,
		stdout:    cfg.Stdout,
		stderr:    cfg.Stderr,
		firstSVID: make(chan struct{}),
	}
	d.metrics = newMetrics(d.src, time.Now)
	d.x509Status.Store(statusUnwritten)
	for _, j := range c.JWTSVIDs {
		d.jwtStatus.Store(j.FileName, statusUnwritten)
	}
	if c.JWTBundleFileName != "" {
		d.jwtStatus.Store(c.JWTBundleFileName, statusUnwritten)
	}

	if c.X509Enabled() {
		if err := d.setupX509(cfg.Getenv); err != nil {
			return nil, err
		}
	} else if c.CertDir != "" && (c.JWTBundleFileName != "" || len(c.JWTSVIDs) > 0) {
		if err := os.MkdirAll(c.CertDir, 0o755); err != nil {
			return nil, fmt.Errorf("daemon: cert_dir: %w", err)
		}
	}

	for _, tc := range c.Tunnels {
		tc.Logger, tc.Metrics = d.log, d.metrics.tunnelMetrics()
		tun, err := tunnel.New(tc, d.src, d.src)
		if err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
		d.tunnels = append(d.tunnels, tun)
	}
	if len(d.tunnels) == 0 {
		d.tunnelsUp.Store(true)
	}
	if err := d.setupGateways(); err != nil {
		return nil, err
	}
	return d, nil
}

// Run runs the daemon, or writes once when daemon_mode is false.
func Run(ctx context.Context, cfg Config) error {
	d, err := New(cfg)
	if err != nil {
		return err
	}
	if !d.cfg.DaemonMode {
		return d.RunOnce(ctx)
	}
	return d.Run(ctx)
}

// TunnelAddr returns the bound address of the named tunnel once it listens.
func (d *Daemon) TunnelAddr(name string) net.Addr {
	if !d.tunnelsUp.Load() {
		return nil
	}
	for i, t := range d.cfg.Tunnels {
		if t.Name == name {
			return d.tunnels[i].Addr()
		}
	}
	return nil
}

func workloadAPIAddr(addr string) string {
	if strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "tcp:") {
		return addr
	}
	return "unix://" + addr
}

// Run watches the Workload API until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(workloadAPIAddr(d.cfg.AgentAddress)))
	if err != nil {
		return fmt.Errorf("daemon: workload API client: %w", err)
	}
	defer client.Close()
	d.client = client

	// Gateways listen before the first Kafka file is rendered and before
	// the program starts, so both see the final bootstrap address. An
	// early return cancels what already runs.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := d.startGateways(ctx); err != nil {
		return err
	}

	// Every task stops when ctx ends; the first task that fails stops the
	// others, and Run returns its error. What tasks return once they were
	// told to stop is not an error.
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	goTask := func(fn func(context.Context) error) {
		g.Go(func() error {
			err := fn(ctx)
			if err == nil || errors.Is(err, context.Canceled) || parent.Err() != nil {
				return nil
			}
			return err
		})
	}

	if hc := d.cfg.HealthChecks; hc.ListenerEnabled {
		srv, err := health.NewServer(health.Config{
			Addr:         net.JoinHostPort(hc.BindAddress, strconv.Itoa(hc.BindPort)),
			LivenessPath: hc.LivenessPath, ReadinessPath: hc.ReadinessPath,
		}, d, d.metrics.reg)
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.healthAddr.Store(srv.Addr())
		d.log.Info("Serving health and metrics", "addr", srv.Addr().String())
		goTask(srv.Serve)
	}

	if d.cfg.Cmd != "" || d.cfg.PIDFileName != "" {
		d.proc = d.newProcess()
		goTask(d.proc.Run)
	}

	if d.cfg.X509Enabled() || len(d.tunnels) > 0 || len(d.gateways) > 0 {
		d.log.Info("Watching the Workload API for X.509 SVIDs", "agent_address", d.cfg.AgentAddress)
		goTask(func(ctx context.Context) error {
			return client.WatchX509Context(ctx, &x509Watcher{d: d})
		})
	}
	if d.cfg.JWTBundleFileName != "" {
		goTask(func(ctx context.Context) error {
			return client.WatchJWTBundles(ctx, &jwtBundleWatcher{d: d})
		})
	}
	for _, j := range d.cfg.JWTSVIDs {
		goTask(func(ctx context.Context) error {
			d.refreshJWTSVID(ctx, j)
			return nil
		})
	}
	if len(d.tunnels) > 0 {
		goTask(d.runTunnels)
	}
	if len(d.gateways) > 0 {
		goTask(d.waitGateways)
	}

	err = g.Wait()
	if err != nil {
		d.log.Error("Stopping on error", "error", err)
	}
	return err
}

// newProcess is the manager of cmd (or of the PID file's process).
func (d *Daemon) newProcess() *process.Manager {
	sig := unix.SignalNum(d.cfg.RenewSignal)
	return process.New(process.Config{
		Path: d.cfg.Cmd, Args: d.cfg.CmdArgs,
		Stdin: d.stdin, Stdout: d.stdout, Stderr: d.stderr,
		RenewSignal: sig, Restart: d.cfg.OnRotate == config.OnRotateRestart,
		StopTimeout: d.cfg.StopTimeout, RestartOnExit: d.cfg.RestartOnExit,
		BackoffMin: d.cfg.RestartBackoffMin, BackoffMax: d.cfg.RestartBackoffMax,
		PIDFileName: d.cfg.PIDFileName, Hold: d.cfg.HoldUntilSVID,
		Logger: d.log, Hooks: d.metrics.processHooks(),
	})
}

// runTunnels starts the tunnels once the first SVID is in hand.
func (d *Daemon) runTunnels(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-d.firstSVID:
	}
	for _, t := range d.tunnels {
		if err := t.Listen(); err != nil {
			return err
		}
	}
	d.tunnelsUp.Store(true)
	var wg sync.WaitGroup
	errs := make([]error, len(d.tunnels))
	for i, t := range d.tunnels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = t.Serve(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
