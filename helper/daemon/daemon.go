package daemon

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/edgeid/edgeid/helper/atomicdir"
	"github.com/edgeid/edgeid/helper/config"
	"github.com/edgeid/edgeid/helper/health"
	"github.com/edgeid/edgeid/helper/kafkaconf"
	"github.com/edgeid/edgeid/helper/process"
	"github.com/edgeid/edgeid/helper/svidwriter"
	"github.com/edgeid/edgeid/helper/tunnel"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	kafka   *kafkaRenderer
	client  *workloadapi.Client
	proc    *process.Manager
	tunnels []*tunnel.Tunnel

	stdin          io.Reader
	stdout, stderr io.Writer

	firstSVID     chan struct{}
	firstSVIDOnce sync.Once
	x509Status    atomic.Value // "unwritten", "written", "failed"
	jwtStatus     sync.Map     // file name -> status
	tunnelsUp     atomic.Bool
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
		w, err := atomicdir.New(c.CertDir)
		if err != nil {
			return nil, fmt.Errorf("daemon: cert_dir: %w", err)
		}
		d.writer = w
		d.svidOps = svidwriter.Options{
			SVIDFileName:             c.SVIDFileName,
			KeyFileName:              c.SVIDKeyFileName,
			BundleFileName:           c.SVIDBundleFileName,
			CombinedPEMFileName:      c.CombinedPEMFileName,
			AddIntermediatesToBundle: c.AddIntermediatesToBundle,
			IncludeFederatedDomains:  c.IncludeFederatedDomains,
			OmitExpired:              c.OmitExpired,
			CertFileMode:             c.CertFileMode,
			KeyFileMode:              c.KeyFileMode,
		}
		if p := c.PKCS12; p != nil {
			pw, err := storePassword(p, cfg.Getenv)
			if err != nil {
				return nil, err
			}
			d.svidOps.PKCS12 = &svidwriter.PKCS12Options{
				KeystoreFileName: p.KeystoreFileName, TruststoreFileName: p.TruststoreFileName,
				Password: pw, Legacy: p.Legacy,
			}
		}
		if c.Kafka != nil {
			k, err := newKafkaRenderer(c, d.writer, d.svidOps)
			if err != nil {
				return nil, err
			}
			d.kafka = k
		}
	} else if c.CertDir != "" && (c.JWTBundleFileName != "" || len(c.JWTSVIDs) > 0) {
		if err := os.MkdirAll(c.CertDir, 0o755); err != nil {
			return nil, fmt.Errorf("daemon: cert_dir: %w", err)
		}
	}

	for _, t := range c.Tunnels {
		tun, err := tunnel.New(tunnel.Config{
			Name: t.Name, Mode: t.Mode, Listen: t.Listen, Target: t.Target,
			AllowedSPIFFEIDs: t.AllowedSPIFFEIDs, AllowRemoteClients: t.AllowRemoteClients, MaxConnLifetime: t.MaxConnLifetime,
			DialTimeout: t.DialTimeout, Logger: d.log, Metrics: d.metrics.tunnelMetrics(),
		}, d.src, d.src)
		if err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
		d.tunnels = append(d.tunnels, tun)
	}
	if len(d.tunnels) == 0 {
		d.tunnelsUp.Store(true)
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

// Metrics returns the metrics registry.
func (d *Daemon) Metrics() *health.Registry { return d.metrics.reg }

// HealthAddr is the bound health address once Run listens, else nil.
func (d *Daemon) HealthAddr() net.Addr {
	a, _ := d.healthAddr.Load().(net.Addr)
	return a
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(workloadAPIAddr(d.cfg.AgentAddress)))
	if err != nil {
		return fmt.Errorf("daemon: workload API client: %w", err)
	}
	defer client.Close()
	d.client = client

	var wg sync.WaitGroup
	errc := make(chan error, 4+len(d.tunnels))
	goTask := func(fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- err
			}
		}()
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
		sig := unix.SignalNum(d.cfg.RenewSignal)
		d.proc = process.New(process.Config{
			Path: d.cfg.Cmd, Args: d.cfg.CmdArgs,
			Stdin: d.stdin, Stdout: d.stdout, Stderr: d.stderr,
			RenewSignal: sig, Restart: d.cfg.OnRotate == config.OnRotateRestart,
			StopTimeout: d.cfg.StopTimeout, RestartOnExit: d.cfg.RestartOnExit,
			BackoffMin: d.cfg.RestartBackoffMin, BackoffMax: d.cfg.RestartBackoffMax,
			PIDFileName: d.cfg.PIDFileName, Hold: d.cfg.HoldUntilSVID,
			Logger: d.log, Hooks: d.metrics.processHooks(),
		})
		goTask(d.proc.Run)
	}

	if d.cfg.X509Enabled() || len(d.tunnels) > 0 {
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

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		d.log.Error("Stopping on error", "error", runErr)
	}
	cancel()
	wg.Wait()
	return runErr
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

