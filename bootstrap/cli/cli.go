package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/internal/version"
)

// CrashAfterEnv names the environment variable that makes a test build
// (tag edgeid_testhooks) kill itself with SIGKILL right after the named
// step or checkpoint (see vaultboot.Step* and vaultboot.Checkpoint*). The
// shipped binary has no such hook: the variable does nothing there.
const CrashAfterEnv = "EDGEID_BOOTSTRAP_TEST_CRASH_AFTER"

// ErrUsage is returned for a malformed command line (exit status 2).
var ErrUsage = cliutil.ErrUsage

var help = cliutil.Command{
	Usage: "bootstrap vault --config <file> [--log-level info|debug|warn|error] [--log-format text|json] | bootstrap version",
	Summary: `Brings a Vault server to the state edgeid needs: initialised with its key
shares encrypted at rest, unsealed, a PKI root and intermediate, the SPIRE
server's least-privilege policy and AppRole, a file audit device and,
optionally, Vault's own TLS certificate. Safe to run again at any time.

Progress goes to standard error; the JSON summary to standard output.
Decryption identities and tokens are read from files or the environment
named in the configuration, never from the command line.
Exit status: 0 success (and help), 1 failure, 2 a malformed command line.`,
}

// Run implements `bootstrap vault --config <file>` and `bootstrap version`.
// args are the arguments after "bootstrap" (so args[0] is "vault").
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bootstrap vault", flag.ContinueOnError)
	switch {
	case len(args) > 0 && cliutil.IsHelpArg(args[0]):
		cliutil.PrintHelp(stdout, nil, help)
		return nil
	case len(args) > 0 && args[0] == "version":
		fmt.Fprintln(stdout, version.String("edgeid-bootstrap"))
		return nil
	case len(args) == 0 || args[0] != "vault":
		return cliutil.Usagef(nil, help, stderr, "bootstrap: want the subcommand \"vault\"")
	}
	configPath := fs.String("config", "", "bootstrap configuration file (HCL)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if err := cliutil.Parse(fs, help, args[1:], stdout, stderr); err != nil {
		return err
	}
	if *configPath == "" {
		return cliutil.Usagef(fs, help, stderr, "bootstrap vault: --config is required")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return cliutil.Usagef(fs, help, stderr, "bootstrap vault: --log-level: %v", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	switch strings.ToLower(*logFormat) {
	case "text":
		logger = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return cliutil.Usagef(fs, help, stderr, "bootstrap vault: --log-format must be text or json")
	}

	sum, err := vaultboot.RunFile(ctx, *configPath, vaultboot.Options{Logger: logger, AfterStep: crashHook(logger)})
	if err != nil {
		return err
	}
	return sum.WriteJSON(stdout)
}
