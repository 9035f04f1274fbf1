// Package cliutil holds the command-line conventions of edgeid's programs
// (edgeid, edgeid-helper, edgeid-bootstrap):
//
//   - -h, -help and --help on any command print its help on stdout and
//     exit 0;
//   - a malformed command line prints the error and the command's usage
//     on stderr and exits 2;
//   - any other failure exits 1; success exits 0;
//   - `version` prints internal/version.String.
//
// They keep the standard library's flag package: three small programs with
// a handful of flags each gain nothing from a framework's dependencies.
package cliutil

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit codes of every edgeid program.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// ErrUsage marks a malformed command line.
var ErrUsage = errors.New("usage")

// ErrHelp means help was asked for and printed: exit 0.
var ErrHelp = flag.ErrHelp

// Command is one command's help: its synopsis line(s) and what it does.
type Command struct {
	// Usage is the synopsis, e.g. "edgeid up [flags]".
	Usage string
	// Summary says what the command does, in a sentence or two.
	Summary string
}

// Parse parses args with fs. Help requested (-h, -help, --help) prints
// the command's help and flags to stdout and returns ErrHelp; a bad flag
// or a stray argument (unless fs allows them, see ParseArgs) prints the
// error and usage to stderr and returns an error wrapping ErrUsage.
func Parse(fs *flag.FlagSet, cmd Command, args []string, stdout, stderr io.Writer) error {
	if err := ParseArgs(fs, cmd, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef(fs, cmd, stderr, "unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// ParseArgs is Parse for commands that take positional arguments.
func ParseArgs(fs *flag.FlagSet, cmd Command, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		PrintHelp(stdout, fs, cmd)
		return ErrHelp
	default:
		return Usagef(fs, cmd, stderr, "%v", err)
	}
}

// Usagef prints a usage error and the command's usage to stderr and
// returns it wrapped in ErrUsage.
func Usagef(fs *flag.FlagSet, cmd Command, stderr io.Writer, format string, a ...any) error {
	err := fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
	fmt.Fprintf(stderr, "%s\n\n", err)
	PrintHelp(stderr, fs, cmd)
	return err
}

// PrintHelp writes a command's synopsis, summary and flags.
func PrintHelp(w io.Writer, fs *flag.FlagSet, cmd Command) {
	fmt.Fprintf(w, "Usage: %s\n", cmd.Usage)
	if cmd.Summary != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.Summary)
	}
	if fs == nil {
		return
	}
	has := false
	fs.VisitAll(func(*flag.Flag) { has = true })
	if has {
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// IsHelpArg reports whether arg asks for help.
func IsHelpArg(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// ExitCode maps a command's result to its exit code.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, ErrHelp):
		return ExitOK
	case errors.Is(err, ErrUsage):
		return ExitUsage
	default:
		return ExitFailure
	}
}

// Exit ends a program with err's exit code, printing err (unless it is
// help, or a usage error already printed with its usage) as
// "program: err" on stderr.
func Exit(program string, err error) {
	code := ExitCode(err)
	if code == ExitFailure {
		fmt.Fprintf(os.Stderr, "%s: %v\n", program, err)
	}
	os.Exit(code)
}