type x509Watcher struct{ d *Daemon }

func (w *x509Watcher) OnX509ContextUpdate(c *workloadapi.X509Context) { w.d.update(c) }

func (w *x509Watcher) OnX509ContextWatchError(err error) {
	if !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "context canceled") {
		w.d.log.Warn("Workload API watch error; retrying", "error", err)
	}
	// The agent attested this helper but issued nothing: after an agent
	// restart a new stream is attested anew, and an app the helper
	// launched held at exec no longer proves its launch once it runs.
	// Launch it held again, so the retry can be attested.
	if status.Code(err) == codes.PermissionDenied && w.d.proc != nil {
		w.d.proc.Rehold()
	}
}

// update publishes one X.509 update: select, build, write, notify.
func (d *Daemon) update(c *workloadapi.X509Context) {
	received := time.Now()
	svid, err := svidwriter.Select(c, d.cfg.Hint, d.cfg.SPIFFEID)
	if err != nil {
		d.fail("select", err)
		return
	}
	d.src.set(svid, c.Bundles)
	leaf := svid.Certificates[0]
	if d.writer != nil {
		if err := d.publish(svid, c); err != nil {
			d.fail("write", err)
			return
		}
		d.x509Status.Store(statusWritten)
	}
	if d.proc != nil {
		d.proc.Rotated()
	}
	elapsed := time.Since(received)
	if d.writer != nil {
		// The directory fsync, the removal of old versions and the
		// preparation of the next version come after the program was told,
		// off the rotation's critical path.
		if err := d.writer.Settle(); err != nil {
			d.metrics.writeErrors.Inc("settle")
			d.log.Warn("Unable to settle the published files", "error", err)
		}
		if err := d.writer.Prepare(); err != nil {
			d.metrics.writeErrors.Inc("prepare")
			d.log.Warn("Unable to prepare the next version; the next rotation writes it whole", "error", err)
		}
	}
	d.metrics.rotations.Inc()
	d.metrics.rotationSeconds.Set(elapsed.Seconds())
	d.log.Info("X.509 SVID updated",
		"spiffe_id", svid.ID.String(),
		"serial", leaf.SerialNumber.Text(16),
		"expires_at", leaf.NotAfter.UTC().Format(time.RFC3339),
		"duration", elapsed.String(),
	)
	d.firstSVIDOnce.Do(func() { close(d.firstSVID) })
}

func (d *Daemon) fail(kind string, err error) {
	d.metrics.writeErrors.Inc(kind)
	if d.writer != nil {
		d.x509Status.Store(statusFailed)
	}
	d.log.Error("Unable to publish X.509 SVID update; keeping the previous files", "error", err)
}

// publish builds every file of the set and swaps it in.
func (d *Daemon) publish(svid *x509svid.SVID, c *workloadapi.X509Context) error {
	files, err := svidwriter.Files(svid, c.Bundles, d.svidOps)
	if err != nil {
		return err
	}
	if d.kafka != nil {
		kf, err := d.kafka.files(svid.ID.String())
		if err != nil {
			return err
		}
		files = append(files, kf...)
	}
	_, err = d.writer.Write(files)
	return err
}

