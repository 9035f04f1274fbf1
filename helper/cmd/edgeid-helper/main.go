// Command edgeid-helper keeps a workload's SPIFFE identity on disk, in its
// Kafka client configs and in its TLS tunnels, rotating them atomically.
//
//	edgeid-helper -config helper.conf [-daemon-mode=false]
//
// It reads spiffe-helper v0.11 configuration files unchanged. See
// helper/README.md for every key.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeid/edgeid/helper/config"
	"github.com/edgeid/edgeid/helper/daemon"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "edgeid-helper:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("edgeid-helper", flag.ContinueOnError)
	configPath := fs.String("config", "helper.conf", "path to the configuration file")
	daemonMode := fs.Bool("daemon-mode", true, "keep running and rotating (overrides daemon_mode in the file)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, warnings, err := config.Load(*configPath, config.Options{})
	if err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "daemon-mode" {
			cfg.DaemonMode = *daemonMode
		}
	})
	logger := newLogger(os.Stderr, cfg.LogLevel)
	for _, w := range warnings {
		logger.Warn("Configuration warning", "at", w.Range, "warning", w.Message)
	}

	// SIGINT and SIGTERM stop the helper (and its program, gracefully);
	// renew signals are only ever sent, never handled here.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return daemon.Run(ctx, daemon.Config{
		Helper: cfg,
		Logger: logger,
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	})
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
