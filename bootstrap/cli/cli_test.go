package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeid/edgeid/internal/cliutil"
)

func TestRunUsageAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("state_dir = \"s\"\nvault {\n  adress = \"http://127.0.0.1:8200\"\n}\n"), 0o600)
	tests := []struct {
		name      string
		args      []string
		wantUsage bool
		want      string
	}{
		{"no subcommand", nil, true, `want the subcommand "vault"`},
		{"unknown subcommand", []string{"consul"}, true, `want the subcommand "vault"`},
		{"no config", []string{"vault"}, true, "--config is required"},
		{"extra argument", []string{"vault", "--config", bad, "extra"}, true, `unexpected argument "extra"`},
		{"bad log level", []string{"vault", "--config", bad, "--log-level", "loud"}, true, "--log-level"},
		{"missing file", []string{"vault", "--config", filepath.Join(dir, "nope.hcl")}, false, "nope.hcl"},
		{"unknown key", []string{"vault", "--config", bad}, false, bad + `:3,3-9: Unsupported argument; An argument named "adress" is not expected here`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Run(context.Background(), tt.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if errors.Is(err, ErrUsage) != tt.wantUsage {
				t.Fatalf("usage error = %v, want %v", errors.Is(err, ErrUsage), tt.wantUsage)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), []string{"vault", "-h"}, &stdout, &stderr); cliutil.ExitCode(err) != cliutil.ExitOK {
		t.Fatalf("vault -h: %v, exit %d", err, cliutil.ExitCode(err))
	}
	if !strings.Contains(stdout.String(), "bootstrap vault --config") || stderr.Len() != 0 {
		t.Fatalf("help: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}