// RunOnce fetches once, writes every configured file, and returns.
func (d *Daemon) RunOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.WorkloadAPITimeout)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(workloadAPIAddr(d.cfg.AgentAddress)))
	if err != nil {
		return fmt.Errorf("daemon: workload API client: %w", err)
	}
	defer client.Close()
	d.client = client
	var errs []error
	if d.writer != nil {
		c, err := retryFetch(ctx, client.FetchX509Context)
		if err != nil {
			return fmt.Errorf("daemon: fetch X.509 SVID: %w", err)
		}
		svid, err := svidwriter.Select(c, d.cfg.Hint, d.cfg.SPIFFEID)
		if err != nil {
			return err
		}
		if err := d.publish(svid, c); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		if err := d.writer.Settle(); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.log.Info("X.509 SVID written", "spiffe_id", svid.ID.String(), "cert_dir", d.cfg.CertDir)
	}
	if d.cfg.JWTBundleFileName != "" {
		set, err := retryFetch(ctx, client.FetchJWTBundles)
		if err == nil {
			err = d.writeJWTBundles(set)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("daemon: JWT bundle: %w", err))
		}
	}
	for _, j := range d.cfg.JWTSVIDs {
		if _, err := d.writeJWTSVID(ctx, j); err != nil {
			errs = append(errs, fmt.Errorf("daemon: JWT SVID for audience %q: %w", j.Audience, err))
		}
	}
	return errors.Join(errs...)
}

// retryFetch retries until ctx ends: right after registration the agent
// answers PermissionDenied until it has the entry.
func retryFetch[T any](ctx context.Context, fetch func(context.Context) (T, error)) (T, error) {
	delay := 50 * time.Millisecond
	for {
		v, err := fetch(ctx)
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, err
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

type jwtBundleWatcher struct{ d *Daemon }

func (w *jwtBundleWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	if err := w.d.writeJWTBundles(set); err != nil {
		w.d.metrics.writeErrors.Inc("jwt_bundle")
		w.d.log.Error("Unable to write JWT bundle", "error", err)
	}
}

func (w *jwtBundleWatcher) OnJWTBundlesWatchError(err error) {
	if !strings.Contains(err.Error(), "context canceled") {
		w.d.log.Warn("Workload API JWT bundle watch error; retrying", "error", err)
	}
}

// writeJWTBundles writes the bundles as spiffe-helper does: a JSON object of
// trust domain name to base64 of the JWKS document.
func (d *Daemon) writeJWTBundles(set *jwtbundle.Set) error {
	out := map[string]string{}
	for _, b := range set.Bundles() {
		raw, err := b.Marshal()
		if err != nil {
			return err
		}
		out[b.TrustDomain().Name()] = base64.StdEncoding.EncodeToString(raw)
	}
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	name := d.cfg.JWTBundleFileName
	if err := atomicdir.WriteFile(filepath.Join(d.cfg.CertDir, name), data, d.cfg.JWTBundleFileMode); err != nil {
		d.jwtStatus.Store(name, statusFailed)
		return err
	}
	d.jwtStatus.Store(name, statusWritten)
	d.log.Info("JWT bundle updated", "file", name)
	return nil
}

// writeJWTSVID fetches one JWT SVID and writes the token.
func (d *Daemon) writeJWTSVID(ctx context.Context, j config.JWTSVID) (*jwtsvid.SVID, error) {
	svids, err := retryFetch(ctx, func(ctx context.Context) ([]*jwtsvid.SVID, error) {
		return d.client.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: j.Audience, ExtraAudiences: j.ExtraAudiences})
	})
	if err != nil {
		d.jwtStatus.Store(j.FileName, statusFailed)
		return nil, err
	}
	svid := svids[0]
	if d.cfg.Hint != "" {
		svid = nil
		for _, s := range svids {
			if s.Hint == d.cfg.Hint {
				svid = s
			}
		}
		if svid == nil {
			d.jwtStatus.Store(j.FileName, statusFailed)
			return nil, fmt.Errorf("no JWT SVID has hint %q", d.cfg.Hint)
		}
	}
	if err := atomicdir.WriteFile(filepath.Join(d.cfg.CertDir, j.FileName), []byte(svid.Marshal()), d.cfg.JWTSVIDFileMode); err != nil {
		d.jwtStatus.Store(j.FileName, statusFailed)
		return nil, err
	}
	d.jwtStatus.Store(j.FileName, statusWritten)
	d.log.Info("JWT SVID updated", "audience", j.Audience, "spiffe_id", svid.ID.String(), "expires_at", svid.Expiry.UTC().Format(time.RFC3339))
	return svid, nil
}

