package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/edgeid/edgeid/helper/health"
	"github.com/edgeid/edgeid/helper/kafkagw"
	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/helper/tunnel"
	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/internal/svidsource"
)

// gatewayFlags are kafka-gateway's flags.
type gatewayFlags struct {
	cfg                            kafkagw.Config
	workloadAPI, spiffeID, metrics string
	upstreams, upstreamIDs         string
	upstreamPlaintext              bool
}

// kafkaGateway is the cloud-mode Kafka gateway `edgeid up` starts in front
// of the demo broker: SPIFFE mTLS from clients, each request authorized by
// the client's SPIFFE ID against the rendered policy, mTLS upstream with
// the gateway's own SVID (or plaintext to a broker on loopback, with
// -upstream-plaintext). The policy file is reloaded when its content
// changes and on SIGHUP.
func kafkaGateway(ctx context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kafka-gateway", flag.ContinueOnError)
	var f gatewayFlags
	fs.StringVar(&f.workloadAPI, "workload-api", "", "Workload API address (unix://...)")
	fs.StringVar(&f.spiffeID, "spiffe-id", "", "the gateway's SPIFFE ID")
	fs.StringVar(&f.cfg.TrustDomain, "trust-domain", "", "trust domain of clients and brokers")
	fs.StringVar(&f.upstreams, "upstream", "", "comma-separated bootstrap brokers, host:port")
	fs.StringVar(&f.upstreamIDs, "upstream-id", "", "comma-separated SPIFFE IDs the brokers may present (default: any of the trust domain)")
	fs.BoolVar(&f.upstreamPlaintext, "upstream-plaintext", false, "dial the brokers in plaintext, loopback addresses only (a gateway beside the broker); default: mTLS with the gateway's SVID")
	fs.StringVar(&f.cfg.ListenHost, "listen-host", kafkagw.DefaultListenHost, "host the listeners bind")
	fs.StringVar(&f.cfg.AdvertisedHost, "advertise", "", "host name clients are given, which the gateway's SVID carries (default: -listen-host)")
	fs.IntVar(&f.cfg.PortMin, "port-min", 0, "first listener port (0: ephemeral)")
	fs.IntVar(&f.cfg.PortMax, "port-max", 0, "last listener port")
	fs.StringVar(&f.cfg.PolicyFile, "policy", "", "policy file (HCL); SIGHUP reloads it")
	fs.StringVar(&f.metrics, "metrics", "", "host:port serving /metrics and /healthz (loopback only; empty: none)")
	if err := cliutil.Parse(fs, cmd.help, args, stdout, stderr); err != nil {
		return err
	}
	if f.workloadAPI == "" || f.spiffeID == "" || f.upstreams == "" || f.cfg.PolicyFile == "" {
		return fmt.Errorf("%w: kafka-gateway needs -workload-api, -spiffe-id, -upstream and -policy", ErrUsage)
	}
	if f.upstreamPlaintext && f.upstreamIDs != "" {
		return fmt.Errorf("%w: kafka-gateway: -upstream-id names the brokers' SVIDs, which -upstream-plaintext never sees", ErrUsage)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	return runGateway(ctx, f, log)
}

func runGateway(ctx context.Context, f gatewayFlags, log *slog.Logger) error {
	self, err := spiffeid.FromString(f.spiffeID)
	if err != nil {
		return fmt.Errorf("kafka-gateway: -spiffe-id: %w", err)
	}
	p, err := policy.ParseFile(f.cfg.PolicyFile)
	if err != nil {
		return fmt.Errorf("kafka-gateway: %w", err)
	}
	source, err := svidsource.New(ctx, f.workloadAPI, self, 60*time.Second)
	if err != nil {
		return fmt.Errorf("kafka-gateway: %w", err)
	}
	defer source.Close()
	reg := prometheus.NewRegistry()
	m, err := kafkagw.NewMetrics(reg, 0)
	if err != nil {
		return fmt.Errorf("kafka-gateway: %w", err)
	}
	cfg := f.cfg
	cfg.Name, cfg.Mode, cfg.UpstreamTLS, cfg.Policy = "cloud", kafkagw.ModeCloud, !f.upstreamPlaintext, p
	cfg.Upstreams = strings.Split(f.upstreams, ",")
	if f.upstreamIDs != "" {
		cfg.UpstreamIDs = strings.Split(f.upstreamIDs, ",")
	}
	cfg.Logger, cfg.Metrics = log, m
	g, err := kafkagw.New(cfg, kafkagw.Sources{SVIDs: source, Bundles: source})
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	log.Info("Kafka gateway serving", "bootstrap", g.BootstrapAddrs(), "spiffe_id", f.spiffeID, "policy", cfg.PolicyFile)
	if f.metrics != "" {
		if err := serveGatewayMetrics(ctx, f.metrics, reg, log); err != nil {
			return err
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	err = kafkagw.WatchPolicy(ctx, g, cfg.PolicyFile, hup) // a bad file keeps the old policy, and is logged
	g.Wait()
	return err
}

// serveGatewayMetrics serves /metrics, /healthz and /readyz on a loopback
// address until ctx ends.
func serveGatewayMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	if err := tunnel.RequireLoopback(addr); err != nil {
		return fmt.Errorf("kafka-gateway: -metrics: %w", err)
	}
	srv, err := health.NewServer(health.Config{Addr: addr}, health.AlwaysOK{}, reg)
	if err != nil {
		return fmt.Errorf("kafka-gateway: -metrics: %w", err)
	}
	go func() {
		if err := srv.Serve(ctx); err != nil {
			log.Error("Metrics listener stopped", "error", err)
		}
	}()
	log.Info("Serving gateway metrics", "addr", srv.Addr().String())
	return nil
}
