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
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeid/edgeid/helper/config"
	"github.com/edgeid/edgeid/helper/daemon"
	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/internal/version"
)

func main() {
	cliutil.Exit("edgeid-helper", run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

var help = cliutil.Command{
	Usage: "edgeid-helper [-config helper.conf] [-daemon-mode=false] | edgeid-helper version",
	Summary: "Keep a workload's SPIFFE identity on disk, in its Kafka client configs and in its TLS tunnels,\n" +
		"rotating them atomically. Reads spiffe-helper v0.11 configuration files unchanged (helper/README.md).\n" +
		"Exit status: 0 success (and help), 1 failure, 2 a malformed command line.",
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("edgeid-helper", flag.ContinueOnError)
	configPath := fs.String("config", "helper.conf", "path to the configuration file")
	daemonMode := fs.Bool("daemon-mode", true, "keep running and rotating (overrides daemon_mode in the file)")
	if err := cliutil.ParseArgs(fs, help, args, stdout, stderr); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 1 && fs.Arg(0) == "version":
		fmt.Fprintln(stdout, version.String("edgeid-helper"))
		return nil
	case fs.NArg() > 0:
		return cliutil.Usagef(fs, help, stderr, "unexpected argument %q", fs.Arg(0))
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
	logger := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
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
		Stdout: stdout,
		Stderr: stderr,
	})
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
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
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