// refreshJWTSVID keeps one JWT SVID fresh: again at half its lifetime, with
// backoff on errors.
func (d *Daemon) refreshJWTSVID(ctx context.Context, j config.JWTSVID) {
	backoff := time.Second
	for {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		svid, err := d.writeJWTSVID(fctx, j)
		cancel()
		var wait time.Duration
		if err != nil {
			d.metrics.writeErrors.Inc("jwt_svid")
			d.log.Error("Unable to update JWT SVID", "audience", j.Audience, "error", err)
			wait = backoff
			backoff = min(backoff*2, time.Minute)
		} else {
			backoff = time.Second
			wait = time.Until(svid.Expiry)/2 + time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Live reports whether the last writes succeeded (spiffe-helper's liveness).
func (d *Daemon) Live() error {
	if d.x509Status.Load() == statusFailed {
		return errors.New("the last X.509 write failed")
	}
	var err error
	d.jwtStatus.Range(func(k, v any) bool {
		if v == statusFailed {
			err = fmt.Errorf("the last write of %s failed", k)
			return false
		}
		return true
	})
	return err
}

// Ready reports whether a valid SVID is on disk and every tunnel listens.
func (d *Daemon) Ready() error {
	if d.writer != nil {
		if s := d.x509Status.Load(); s != statusWritten {
			return fmt.Errorf("X.509 SVID %s", s)
		}
	}
	if st := d.src.get(); st == nil {
		if d.writer != nil || len(d.tunnels) > 0 {
			return errors.New("no X.509 SVID yet")
		}
	} else if time.Now().After(st.svid.Certificates[0].NotAfter) {
		return errors.New("the X.509 SVID has expired")
	}
	var err error
	d.jwtStatus.Range(func(k, v any) bool {
		if v != statusWritten {
			err = fmt.Errorf("%s %s", k, v)
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	if !d.tunnelsUp.Load() {
		return errors.New("tunnels not listening yet")
	}
	return nil
}

// kafkaRenderer renders the Kafka client configs into the file set.
type kafkaRenderer struct {
	cfg                  *config.Kafka
	keyMode, certMode    os.FileMode
	paths                kafkaconf.Paths
	settings             kafkaconf.Settings
	password             string
	librdkafka, ds, java *template.Template
	librdkafkaExtra      []kafkaconf.Property
	deepstreamExtra      []kafkaconf.Property
	javaExtra            []kafkaconf.Property
	javaHoldsPassword    bool
}

func newKafkaRenderer(c *config.Config, w *atomicdir.Writer, ops svidwriter.Options) (*kafkaRenderer, error) {
	k := c.Kafka
	r := &kafkaRenderer{cfg: k, keyMode: c.KeyFileMode, certMode: c.CertFileMode}
	r.paths = kafkaconf.Paths{
		CA:   w.Path(c.SVIDBundleFileName),
		Cert: w.Path(c.SVIDFileName),
		Key:  w.Path(c.SVIDKeyFileName),
	}
	if c.CombinedPEMFileName != "" {
		r.paths.CombinedPEM = w.Path(c.CombinedPEMFileName)
	}
	if p := ops.PKCS12; p != nil {
		if p.KeystoreFileName != "" {
			r.paths.Keystore = w.Path(p.KeystoreFileName)
		}
		if p.TruststoreFileName != "" {
			r.paths.Truststore = w.Path(p.TruststoreFileName)
		}
		r.password = p.Password
	}
	r.settings = kafkaconf.Settings{
		BootstrapServers:                k.BootstrapServers,
		EndpointIdentificationAlgorithm: k.EndpointIdentificationAlgorithm,
		CipherSuites:                    k.CipherSuites,
	}
	r.librdkafkaExtra = props(k.LibrdkafkaProperties)
	r.deepstreamExtra = props(k.DeepStreamProperties)
	r.javaExtra = props(k.JavaProperties)
	r.javaHoldsPassword = k.JavaKeystoreType == "PKCS12"
	var err error
	load := func(path string) (*template.Template, error) {
		if path == "" {
			return nil, nil
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("daemon: kafka template: %w", err)
		}
		return kafkaconf.Parse(filepath.Base(path), string(text))
	}
	if r.librdkafka, err = load(k.LibrdkafkaTemplate); err != nil {
		return nil, err
	}
	if r.ds, err = load(k.DeepStreamTemplate); err != nil {
		return nil, err
	}
	if r.java, err = load(k.JavaTemplate); err != nil {
		return nil, err
	}
	// Render once now so that a bad setting fails at startup.
	if _, err := r.files("spiffe://example.org/startup-check"); err != nil {
		return nil, err
	}
	return r, nil
}

func props(in []config.Property) []kafkaconf.Property {
	out := make([]kafkaconf.Property, 0, len(in))
	for _, p := range in {
		out = append(out, kafkaconf.Property{Key: p.Key, Value: p.Value})
	}
	return out
}

func (r *kafkaRenderer) files(spiffeID string) ([]atomicdir.File, error) {
	// A file is written at the key's mode when it may hold the store
	// password: the built-in Java file for PKCS#12 stores, and any file
	// whose template names the password (or passes all its data on).
	modeFor := func(tmpl *template.Template, builtinHoldsPassword bool) os.FileMode {
		if (tmpl == nil && builtinHoldsPassword) || (tmpl != nil && kafkaconf.ReferencesPassword(tmpl)) {
			return r.keyMode
		}
		return r.certMode
	}
	librdkafkaProps := func(s kafkaconf.Settings) ([]kafkaconf.Property, error) {
		return kafkaconf.LibrdkafkaProperties(r.paths, s), nil
	}
	outputs := []struct {
		name  string
		mode  os.FileMode
		extra []kafkaconf.Property
		// With a user template, tmpl is rendered with props; without
		// one, builtin renders the file.
		tmpl    *template.Template
		props   func(kafkaconf.Settings) ([]kafkaconf.Property, error)
		builtin func(kafkaconf.Settings) ([]byte, error)
	}{
		{r.cfg.LibrdkafkaFileName, modeFor(r.librdkafka, false), r.librdkafkaExtra, r.librdkafka, librdkafkaProps,
			func(s kafkaconf.Settings) ([]byte, error) { return kafkaconf.Librdkafka(r.paths, s) }},
		{r.cfg.DeepStreamFileName, modeFor(r.ds, false), r.deepstreamExtra, r.ds, librdkafkaProps,
			func(s kafkaconf.Settings) ([]byte, error) {
				return kafkaconf.DeepStream(r.paths, s, r.cfg.DeepStreamPartitionKey)
			}},
		{r.cfg.JavaFileName, modeFor(r.java, r.javaHoldsPassword), r.javaExtra, r.java,
			func(s kafkaconf.Settings) ([]kafkaconf.Property, error) {
				return kafkaconf.JavaProperties(r.paths, s, r.cfg.JavaKeystoreType, r.password)
			},
			func(s kafkaconf.Settings) ([]byte, error) {
				return kafkaconf.Java(r.paths, s, r.cfg.JavaKeystoreType, r.password)
			}},
	}
	var out []atomicdir.File
	for _, o := range outputs {
		if o.name == "" {
			continue
		}
		s := r.settings
		s.Extra = o.extra
		var b []byte
		var err error
		if o.tmpl == nil {
			b, err = o.builtin(s)
		} else {
			var props []kafkaconf.Property
			if props, err = o.props(s); err == nil {
				b, err = kafkaconf.Execute(o.tmpl, kafkaconf.TemplateData{Paths: r.paths, Settings: s, Properties: props, Password: r.password, SPIFFEID: spiffeID})
			}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, atomicdir.File{Name: o.name, Data: b, Mode: o.mode})
	}
	return out, nil
}

// storePassword reads the PKCS#12 password from its file or variable.
func storePassword(p *config.PKCS12, getenv func(string) string) (string, error) {
	switch {
	case p.PasswordFile != "":
		b, err := os.ReadFile(p.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("daemon: pkcs12 password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case p.PasswordEnv != "":
		v := getenv(p.PasswordEnv)
		if v == "" {
			return "", fmt.Errorf("daemon: pkcs12 password_env: variable %s is empty or unset", p.PasswordEnv)
		}
		return v, nil
	}
	return "", nil
}
