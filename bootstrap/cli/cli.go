package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
)

// CrashAfterEnv names the environment variable that makes a test build
// (tag edgeid_testhooks) kill itself with SIGKILL right after the named
// step or checkpoint (see vaultboot.Step* and vaultboot.Checkpoint*). The
// shipped binary has no such hook: the variable does nothing there.
const CrashAfterEnv = "EDGEID_BOOTSTRAP_TEST_CRASH_AFTER"

// ErrUsage is returned for a malformed command line.
var ErrUsage = errors.New("usage")

const usage = `Usage: bootstrap vault --config <file> [--log-level info|debug|warn|error] [--log-format text|json]

Brings a Vault server to the state edgeid needs: initialised with its key
shares encrypted at rest, unsealed, a PKI root and intermediate, the SPIRE
server's least-privilege policy and AppRole, a file audit device and,
optionally, Vault's own TLS certificate. Safe to run again at any time.

Progress goes to standard error; the JSON summary to standard output.
Decryption identities and tokens are read from files or the environment
named in the configuration, never from the command line.
`

// Run implements `bootstrap vault --config <file>`. args are the arguments
// after "bootstrap" (so args[0] is "vault").
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "vault" {
		fmt.Fprint(stderr, usage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return fmt.Errorf("%w: bootstrap: want the subcommand \"vault\"", ErrUsage)
	}
	fs := flag.NewFlagSet("bootstrap vault", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	configPath := fs.String("config", "", "bootstrap configuration file (HCL)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: bootstrap vault: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: bootstrap vault: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	if *configPath == "" {
		fs.Usage()
		return fmt.Errorf("%w: bootstrap vault: --config is required", ErrUsage)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: bootstrap vault: --log-level: %v", ErrUsage, err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	switch strings.ToLower(*logFormat) {
	case "text":
		logger = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return fmt.Errorf("%w: bootstrap vault: --log-format must be text or json", ErrUsage)
	}

	cfg, err := vaultboot.LoadFile(*configPath)
	if err != nil {
		return err
	}
	opts := vaultboot.Options{Logger: logger}
	opts.AfterStep = crashHook(logger)
	b, err := vaultboot.New(cfg, opts)
	if err != nil {
		return err
	}
	sum, err := b.Run(ctx)
	if err != nil {
		return err
	}
	return sum.WriteJSON(stdout)
}
